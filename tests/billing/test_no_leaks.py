"""Credentials never leak (issue 14.6), on SQLite and PostgreSQL: every provider configured as a
user configures it (a config file naming environment variables) with recognisable credentials,
synced through the CLI and the API, with the right credentials and with wrong ones (which the
fakes partly echo back in their errors, as real providers do); then the database (every column
of every table), the log, every API answer and every CLI output are searched for them."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from sqlalchemy import inspect, text

from meterline.config import ACCESS_KEY_PROVIDERS, BILL_SOURCE_PROVIDERS, load_config
from meterline.store.engine import make_engine
from tests.billing.apps import fakes, finished, meterline
from tests.billing.data import BY_PROVIDER
from tests.billing.fakes import Account
from tests.conftest import ADMIN_TOKEN, Cli


def credentials(provider: str, kind: str) -> dict[str, str]:
    """Environment variable -> value; ``kind`` is "good" or "wrong"."""
    tag = f"LEAKCHECK-{kind}-{provider}"
    if provider in ACCESS_KEY_PROVIDERS:
        return {f"LC_{provider.upper()}_ID": f"{tag}-id-7f3a",
                f"LC_{provider.upper()}_SECRET": f"{tag}-secret-9c1e"}
    return {f"LC_{provider.upper()}_KEY": f"{tag}-key-4d2b"}


GOOD = {name: value for p in BILL_SOURCE_PROVIDERS
        for name, value in credentials(p, "good").items()}
WRONG = {name: value for p in BILL_SOURCE_PROVIDERS
         for name, value in credentials(p, "wrong").items()}
SECRETS = sorted(set(GOOD.values()) | set(WRONG.values()))


def account(provider: str) -> Account:
    values = list(credentials(provider, "good").values())
    found = BY_PROVIDER[provider].account()
    found.key_id, found.secret = (values[0], values[1]) if len(values) == 2 else ("", values[0])
    found.throttle_first = False
    return found


def config_file(folder: Path, urls: dict[str, str]) -> str:
    entries = []
    for provider, url in urls.items():
        names = list(credentials(provider, "good"))
        keys = (f'access_key_id_env = "{names[0]}"\naccess_key_secret_env = "{names[1]}"'
                if len(names) == 2 else f'api_key_env = "{names[0]}"')
        entries.append(f'[[bill_sources]]\nprovider = "{provider}"\n{keys}\n'
                       f'endpoint = "{url}"\nlow_balance = "1000000000"\n')
    path = folder / "meterline.toml"
    path.write_text("\n".join(entries), encoding="utf-8")
    return str(path)


def leaks(text: str) -> list[str]:
    return [secret for secret in SECRETS if secret in text]


def database_text(url: str) -> str:
    """Every value of every column of every table, as text."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            names = inspect(conn).get_table_names()
            return "\n".join(repr(tuple(row)) for name in names
                             for row in conn.execute(text(f'SELECT * FROM "{name}"')))
    finally:
        engine.dispose()


@contextmanager
def served(database_url: str, config: str, env: dict[str, str], folder: Path
           ) -> Iterator[httpx.Client]:
    loaded = load_config(config, env={**env, "METERLINE_DATABASE_URL": database_url,
                                      "METERLINE_ADMIN_TOKEN": ADMIN_TOKEN,
                                      "METERLINE_JOURNAL_DIR": str(folder / "journal")})
    with meterline(loaded) as http:
        yield http


def test_the_scan_finds_a_planted_credential() -> None:
    assert leaks(f"error: {GOOD['LC_ALIYUN_SECRET']} refused") == [GOOD["LC_ALIYUN_SECRET"]]


def test_no_credential_in_the_database_the_log_the_answers_or_the_output(
        database_url: str, run_cli: Cli, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    seen: list[str] = []
    cases = [(BY_PROVIDER[p], account(p)) for p in BILL_SOURCE_PROVIDERS]
    with fakes(*cases) as urls:
        config = config_file(tmp_path, dict(zip(BILL_SOURCE_PROVIDERS, urls, strict=True)))
        sync = ("--config", config, "sync", "--cycle", "2026-10", "--provider")
        for env, outcome in ((GOOD, 0), (WRONG, 1)):
            run_cli.env.update(env)
            for provider in BILL_SOURCE_PROVIDERS:
                result = run_cli(*sync, provider, *(["--json"] if outcome == 0 else []))
                assert result.exit_code == outcome, (provider, result.output)
                seen += [result.stdout, result.stderr]
        for env, status in ((GOOD, "ok"), (WRONG, "failed")):
            with served(database_url, config, env, tmp_path) as http:
                for provider in BILL_SOURCE_PROVIDERS:
                    started = http.post("/api/sync", json={"provider": provider,
                                                           "cycle": "2026-10"})
                    assert started.status_code == 202, started.text
                    run = finished(http, started.json()["id"])
                    assert run["status"] == status, run
                    seen.append(started.text)
                answers = [http.get(path) for path in (
                    "/api/sync", f"/api/sync/{run['id']}", "/api/balances", "/api/alerts",
                    "/api/audit", "/api/reconcile?cycle=2026-10", "/readyz")]
                assert all(answer.status_code == 200 for answer in answers)
                seen += [answer.text for answer in answers]
                triggers = {r["trigger"] for r in answers[0].json()["runs"]}
    run_cli.env.update(GOOD)
    history = run_cli("--config", config, "sync", "--history")
    seen += [history.stdout, history.stderr]
    stored = database_text(database_url)
    # the paths ran: every provider synced and failed both ways, alerts were raised
    assert triggers == {"api", "cli"}
    assert history.stdout.count(" failed ") == 14 and history.stdout.count(" ok ") == 14
    assert "refused the credentials" in stored and "low_balance" in stored
    for where, found in (("database", leaks(stored)), ("log", leaks(caplog.text)),
                         ("answers and output", leaks("\n".join(seen)))):
        assert found == [], (where, found)
    assert all(not leaks(record.getMessage()) for record in caplog.records)
