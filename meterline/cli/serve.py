"""``meterline serve``: run the ASGI app with uvicorn."""

from __future__ import annotations

import os
from dataclasses import replace

import click
import uvicorn

from meterline.api.app import DEMO_SIMULATOR_PATH
from meterline.api.factory import serving_app
from meterline.cli.main import Context, handle_errors, pass_context
from meterline.config import DEFAULT_DATABASE_URL, Config, ProviderConfig, Secret
from meterline.services.bootstrap import ensure_admin_token, prepare_database
from meterline.services.demo import seed
from meterline.services.metering import Metering
from meterline.store.engine import make_engine

DEMO_DATABASE_URL = "sqlite:///./meterline-demo.db"


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8400, show_default=True, type=click.IntRange(1, 65535))
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64))
@click.option("--demo", is_flag=True,
              help="Demo mode: a SQLite file of its own, a demo tenant, key and usage history.")
@pass_context
@handle_errors
def serve(ctx: Context, host: str, port: int, workers: int, demo: bool) -> None:
    """Serve the gateway, the usage API and the admin API."""
    config = ctx.config
    if demo:
        config = demo_config(config, host, port)
        workers = 1  # the demo's data and simulator live in this one process
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
    engine.dispose()
    click.echo(f"meterline listening on {base}  (database: {config.database_url})")
    if workers == 1:
        uvicorn.run(serving_app(config), host=host, port=port, log_level="warning")
    else:
        os.environ["METERLINE_DATABASE_URL"] = config.database_url
        os.environ["METERLINE_WORKERS"] = str(workers)
        if ctx.config_path:
            os.environ["METERLINE_CONFIG"] = ctx.config_path
        uvicorn.run("meterline.api.factory:app_from_env", factory=True, host=host, port=port,
                    workers=workers, log_level="warning")


def demo_config(config: Config, host: str, port: int) -> Config:
    """The demo: its own SQLite file (unless a database is configured) and simulated upstream
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
    database = DEMO_DATABASE_URL if config.database_url == DEFAULT_DATABASE_URL \
        else config.database_url
    return replace(config, database_url=database, demo=True,
                   providers=config.providers or providers)


def register(cli: click.Group) -> None:
    cli.add_command(serve)
