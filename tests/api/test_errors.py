"""Error answers: OpenAI's shape, the right status per error, and never a 500 for bad input."""

from __future__ import annotations

from typing import Any

import httpx

ADMIN = {"Authorization": "Bearer test-admin-token"}  # tests/conftest.py's ADMIN_TOKEN
EVENT = {"id": "evt-1", "timestamp": "2026-11-01T10:00:00Z", "model": "openai/gpt-5-nano",
         "usage": {"input_tokens": 1000, "output_tokens": 500}}
PRICE = {"model": "test/m1", "unit": "1", "currency": "USD", "effective_from": "2020-01-01",
         "prices": {"input_tokens": "0.0000005"}}
FX = {"base": "USD", "quote": "CNY", "rate": "7.1"}

Call = tuple[str, str, dict[str, Any]]  # method, path, httpx keyword arguments


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def fresh(client: httpx.Client) -> httpx.Client:
    """A client that opens a new connection per request, so one bad answer cannot spoil the
    next request's connection."""
    return httpx.Client(base_url=client.base_url, timeout=60,
                        limits=httpx.Limits(max_keepalive_connections=0))


def server_errors(client: httpx.Client, calls: list[Call]) -> list[str]:
    """Send every call; return a line for each answered with a 5xx, a dropped connection or a
    4xx without the error shape (a 2xx is fine: some odd input is valid)."""
    bad: list[str] = []
    with fresh(client) as http:
        for method, path, kwargs in calls:
            try:
                answer = http.request(method, path, **kwargs)
            except httpx.HTTPError as exc:  # the server dropped the connection
                bad.append(f"{method} {path} {kwargs!r:.120}: {exc!r}")
                continue
            body = answer.json() if answer.headers.get("content-type", "").startswith(
                "application/json") else None
            shaped = isinstance(body, dict) and isinstance(body.get("error"), dict) and {
                "message", "type", "code"} <= set(body["error"])
            if path == "/v1/usage" and isinstance(body, dict) and "results" in body:
                # a batch whose every event was refused: one error per event (SPEC §4)
                shaped = all("error" in r and "field" in r for r in body["results"])
            if answer.status_code >= 500 or (answer.status_code >= 400 and not shaped):
                bad.append(f"{answer.status_code} {method} {path} {kwargs!r:.120}: "
                           f"{answer.text[:160]}")
    return bad


def events(*items: Any) -> dict[str, Any]:
    return {"json": {"events": list(items)}}


def test_error_shapes(client: httpx.Client, tenant_key: str) -> None:
    def error(answer: httpx.Response, status: int) -> dict[str, Any]:
        assert answer.status_code == status, answer.text
        assert answer.headers["content-type"].startswith("application/json")
        body = answer.json()
        assert set(body) == {"error"}
        found: dict[str, Any] = body["error"]
        assert isinstance(found["message"], str) and found["message"]
        return found

    # 400 from meterline's own validation: names the field.
    bad = error(client.post("/v1/usage", json={"events": "x"}, headers=bearer(tenant_key)), 400)
    assert (bad["type"], bad["code"], bad["field"]) == (
        "invalid_request_error", "invalid_request", "events")
    # 400 from request-model validation: the same shape, the field without "body.".
    bad = error(client.post("/api/tenants", json={"name": "acme", "timezone": 7},
                            headers=ADMIN), 400)
    assert (bad["type"], bad["code"], bad["field"]) == (
        "invalid_request_error", "invalid_request", "timezone")
    assert bad["message"].startswith("timezone: ")
    bad = error(client.get("/api/usage?limit=-1", headers=ADMIN), 400)
    assert bad["field"] == "limit"
    # 401
    bad = error(client.get("/api/tenants"), 401)
    assert (bad["type"], bad["code"]) == ("authentication_error", "invalid_api_key")
    # 404: a thing that does not exist, and a route that does not exist.
    bad = error(client.post("/v1/billing/quote", json={"model": "nope/nope"},
                            headers=bearer(tenant_key)), 404)
    assert (bad["type"], bad["code"]) == ("not_found_error", "model_not_found")
    bad = error(client.get("/api/tenants/ghost/users", headers=ADMIN), 404)
    assert (bad["type"], bad["code"]) == ("not_found_error", "tenant_not_found")
    bad = error(client.get("/v1/nothing-here"), 404)
    assert bad["code"] == "not_found"
    # 405
    bad = error(client.delete("/api/tenants", headers=ADMIN), 405)
    assert bad["code"] == "method_not_allowed"
    bad = error(client.get("/v1/usage", headers=bearer(tenant_key)), 405)
    assert bad["code"] == "method_not_allowed"
    # 409
    bad = error(client.post("/api/tenants", json={"name": "acme"}, headers=ADMIN), 409)
    assert (bad["type"], bad["code"]) == ("conflict_error", "conflict")


