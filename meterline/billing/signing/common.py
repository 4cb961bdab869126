"""Hashing and the RFC 3986 encoding every provider's canonical request uses."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from urllib.parse import quote

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


def sha256_hex(data: bytes | str) -> str:
    return hashlib.sha256(data.encode() if isinstance(data, str) else data).hexdigest()


def hmac_sha256(key: bytes | str, message: str) -> bytes:
    return hmac.new(key.encode() if isinstance(key, str) else key, message.encode(),
                    hashlib.sha256).digest()


def encode(text: str, *, keep_slash: bool = False) -> str:
    """Percent-encode all but RFC 3986's unreserved characters (``A-Za-z0-9-_.~``), UTF-8:
    a space is ``%20`` (never ``+``) and ``*`` is ``%2A``, as every one of these signatures
    requires."""
    return quote(text, safe="/~" if keep_slash else "~")


def canonical_query(pairs: Iterable[tuple[str, str]]) -> str:
    """``k=v`` pairs, names and values encoded, sorted by name (then value), joined by ``&``."""
    return "&".join(f"{encode(k)}={encode(v)}" for k, v in sorted(pairs))


def authorization_fields(value: str, algorithm: str) -> dict[str, str] | None:
    """The ``Name=value`` fields of an ``Authorization: <algorithm> A=x, B=y`` header, or None
    when it names another algorithm or lacks Credential, SignedHeaders or Signature."""
    named, _, rest = value.partition(" ")
    if named != algorithm:
        return None
    fields = dict(part.strip().split("=", 1) for part in rest.split(",") if "=" in part)
    return fields if {"Credential", "SignedHeaders", "Signature"} <= fields.keys() else None


def same(a: str, b: str) -> bool:
    """Compare signatures in constant time (the test doubles verify with it)."""
    return hmac.compare_digest(a.encode(), b.encode())
