"""HTTP adapter: the ASGI app (usage ingestion, quotes, health, admin API)."""
