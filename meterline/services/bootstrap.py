"""Bringing a database up to what the code needs: migrations, shipped prices, the admin token."""

from __future__ import annotations

import logging
import secrets
from functools import lru_cache

from sqlalchemy import Engine

from meterline.catalog import genai, load_catalog, shipped
from meterline.config import Config
from meterline.domain.pricebook import Layer
from meterline.store import accounts, pricing
from meterline.store.migrate import current_revision, head_revision, upgrade

log = logging.getLogger("meterline")


def prepare_database(engine: Engine) -> int:
    """Migrate to head when behind and add shipped price versions (the curated catalog and the
    installed genai-prices database) not yet stored. Each source is synced only when it changed
    since the database last took it (a release, a shipped file), so a start costs a lookup.

    Returns how many price versions were added.
    """
    if current_revision(engine) != head_revision():
        upgrade(engine)
    added = 0
    curated, database = shipped.fingerprint(), genai.fingerprint()
    with engine.begin() as conn:
        synced = pricing.synced_fingerprints(conn)
        if synced.get(Layer.CURATED) != curated:
            book = load_catalog()
            added += pricing.add_versions(conn, book.versions(), "catalog",
                                          book.aliases().items())
            pricing.mark_synced(conn, Layer.CURATED, curated)
        if synced.get(Layer.GENAI_PRICES) != database:
            translated = genai_catalog()
            added += pricing.add_versions(conn, translated.versions, genai.ORIGIN,
                                          translated.aliases)
            pricing.save_rules(conn, Layer.GENAI_PRICES, translated.rules)
            pricing.mark_synced(conn, Layer.GENAI_PRICES, database)
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
    """Store the configured admin token (named ``config``); without one, generate one when no
    active admin token is left (the first start, or every token revoked).

    Returns a newly generated token (to print once), else None. A configured token that was
    revoked stays revoked (a warning says so): revocation must survive a restart.
    """
    with engine.begin() as conn:
        if config.admin_token is not None:
            stored = accounts.add_admin_token(conn, config.admin_token.reveal())
            if stored.revoked_at is not None:
                log.warning("the configured admin token (id %d) was revoked and is refused; "
                            "configure another or use `meterline admin-tokens create`",
                            stored.id)
            return None
        if accounts.active_admin_token_count(conn) == 0:
            token = accounts.ADMIN_TOKEN_PREFIX + secrets.token_urlsafe(32)
            accounts.add_admin_token(conn, token, "generated")
            return token
    return None
