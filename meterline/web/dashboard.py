"""The dashboard's frame: its Jinja2 templates (autoescaped, one environment per language,
built once by the app factory), its static files under ``/static/``, and its routes.

A page is a template under ``templates/`` extending ``base.html``; a handler renders it with
:meth:`Dashboard.page`, which hands every template ``fmt`` (numbers, dates and money of the
request's locale, web/formats.py), ``lang`` and ``path`` (for the language switch), and
``_()`` / ``ngettext()`` for its messages (web/i18n.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from fastapi import FastAPI, Request
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from starlette.responses import HTMLResponse, Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from meterline.web import i18n
from meterline.web.formats import Formatter

TEMPLATES: Final = Path(__file__).parent / "templates"
STATIC: Final = Path(__file__).parent / "static"
#: Pages hold spend: never cached, never framed; scripts only from this site (the chart data
#: is a JSON block, not inline script). ECharts sets element styles, hence inline styles.
PAGE_HEADERS: Final = {
    "cache-control": "no-store", "x-frame-options": "DENY",
    "x-content-type-options": "nosniff", "referrer-policy": "same-origin",
    "content-security-policy": "default-src 'self'; script-src 'self'; "
                               "style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
                               "frame-ancestors 'none'; form-action 'self'",
}
#: The vendored files change only with a new meterline release.
STATIC_MAX_AGE: Final = 86400


class _Static(StaticFiles):
    """The package's static files, cacheable for a day."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        answer = await super().get_response(path, scope)
        if answer.status_code == 200:
            answer.headers["cache-control"] = f"public, max-age={STATIC_MAX_AGE}"
            answer.headers["x-content-type-options"] = "nosniff"
        return answer


def _environment(locale: str, catalog: Any) -> Environment:
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(
        enabled_extensions=("html",), default_for_string=True, default=True),
        undefined=StrictUndefined, extensions=["jinja2.ext.i18n"], trim_blocks=True,
        lstrip_blocks=True, auto_reload=False)
    env.install_gettext_translations(catalog, newstyle=True)  # type: ignore[attr-defined]
    env.globals.update(fmt=Formatter(locale), lang=locale, html_lang=i18n.HTML_LANG[locale],
                       locales=i18n.LOCALES)
    return env


class Dashboard:
    """The templates of every locale, loaded once per process."""

    def __init__(self) -> None:
        catalogs = i18n.translations()
        self.environments = {code: _environment(code, catalogs[code]) for code in i18n.LOCALES}

    def render(self, locale: str, template: str, **context: Any) -> str:
        return self.environments[locale].get_template(template).render(**context)

    def page(self, request: Request, template: str, context: Mapping[str, Any] | None = None,
             *, status_code: int = 200, menu: bool = True) -> HTMLResponse:
        """``template`` in the request's language, as a page."""
        path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        html = self.render(i18n.locale_of(request), template, path=path, menu=menu,
                           **(context or {}))
        return HTMLResponse(html, status_code=status_code, headers=PAGE_HEADERS)


def dashboard(request: Request) -> Dashboard:
    found: Dashboard = request.app.state.dashboard
    return found


def install(app: FastAPI) -> None:
    """Build the dashboard once and serve it: its pages under ``/``, its files under
    ``/static/``."""
    # Imported here: the page modules import this one.
    from meterline.web import bills, keys, limits, login, overview, prices, reconcile, usage

    app.state.dashboard = Dashboard()
    app.mount("/static", _Static(directory=STATIC), name="static")
    for module in (i18n, login, overview, usage, bills, reconcile, limits, keys, prices):
        app.include_router(module.router)
