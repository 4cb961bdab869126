"""Bringing a database up to what the code needs: migrations, shipped prices, the admin token."""

from __future__ import annotations

import secrets
from functools import lru_cache

from sqlalchemy import Engine

from meterline.catalog import genai, load_catalog
from meterline.config import Config
from meterline.domain.pricebook import Layer
from meterline.store import accounts, pricing
from meterline.store.migrate import current_revision, head_revision, upgrade


def prepare_database(engine: Engine) -> int:
    """Migrate to head when behind and add shipped price versions not yet stored.

    Returns how many price versions were added.
    """
    if current_revision(engine) != head_revision():
        upgrade(engine)
    book = load_catalog()
    database = genai_catalog()
    with engine.begin() as conn:
        added = pricing.add_versions(conn, book.versions(), "catalog", book.aliases().items())
        added += pricing.add_versions(conn, database.versions, genai.ORIGIN, database.aliases)
        pricing.save_rules(conn, Layer.GENAI_PRICES, database.rules)
    return added


@lru_cache(maxsize=1)
def genai_catalog() -> genai.GenaiCatalog:
    """The installed genai-prices database, translated once per process."""
    return genai.translate(genai.installed_providers(), release=genai.installed_version())


def sync_providers(engine: Engine, config: Config) -> None:
    """Record the configured upstream providers (name, wire format, base URL; never keys)."""
    with engine.begin() as conn:
        pricing.save_providers(conn, [(p.name, p.kind, p.base_url) for p in config.providers])


def ensure_admin_token(engine: Engine, config: Config) -> str | None:
    """Store the configured admin token; generate one on first start if none is configured.

    Returns a newly generated token (to print once), else None.
    """
    with engine.begin() as conn:
        if config.admin_token is not None:
            accounts.add_admin_token(conn, config.admin_token.reveal())
            return None
        if accounts.admin_token_count(conn) == 0:
            token = "mla-" + secrets.token_urlsafe(32)
            accounts.add_admin_token(conn, token)
            return token
    return None
