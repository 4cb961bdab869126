"""The dashboard's languages (meterline/web/i18n.py): which one a request gets, switching and
remembering it, and catalogs that are complete and compiled."""

from __future__ import annotations

import io
from pathlib import Path

import httpx
import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po

from meterline.web.i18n import CHINESE, ENGLISH, LOCALE_DIR, choose
from tests.web.conftest import sign_in

WEB = LOCALE_DIR.parent


@pytest.mark.parametrize(("cookie", "header", "expected"), [
    (None, None, ENGLISH),
    (None, "zh-CN,zh;q=0.9,en;q=0.8", CHINESE),
    (None, "zh", CHINESE),
    (None, "zh-Hans", CHINESE),
    (None, "zh-Hans-CN", CHINESE),
    (None, "zh_CN", CHINESE),
    (None, "en-US,en;q=0.9", ENGLISH),
    (None, "fr-FR, zh-CN;q=0.5", CHINESE),  # the first language the dashboard speaks
    (None, "en;q=0.4, zh;q=0.8", CHINESE),  # by weight, not order
    (None, "zh-TW", ENGLISH),  # traditional Chinese is not offered
    (None, "zh;q=0, en", ENGLISH),
    (None, "de, fr", ENGLISH),
    (None, "zh;q=bad", ENGLISH),
    (ENGLISH, "zh-CN", ENGLISH),  # the cookie wins
    (CHINESE, "en", CHINESE),
    ("klingon", "zh-CN", CHINESE),  # a cookie naming no locale is ignored
])
def test_the_locale_of_a_request(cookie: str | None, header: str | None,
                                 expected: str) -> None:
    assert choose(cookie, header) == expected


def test_pages_in_chinese_from_the_header_or_the_cookie(client: httpx.Client) -> None:
    sign_in(client)
    english = client.get("/").text
    assert '<html lang="en">' in english and ">Overview</a>" in english
    chinese = client.get("/", headers={"accept-language": "zh-CN,zh;q=0.9"}).text
    assert '<html lang="zh-CN">' in chinese
    for text in (">概览</a>", "支出：全部租户", "<span>总计</span>", ">退出登录</button>",
                 "此范围内没有调用。", "年"):  # dates as 2026年12月7日
        assert text in chinese, text
    assert ">Overview</a>" not in chinese
    client.cookies.set("lang", "zh_CN")
    assert "支出：全部租户" in client.get("/").text
    assert "没有记录。" in client.get("/usage").text
    assert "用量" in client.get("/usage").text
    login = client.get("/login").text
    assert "管理员令牌" in login


def test_switching_sets_the_cookie_and_comes_back(client: httpx.Client) -> None:
    sign_in(client)
    answer = client.get("/lang/zh_CN", params={"next": "/usage?status=error"},
                        follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"] == "/usage?status=error"
    cookie = answer.headers["set-cookie"].lower()
    assert cookie.startswith("lang=zh_cn") and "max-age=31536000" in cookie
    assert "没有记录。" in client.get("/usage", params={"status": "error"}).text
    back = client.get("/lang/en", params={"next": "/"}, follow_redirects=True)
    assert back.status_code == 200 and "Spend: all tenants" in back.text
    # the switch links of a page come back to it
    assert 'href="/lang/zh_CN?next=%2Fusage%3Fstatus%3Derror"' in client.get(
        "/usage", params={"status": "error"}).text
    for elsewhere in ("https://evil.example/", "//evil.example/", "/\\evil.example", "usage"):
        away = client.get("/lang/en", params={"next": elsewhere}, follow_redirects=False)
        assert away.headers["location"] == "/", elsewhere
    unknown = client.get("/lang/xx", follow_redirects=False)
    assert unknown.status_code == 303 and "set-cookie" not in unknown.headers


def _template_messages() -> set[str]:
    found = extract_from_dir(str(WEB), method_map=[("templates/**.html", "jinja2")],
                             options_map={"templates/**.html": {
                                 "extensions": "jinja2.ext.i18n", "trim_blocks": "True",
                                 "lstrip_blocks": "True"}})
    messages: set[str] = set()
    for _, _, message, _, _ in found:
        messages.update([message] if isinstance(message, str) else message[:1])
    return messages


def _catalog(code: str) -> Path:
    return LOCALE_DIR / code / "LC_MESSAGES" / "messages.po"


def test_every_message_of_the_templates_has_a_chinese_translation() -> None:
    messages = _template_messages()
    assert "Overview" in messages and len(messages) > 50
    with _catalog(CHINESE).open("rb") as po:
        catalog = read_po(po)
    missing = []
    for message in sorted(messages):
        entry = catalog.get(message)
        strings = entry.string if entry is not None else ""
        if entry is None or entry.fuzzy or not all(
                [strings] if isinstance(strings, str) else strings):
            missing.append(message)
    assert not missing, f"translate these in {_catalog(CHINESE)} (docs/dashboard.md)"
    with _catalog(ENGLISH).open("rb") as po:
        assert messages <= {m.id if isinstance(m.id, str) else m.id[0]
                            for m in read_po(po) if m.id}


@pytest.mark.parametrize("code", [ENGLISH, CHINESE])
def test_the_compiled_catalog_is_the_catalog(code: str) -> None:
    """Run `pybabel compile -d locale` (in meterline/web) after changing a .po file."""
    with _catalog(code).open("rb") as po:
        source = {_key(m.id): _key(m.string) for m in read_po(po)
                  if m.id and not m.fuzzy and all(_key(m.string))}
    compiled = read_mo(io.BytesIO(_catalog(code).with_suffix(".mo").read_bytes()))
    # (Babel writes an untranslated plural message as its own msgids: English as it is.)
    assert {_key(m.id): _key(m.string) for m in compiled
            if m.id and _key(m.id) != _key(m.string)} == source


def _key(value: object) -> tuple[str, ...]:
    return (value,) if isinstance(value, str) else tuple(value)  # type: ignore[arg-type]
