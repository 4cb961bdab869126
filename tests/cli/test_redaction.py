"""A database URL's password is never shown (issue 12.9): it was echoed whole in the error of a
URL that does not parse, a port that is not a number ended in a traceback, and the driver's
words (which may quote a connection setting) went out unfiltered. ``redact_url`` is the one
place a URL is made fit to show."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from meterline.cli.main import cli
from meterline.store.engine import redact_url
from tests.conftest import PG_SERVER

SECRET = "s3cret-pw"


def db_check(url: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["db", "check"], prog_name="meterline",
                                env={"METERLINE_DATABASE_URL": url, "METERLINE_CONFIG": ""})
    return result.exit_code, result.output


@pytest.mark.parametrize(("url", "code", "says"), [
    (f"postgres ql://alice:{SECRET}@db.example/prod", 2, "is not a database URL"),
    (f"postgresql://alice:{SECRET}@127.0.0.1:port/prod", 2, "is not a database URL"),
    (f"postgresql://alice@127.0.0.1:port/prod?password={SECRET}", 2, "is not a database URL"),
    (f"mysql://alice:{SECRET}@db.example/prod", 2, "not supported"),
])
def test_a_bad_url_is_named_without_its_password(url: str, code: int, says: str) -> None:
    exit_code, output = db_check(url)
    assert exit_code == code, output
    assert says in output and "Traceback" not in output
    assert SECRET not in output
    if "not a database URL" in says:
        assert "alice" in output and "***" in output  # still recognisable


def test_the_drivers_words_are_shown_without_the_password() -> None:
    """A connection setting the server refuses is quoted in its error; here the setting holds
    the password's text, which is masked wherever it appears."""
    server = PG_SERVER.split("://", 1)[1].split("@")[-1]
    exit_code, output = db_check(f"postgresql://postgres:{SECRET}@{server}"
                                 f"?options=-c%20{SECRET}")
    assert exit_code == 1, output
    assert "database unreachable" in output and "requires a value" in output
    assert SECRET not in output


@pytest.mark.parametrize(("url", "shown"), [
    ("postgresql://alice:pw@db:5432/prod", "postgresql://alice:***@db:5432/prod"),
    ("postgresql://alice:p%40ss@db/prod", "postgresql://alice:***@db/prod"),
    ("postgresql://alice:p@ss@db/prod", "postgresql://alice:***@db/prod"),
    ("postgresql://alice@db/prod?sslmode=require&password=pw",
     "postgresql://alice@db/prod?sslmode=require&password=***"),
    ("postgresql://db/prod?options=-csearch_path%3Dt", "postgresql://db/prod?options="
                                                       "-csearch_path%3Dt"),
    ("sqlite:///./meterline.db", "sqlite:///./meterline.db"),
    ("not a url at all :pw@", "not a url at all :pw@"),
])
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown
