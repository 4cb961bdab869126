"""Fuzzing every endpoint of the OpenAPI schema (issue 12) with schemathesis, on SQLite and
PostgreSQL: whatever comes in, the answer is never a 5xx, and every 4xx has the project's error
shape (meterline/asgi/errors.py).

Each operation gets a bounded, reproducible (derandomized) set of inputs:

* schemathesis's coverage phase: each parameter at and past its limits, enumerated;
* EXAMPLES inputs drawn from the schema, valid and invalid;
* the same with the path naming things that exist (tenant ``acme``, a usage record, a budget),
  so that bodies and queries get past the lookup of the path;
* where the schema does not describe the body (the gateway's and the ingestion endpoints read
  raw JSON), JSON made of the fields those endpoints read;
* where TEMPLATES has a valid body, that body with one or two places changed, so that the
  checks after the first are reached.

The app is called in-process (ASGI); admin endpoints get the admin token, the gateway's and the
ingestion endpoints a tenant's key; providers point at the simulator on loopback, so nothing
leaves the machine.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.generation.hypothesis.builder import (
    HypothesisTestConfig,
    HypothesisTestMode,
    create_test,
)
from schemathesis.python import asgi

from meterline.api.app import create_app
from meterline.asgi.errors import ANTHROPIC_PATHS
from meterline.config import Config, Secret
from meterline.simulator import create_simulator, serve_in_thread
from tests.conftest import ADMIN, ADMIN_TOKEN, fresh_database
from tests.gateway.conftest import UPSTREAM_KEY, providers

#: Inputs per operation and pass: enough to find the easy 500s, few enough that the file stays
#: within a few minutes on a busy machine.
EXAMPLES = 10
#: The configured admin token's id and name: the fuzzer may revoke any admin token but this one
#: (it signs every request of the run).
OWN_TOKEN = ("1", "config")
#: Field names the raw-JSON endpoints read (the gateway's bodies, usage events, quotes, price
#: versions), so that generated bodies reach their checks rather than stop at the first.
FIELDS = ("model", "messages", "role", "content", "input", "prompt", "stream", "max_tokens",
          "stream_options", "include_usage", "n", "size", "quality", "seconds", "voice",
          "events", "id", "timestamp", "user", "usage", "input_tokens", "output_tokens",
          "cached_input_tokens", "status", "metadata", "tags", "attributes", "currency",
          "billing_type", "unit", "prices", "effective_from", "variants", "match", "system",
          "tools", "images", "characters", "requests")
MODELS = ("openai/gpt-5-nano", "gpt-5-nano", "anthropic/claude-sonnet-4-6",
          "openai/text-embedding-3-small", "openai/tts-1", "openai/gpt-image-1", "openai/sora-2")


def json_values() -> st.SearchStrategy[Any]:
    scalars = st.one_of(st.none(), st.booleans(), st.integers(),
                        # JSON has no NaN nor infinity: a client cannot send one
                        st.floats(allow_nan=False, allow_infinity=False),
                        st.text(max_size=20), st.sampled_from(MODELS),
                        st.sampled_from(("user", "0", "-1", "1e400", "2026-11-01T00:00:00Z")))
    return st.recursive(scalars, lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=8), inner, max_size=4)),
        max_leaves=12)


JSON_BODIES = st.one_of(
    st.dictionaries(st.sampled_from(FIELDS), json_values(), max_size=6),
    st.lists(st.dictionaries(st.sampled_from(FIELDS), json_values(), max_size=5), max_size=3),
    json_values())

EVENT = {"id": "ev-fuzz", "model": "openai/gpt-5-nano", "user": "bob",
         "timestamp": "2026-11-02T10:00:00Z", "status": "success",
         "usage": {"input_tokens": 1000, "output_tokens": 10}, "tags": ["a"],
         "metadata": {"purpose": "fuzz"}, "attributes": {"size": "1024x1024"}}
#: A valid body per operation, mutated field by field: most random bodies stop at the first
#: check, a body valid but for one or two fields reaches the ones after it.
TEMPLATES: dict[str, Any] = {
    "POST /v1/chat/completions": {"model": "openai/gpt-5-nano", "max_tokens": 5,
                                  "messages": [{"role": "user", "content": "hi"}],
                                  "stream": False, "stream_options": {"include_usage": True}},
    "POST /v1/embeddings": {"model": "openai/text-embedding-3-small", "input": ["hi"]},
    "POST /v1/images/generations": {"model": "openai/gpt-image-1", "prompt": "a cat", "n": 1,
                                    "size": "1024x1024", "quality": "low"},
    "POST /v1/audio/speech": {"model": "openai/tts-1", "input": "hello", "voice": "alloy"},
    "POST /v1/videos": {"model": "openai/sora-2", "prompt": "a cat", "seconds": "4",
                        "size": "1280x720"},
    "POST /v1/messages": {"model": "anthropic/claude-sonnet-4-6", "max_tokens": 5,
                          "messages": [{"role": "user", "content": "hi"}]},
    "POST /v1/usage": {"events": [EVENT]},
    "POST /v1/billing/quote": {"model": "openai/gpt-5-nano", "currency": "USD",
                               "usage": {"input_tokens": 10, "output_tokens": 2},
                               "timestamp": "2026-11-02T10:00:00Z"},
    "POST /api/prices": {"model": "acme/fuzz-1", "billing_type": "token", "currency": "USD",
                         "unit": "1M", "effective_from": "2026-11-01T00:00:00Z",
                         "prices": {"input_tokens": "1", "output_tokens": "2"}},
    "POST /api/prices/import": {"fuzz-model": {"litellm_provider": "openai", "mode": "chat",
                                               "input_cost_per_token": 1e-06,
                                               "output_cost_per_token": 2e-06}},
    "POST /api/budgets": {"tenant": "acme", "amount": "10", "currency": "USD",
                          "period": "month", "mode": "alert", "thresholds": ["0.5"]},
    "POST /api/fx": {"base": "EUR", "quote": "USD", "rate": "1.1",
                     "effective_from": "2026-01-01T00:00:00Z"},
    "POST /api/keys": {"tenant": "acme", "user": "bob", "models": ["openai/gpt-5-nano"],
                       "expires_at": "2027-01-01T00:00:00Z", "rpm": 60, "tpm": 1000},
    "POST /api/tenants": {"name": "shop", "currency": "CNY", "timezone": "Asia/Shanghai"},
    "POST /api/quotas/grants": {"tenant": "acme", "type": "text_token", "amount": 100,
                                "source": "admin_grant", "expires_at": "2027-01-01T00:00:00Z"},
    "POST /api/plans": {"id": "starter", "allowances": {"text_token": 1000}},
    "PUT /api/tenants/{tenant}/plan": {"plan": "starter"},
    "POST /api/bills/status": {"status": "issued",
                               "bills": [{"tenant": "acme", "cycle": "2026-10"}]},
    "POST /api/bills/{tenant}/{cycle}/status": {"status": "issued"},
    "POST /api/usage/{request_id}/refund": {"reason": "fuzz"},
    "POST /api/alerts/resolve": {"ids": ["alert_x"]},
    "POST /api/admin-tokens": {"name": "fuzz"},
}
_DELETE = object()
#: The gateway's proxied endpoints: their 4xx may come from the provider.
GATEWAY_PATHS = ("/v1/chat/completions", "/v1/embeddings", "/v1/images/generations",
                 "/v1/audio/speech", "/v1/videos", "/v1/messages")


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in a JSON value (keys of objects, indexes of lists)."""
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, inner in value.items():
            found += _paths(inner, (*prefix, key))
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            found += _paths(inner, (*prefix, index))
    return found


