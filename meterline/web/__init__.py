"""The dashboard (SPEC §2): server-rendered pages over the same services as the admin API,
built by :func:`install` in the app factory (docs/dashboard.md)."""

from meterline.web.dashboard import install

__all__ = ["install"]