def test_garbage_never_gets_a_500(client: httpx.Client, tenant_key: str) -> None:
    key = {"headers": bearer(tenant_key)}
    admin = {"headers": ADMIN}
    bodies: list[bytes] = [b"", b"null", b"[]", b"{}", b"123", b'"text"', b"{oops", b"\xff\xfe\x00",
                           b"\x00" * 64, b"NaN", b"1e999999"]
    calls: list[Call] = []
    for raw in bodies:
        for method, path, auth in [("POST", "/v1/usage", key), ("POST", "/v1/billing/quote", key),
                                   ("POST", "/api/tenants", admin), ("POST", "/api/keys", admin),
                                   ("POST", "/api/prices", admin), ("POST", "/api/fx", admin),
                                   ("POST", "/api/prices/import?format=litellm", admin),
                                   ("POST", "/api/prices/import?format=meterline", admin)]:
            calls.append((method, path, {"content": raw, **auth}))
            calls.append((method, path, {"content": raw, "headers": {
                **auth["headers"], "content-type": "application/json"}}))
    odd_events: list[Any] = [
        None, 5, "evt", [], {}, {"id": None}, {"id": ["x"], "model": "m"},
        EVENT | {"usage": None}, EVENT | {"usage": "1000"}, EVENT | {"usage": {"": 1}},
        EVENT | {"usage": {"input_tokens": None}}, EVENT | {"usage": {"input_tokens": []}},
        EVENT | {"usage": {"input_tokens": {"n": 1}}}, EVENT | {"usage": {"input_tokens": "NaN"}},
        EVENT | {"usage": {"input_tokens": "Infinity"}}, EVENT | {"usage": {"seconds": "nan"}},
        EVENT | {"usage": {"seconds": -0.5}}, EVENT | {"usage": {"input_tokens": 1e300}},
        EVENT | {"usage": {"output_tokens": 10, "reasoning_tokens": 11}},
        EVENT | {"usage": {"input_tokens": 2**63}}, EVENT | {"usage": {"input_tokens": 2**64}},
        EVENT | {"usage": {"input_tokens": "1e999999999"}},
        EVENT | {"usage": {"seconds": "1e-999999999"}},
        EVENT | {"timestamp": ""}, EVENT | {"timestamp": []}, EVENT | {"timestamp": "2026-02-30"},
        EVENT | {"timestamp": "2026-11-01T25:00:00Z"}, EVENT | {"timestamp": True},
        EVENT | {"status": None}, EVENT | {"status": 1}, EVENT | {"status": ["success"]},
        EVENT | {"user": 5}, EVENT | {"user": ""}, EVENT | {"user": {"id": 1}},
        EVENT | {"metadata": "x"}, EVENT | {"tags": [1]}, EVENT | {"tags": {"a": 1}},
        EVENT | {"attributes": "x"}, EVENT | {"attributes": {"size": None}},
        EVENT | {"attributes": {"size": [1]}}, EVENT | {"model": 5}, EVENT | {"model": ""},
        EVENT | {"model": "m" * 201},
    ]
    calls += [("POST", "/v1/usage", {**events(item), **key}) for item in odd_events]
    calls += [("POST", "/v1/usage", {**events(*odd_events), **key}),
              ("POST", "/v1/usage", {**events(EVENT | {"id": 5}, 5, EVENT | {"usage": 5}), **key}),
              ("POST", "/v1/usage", {"json": {"events": [[EVENT]]}, **key}),
              ("POST", "/v1/usage", {"json": {"events": "all"}, **key}),
              ("POST", "/v1/usage", {"json": {"events": None}, **key})]
    odd_quotes: list[Any] = [
        {"model": None}, {"model": ""}, {"model": ["a"]}, {"model": {"a": 1}},
        {"model": "openai/gpt-5-nano", "usage": None}, {"model": "openai/gpt-5-nano", "usage": []},
        {"model": "openai/gpt-5-nano", "usage": {"input_tokens": "x"}},
        {"model": "openai/gpt-5-nano", "usage": {"input_tokens": 1}, "timestamp": ""},
        {"model": "openai/gpt-5-nano", "usage": {"input_tokens": 1}, "timestamp": {}},
        {"model": "openai/gpt-5-nano", "usage": {"input_tokens": 1}, "attributes": "x"},
        {"model": "openai/gpt-5-nano", "usage": {"images": 1}},
        {"model": "a/b/c/d", "usage": {"input_tokens": 1}}, {"model": "/"},
        {"model": "openai/", "usage": {}}, {"model": "gpt"},
        {"model": "openai/gpt-5-nano", "usage": {"input_tokens": "1e999999999"}},
        {"model": "openai/gpt-5-nano", "usage": {"input_tokens": 2**63}},
        {"model": "openai/gpt-5-nano", "usage": {"input_tokens": "9" * 5000}},
    ]
    calls += [("POST", "/v1/billing/quote", {"json": body, **key}) for body in odd_quotes]
    odd_admin: list[tuple[str, Any]] = [
        ("/api/tenants", {"name": None}), ("/api/tenants", {"name": ["a"]}),
        ("/api/tenants", {"name": "a/b"}), ("/api/tenants", {"name": "x", "timezone": ""}),
        ("/api/tenants", {"name": "x", "timezone": "../../etc/passwd"}),
        ("/api/tenants", {"name": "x", "currency": ""}),
        ("/api/keys", {"tenant": None}), ("/api/keys", {"tenant": ""}),
        ("/api/keys", {"tenant": "acme", "models": [1, 2]}),
        ("/api/keys", {"tenant": "acme", "expires_at": 5}),
        ("/api/keys", {"tenant": "acme", "expires_at": "0001-01-01T00:00:00+01:00"}),
        ("/api/keys", {"tenant": "acme", "expires_at": "9999-12-31T23:59:59-01:00"}),
        ("/api/keys", {"tenant": "acme", "user": ""}),
        ("/api/prices", PRICE | {"model": None}), ("/api/prices", PRICE | {"model": "/"}),
        ("/api/prices", PRICE | {"prices": []}), ("/api/prices", PRICE | {"prices": {"": "1"}}),
        ("/api/prices", PRICE | {"prices": {"input_tokens": None}}),
        ("/api/prices", PRICE | {"prices": {"input_tokens": "NaN"}}),
        ("/api/prices", PRICE | {"prices": {"input_tokens": "1e999999999"}}),
        ("/api/prices", PRICE | {"unit": None}), ("/api/prices", PRICE | {"units": "1K"}),
        ("/api/prices", PRICE | {"units": {"nope": "1K"}}),
        ("/api/prices", PRICE | {"tiers": [5]}),
        ("/api/prices", PRICE | {"tiers": [{"above_input_tokens": "x", "prices": {}}]}),
        ("/api/prices", PRICE | {"variants": [{"match": None, "prices": {}}]}),
        ("/api/prices", PRICE | {"windows": [{"timezone": "Nowhere", "start": "22:00",
                                              "end": "06:00", "prices": {}}]}),
        ("/api/prices", PRICE | {"windows": [{"start": "22:00", "end": "22:00", "prices": {}}]}),
        ("/api/prices", PRICE | {"windows": [{"start": "x", "end": "y", "prices": {}}]}),
        ("/api/prices", PRICE | {"minimum_charge": []}),
        ("/api/prices", PRICE | {"max_output_tokens": "big"}),
        ("/api/prices", PRICE | {"effective_from": "2020-13-45"}),
        ("/api/prices", PRICE | {"effective_from": []}),
        ("/api/fx", FX | {"rate": None}), ("/api/fx", FX | {"rate": 7.1}),
        ("/api/fx", FX | {"base": None}),
        ("/api/fx", FX | {"quote": "cny", "base": "CnY"}),
        ("/api/fx", FX | {"effective_from": "0001-01-01T00:00:00+01:00"}),
        ("/api/fx", FX | {"effective_from": "9999-12-31T23:59:59-01:00"}),
        ("/api/fx", FX | {"effective_from": "2026-01-01"}),
    ]
    calls += [("POST", path, {"json": body, **admin}) for path, body in odd_admin]
    for path, auth in [("/v1/usage", key), ("/v1/billing/quote", key), ("/api/prices", admin),
                       ("/api/prices/import?format=meterline", admin)]:
        for deep in (b"[" * 5000, b'{"a": ' * 3000):
            calls.append(("POST", path, {"content": deep, **auth}))
    litellm_files = [
        b'{"m": 5}', b'{"m": []}', b'{"m": {"litellm_provider": 5, "input_cost_per_token": 1}}',
        b'{"m": {"litellm_provider": "openai", "input_cost_per_token": "x"}}',
        b'{"m": {"litellm_provider": "openai", "input_cost_per_token": -1}}',
        b'{"m": {"litellm_provider": "openai", "input_cost_per_token": 1e999}}',
        b'{"m": {"litellm_provider": "openai", "input_cost_per_token": 1, "max_tokens": "x"}}',
        b'{"m": {"litellm_provider": "openai", "input_cost_per_token": 1,'
        b' "tiered_pricing": [{"range": "x"}]}}',
    ]
    calls += [("POST", "/api/prices/import?format=litellm", {"content": raw, **admin})
              for raw in litellm_files]
    calls += [("POST", "/api/prices/import?format=" + fmt, {"content": b"{}", **admin})
              for fmt in ("", "LITELLM", "csv", "../../x", "%00")]
    calls += [("POST", "/api/prices/import?format=meterline", {"json": body, **admin})
              for body in ({"provider": None}, {"provider": "p", "models": None},
                           {"provider": "p", "models": [None]}, [{"provider": "p"}],
                           {"provider": "p", "models": [{"model": "x", "prices": "1"}]})]
    calls += [("GET", f"/api/usage?{query}", admin) for query in (
        "start=", "start=x", "end=2026-02-30", "start=2026-01-01&end=2025-01-01", "limit=",
        "limit=-5", "limit=1e3", "limit=99999999999999999999999", "start=2026-01-01T00:00:00",
        "status=weird", "tenant=ghost", "model=", "request_id=nope")]
    calls += [("GET", path, admin) for path in (
        "/api/prices?model=", "/api/prices?model=ghost/model", "/api/prices?model=gpt",
        "/api/keys?tenant=ghost", "/api/tenants/ghost/users")]
    calls += [("POST", "/api/keys/ghost/revoke", admin),
              ("POST", "/api/keys/" + "k" * 300 + "/revoke", admin)]

    problems = server_errors(client, calls)
    assert not problems, "\n".join(problems)
    # After all that, the server still answers and the ledger holds nothing.
    answer = client.get("/api/usage", headers=ADMIN)
    assert answer.status_code == 200 and answer.json()["records"] == [], answer.text


