"""``meterline scan`` (meterline/cli/scan.py): output, JSON, exit codes, progress."""

from __future__ import annotations

import orjson
import pytest
from click.testing import CliRunner

from meterline.cli.main import cli
from tests.scan.test_scanner import _tree

SAMPLE = {
    "app/client.py": "import openai\n"
                     'URL = "https://api.anthropic.com/v1/messages"\n',
    "app/gw.py": "from openai import OpenAI\n"
                 'client = OpenAI(base_url=settings.gateway_url)\n',
    "web/chat.ts": "import { GoogleGenAI } from '@google/genai';\n",
    "app/clean.py": "import httpx\n",
}


@pytest.fixture
def sample(tmp_path, monkeypatch):
    """The sample tree, as the working directory: findings show paths relative to it."""
    _tree(tmp_path, SAMPLE)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_findings_one_per_line_and_exit_1(run_cli, sample):
    result = run_cli("scan", ".")
    assert result.exit_code == 1, result.output
    lines = result.stdout.splitlines()
    assert lines == [
        "app/client.py:1: medium: OpenAI SDK imported (import openai): its calls bypass the "
        "meterline gateway unless the client's base URL points at it (fix: point the client at "
        'the meterline gateway: OpenAI(base_url="https://<gateway>/v1", '
        "api_key=<meterline key>))",
        "app/client.py:2: high: hard-coded Anthropic endpoint "
        "https://api.anthropic.com/v1/messages bypasses the meterline gateway (fix: replace "
        "https://api.anthropic.com with https://<gateway> (same /v1/messages path) and send "
        "x-api-key: <meterline key>)",
        "app/gw.py:1: low: OpenAI SDK imported (from openai import OpenAI); this file sets a "
        "base URL "
        "on line 2: check that it is the meterline gateway (fix: point the client at the "
        'meterline gateway: OpenAI(base_url="https://<gateway>/v1", api_key=<meterline key>))',
        lines[3],
        "4 findings (1 high, 2 medium, 1 low) in 3 files; 4 files scanned",
    ]
    assert lines[3].startswith("web/chat.ts:1: medium: Google Gemini/Vertex AI SDK imported "
                               "(from '@google/genai'): it calls Google Gemini/Vertex AI "
                               "directly, not through the meterline gateway (fix: the meterline "
                               "gateway does not serve the Google Gemini/Vertex AI API")
    assert "new OpenAI({ baseURL:" in lines[3]
    assert result.stderr == ""


def test_json(run_cli, sample):
    result = run_cli("scan", "app", "--json")
    assert result.exit_code == 1, result.output
    data = orjson.loads(result.stdout)
    assert list(data) == ["findings", "files_scanned"]
    assert data["files_scanned"] == 3
    assert data["findings"][1] == {
        "path": "app/client.py", "line": 2, "severity": "high", "kind": "provider_host",
        "provider": "anthropic", "match": "https://api.anthropic.com/v1/messages",
        "message": "hard-coded Anthropic endpoint https://api.anthropic.com/v1/messages "
                   "bypasses the meterline gateway",
        "fix": "replace https://api.anthropic.com with https://<gateway> (same /v1/messages "
               "path) and send x-api-key: <meterline key>",
    }
    assert [(f["path"], f["line"], f["severity"], f["kind"], f["provider"], f["match"])
            for f in data["findings"]] == [
        ("app/client.py", 1, "medium", "sdk_import", "openai", "import openai"),
        ("app/client.py", 2, "high", "provider_host", "anthropic",
         "https://api.anthropic.com/v1/messages"),
        ("app/gw.py", 1, "low", "sdk_import", "openai", "from openai import OpenAI"),
    ]


