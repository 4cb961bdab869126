"""Each connector's reading of its provider's error answers (the codes its documentation lists):
throttling, bad credentials, a missing permission (named), server failures."""

from __future__ import annotations

from typing import Any

import pytest

from meterline.billing.connectors import aliyun, baidu, keyed, tencent, volcano

ALIYUN = aliyun.classify_for("DescribeInstanceBill")
TENCENT = tencent.classify_for("DescribeBillDetail")
VOLCANO = volcano.classify_for("ListBillDetail")
KEYED = keyed._classify("a key scope")


def _tc(code: str) -> dict[str, Any]:
    return {"Response": {"Error": {"Code": code, "Message": "m"}, "RequestId": "r"}}


def _volc(code: str) -> dict[str, Any]:
    return {"ResponseMetadata": {"RequestId": "r", "Error": {"Code": code, "Message": "m"}}}


@pytest.mark.parametrize(("classify", "status", "body", "kind", "permission"), [
    (ALIYUN, 200, {"Code": "Success", "Success": True, "Data": {}}, None, None),
    (ALIYUN, 400, {"Code": "Throttling.User"}, "throttled", None),
    (ALIYUN, 400, {"Code": "SignatureDoesNotMatch"}, "auth", None),
    (ALIYUN, 404, {"Code": "InvalidAccessKeyId.NotFound"}, "auth", None),
    (ALIYUN, 403, {"Code": "Forbidden.RAM"}, "permission", "bssapi:DescribeInstanceBill"),
    (ALIYUN, 200, {"Code": "NotAuthorized", "Success": False}, "permission", "bssapi:"),
    (ALIYUN, 503, {"Code": "ServiceUnavailable"}, "server", None),
    (ALIYUN, 400, {"Code": "InvalidParameter"}, "refused", None),
    (TENCENT, 200, {"Response": {"DetailSet": [], "RequestId": "r"}}, None, None),
    (TENCENT, 200, _tc("RequestLimitExceeded.UinLimitExceeded"), "throttled", None),
    (TENCENT, 200, _tc("AuthFailure.SignatureFailure"), "auth", None),
    (TENCENT, 200, _tc("AuthFailure.SecretIdNotFound"), "auth", None),
    (TENCENT, 200, _tc("AuthFailure.UnauthorizedOperation"), "permission",
     "finance:DescribeBillDetail"),
    (TENCENT, 200, _tc("UnauthorizedOperation"), "permission", "finance:"),
    (TENCENT, 200, _tc("InternalError"), "server", None),
    (VOLCANO, 200, {"ResponseMetadata": {}, "Result": {}}, None, None),
    (VOLCANO, 429, _volc("FlowLimitExceeded"), "throttled", None),
    (VOLCANO, 401, _volc("SignatureDoesNotMatch"), "auth", None),
    (VOLCANO, 401, _volc("InvalidAccessKey"), "auth", None),
    (VOLCANO, 403, _volc("AccessDenied"), "permission", "billing:ListBillDetail"),
    (VOLCANO, 500, _volc("InternalError"), "server", None),
    (baidu.classify, 200, {"bills": []}, None, None),
    (baidu.classify, 429, {"code": "RequestRateLimitExceeded"}, "throttled", None),
    (baidu.classify, 400, {"code": "SignatureDoesNotMatch"}, "auth", None),
    (baidu.classify, 403, {"code": "InvalidAccessKeyId"}, "auth", None),
    (baidu.classify, 403, {"code": "AccessDenied"}, "permission", "FCFullControlPolicy"),
    (KEYED, 401, {"error": {"type": "authentication_error"}}, "auth", None),
    (KEYED, 403, {"error": {"type": "permission_error"}}, "permission", "a key scope"),
    (KEYED, 429, None, "throttled", None),
    (KEYED, 529, None, "server", None),
])
def test_error_answers_are_classified(classify: Any, status: int, body: Any, kind: str | None,
                                      permission: str | None) -> None:
    problem = classify(status, body)
    assert (problem.kind if problem else None) == kind
    if permission:
        assert problem is not None and permission in (problem.permission or "")
