"""The dashboard's frame (meterline/web/dashboard.py) over real HTTP, on SQLite and PostgreSQL:
every page needs a session, static files (the vendored ECharts among them) come from the
package with their types and cache headers, pages carry their security headers."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import httpx

from meterline.web.dashboard import STATIC
from tests.web.conftest import sign_in

PAGES = ("/", "/usage", "/usage/some-id", "/bills", "/limits", "/reconcile")


def test_every_page_needs_a_session(client: httpx.Client) -> None:
    for path in PAGES:
        answer = client.get(path, follow_redirects=False)
        assert answer.status_code == 303 and answer.headers["location"] == "/login", path


def test_pages_share_the_base_layout_and_its_headers(client: httpx.Client) -> None:
    sign_in(client)
    for path in ("/", "/usage", "/bills", "/limits", "/reconcile"):
        answer = client.get(path)
        assert answer.status_code == 200, (path, answer.text)
        html = answer.text
        assert html.startswith("<!doctype html>") and '<html lang="en">' in html
        for link in ('href="/usage"', 'action="/logout"', 'href="/lang/zh_CN?next=',
                     '<script src="/static/dashboard.js" defer></script>'):
            assert link in html, (path, link)
        assert answer.headers["cache-control"] == "no-store"
        assert answer.headers["x-frame-options"] == "DENY"
        policy = answer.headers["content-security-policy"]
        assert "script-src 'self'" in policy and "unsafe-inline" not in policy.split(";")[1]
        # no inline script: the only <script> without src holds JSON
        for script in re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", html):
            assert 'type="application/json"' in script, (path, script)


def test_static_files_are_served_from_the_package(client: httpx.Client) -> None:
    for path, kind in (("/static/dashboard.css", "text/css"),
                       ("/static/dashboard.js", "text/javascript"),
                       ("/static/vendor/echarts.min.js", "text/javascript")):
        answer = client.get(path)
        assert answer.status_code == 200, path
        assert answer.headers["content-type"].startswith(kind), answer.headers["content-type"]
        assert answer.headers["cache-control"] == "public, max-age=86400"
        assert answer.content == (STATIC / path.removeprefix("/static/")).read_bytes()
    assert client.get("/static/nothing.js").status_code == 404
    assert client.get("/static/../dashboard.py").status_code == 404


def test_the_vendored_echarts_is_the_recorded_release() -> None:
    """static/vendor/README.md names the version and sha256 of what is shipped."""
    readme = (STATIC / "vendor" / "README.md").read_text()
    shipped = hashlib.sha256((STATIC / "vendor" / "echarts.min.js").read_bytes()).hexdigest()
    assert f"`{shipped}`" in readme
    version = re.search(r"echarts@(\d+\.\d+\.\d+)", readme)
    assert version is not None
    assert f'version:"{version.group(1)}"' in (STATIC / "vendor" / "echarts.min.js").read_text()
    assert (STATIC / "vendor" / "echarts.LICENSE").read_text().lstrip().startswith(
        "Apache License")


def test_the_package_ships_the_dashboard_files() -> None:
    """pyproject's package data covers templates, static files and compiled catalogs."""
    pyproject = (Path(__file__).parents[2] / "pyproject.toml").read_text()
    data = re.search(r'"meterline\.web" = \[(.*?)\]', pyproject, re.S)
    assert data is not None
    patterns = re.findall(r'"([^"]+)"', data.group(1))
    package = STATIC.parent
    for file in package.rglob("*"):
        if file.is_file() and file.suffix not in (".py", ".pyc", ".pot"):
            relative = file.relative_to(package)
            assert any(relative.match(p) for p in patterns), relative