def test_out_of_range_input_is_a_400(client: httpx.Client, tenant_key: str) -> None:
    """Times UTC cannot hold and FX rates of more digits than a conversion keeps exact."""
    key = {"headers": bearer(tenant_key)}
    admin = {"headers": ADMIN}
    calls: list[Call] = [
        ("POST", "/v1/usage", {**events(EVENT | {"timestamp": "0001-01-01T00:00:00+01:00"}),
                               **key}),
        ("POST", "/v1/usage", {**events(EVENT | {"timestamp": "9999-12-31T23:59:59-01:00"}),
                               **key}),
        ("POST", "/v1/billing/quote", {"json": {
            "model": "openai/gpt-5-nano", "usage": {"input_tokens": 1},
            "timestamp": "0001-01-01T00:00:00+01:00"}, **key}),
        ("POST", "/api/prices", {"json": PRICE | {"effective_from": "0001-01-01T00:00:00+01:00"},
                                 **admin}),
        ("GET", "/api/usage?start=0001-01-01T00:00:00%2B01:00", admin),
        # An FX rate of more digits than a conversion keeps exact is refused ...
        ("POST", "/api/prices", {"json": PRICE | {"model": "test/cny", "currency": "CNY"},
                                 **admin}),
        ("POST", "/api/fx", {"json": {"base": "CNY", "quote": "USD", "rate": "0." + "1" * 130,
                                      "effective_from": "2020-01-01T00:00:00Z"}, **admin}),
        # ... so an event that needs a CNY->USD rate is recorded with fx_missing.
        ("POST", "/v1/usage", {**events(EVENT | {"id": "fx", "model": "test/cny",
                                                 "usage": {"input_tokens": 1000}}), **key}),
    ]
    problems = server_errors(client, calls)
    assert not problems, "\n".join(problems)


