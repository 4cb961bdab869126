"""Throwaway Google service accounts for the tests: a JSON key file (a fresh RSA key, made once
per process) whose ``token_uri`` points at a loopback fake token endpoint."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa


@dataclass(frozen=True)
class ServiceAccount:
    email: str
    path: Path
    public_key: bytes


@lru_cache(maxsize=1)
def _key() -> tuple[str, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(serialization.Encoding.PEM,
                                serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo)
    return private, public


def service_account(directory: Path, token_uri: str, project: str = "proj-1") -> ServiceAccount:
    """A key file in ``directory`` for a new account (its own email) of ``project``."""
    private, public = _key()
    email = f"sa-{secrets.token_hex(4)}@{project}.iam.gserviceaccount.com"
    path = directory / f"{email.split('@')[0]}.json"
    path.write_text(json.dumps({
        "type": "service_account", "project_id": project, "private_key_id": secrets.token_hex(8),
        "private_key": private, "client_email": email, "client_id": "1234567890",
        "auth_uri": "https://accounts.google.com/o/oauth2/auth", "token_uri": token_uri}))
    return ServiceAccount(email, path, public)
