"""meterline.billing.signing.aliyun against Alibaba Cloud's own worked example.

The example is the V3 signature page's: https://help.aliyun.com/zh/sdk/product-overview/
v3-request-structure-and-signature (POST RunInstances to ecs.cn-shanghai.aliyuncs.com with the
page's placeholder AccessKey ``YourAccessKeyId`` / ``YourAccessKeySecret``).
"""

from __future__ import annotations

from datetime import UTC, datetime

from meterline.billing.signing import aliyun
from meterline.billing.signing.common import EMPTY_SHA256

QUERY = [("ImageId", "win2019_1809_x64_dtc_zh-cn_40G_alibase_20230811.vhd"),
         ("RegionId", "cn-shanghai")]
EXPECTED = ("ACS3-HMAC-SHA256 Credential=YourAccessKeyId,SignedHeaders=host;x-acs-action;"
            "x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version,"
            "Signature=06563a9e1b43f5dfe96b81484da74bceab24a1d853912eee15083a6f0f3283c0")


def _sign(secret: str = "YourAccessKeySecret", **change: str) -> dict[str, str]:
    values = {"action": "RunInstances", "date": aliyun.timestamp(
        datetime(2023, 10, 26, 10, 22, 32, 123000, tzinfo=UTC))} | change
    return aliyun.sign(key_id="YourAccessKeyId", secret=secret, method="POST",
                       host="ecs.cn-shanghai.aliyuncs.com", version="2014-05-26",
                       nonce="3156853299f313e23d1673dc12e1703d", query=QUERY, **values)


def test_the_documented_example() -> None:
    headers = _sign()
    assert headers["Authorization"] == EXPECTED
    assert headers["x-acs-date"] == "2023-10-26T10:22:32Z"  # no fraction of a second
    assert headers["x-acs-content-sha256"] == EMPTY_SHA256


def test_the_canonical_request_of_the_example() -> None:
    headers = _sign()
    names = aliyun.signed_names(headers)
    assert aliyun.canonical_request("POST", "/", QUERY, headers, names, EMPTY_SHA256) == (
        "POST\n/\nImageId=win2019_1809_x64_dtc_zh-cn_40G_alibase_20230811.vhd&RegionId="
        "cn-shanghai\nhost:ecs.cn-shanghai.aliyuncs.com\nx-acs-action:RunInstances\n"
        f"x-acs-content-sha256:{EMPTY_SHA256}\nx-acs-date:2023-10-26T10:22:32Z\n"
        "x-acs-signature-nonce:3156853299f313e23d1673dc12e1703d\nx-acs-version:2014-05-26\n\n"
        "host;x-acs-action;x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;"
        f"x-acs-version\n{EMPTY_SHA256}")


def test_any_change_changes_the_signature() -> None:
    assert _sign(secret="other")["Authorization"] != EXPECTED
    assert _sign(action="StopInstances")["Authorization"] != EXPECTED


def test_an_authorization_header_parses_back() -> None:
    parsed = aliyun.parse_authorization(EXPECTED)
    assert parsed is not None and parsed.key_id == "YourAccessKeyId"
    assert parsed.names[0] == "host" and parsed.signature.startswith("06563a9e")
    assert aliyun.parse_authorization("Bearer x") is None
