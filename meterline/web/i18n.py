"""The dashboard's two languages: which one a request gets, and the message catalogs.

The choice is the ``lang`` cookie (set by ``/lang/{code}``), else the browser's
``Accept-Language``: Chinese (``zh``, ``zh-CN``, ``zh-Hans``…) reads zh_CN, anything else
English. Catalogs are the compiled ``locale/<code>/LC_MESSAGES/messages.mo`` shipped in the
package (docs/dashboard.md: how to add a message, extract and compile).
"""

from __future__ import annotations

from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

from babel.support import NullTranslations, Translations
from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

LOCALE_DIR: Final = Path(__file__).parent / "locale"
ENGLISH: Final = "en"
CHINESE: Final = "zh_CN"
LOCALES: Final = (ENGLISH, CHINESE)
#: What a page's ``<html lang>`` says for each locale.
HTML_LANG: Final = {ENGLISH: "en", CHINESE: "zh-CN"}
LANG_COOKIE: Final = "lang"
LANG_COOKIE_AGE: Final = 365 * 24 * 3600
#: Accept-Language tags read as simplified Chinese (lower case; a region after them is fine).
_CHINESE_TAGS: Final = ("zh", "zh-cn", "zh-hans", "zh-sg")

router = APIRouter(include_in_schema=False)


def translations() -> dict[str, NullTranslations]:
    """Each locale's compiled catalog (English's is the identity on the msgids)."""
    return {code: Translations.load(str(LOCALE_DIR), [code], domain="messages")
            for code in LOCALES}


def _from_tag(tag: str) -> str | None:
    tag = tag.strip().lower().replace("_", "-")
    if tag == "zh" or any(tag == t or tag.startswith(t + "-") for t in _CHINESE_TAGS[1:]):
        return CHINESE
    if tag.startswith("zh-"):
        return None  # traditional Chinese: not offered, so the next preference decides
    if tag == "en" or tag.startswith("en-"):
        return ENGLISH
    return None


def _accepted(header: str) -> list[str]:
    """The language tags of an Accept-Language header, most preferred first (q=0 dropped)."""
    ranked: list[tuple[float, int, str]] = []
    for order, item in enumerate(header.split(",")[:32]):
        tag, _, params = item.partition(";")
        weight = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name == "q":
                try:
                    weight = float(value)
                except ValueError:
                    weight = 0.0
        if tag.strip() and weight > 0:
            ranked.append((-weight, order, tag))
    return [tag for _, _, tag in sorted(ranked)]


def choose(cookie: str | None, accept_language: str | None) -> str:
    """The locale of a request: the cookie's if it names one, else the first language of
    ``Accept-Language`` the dashboard speaks, else English."""
    if cookie in LOCALES:
        return cookie
    for tag in _accepted(accept_language or ""):
        found = _from_tag(tag)
        if found is not None:
            return found
    return ENGLISH


def locale_of(request: Request) -> str:
    return choose(request.cookies.get(LANG_COOKIE), request.headers.get("accept-language"))


def _local_path(target: str | None) -> str:
    """Where to go back to: a path of this site only (never another host)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    parts = urlsplit(target)
    return target if not parts.scheme and not parts.netloc else "/"


@router.get("/lang/{code}")
async def switch(code: str, next: str | None = None) -> Response:
    """Remember ``code`` in the ``lang`` cookie and go back to the page (``next``)."""
    answer = RedirectResponse(_local_path(next), status_code=303)
    if code in LOCALES:
        answer.set_cookie(LANG_COOKIE, code, max_age=LANG_COOKIE_AGE, path="/",
                          samesite="lax", httponly=True)
    return answer
