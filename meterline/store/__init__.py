"""Storage adapter: SQLAlchemy Core on SQLite (embedded default) or PostgreSQL; Alembic."""
