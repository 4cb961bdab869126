"""The ``meterline`` command: one group, subcommands in sibling modules.

Every command reads the same config and database as the server (``--config`` or
``METERLINE_CONFIG``, ``METERLINE_DATABASE_URL``). Errors print one line to stderr and exit 2 for
bad input, 1 for anything else meterline knows about; never a traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import cached_property, wraps
from typing import Any, TypeVar

import click
import orjson
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from meterline import __version__
from meterline.config import Config, load_config
from meterline.errors import InvalidInput, MeterlineError
from meterline.services.bootstrap import prepare_database
from meterline.services.metering import Metering, new_request_id
from meterline.store.audit import CLI_ACTOR, Actor
from meterline.store.engine import make_engine

F = TypeVar("F", bound=Callable[..., Any])


class Context:
    """Lazily built config, engine and metering service for one CLI run."""

    def __init__(self, config_path: str | None) -> None:
        self.config_path = config_path

    def use_config(self, config_path: str) -> None:
        """A subcommand's own ``--config`` (``meterline serve --config FILE``) wins over the
        group's; nothing was built from the other yet."""
        self.close()
        self.__dict__.pop("config", None)
        self.__dict__.pop("metering", None)
        self.config_path = config_path

    @cached_property
    def config(self) -> Config:
        return load_config(self.config_path)

    @cached_property
    def engine(self) -> Engine:
        return make_engine(self.config.database_url)

    def ready_engine(self) -> Engine:
        """The engine, with the schema migrated and the shipped catalog synced."""
        prepare_database(self.engine)
        return self.engine

    @cached_property
    def metering(self) -> Metering:
        return Metering(self.ready_engine())

    @cached_property
    def actor(self) -> Actor:
        """Who this run's changes are by, in the audit log: ``cli``, one request id a run."""
        return Actor(CLI_ACTOR, new_request_id())

    def close(self) -> None:
        """Close the engine's pooled connections (if one was made) when the command ends."""
        engine = self.__dict__.pop("engine", None)
        if engine is not None:
            engine.dispose()


pass_context = click.make_pass_decorator(Context)


def _fail(message: str, code: int) -> None:
    """Print ``error: …`` as one line (driver messages span several) and exit."""
    text = "; ".join(part.strip() for part in message.splitlines() if part.strip())
    click.echo(f"error: {text}", err=True)
    sys.exit(code)


def handle_errors(func: F) -> F:
    """Turn meterline errors into one clear line and an exit code."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except InvalidInput as exc:
            _fail(exc.message, 2)
        except MeterlineError as exc:
            _fail(exc.message, 1)
        except SQLAlchemyError as exc:  # e.g. a table dropped behind meterline's back
            detail = getattr(exc, "orig", None) or exc
            _fail(f"database error: {detail}; `meterline db check` lists what is missing", 1)

    return wrapper  # type: ignore[return-value]


def emit_json(data: Any) -> None:
    click.echo(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode())


def json_option(func: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON.")(func)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_path", envvar="METERLINE_CONFIG", default=None,
              help="Config file (TOML). Default: $METERLINE_CONFIG.")
@click.version_option(__version__, prog_name="meterline")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None) -> None:
    """meterline: LLM API gateway and billing service."""
    ctx.obj = Context(config_path)
    ctx.call_on_close(ctx.obj.close)


def _register() -> None:
    from meterline.cli import (
        accounts,
        archive,
        audit,
        bills,
        db,
        insights,
        limits,
        prices,
        reconcile,
        scan,
        serve,
        stats,
        usage,
    )

    for module in (serve, db, accounts, prices, usage, limits, scan, insights, stats, bills,
                   archive, reconcile, audit):
        module.register(cli)


_register()