def test_nothing_found_exits_0(run_cli, tmp_path):
    _tree(tmp_path, {"a.py": "import httpx\n", "b.go": "package b\n", "c.md": "api.openai.com"})
    result = run_cli("scan", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert result.stdout == "no AI calls bypassing the gateway found (2 files scanned)\n"
    result = run_cli("scan", str(tmp_path), "--json")
    assert result.exit_code == 0, result.output
    assert orjson.loads(result.stdout) == {"findings": [], "files_scanned": 2}


def test_exclude_is_repeatable(run_cli, sample):
    result = run_cli("scan", ".", "--exclude", "web", "--exclude", "app/client.py", "--json")
    assert result.exit_code == 1, result.output
    data = orjson.loads(result.stdout)
    assert [(f["path"], f["line"]) for f in data["findings"]] == [("app/gw.py", 1)]
    assert data["files_scanned"] == 2
    result = run_cli("scan", ".", "--exclude", "*.py", "--exclude", "*.ts")
    assert result.exit_code == 0, result.output
    assert result.stdout == "no AI calls bypassing the gateway found (0 files scanned)\n"


def test_several_paths(run_cli, sample):
    result = run_cli("scan", "web/chat.ts", "app/gw.py", "--json")
    assert result.exit_code == 1, result.output
    data = orjson.loads(result.stdout)
    assert [(f["path"], f["severity"]) for f in data["findings"]] == [
        ("web/chat.ts", "medium"), ("app/gw.py", "low")]


def test_a_missing_path_exits_2(run_cli, fails, tmp_path):
    missing = str(tmp_path / "nope")
    fails(run_cli("scan", str(tmp_path), missing), 2, missing, "no such file or directory")
    fails(run_cli("scan", missing, "--json"), 2, "no such file or directory")


def test_no_path_is_a_usage_error(run_cli):
    result = run_cli("scan")
    assert result.exit_code == 2
    assert "Missing argument 'PATH...'" in result.stderr


def test_skipped_and_undecodable_files(run_cli, tmp_path):
    _tree(tmp_path, {
        "blob.py": b"import openai\n\0\0",
        "latin1.py": b"# caf\xe9\nimport anthropic\n",
        "garbage.js": b"\xff\x80\x81\n\xc3(\n",
    })
    result = run_cli("scan", str(tmp_path))
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert result.stdout.splitlines()[0].startswith(
        f"{tmp_path / 'latin1.py'}:2: medium: Anthropic SDK imported")
    assert result.stdout.splitlines()[-1] == (
        "1 finding (1 medium) in 1 file; 2 files scanned, 1 skipped")
    assert result.stderr == f"note: {tmp_path / 'blob.py'}: skipped (binary)\n"
    result = run_cli("scan", str(tmp_path), "--json")
    assert result.exit_code == 1, result.output
    assert orjson.loads(result.stdout)["files_scanned"] == 2
    assert result.stderr == f"note: {tmp_path / 'blob.py'}: skipped (binary)\n"


def test_progress_bar_only_for_many_files(run_cli, tmp_path):
    _tree(tmp_path / "many", {f"m{i:03}.py": "x = 1\n" for i in range(201)})
    _tree(tmp_path / "few", {f"f{i:03}.py": "x = 1\n" for i in range(200)})
    (tmp_path / "many" / "m200.py").write_text("import openai\n")
    many = run_cli("scan", str(tmp_path / "many"))
    assert many.exit_code == 1
    assert "scanning" in many.stderr
    assert many.stdout.splitlines()[-1] == (
        "1 finding (1 medium) in 1 file; 201 files scanned")
    many_json = run_cli("scan", str(tmp_path / "many"), "--json")
    assert orjson.loads(many_json.stdout)["files_scanned"] == 201  # the bar is not on stdout
    assert "scanning" in many_json.stderr
    few = run_cli("scan", str(tmp_path / "few"))
    assert few.exit_code == 0
    assert few.stderr == ""


def test_needs_no_database_and_no_config(tmp_path):
    """A CI job runs ``meterline scan`` with no database and no config file."""
    _tree(tmp_path, {"a.py": "import openai\n"})
    db = tmp_path / "never.db"
    env = {"METERLINE_DATABASE_URL": f"sqlite:///{db}",
           "METERLINE_CONFIG": str(tmp_path / "missing.toml")}
    result = CliRunner().invoke(cli, ["scan", str(tmp_path), "--json"], env=env,
                                prog_name="meterline", catch_exceptions=False)
    assert result.exit_code == 1, result.output
    assert len(orjson.loads(result.stdout)["findings"]) == 1
    assert not db.exists()