def test_strings_postgresql_cannot_store_are_a_400(client: httpx.Client,
                                                   tenant_key: str) -> None:
    """NUL characters and strings longer than their column never answer 500."""
    key = {"headers": bearer(tenant_key)}
    admin = {"headers": ADMIN}
    calls: list[Call] = [
        ("POST", "/v1/usage", {**events(EVENT | {"id": "evt\u0000"}), **key}),
        ("POST", "/v1/usage", {**events(EVENT | {"model": "openai/x\u0000"}), **key}),
        ("POST", "/v1/usage", {**events(EVENT | {"user": "u\u0000"}), **key}),
        ("POST", "/v1/usage", {**events(EVENT | {"user": "u" * 150}), **key}),
        ("POST", "/api/keys", {"json": {"tenant": "acme\u0000"}, **admin}),
        ("POST", "/api/prices", {"json": PRICE | {"model": "test/" + "m" * 300}, **admin}),
        ("POST", "/api/prices", {"json": PRICE | {"model": "test/\u0000"}, **admin}),
        ("GET", "/api/usage?tenant=%00", admin),
        ("GET", "/api/keys?tenant=%00", admin),
        ("GET", "/api/tenants/%00/users", admin),
        ("POST", "/api/keys/%00/revoke", admin),
    ]
    problems = server_errors(client, calls)
    assert not problems, "\n".join(problems)
