"""A key bound to a user cannot be used as another user (issue 12.4): ``x-meterline-user``
once overrode the key's user, so a user over budget could call on as "mallory"."""

from __future__ import annotations

import openai
import pytest

from tests.gateway.conftest import Gateway

MODEL = "openai/gpt-5-nano"
HELLO = [{"role": "user", "content": "hello"}]


def test_a_bound_key_cannot_name_another_user(gateway: Gateway) -> None:
    with gateway.openai() as client:  # bob's key
        with pytest.raises(openai.PermissionDeniedError) as refused:
            client.chat.completions.create(model=MODEL, messages=HELLO,
                                           extra_headers={"x-meterline-user": "mallory"})
        error = refused.value.response.json()["error"]
        assert error["code"] == "user_not_allowed"
        assert error["field"] == "x-meterline-user"
        assert "'bob'" in error["message"] and "mallory" in error["message"]
        assert refused.value.response.headers["x-meterline-request-id"]
        # Naming its own user is fine, and so is naming none.
        for headers in ({"x-meterline-user": "bob"}, {}):
            answer = client.chat.completions.with_raw_response.create(
                model=MODEL, messages=HELLO, extra_headers=headers)
            record = gateway.record(answer.headers["x-meterline-request-id"])
            assert record["user"] == "bob"


def test_an_unbound_key_may_name_its_user(gateway: Gateway) -> None:
    key, _ = gateway.new_key()
    with gateway.openai(key) as client:
        answer = client.chat.completions.with_raw_response.create(
            model=MODEL, messages=HELLO, extra_headers={"x-meterline-user": "carol"})
    assert gateway.record(answer.headers["x-meterline-request-id"])["user"] == "carol"