def _mutated(template: Any, changes: list[tuple[tuple[Any, ...], Any]]) -> Any:
    body = copy.deepcopy(template)
    for path, value in changes:
        parent = body
        try:
            for step in path[:-1]:
                parent = parent[step]
            if value is _DELETE:
                del parent[path[-1]]
            else:
                parent[path[-1]] = value
        except (KeyError, IndexError, TypeError):
            continue  # an earlier change removed or replaced the place
    return body


def mutations(template: Any) -> st.SearchStrategy[Any]:
    """The template with one or two places set to another JSON value, removed, or added."""
    places = st.sampled_from(_paths(template)) | st.sampled_from(FIELDS).map(lambda k: (k,))
    change = st.tuples(places, json_values() | st.just(_DELETE))
    return st.lists(change, min_size=1, max_size=2).map(lambda c: _mutated(template, c))


@pytest.fixture(scope="module")
def upstream_url() -> Iterator[str]:
    with serve_in_thread(create_simulator(require_key=UPSTREAM_KEY)) as url:
        yield url


@dataclass
class Target:
    """The app under test, its schema, a tenant's key, and path values that exist."""

    schema: Any
    key: str
    existing: dict[str, str]
    found: dict[tuple[str, str], str] = field(default_factory=dict)


@pytest.fixture(params=["sqlite", "postgresql"])
def target(request: pytest.FixtureRequest, upstream_url: str, tmp_path: Path
           ) -> Iterator[Target]:
    with fresh_database(request.param, tmp_path) as url:
        config = Config(database_url=url, admin_token=Secret(ADMIN_TOKEN),
                        journal_dir=str(tmp_path / "journal"), providers=providers(upstream_url))
        app = create_app(config)
        try:
            schema = schemathesis.openapi.from_asgi("/openapi.json", app)
            with asgi.get_client(app) as client:
                yield Target(schema, *existing_things(client))
        finally:
            asgi.shutdown_lifespans()  # the app's lifespan: its loops, its engine


