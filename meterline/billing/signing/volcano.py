"""Volcano Engine's OpenAPI signature, HMAC-SHA256 (www.volcengine.com/docs/6369/67269).

Like AWS's version 4: the canonical request is the method, the path, the sorted encoded query,
the signed headers as ``name:value`` (``host`` and ``x-date`` at least; ``x-content-sha256`` and
``content-type`` where sent), their names and the body's SHA-256. The string to sign is
``HMAC-SHA256``, ``X-Date`` (``20240619T071306Z``), the scope ``date/region/service/request``
and the canonical request's SHA-256; the key is derived from the secret as it is (no prefix)
through the date, region, service and ``request``.
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

ALGORITHM = "HMAC-SHA256"


def x_date(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def canonical_request(method: str, path: str, query: Iterable[tuple[str, str]],
                      headers: Mapping[str, str], names: Sequence[str],
                      payload: bytes) -> str:
    lower = {name.lower(): value for name, value in headers.items()}
    header_lines = "".join(f"{name}:{lower.get(name, '').strip()}\n" for name in names)
    return "\n".join([method.upper(), encode(path or "/", keep_slash=True),
                      canonical_query(query), header_lines, ";".join(names),
                      sha256_hex(payload)])


def signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    return hmac_sha256(hmac_sha256(hmac_sha256(hmac_sha256(secret, date), region), service),
                       "request")


def signature(secret: str, when: str, region: str, service: str, canonical: str) -> str:
    scope = f"{when[:8]}/{region}/{service}/request"
    string_to_sign = f"{ALGORITHM}\n{when}\n{scope}\n{sha256_hex(canonical)}"
    return hmac_sha256(signing_key(secret, when[:8], region, service), string_to_sign).hex()


def authorization(key_id: str, when: str, region: str, service: str, names: Sequence[str],
                  signed: str) -> str:
    return (f"{ALGORITHM} Credential={key_id}/{when[:8]}/{region}/{service}/request, "
            f"SignedHeaders={';'.join(names)}, Signature={signed}")


def sign(*, key_id: str, secret: str, method: str, host: str, region: str, service: str,
         when: str, query: Iterable[tuple[str, str]], body: bytes = b"",
         content_type: str | None = None, path: str = "/") -> dict[str, str]:
    """The headers of a signed request, ``Authorization`` included."""
    pairs = list(query)
    headers = {"Host": host, "X-Date": when, "X-Content-Sha256": sha256_hex(body)}
    if content_type:
        headers["Content-Type"] = content_type
    names = sorted(name.lower() for name in headers)
    signed = signature(secret, when, region, service,
                       canonical_request(method, path, pairs, headers, names, body))
    headers["Authorization"] = authorization(key_id, when, region, service, names, signed)
    return headers


class Authorization(NamedTuple):
    key_id: str
    date: str
    region: str
    service: str
    names: list[str]
    signature: str


def parse_authorization(value: str) -> Authorization | None:
    parts = authorization_fields(value, ALGORITHM)
    credential = parts["Credential"].split("/") if parts else []
    if parts is None or len(credential) != 5 or credential[4] != "request":
        return None
    key_id, date, region, service = credential[:4]
    return Authorization(key_id, date, region, service, parts["SignedHeaders"].split(";"),
                         parts["Signature"])
