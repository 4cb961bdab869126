"""``meterline serve``: run the ASGI app with uvicorn."""

from __future__ import annotations

import errno
import os
import shlex
import shutil
import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import click
import uvicorn

from meterline import logs
from meterline.api.app import DEMO_SIMULATOR_PATH
from meterline.api.factory import serving_app
from meterline.cli.main import Context, handle_errors, pass_context
from meterline.config import (
    DEFAULT_DATABASE_URL,
    DEFAULT_JOURNAL_DIR,
    LOG_FORMATS,
    Config,
    ProviderConfig,
    Secret,
)
from meterline.errors import MeterlineError
from meterline.gateway.metrics import MULTIPROC_ENV
from meterline.services.bootstrap import ensure_admin_token, prepare_database
from meterline.services.demo import seed
from meterline.services.metering import Metering
from meterline.store.engine import make_engine, redact_url

DEMO_DATABASE_FILE = "meterline-demo.db"
DEMO_DATABASE_URL = f"sqlite:///./{DEMO_DATABASE_FILE}"
#: The demo's journal, apart from a real server's in the same folder: a real server started
#: there later must not drain the demo's calls into its own ledger.
DEMO_JOURNAL_DIR = "./meterline-demo-journal"

#: How long an idle client connection is kept open: longer than the SDKs' own pools keep one
#: (httpx: 5 s, uvicorn's default too), so the server never closes a connection at the moment
#: a client reuses it (that request would fail).
KEEP_ALIVE_SECONDS = 75


@click.command()
@click.option("--config", "config_path", default=None, metavar="FILE",
              help="Config file (TOML), as `meterline --config FILE serve`. "
                   "Default: $METERLINE_CONFIG.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8400, show_default=True, type=click.IntRange(1, 65535))
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64))
@click.option("--demo", is_flag=True,
              help="Demo mode: a SQLite file of its own, a demo tenant, key and usage history.")
@click.option("--log-format", type=click.Choice(LOG_FORMATS), default=None,
              help="Log lines as text or as JSON objects (with the request id). "
                   "Default: the log_format setting, else text.")
@pass_context
@handle_errors
def serve(ctx: Context, config_path: str | None, host: str, port: int, workers: int,
          demo: bool, log_format: str | None) -> None:
    """Serve the gateway, the usage API and the admin API."""
    if config_path is not None:
        ctx.use_config(config_path)
    config = ctx.config
    if log_format is not None:
        config = replace(config, log_format=log_format)
    if demo:
        config = demo_config(config, host, port)
        workers = 1  # the demo's data and simulator live in this one process
    # Bound before anything is stored or printed: on a port in use, an admin token generated
    # below would be stored and its only printing lost in the failure.
    sock = listen_socket(host, port)
    try:
        _start(ctx, config, sock, host, port, workers, demo)
    finally:
        sock.close()


def _start(ctx: Context, config: Config, sock: socket.socket, host: str, port: int,
           workers: int, demo: bool) -> None:
    logs.configure(config.log_format)  # uvicorn applies the same again, in every worker
    log_config = logs.logging_config(config.log_format)
    engine = make_engine(config.database_url)
    prepare_database(engine)
    token = ensure_admin_token(engine, config)
    base = f"http://{host}:{port}"
    if token:
        click.echo(f"admin token (shown once, stored hashed): {token}")
    if demo:
        info = seed(engine, Metering(engine))
        if info.seeded_events:
            click.echo(f"demo: tenant 'demo' seeded with {info.seeded_events} usage events")
        click.echo(f"demo key: {info.key}")
        click.echo(
            f"try:  curl -s {base}/v1/chat/completions -H 'Authorization: Bearer {info.key}' "
            "-H 'Content-Type: application/json' -d '{\"model\": \"openai/gpt-5-nano\", "
            "\"messages\": [{\"role\": \"user\", \"content\": \"Hello\"}]}' -i"
        )
        if config.database_url == DEMO_DATABASE_URL:
            # The CLI's default database is ./meterline.db; without this it sees none of this.
            url = f"sqlite:///{Path.cwd() / DEMO_DATABASE_FILE}"
            click.echo(f"CLI on the demo's data:  export METERLINE_DATABASE_URL={shlex.quote(url)}")
    engine.dispose()
    if workers == 1:
        server = uvicorn.Server(uvicorn.Config(serving_app(config), host=host, port=port,
                                               log_level="warning", log_config=log_config,
                                               timeout_keep_alive=KEEP_ALIVE_SECONDS))
        click.echo(f"meterline listening on {base}  (database: {redact_url(config.database_url)})")
        server.run(sockets=[sock])
        if not server.started:
            raise MeterlineError("the server did not start (the reason is logged above)")
        return
    # uvicorn's worker processes bind the address themselves: it was free a moment ago.
    sock.close()
    click.echo(f"meterline listening on {base}  (database: {redact_url(config.database_url)})")
    os.environ["METERLINE_DATABASE_URL"] = config.database_url
    os.environ["METERLINE_WORKERS"] = str(workers)
    os.environ["METERLINE_LOG_FORMAT"] = config.log_format
    if ctx.config_path:
        os.environ["METERLINE_CONFIG"] = ctx.config_path
    with metrics_directory() as directory:
        # Read by prometheus_client as each worker imports it: every worker keeps its values
        # in files there, and a scrape adds them all up (gateway/metrics.py).
        os.environ[MULTIPROC_ENV] = directory
        uvicorn.run("meterline.api.factory:app_from_env", factory=True, host=host, port=port,
                    workers=workers, log_level="warning", log_config=log_config,
                    timeout_keep_alive=KEEP_ALIVE_SECONDS)


@contextmanager
def metrics_directory() -> Iterator[str]:
    """A new, empty, private directory for this run's metrics files, removed when it ends: a
    previous run's files (or another server's) must not add to this one's counters."""
    directory = tempfile.mkdtemp(prefix="meterline-metrics-")
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def listen_socket(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` as uvicorn binds it, or a clear error."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        reason = (exc.strerror or str(exc)).lower()
        if exc.errno == errno.EADDRINUSE:
            reason += " (another server runs there: stop it or choose another --port)"
        raise MeterlineError(f"cannot listen on {host}:{port}: {reason}") from None
    except UnicodeError:  # an unusable host name (IDNA)
        sock.close()
        raise MeterlineError(f"cannot listen on {host}:{port}: not a host name") from None
    return sock


def demo_config(config: Config, host: str, port: int) -> Config:
    """The demo: its own SQLite file and journal (unless configured) and simulated upstream
    providers served by the same process, so no credentials are needed."""
    base = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"
    simulated = f"{base}{DEMO_SIMULATOR_PATH}"
    providers = tuple(
        ProviderConfig(name, kind, url, Secret("demo"), 60.0, allow_unknown_models=True)
        for name, kind, url in (
            ("openai", "openai", f"{simulated}/v1"), ("anthropic", "anthropic", simulated),
            ("gemini", "gemini", simulated), ("deepseek", "openai", f"{simulated}/v1"),
            ("qwen", "openai", f"{simulated}/v1"),
        ))
    own_database = config.database_url == DEFAULT_DATABASE_URL
    database = DEMO_DATABASE_URL if own_database else config.database_url
    journal = DEMO_JOURNAL_DIR if own_database and config.journal_dir == DEFAULT_JOURNAL_DIR \
        else config.journal_dir
    return replace(config, database_url=database, journal_dir=journal, demo=True,
                   providers=config.providers or providers)


def register(cli: click.Group) -> None:
    cli.add_command(serve)
