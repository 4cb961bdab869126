"""``meterline serve`` (meterline/cli/serve.py): options only; no server is started here."""

from __future__ import annotations

import socket

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


@pytest.mark.parametrize("where", ["after serve", "before serve"])
def test_serve_reads_the_config_file_given_either_way(run, tmp_path, where):
    """The README writes `meterline serve --config FILE`; the group's option works too."""
    config = tmp_path / "meterline.toml"
    config.write_text('reporting_currency = "XYZ"\n')
    args = (["serve", "--config", str(config)] if where == "after serve"
            else ["--config", str(config), "serve"])
    result = run(*args)
    assert result.exit_code == 2, result.output
    assert "reporting_currency" in result.stderr  # the file was read, and its error named
    assert "Traceback" not in result.output


def test_serve_refuses_the_readme_placeholder_admin_token(run, tmp_path):
    config = tmp_path / "meterline.toml"
    config.write_text('admin_token = "…"\n', encoding="utf-8")
    result = run("serve", "--config", str(config))
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: config: admin_token must be printable ASCII")
    assert result.stdout == ""


def test_serve_on_a_port_in_use_stores_and_prints_nothing(run):
    """Before, it stored a new admin token, printed it among the start-up lines and then
    failed to bind: the token was never shown again."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run("serve", "--port", str(port))
    assert result.exit_code == 1, result.output
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith(f"error: cannot listen on 127.0.0.1:{port}: address already in use")
    # and the fixture checks that the database was never touched


# --- the log format (meterline/logs.py) ----------------------------------------------------------

def test_serve_has_a_log_format_option(run):
    flat = " ".join(run("serve", "--help").stdout.split())
    assert "--log-format [text|json]" in flat


def test_serve_refuses_an_unknown_log_format_before_starting(run, tmp_path):
    refused = run("serve", "--log-format", "xml")
    assert refused.exit_code == 2
    assert "--log-format" in refused.stderr and "Traceback" not in refused.output
    config = tmp_path / "meterline.toml"
    config.write_text('log_format = "xml"\n')
    result = run("serve", "--config", str(config))
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: config: log_format must be one of text, json")
    assert "Traceback" not in result.output
