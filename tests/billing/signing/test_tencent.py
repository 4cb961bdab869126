"""meterline.billing.signing.tencent against Tencent Cloud's own worked example.

The example is signature v3's (POST DescribeInstances to cvm.tencentcloudapi.com at timestamp
1551113065): https://www.tencentcloud.com/document/api/213/33224 (English; in Chinese
https://cloud.tencent.com/document/api/213/30654). The page first printed the key as
``Gu5t9xGARNpq86cd98joQYCN3EXAMPLE``; it now masks it as ``Gu5t9xGARNpq86cd98joQYCN3*******``
with the signature that string gives. Both are checked.
"""

from __future__ import annotations

import pytest

from meterline.billing.signing import tencent

PAYLOAD = (b'{"Limit": 1, "Filters": [{"Values": ["\\u672a\\u547d\\u540d"], '
           b'"Name": "instance-name"}]}')
HEADERS = {"Content-Type": "application/json; charset=utf-8", "Host": "cvm.tencentcloudapi.com"}
NAMES = ["content-type", "host"]


def test_the_canonical_request_and_string_to_sign_of_the_example() -> None:
    canonical = tencent.canonical_request("POST", "", HEADERS, NAMES, PAYLOAD)
    assert canonical == (
        "POST\n/\n\ncontent-type:application/json; charset=utf-8\nhost:cvm.tencentcloudapi.com\n"
        "\ncontent-type;host\n35e9c5b0e3ae67532d3c9f17ead6c90222632e5b1ff7f6e89887f1398934f064")
    from meterline.billing.signing.common import sha256_hex
    assert sha256_hex(canonical) == (
        "5ffe6a04c0664d6b969fab9a13bdab201d63ee709638e2749d62a09ca18d7031")
    assert tencent.scope_date(1551113065) == "2019-02-25"  # UTC, not UTC+8's 02-26


@pytest.mark.parametrize(("secret", "expected"), [
    ("Gu5t9xGARNpq86cd98joQYCN3EXAMPLE",
     "72e494ea809ad7a8c8f7a4507b9bddcbaa8e581f516e8da2f66e2c5a96525168"),
    ("Gu5t9xGARNpq86cd98joQYCN3*******",
     "2230eefd229f582d8b1b891af7107b91597240707d778ab3738f756258d7652c"),
])
def test_the_documented_signature(secret: str, expected: str) -> None:
    canonical = tencent.canonical_request("POST", "", HEADERS, NAMES, PAYLOAD)
    signed = tencent.signature(secret, "cvm", 1551113065, canonical)
    assert signed == expected
    assert tencent.authorization("AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE", "cvm", 1551113065,
                                 NAMES, signed) == (
        "TC3-HMAC-SHA256 Credential=AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE/2019-02-25/cvm/"
        f"tc3_request, SignedHeaders=content-type;host, Signature={expected}")


def test_sign_signs_the_action_and_parses_back() -> None:
    headers = tencent.sign(secret_id="AKID", secret="s", host="billing.tencentcloudapi.com",
                           action="DescribeBillDetail", version="2018-07-09",
                           timestamp=1551113065, payload=b"{}")
    parsed = tencent.parse_authorization(headers["Authorization"])
    assert parsed is not None
    assert (parsed.secret_id, parsed.date, parsed.service, parsed.names) == (
        "AKID", "2019-02-25", "billing", ["content-type", "host", "x-tc-action"])
    canonical = tencent.canonical_request("POST", "", headers, parsed.names, b"{}")
    assert tencent.signature("s", "billing", 1551113065, canonical) == parsed.signature
    assert tencent.signature("t", "billing", 1551113065, canonical) != parsed.signature
