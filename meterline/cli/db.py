"""``meterline db upgrade|check``."""

from __future__ import annotations

import sys

import click

from meterline.cli.main import Context, emit_json, handle_errors, json_option, pass_context
from meterline.services.bootstrap import prepare_database
from meterline.store.migrate import check_schema


@click.group()
def db() -> None:
    """Migrate and check the database."""


@db.command()
@pass_context
@handle_errors
def upgrade(ctx: Context) -> None:
    """Run migrations to the newest schema and add new shipped prices; exit 1 if the schema is
    still incomplete afterwards (tables dropped behind the migrations' back)."""
    added = prepare_database(ctx.engine)
    report = check_schema(ctx.engine)
    if not report.ok:
        for problem in report.problems():
            click.echo(problem, err=True)
        click.echo("error: the schema is incomplete although the migrations ran; restore the "
                   "missing tables from a backup or a fresh `db upgrade` on an empty database",
                   err=True)
        sys.exit(1)
    click.echo(f"database is up to date; {added} shipped price versions added")


@db.command()
@json_option
@pass_context
@handle_errors
def check(ctx: Context, as_json: bool) -> None:
    """Compare the live database with what the code needs; exit 1 if anything is missing."""
    report = check_schema(ctx.engine)
    if as_json:
        emit_json({"ok": report.ok, "revision": report.revision, "head": report.head,
                   "missing_tables": report.missing_tables,
                   "missing_columns": report.missing_columns, "problems": report.problems()})
    elif report.ok:
        click.echo(f"schema complete (revision {report.revision})")
    else:
        for problem in report.problems():
            click.echo(problem)
    if not report.ok:
        sys.exit(1)


def register(cli: click.Group) -> None:
    cli.add_command(db)
