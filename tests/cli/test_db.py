"""``meterline db upgrade|check`` (meterline/cli/db.py)."""

from __future__ import annotations

import re

import orjson
import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, text

from meterline.cli.main import cli
from meterline.store.engine import normalise_url
from meterline.store.migrate import head_revision


def _sql(database_url, statement):
    """Change the database behind meterline's back, with plain SQLAlchemy on the same URL."""
    engine = create_engine(normalise_url(database_url))
    try:
        with engine.begin() as conn:
            conn.execute(text(statement))
    finally:
        engine.dispose()


def test_upgrade_then_check(run_cli):
    first = run_cli("db", "upgrade")
    assert first.exit_code == 0, first.output
    added = int(re.search(r"(\d+) shipped price versions added", first.stdout).group(1))
    assert added >= 60
    again = run_cli("db", "upgrade")
    assert again.exit_code == 0, again.output
    assert "0 shipped price versions added" in again.stdout

    check = run_cli("db", "check")
    assert check.exit_code == 0, check.output
    assert "schema complete" in check.stdout
    assert head_revision() in check.stdout


def test_check_json(run_cli):
    assert run_cli("db", "upgrade").exit_code == 0
    result = run_cli("db", "check", "--json")
    assert result.exit_code == 0, result.output
    report = orjson.loads(result.stdout)
    assert report["ok"] is True
    assert report["revision"] == report["head"] == head_revision()
    assert report["missing_tables"] == []
    assert report["missing_columns"] == []
    assert report["problems"] == []


def test_check_on_an_empty_database(run_cli):
    result = run_cli("db", "check", "--json")
    assert result.exit_code == 1
    report = orjson.loads(result.stdout)
    assert report["ok"] is False
    assert report["revision"] is None
    assert {"tenants", "usage_records", "price_versions"} <= set(report["missing_tables"])
    assert any("db upgrade" in p for p in report["problems"])


def test_any_command_migrates_an_empty_database(run_cli):
    assert run_cli("tenants", "list", "--json").exit_code == 0
    assert run_cli("db", "check").exit_code == 0


@pytest.mark.parametrize("as_json", [False, True])
def test_check_names_a_dropped_table(run_cli, database_url, as_json):
    assert run_cli("db", "upgrade").exit_code == 0
    _sql(database_url, "DROP TABLE fx_rates")
    result = run_cli("db", "check", *(["--json"] if as_json else []))
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    if as_json:
        report = orjson.loads(result.stdout)
        assert report["ok"] is False
        assert report["missing_tables"] == ["fx_rates"]
        assert report["problems"] == ["missing table: fx_rates"]
    else:
        assert result.stdout.splitlines() == ["missing table: fx_rates"]


def test_check_names_a_dropped_column(run_cli, database_url):
    assert run_cli("db", "upgrade").exit_code == 0
    _sql(database_url, "ALTER TABLE tenants DROP COLUMN timezone")
    result = run_cli("db", "check", "--json")
    assert result.exit_code == 1
    report = orjson.loads(result.stdout)
    assert report["missing_tables"] == []
    assert report["missing_columns"] == ["tenants.timezone"]


def test_a_command_on_a_damaged_database_fails_cleanly(run_cli, database_url, fails):
    assert run_cli("db", "upgrade").exit_code == 0
    _sql(database_url, "DROP TABLE fx_rates")
    line = fails(run_cli("fx", "list", "--json"), 1, "fx_rates", "db check")
    assert "database error" in line


def test_unreachable_database():
    runner = CliRunner()
    env = {"METERLINE_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none",
           "METERLINE_CONFIG": ""}
    for args in (["db", "check"], ["db", "upgrade"], ["tenants", "list"]):
        result = runner.invoke(cli, args, env=env, catch_exceptions=False)
        assert result.exit_code == 1, result.output
        assert "Traceback" not in result.output
        [line] = result.stderr.strip().splitlines()
        assert line.startswith("error: database unreachable"), line


def test_unsupported_database_url():
    runner = CliRunner()
    env = {"METERLINE_DATABASE_URL": "mysql://db/x", "METERLINE_CONFIG": ""}
    result = runner.invoke(cli, ["db", "check"], env=env, catch_exceptions=False)
    assert result.exit_code == 2
    assert "mysql" in result.stderr
