"""``meterline serve`` (meterline/cli/serve.py): options only; no server is started here."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from meterline.cli.main import cli


@pytest.fixture
def run(tmp_path):
    db = tmp_path / "serve.db"
    env = {"METERLINE_DATABASE_URL": f"sqlite:///{db}", "METERLINE_CONFIG": ""}
    runner = CliRunner()

    def call(*args):
        return runner.invoke(cli, list(args), env=env, prog_name="meterline",
                             catch_exceptions=False)

    yield call
    assert not db.exists(), "serve touched the database before its options were valid"


def test_serve_help(run):
    result = run("serve", "--help")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert out.startswith("Usage: meterline serve [OPTIONS]")
    for option in ("--host", "--port", "--workers", "--demo"):
        assert option in out
    flat = " ".join(out.split())
    assert "default: 127.0.0.1" in flat
    assert "default: 8400" in flat


def test_config_option_is_on_the_group(run):
    out = run("--help").stdout
    assert "--config" in out


@pytest.mark.parametrize(("args", "option"), [
    (("--port", "0"), "--port"),
    (("--port", "65536"), "--port"),
    (("--port", "http"), "--port"),
    (("--workers", "0"), "--workers"),
    (("--workers", "65"), "--workers"),
    (("--bind", "0.0.0.0"), "--bind"),
])
def test_serve_refuses_bad_options_before_starting(run, args, option):
    result = run("serve", *args)
    assert result.exit_code == 2
    assert option in result.stderr
    assert "Traceback" not in result.output
