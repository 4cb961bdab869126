"""Alibaba Cloud's V3 request signature, ACS3-HMAC-SHA256 (help.aliyun.com/zh/sdk/
product-overview/v3-request-structure-and-signature).

The canonical request is the method, the encoded path, the sorted encoded query, every signed
header as ``name:value`` (``host``, ``content-type`` and each ``x-acs-*``, names lower-cased and
sorted), the signed header names, and the body's SHA-256 (also sent as
``x-acs-content-sha256``). The string to sign is the algorithm and that request's SHA-256; the
signature is HMAC-SHA256 of it with the AccessKey secret, in hex.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import NamedTuple

from meterline.billing.signing.common import (
    authorization_fields,
    canonical_query,
    encode,
    hmac_sha256,
    sha256_hex,
)

ALGORITHM = "ACS3-HMAC-SHA256"


def signed_names(headers: Mapping[str, str]) -> list[str]:
    """The header names a request signs: ``host``, ``content-type`` and every ``x-acs-*``."""
    names = {name.lower() for name in headers}
    return sorted(n for n in names if n in ("host", "content-type") or n.startswith("x-acs-"))


def canonical_request(method: str, path: str, query: Iterable[tuple[str, str]],
                      headers: Mapping[str, str], names: Sequence[str],
                      payload_hash: str) -> str:
    lower = {name.lower(): value for name, value in headers.items()}
    header_lines = "".join(f"{name}:{lower.get(name, '').strip()}\n" for name in names)
    return "\n".join([method.upper(), encode(path or "/", keep_slash=True),
                      canonical_query(query), header_lines, ";".join(names), payload_hash])


def signature(secret: str, canonical: str) -> str:
    string_to_sign = f"{ALGORITHM}\n{sha256_hex(canonical)}"
    return hmac_sha256(secret, string_to_sign).hex()


def timestamp(at: datetime) -> str:
    """``x-acs-date``: UTC, to the second (``2023-10-26T10:22:32Z``)."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def sign(*, key_id: str, secret: str, method: str, host: str, action: str, version: str,
         date: str, nonce: str, path: str = "/", query: Iterable[tuple[str, str]] = (),
         body: bytes = b"", content_type: str | None = None) -> dict[str, str]:
    """The headers of a signed request, ``Authorization`` included (``host`` among them: an
    HTTP client sends its own, which must be the same)."""
    headers = {"host": host, "x-acs-action": action, "x-acs-version": version,
               "x-acs-date": date, "x-acs-signature-nonce": nonce,
               "x-acs-content-sha256": sha256_hex(body)}
    if content_type:
        headers["content-type"] = content_type
    names = signed_names(headers)
    canonical = canonical_request(method, path, query, headers, names,
                                  headers["x-acs-content-sha256"])
    headers["Authorization"] = (f"{ALGORITHM} Credential={key_id},SignedHeaders="
                                f"{';'.join(names)},Signature={signature(secret, canonical)}")
    return headers


class Authorization(NamedTuple):
    key_id: str
    names: list[str]
    signature: str


def parse_authorization(value: str) -> Authorization | None:
    """The parts of an ``Authorization`` header, or None when it is not ACS3's."""
    parts = authorization_fields(value, ALGORITHM)
    if parts is None:
        return None
    return Authorization(parts["Credential"], parts["SignedHeaders"].split(";"),
                         parts["Signature"])
