"""meterline.billing.signing.volcano against Volcano Engine's own worked examples.

- https://www.volcengine.com/docs/6369/67270 (签名示例): GET ListUsers to iam.volcengineapi.com at
  20240619T071306Z, with every intermediate value.
- https://www.volcengine.com/docs/6369/67269 (签名方法): the billing service's own examples, GET
  QueryBalanceAcct and POST ListBill at 20250329T180937Z.

Both pages use the sample AccessKey printed below (it has no permissions).
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from meterline.billing.signing import volcano
from meterline.billing.signing.common import sha256_hex

AK = "AKLTYWViMTVmZGYzM2E0NDI5Mzk2MDZjNjFmMjc2MjRjMzg"
SK = "WkRZeE1EQmxPVGhsWWpWak5HVmtNbUUxTXpZeU9UVXlOMlE1TmpZeVlqTQ=="
NAMES = ["host", "x-date"]


def test_the_signature_example_step_by_step() -> None:
    when = "20240619T071306Z"
    headers = {"Host": "iam.volcengineapi.com", "X-Date": when}
    query = [("Action", "ListUsers"), ("Version", "2018-01-01"), ("Limit", "10"),
             ("Offset", "0")]
    canonical = volcano.canonical_request("GET", "/", query, headers, NAMES, b"")
    assert canonical.splitlines()[2] == "Action=ListUsers&Limit=10&Offset=0&Version=2018-01-01"
    assert sha256_hex(canonical) == (
        "5ed5bca3905e1fcbf789abb56a17c2d819674a3bcfa468ae476bd1ea80d135cb")
    assert volcano.signing_key(SK, "20240619", "cn-beijing", "iam").hex() == (
        "abee62e533a58934c49954459a3c3237d2fccea517c9a7c8a2651d8ea7779826")
    signed = volcano.signature(SK, when, "cn-beijing", "iam", canonical)
    assert volcano.authorization(AK, when, "cn-beijing", "iam", NAMES, signed) == (
        f"HMAC-SHA256 Credential={AK}/20240619/cn-beijing/iam/request, "
        "SignedHeaders=host;x-date, "
        "Signature=e31c4558bcfe08a286001f59cedbf0791ffd0b2362f10e55ee2627467bcdde93")


@pytest.mark.parametrize(("method", "action", "body", "canonical_hash", "expected"), [
    ("GET", "QueryBalanceAcct", b"",
     "43171c1658c64b5db55c58d54988a4598d2d09a5613136beaa5eef40eae6e2c1",
     "1eda9e7e6b1728151a8e8791fdaf67cfbd28bd5c80d0fce2eb208746cf483105"),
    ("POST", "ListBill", b'{"Limit":10,"BillPeriod":"2023-08"}',
     "27383e3b56d03850f5634483527fbddcbf06cf98de1bc8a6679ef2300bff3b15",
     "5e8480ceea12d0000a23c054151c50dd02c1a7dec835004057d19f13d53a7658"),
])
def test_the_billing_examples(method: str, action: str, body: bytes, canonical_hash: str,
                              expected: str) -> None:
    when = volcano.x_date(datetime(2025, 3, 29, 18, 9, 37, tzinfo=UTC))
    assert when == "20250329T180937Z"
    headers = {"Host": "billing.volcengineapi.com", "X-Date": when}
    query = [("Action", action), ("Version", "2022-01-01")]
    canonical = volcano.canonical_request(method, "/", query, headers, NAMES, body)
    assert sha256_hex(canonical) == canonical_hash
    assert volcano.signature(SK, when, "cn-beijing", "billing", canonical) == expected


def test_sign_signs_the_body_hash_and_parses_back() -> None:
    headers = volcano.sign(key_id=AK, secret=SK, method="POST", host="billing.volcengineapi.com",
                           region="cn-beijing", service="billing", when="20250329T180937Z",
                           query=[("Action", "ListBillDetail"), ("Version", "2022-01-01")],
                           body=b"{}", content_type="application/json")
    parsed = volcano.parse_authorization(headers["Authorization"])
    assert parsed is not None
    assert parsed.names == ["content-type", "host", "x-content-sha256", "x-date"]
    assert (parsed.key_id, parsed.date, parsed.region, parsed.service) == (
        AK, "20250329", "cn-beijing", "billing")
    assert headers["X-Content-Sha256"] == sha256_hex(b"{}")