def existing_things(client: Any) -> tuple[str, dict[str, str]]:
    """A tenant, its key, a usage record and a budget: what the fuzzer cannot guess."""

    def made(answer: Any) -> Any:
        assert answer.status_code in (200, 201), answer.text
        return answer.json()

    made(client.post("/api/tenants", json={"name": "acme"}, headers=ADMIN))
    key = made(client.post("/api/keys", json={"tenant": "acme", "user": "bob"}, headers=ADMIN))
    event = {"id": "ev-1", "model": "openai/gpt-5-nano", "user": "bob",
             "timestamp": "2026-11-02T10:00:00Z",
             "usage": {"input_tokens": 1000, "output_tokens": 10}}
    results = made(client.post("/v1/usage", json={"events": [event]},
                               headers={"Authorization": f"Bearer {key['key']}"}))["results"]
    made(client.post("/api/fx", json={"base": "CNY", "quote": "USD", "rate": "0.14",
                                      "effective_from": "2026-01-01T00:00:00Z"}, headers=ADMIN))
    budget = made(client.post("/api/budgets", json={"tenant": "acme", "amount": "10"},
                              headers=ADMIN))
    return key["key"], {"tenant": "acme", "cycle": "2026-11", "request_id":
                        results[0]["request_id"], "budget_id": budget["id"]}


