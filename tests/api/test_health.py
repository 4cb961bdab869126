"""/healthz, /readyz and the OpenAPI schema."""

from __future__ import annotations

import httpx
from sqlalchemy import text

from meterline.store.engine import make_engine
from meterline.store.migrate import head_revision


def test_health_readiness_and_schema(client: httpx.Client) -> None:
    alive = client.get("/healthz")
    assert (alive.status_code, alive.json()) == (200, {"status": "ok"})
    ready = client.get("/readyz")
    assert ready.status_code == 200, ready.text
    found = ready.json()
    assert (found["status"], found["revision"]) == ("ready", head_revision())
    assert found["revision"]  # a real revision, not None
    assert set(found["loops"]) == {"price_refresh", "hold_sweep", "lease_sweep", "alerts",
                                   "interrupted_calls", "journal_drainer", "bill_sync"}
    assert all(loop["failures"] == 0 for loop in found["loops"].values())
    assert found["journal"] == {"pending": 0}

    schema = client.get("/openapi.json")
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    for path, method in [("/v1/usage", "post"), ("/v1/billing/quote", "post"),
                         ("/api/tenants", "get"), ("/api/tenants", "post"),
                         ("/api/keys", "post"), ("/api/keys/{key_id}/revoke", "post"),
                         ("/api/prices", "get"), ("/api/prices", "post"),
                         ("/api/prices/import", "post"), ("/api/fx", "post"),
                         ("/api/usage", "get"), ("/api/rerate", "post"),
                         ("/healthz", "get"), ("/readyz", "get")]:
        assert method in paths.get(path, {}), (path, method)
        assert paths[path][method]["summary"], (path, method)
    # Health needs no credentials, and neither does the schema.
    for path in ("/healthz", "/readyz", "/openapi.json"):
        assert client.get(path, headers={"Authorization": "Bearer garbage"}).status_code == 200


def test_readyz_names_what_is_missing(client: httpx.Client, database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        with engine.begin() as conn:
            conn.execute(text("DROP TABLE fx_rates"))
    finally:
        engine.dispose()
    ready = client.get("/readyz")
    assert ready.status_code == 503, ready.text
    found = ready.json()
    assert (found["status"], found["problems"]) == ("schema_incomplete",
                                                    ["missing table: fx_rates"])
    # Alive all the same.
    assert client.get("/healthz").status_code == 200
