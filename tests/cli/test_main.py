"""The ``meterline`` group (meterline/cli/main.py): help, version, config, error handling."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from meterline import __version__
from meterline.cli.main import cli


def _walk(command: click.Command, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = [path]
    if isinstance(command, click.Group):
        for name, sub in sorted(command.commands.items()):
            found += _walk(sub, (*path, name))
    return found


COMMANDS = _walk(cli)

#: SPEC §6 commands implemented so far; each must exist under exactly this name.
CONTRACT = [("serve",), ("db", "upgrade"), ("db", "check"), ("tenants", "create"),
            ("tenants", "list"), ("keys", "create"), ("keys", "list"), ("keys", "revoke"),
            ("prices", "list"), ("prices", "import"), ("prices", "add"), ("quote",),
            ("usage", "ingest"), ("usage", "list"), ("fx", "set"), ("fx", "list"), ("rerate",)]


@pytest.fixture
def offline(tmp_path):
    """A runner whose database URL points at a file that must never be created by --help."""
    db = tmp_path / "never.db"
    runner = CliRunner()
    env = {"METERLINE_DATABASE_URL": f"sqlite:///{db}", "METERLINE_CONFIG": ""}

    def run(*args):
        return runner.invoke(cli, list(args), env=env, prog_name="meterline",
                             catch_exceptions=False)

    yield run
    assert not db.exists(), "a --help or usage error touched the database"


def test_the_tree_is_walked():
    assert len(COMMANDS) > 20
    for path in CONTRACT:
        assert path in COMMANDS, path


@pytest.mark.parametrize("path", COMMANDS, ids=lambda p: " ".join(p) or "meterline")
@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help_everywhere(offline, path, flag):
    result = offline(*path, flag)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"Usage: {' '.join(('meterline', *path))} ")
    command = cli
    for name in path:
        command = command.commands[name]
    assert command.help or command.short_help, f"{path} has no help text"
    first_line = (command.help or command.short_help).split("\n")[0]
    assert " ".join(first_line.split()) in " ".join(result.stdout.split())
    if "--json" in {opt for p in command.params for opt in p.opts}:
        assert "--json" in result.stdout


def test_group_help_lists_every_command(offline):
    out = offline("--help").stdout
    for name in cli.commands:
        assert name in out


def test_group_without_a_command_shows_usage(offline):
    result = offline()
    # click 8.2 exits 2 for a group called without a command; 0 before it. Either way: usage.
    assert result.exit_code in (0, 2)
    assert "Usage: meterline" in result.output


def test_version(offline):
    result = offline("--version")
    assert result.exit_code == 0
    assert __version__ in result.stdout
    assert "meterline" in result.stdout


def test_unknown_command(offline):
    result = offline("frobnicate")
    assert result.exit_code == 2
    assert "frobnicate" in result.stderr
    assert "Traceback" not in result.output


def test_missing_config_file(tmp_path, fails):
    runner = CliRunner()
    missing = tmp_path / "nope.toml"
    result = runner.invoke(cli, ["--config", str(missing), "tenants", "list"],
                           env={"METERLINE_DATABASE_URL": None, "METERLINE_CONFIG": None},
                           catch_exceptions=False)
    fails(result, 2, "nope.toml")


def test_bad_config_file(tmp_path, fails):
    bad = tmp_path / "bad.toml"
    bad.write_text("[database\nurl = 1\n")
    runner = CliRunner()
    result = runner.invoke(cli, ["tenants", "list"],
                           env={"METERLINE_DATABASE_URL": None, "METERLINE_CONFIG": str(bad)},
                           catch_exceptions=False)
    fails(result, 2, "bad.toml")


def test_config_file_names_the_database(database_url, tmp_path, run_cli):
    """METERLINE_CONFIG and --config are read by every command; the env URL wins over both."""
    config = tmp_path / "meterline.toml"
    config.write_text(f'[database]\nurl = "{database_url}"\n')
    runner = CliRunner()
    by_env = runner.invoke(cli, ["tenants", "create", "from-env-config", "--json"],
                           env={"METERLINE_DATABASE_URL": None,
                                "METERLINE_CONFIG": str(config)}, catch_exceptions=False)
    assert by_env.exit_code == 0, by_env.output
    by_option = runner.invoke(cli, ["--config", str(config), "tenants", "create", "from-option"],
                              env={"METERLINE_DATABASE_URL": None, "METERLINE_CONFIG": None},
                              catch_exceptions=False)
    assert by_option.exit_code == 0, by_option.output
    other = tmp_path / "other.db"
    overridden = runner.invoke(cli, ["--config", str(config), "tenants", "list", "--json"],
                               env={"METERLINE_DATABASE_URL": f"sqlite:///{other}",
                                    "METERLINE_CONFIG": None}, catch_exceptions=False)
    assert overridden.exit_code == 0, overridden.output
    assert overridden.stdout.strip() == "[]"

    listed = run_cli("tenants", "list")  # the fixture's env: the same database by URL
    assert listed.stdout.splitlines() == ["from-env-config\tUSD\tUTC", "from-option\tUSD\tUTC"]


def test_errors_are_one_line_on_stderr_with_json(run_cli, fails):
    result = run_cli("keys", "create", "--tenant", "ghost", "--json")
    fails(result, 1, "ghost")  # nothing half-printed on stdout for a JSON reader
