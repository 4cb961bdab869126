"""Migrations and the schema check.

``upgrade`` runs Alembic to head on a live engine. ``check_schema`` compares what is really in the
database with what the code needs — every table and every column of :mod:`schema` — and names
each one missing; it trusts the database, not Alembic's version table, because a migration
recorded as applied whose tables are gone has to be caught too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from meterline.errors import StoreError
from meterline.store.schema import metadata

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    except OperationalError as exc:
        raise StoreError(f"database unreachable: {exc.orig}") from exc


def upgrade(engine: Engine, revision: str = "head") -> None:
    config = alembic_config()
    try:
        with engine.begin() as conn:
            config.attributes["connection"] = conn
            command.upgrade(config, revision)
    except OperationalError as exc:
        raise StoreError(f"database unreachable: {exc.orig}") from exc


@dataclass
class SchemaReport:
    revision: str | None
    head: str
    missing_tables: list[str] = field(default_factory=list)
    missing_columns: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.missing_tables and not self.missing_columns and self.revision == self.head

    def problems(self) -> list[str]:
        out = [f"missing table: {name}" for name in self.missing_tables]
        out += [f"missing column: {name}" for name in self.missing_columns]
        if self.revision != self.head:
            out.append(f"migration revision is {self.revision or 'none'}, the code needs "
                       f"{self.head}: run `meterline db upgrade`")
        return out


def check_schema(engine: Engine) -> SchemaReport:
    try:
        with engine.connect() as conn:
            inspector = inspect(conn)
            present = set(inspector.get_table_names())
            revision = MigrationContext.configure(conn).get_current_revision()
            report = SchemaReport(revision=revision, head=head_revision())
            for table in metadata.sorted_tables:
                if table.name not in present:
                    report.missing_tables.append(table.name)
                    continue
                columns = {c["name"] for c in inspector.get_columns(table.name)}
                report.missing_columns += [f"{table.name}.{c.name}" for c in table.columns
                                           if c.name not in columns]
    except SQLAlchemyError as exc:
        raise StoreError(f"database unreachable: {getattr(exc, 'orig', exc)}") from exc
    return report