def credentials(path: str, key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"} if path.startswith("/v1/") else ADMIN


def error_shaped(path: str, body: Any) -> bool:
    """The project's error shape; or, where the SPEC gives another, that one."""
    if not isinstance(body, dict):
        return False
    if path == "/v1/usage" and isinstance(body.get("results"), list):
        # SPEC §4: a batch whose every event was refused is a 400 listing each refusal.
        return all(isinstance(r, dict) and isinstance(r.get("error"), str) and r["error"]
                   for r in body["results"])
    if path in ANTHROPIC_PATHS and body.get("type") != "error":
        return False
    error = body.get("error")
    if not isinstance(error, dict):
        return False
    # The gateway relays a provider's own refusal in that provider's shape (its SDKs read
    # it), which may have no code; every refusal of meterline's own has one.
    needed = ("message", "type") if path in GATEWAY_PATHS else ("message", "type", "code")
    return (all(isinstance(error.get(name), str) and error[name] for name in needed)
            and ("field" not in error or isinstance(error["field"], str)))


def protect_own_token(case: Any) -> None:
    """The fuzzer may revoke any admin token but the one the run is signed with."""
    if case.path == "/api/admin-tokens/{token}/revoke":
        ref = str(case.path_parameters.get("token", ""))
        if ref in OWN_TOKEN or (ref.isascii() and ref.isdigit() and int(ref) == 1):
            case.path_parameters["token"] = "other-" + ref


def problem(case: Any, response: Any) -> str | None:
    """What is wrong with an answer, if anything."""
    if response.status_code >= 500:
        return f"{response.status_code}"
    if 400 <= response.status_code < 500:
        try:
            body = response.json()
        except ValueError:
            body = None
        if not error_shaped(case.path, body):
            return f"{response.status_code} not in the error shape"
    return None


def check(target: Target, operation: Any, case: Any, label: str, body: Any = None) -> None:
    """Send one input; note each kind of wrong answer of an operation once."""
    protect_own_token(case)
    extra = {} if body is None else {"json": body}
    response = case.call(headers=credentials(case.path, target.key), **extra)
    wrong = problem(case, response)
    if wrong is not None and (operation.label, wrong) not in target.found:
        sent = f"\nbody: {body!r}" if body is not None else ""
        target.found[(operation.label, wrong)] = (
            f"{operation.label} ({label}) -> {wrong}\n{case.as_curl_command()}{sent}\n"
            f"{response.text[:1000]}")


def boundaries(target: Target, operation: Any) -> None:
    """Schemathesis's coverage phase: each parameter at and just past its limits (too long, too
    large, missing, of the wrong type, an undocumented method), enumerated rather than drawn.

    Built with the test builder ``schema.parametrize()`` uses: that decorator needs the schema
    at import, and its lazy form (``schemathesis.pytest.from_fixture``) fails on pytest 9."""

    def run(case: Any) -> None:
        check(target, operation, case, "coverage")

    test = create_test(operation=operation, test_func=run, config=HypothesisTestConfig(
        project=target.schema.config,
        modes=[HypothesisTestMode.EXAMPLES, HypothesisTestMode.COVERAGE],
        settings=settings(max_examples=1, deadline=None, derandomize=True, database=None,
                          suppress_health_check=list(HealthCheck))))
    test()


def fuzz(target: Target, operation: Any, strategy: st.SearchStrategy[Any], label: str) -> None:
    """Call ``operation`` with EXAMPLES drawn inputs."""

    @given(drawn=strategy)
    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck), phases=[Phase.generate])
    def run(drawn: Any) -> None:
        case, body = drawn if isinstance(drawn, tuple) else (drawn, None)
        check(target, operation, case, label, body)

    with contextlib.suppress(Unsatisfiable):  # nothing to vary, or nothing to make invalid
        run()


def test_no_input_gets_a_server_error_or_a_shapeless_refusal(target: Target) -> None:
    operations = [result.ok() for result in target.schema.get_all_operations()]
    assert len(operations) > 40  # every endpoint, not a schema that failed to load
    for operation in operations:
        boundaries(target, operation)
        for mode in GenerationMode:
            fuzz(target, operation, operation.as_strategy(generation_mode=mode), str(mode))
        names = {p.name for p in operation.path_parameters}
        if names and names <= set(target.existing):
            known = {name: target.existing[name] for name in names}
            fuzz(target, operation, operation.as_strategy(path_parameters=known),
                 "existing path")
        described = "requestBody" in operation.definition.raw
        if operation.method.upper() in ("POST", "PUT") and not described:
            fuzz(target, operation, st.tuples(operation.as_strategy(), JSON_BODIES), "json")
        template = TEMPLATES.get(operation.label)
        if template is not None:
            known = {p.name: target.existing[p.name] for p in operation.path_parameters}
            fuzz(target, operation, st.tuples(operation.as_strategy(path_parameters=known),
                                              mutations(template)), "mutated body")
    assert not target.found, "\n\n".join(target.found.values())
