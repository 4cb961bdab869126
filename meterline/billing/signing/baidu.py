"""Baidu AI Cloud's authentication string, bce-auth-v1 (cloud.baidu.com/doc/Reference/s/
njwvz1yfu): ``bce-auth-v1/{ak}/{timestamp}/{expiration}/{signedHeaders}/{signature}``.

The signing key is HMAC-SHA256 of the prefix ``bce-auth-v1/{ak}/{timestamp}/{expiration}`` with
the secret, in hex; the signature is HMAC-SHA256 of the canonical request with that hex text as
the key. The canonical request is the method, the encoded path (slashes kept), the query as
sorted ``k=v`` strings (``authorization`` left out) and the headers as sorted ``name:value``
lines, values encoded. An empty ``signedHeaders`` means the default set: ``host``,
``content-md5``, ``content-length``, ``content-type`` and every ``x-bce-*``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import NamedTuple

from meterline.billing.signing.common import encode, hmac_sha256

PREFIX = "bce-auth-v1"
DEFAULT_HEADERS = frozenset({"host", "content-md5", "content-length", "content-type"})
EXPIRATION_SECONDS = 1800


def timestamp(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def canonical_query(pairs: Iterable[tuple[str, str]]) -> str:
    # Sorted as whole "k=v" strings: the page's own example puts text10=… before text1=….
    return "&".join(sorted(f"{encode(k)}={encode(v)}" for k, v in pairs
                           if k.lower() != "authorization"))


def canonical_headers(headers: Mapping[str, str],
                      names: Sequence[str] | None) -> tuple[str, list[str]]:
    """The headers' canonical lines and the names signed (``names`` None: the default set)."""
    chosen: dict[str, str] = {}
    for name, value in headers.items():
        lower, text = name.lower(), str(value).strip()
        wanted = (lower in names if names is not None
                  else lower in DEFAULT_HEADERS or lower.startswith("x-bce-"))
        if text and wanted:
            chosen[lower] = text
    lines = sorted(f"{encode(name)}:{encode(value)}" for name, value in chosen.items())
    return "\n".join(lines), sorted(chosen)


def canonical_request(method: str, path: str, query: Iterable[tuple[str, str]],
                      headers: Mapping[str, str], names: Sequence[str] | None) -> str:
    lines, _ = canonical_headers(headers, names)
    return "\n".join([method.upper(), encode(path or "/", keep_slash=True),
                      canonical_query(query), lines])


def signature(secret: str, prefix: str, canonical: str) -> str:
    signing_key = hmac_sha256(secret, prefix).hex()
    return hmac_sha256(signing_key, canonical).hex()


def authorization(*, key_id: str, secret: str, method: str, path: str,
                  query: Iterable[tuple[str, str]], headers: Mapping[str, str], when: str,
                  names: Sequence[str] | None = None,
                  expiration: int = EXPIRATION_SECONDS) -> str:
    """The authentication string; ``names`` None signs the default headers and leaves the
    string's ``signedHeaders`` empty, as the documentation's first example does."""
    prefix = f"{PREFIX}/{key_id}/{when}/{expiration}"
    _, signed_names = canonical_headers(headers, names)
    signed = signature(secret, prefix,
                       canonical_request(method, path, list(query), headers, names))
    return f"{prefix}/{';'.join(signed_names) if names is not None else ''}/{signed}"


def sign(*, key_id: str, secret: str, method: str, host: str, path: str,
         query: Iterable[tuple[str, str]], when: str) -> dict[str, str]:
    """The headers of a signed request: ``host`` and ``x-bce-date`` signed by name (the default
    set would sign ``content-length``, which an HTTP client may set on its own)."""
    headers = {"Host": host, "x-bce-date": when}
    headers["Authorization"] = authorization(
        key_id=key_id, secret=secret, method=method, path=path, query=query, headers=headers,
        when=when, names=["host", "x-bce-date"])
    return headers


class Authorization(NamedTuple):
    key_id: str
    when: str
    expiration: int
    names: list[str] | None
    signature: str


def parse_authorization(value: str) -> Authorization | None:
    parts = value.strip().split("/")
    if len(parts) != 6 or parts[0] != PREFIX or not parts[3].isdigit():
        return None
    return Authorization(parts[1], parts[2], int(parts[3]),
                         parts[4].split(";") if parts[4] else None, parts[5])
