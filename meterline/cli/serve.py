"""``meterline serve``: run the ASGI app with uvicorn."""

from __future__ import annotations

import os
from dataclasses import replace

import click
import uvicorn

from meterline.api.app import create_app
from meterline.cli.main import Context, handle_errors, pass_context
from meterline.config import DEFAULT_DATABASE_URL
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
    if demo and config.database_url == DEFAULT_DATABASE_URL:
        config = replace(config, database_url=DEMO_DATABASE_URL, demo=True)
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
            f"try:  curl -s {base}/v1/billing/quote -H 'Authorization: Bearer {info.key}' "
            "-d '{\"model\": \"openai/gpt-5-nano\", \"usage\": {\"input_tokens\": 1000, "
            "\"output_tokens\": 500}}'"
        )
    engine.dispose()
    click.echo(f"meterline listening on {base}  (database: {config.database_url})")
    if workers == 1:
        uvicorn.run(create_app(config), host=host, port=port, log_level="warning")
    else:
        os.environ["METERLINE_DATABASE_URL"] = config.database_url
        if ctx.config_path:
            os.environ["METERLINE_CONFIG"] = ctx.config_path
        uvicorn.run("meterline.api.factory:app_from_env", factory=True, host=host, port=port,
                    workers=workers, log_level="warning")


def register(cli: click.Group) -> None:
    cli.add_command(serve)
