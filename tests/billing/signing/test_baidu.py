"""meterline.billing.signing.baidu against Baidu AI Cloud's own worked examples.

- https://cloud.baidu.com/doc/Reference/s/njwvz1yfu (生成认证字符串): PUT an UploadPart of
  /v1/test/myfolder/readme.txt to bj.bcebos.com at 2015-04-27T08:23:49Z with AK ``a``×32 and SK
  ``b``×32, the default signed headers (an empty ``signedHeaders``), and the page's example of a
  canonical query string.
- https://cloud.baidu.com/doc/Reference/s/wjwvz1xt2 (认证字符串示例): the same request signing
  ``host;x-bce-date`` by name.
"""

from __future__ import annotations

from meterline.billing.signing import baidu

AK, SK = "a" * 32, "b" * 32
WHEN = "2015-04-27T08:23:49Z"
PATH = "/v1/test/myfolder/readme.txt"
QUERY = [("partNumber", "9"), ("uploadId", "a44cc9bab11cbd156984767aad637851")]
HEADERS = {"Host": "bj.bcebos.com", "Date": "Mon, 27 Apr 2015 16:23:49 +0800",
           "Content-Type": "text/plain", "Content-Length": "8",
           "Content-Md5": "NFzcPqhviddjRNnSOGo4rw==", "x-bce-date": WHEN}


def test_the_default_signed_headers_example() -> None:
    assert baidu.canonical_request("PUT", PATH, QUERY, HEADERS, None) == (
        "PUT\n/v1/test/myfolder/readme.txt\n"
        "partNumber=9&uploadId=a44cc9bab11cbd156984767aad637851\n"
        "content-length:8\ncontent-md5:NFzcPqhviddjRNnSOGo4rw%3D%3D\n"
        "content-type:text%2Fplain\nhost:bj.bcebos.com\nx-bce-date:2015-04-27T08%3A23%3A49Z")
    assert baidu.authorization(key_id=AK, secret=SK, method="PUT", path=PATH, query=QUERY,
                               headers=HEADERS, when=WHEN) == (
        f"bce-auth-v1/{AK}/{WHEN}/1800//"
        "d74a04362e6a848f5b39b15421cb449427f419c95a480fd6b8cf9fc783e2999e")


def test_the_signing_key_and_named_headers_example() -> None:
    from meterline.billing.signing.common import hmac_sha256
    assert hmac_sha256(SK, f"bce-auth-v1/{AK}/{WHEN}/1800").hex() == (
        "1d5ce5f464064cbee060330d973218821825ac6952368a482a592e6615aef479")
    assert baidu.authorization(key_id=AK, secret=SK, method="PUT", path=PATH, query=QUERY,
                               headers=HEADERS, when=WHEN, names=["host", "x-bce-date"]) == (
        f"bce-auth-v1/{AK}/{WHEN}/1800/host;x-bce-date/"
        "1b8de5a23a56eef657c69f94c621e7acd227d049a4ba577f537d5e5cebf0cf32")


def test_the_canonical_query_example() -> None:
    assert baidu.canonical_query([("text", ""), ("text1", "测试"), ("text10", "test")]) == (
        "text10=test&text1=%E6%B5%8B%E8%AF%95&text=")
    assert baidu.canonical_query([("authorization", "x"), ("a", "b")]) == "a=b"


def test_sign_parses_back() -> None:
    headers = baidu.sign(key_id=AK, secret=SK, method="GET", host="billing.baidubce.com",
                         path="/v1/bill/resource/month", query=[("month", "2026-10")], when=WHEN)
    parsed = baidu.parse_authorization(headers["Authorization"])
    assert parsed is not None and parsed.names == ["host", "x-bce-date"]
    assert (parsed.key_id, parsed.when, parsed.expiration) == (AK, WHEN, 1800)
    assert baidu.parse_authorization("bce-auth-v1/x") is None
