"""Tencent Cloud API 3.0's signature v3, TC3-HMAC-SHA256 (cloud.tencent.com/document/api/
213/30654; in English www.tencentcloud.com/document/api/213/33224).

The canonical request is the method, ``/``, the query (empty for POST), the signed headers as
``name:value`` lower-cased (``content-type`` and ``host`` at least), their names, and the
payload's SHA-256. The string to sign names the algorithm, the Unix timestamp (``X-TC-Timestamp``),
the scope ``date/service/tc3_request`` (the UTC date of the timestamp) and the canonical
request's SHA-256. The key is derived ``HMAC("TC3" + secret, date)`` → service → ``tc3_request``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import NamedTuple

from meterline.billing.signing.common import authorization_fields, hmac_sha256, sha256_hex

ALGORITHM = "TC3-HMAC-SHA256"


def scope_date(timestamp: int) -> str:
    """The credential scope's date: the UTC day of the timestamp (never a local one)."""
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d")


def canonical_request(method: str, query: str, headers: Mapping[str, str],
                      names: Sequence[str], payload: bytes) -> str:
    lower = {name.lower(): value for name, value in headers.items()}
    header_lines = "".join(f"{name}:{lower.get(name, '').strip().lower()}\n" for name in names)
    return "\n".join([method.upper(), "/", query, header_lines, ";".join(names),
                      sha256_hex(payload)])


def signature(secret: str, service: str, timestamp: int, canonical: str) -> str:
    date = scope_date(timestamp)
    string_to_sign = (f"{ALGORITHM}\n{timestamp}\n{date}/{service}/tc3_request\n"
                      f"{sha256_hex(canonical)}")
    key = hmac_sha256(hmac_sha256(hmac_sha256(f"TC3{secret}", date), service), "tc3_request")
    return hmac_sha256(key, string_to_sign).hex()


def authorization(secret_id: str, service: str, timestamp: int, names: Sequence[str],
                  signed: str) -> str:
    return (f"{ALGORITHM} Credential={secret_id}/{scope_date(timestamp)}/{service}/tc3_request,"
            f" SignedHeaders={';'.join(names)}, Signature={signed}")


def sign(*, secret_id: str, secret: str, host: str, action: str, version: str,
         timestamp: int, payload: bytes, region: str | None = None, service: str | None = None,
         content_type: str = "application/json; charset=utf-8") -> dict[str, str]:
    """The headers of a signed POST (JSON) request, ``Authorization`` included. The service
    is the product's, the first label of its domain unless given."""
    service = service or host.split(".", 1)[0]
    headers = {"Content-Type": content_type, "Host": host, "X-TC-Action": action,
               "X-TC-Version": version, "X-TC-Timestamp": str(timestamp)}
    if region:
        headers["X-TC-Region"] = region
    names = ["content-type", "host", "x-tc-action"]
    signed = signature(secret, service, timestamp,
                       canonical_request("POST", "", headers, names, payload))
    headers["Authorization"] = authorization(secret_id, service, timestamp, names, signed)
    return headers


class Authorization(NamedTuple):
    secret_id: str
    date: str
    service: str
    names: list[str]
    signature: str


def parse_authorization(value: str) -> Authorization | None:
    parts = authorization_fields(value, ALGORITHM)
    credential = parts["Credential"].split("/") if parts else []
    if parts is None or len(credential) != 4 or credential[3] != "tc3_request":
        return None
    return Authorization(credential[0], credential[1], credential[2],
                         parts["SignedHeaders"].split(";"), parts["Signature"])
