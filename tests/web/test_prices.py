"""The dashboard's price catalog page (meterline/web/prices.py) over real HTTP, on SQLite and
PostgreSQL: providers, models and versions are the admin API's (/api/prices,
/api/prices/sources); a version added on the page is the API's, audited with the session as the
actor."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal
from typing import Any

import httpx
from markupsafe import escape

from meterline.domain.prices import UNIT_SIZES
from meterline.web.prices import PAGE_SIZE
from tests.conftest import ADMIN
from tests.web.conftest import price_m1, sign_in
from tests.web.test_limits import api, audited, same_site, session_actor

SCRIPT_SOURCE = "<img src=x onerror=alert(1)>"


def _section(html: str, model: str) -> str:
    start = html.index(f'<section class="model" id="model-{model}">')
    return html[start:html.index("</section>", start)]


def _version_row(section: str, version_id: str) -> str:
    start = section.index(f'data-version="{escape(version_id)!s}"')
    return section[start:section.index("</tr>", start)]


def _per_million(version: dict[str, Any], meter: str) -> Decimal:
    """The API's price of a token meter, per million tokens."""
    unit = version["units"].get(meter, version["unit"])
    return Decimal(version["prices"][meter]) * 1_000_000 / UNIT_SIZES[unit]


def _checked_against_the_api(client: httpx.Client, html: str, model: str) -> None:
    """Every version of ``model`` on the page, as /api/prices and /api/prices/sources give it."""
    section = _section(html, model)
    versions = api(client, "/api/prices", model=model)["versions"]
    [sources] = api(client, "/api/prices/sources", model=model)["models"]
    charged = {layer["version"] for layer in sources["layers"] if layer["in_force"]}
    assert section.count("data-version=") == len(versions) > 0
    for version in versions:
        found = _version_row(section, version["id"])
        assert f"<td>{version['currency']}</td>" in found
        assert ("<td>yes</td>" in found or "<td>是</td>" in found) == (version["id"] in charged)
        for meter in ("input_tokens", "cached_input_tokens", "output_tokens"):
            if meter in version["prices"]:
                opening = f'<td class="n {meter}"><span class="money" title="'
                start = found.index(opening) + len(opening)
                exact, currency = found[start:found.index('"', start)].split(" ")
                assert (Decimal(exact), currency) == (_per_million(version, meter),
                                                      version["currency"]), (meter, found)


def test_providers_then_a_provider_s_models_are_the_api_s_in_both_languages(
        client: httpx.Client) -> None:
    assert client.get("/prices", follow_redirects=False).headers["location"] == "/login"
    assert client.post("/prices", data={"model": "test/x", "currency": "USD",
                                        "effective_from": "2026-01-01", "input_tokens": "1"},
                       follow_redirects=False).headers["location"] == "/login"
    sign_in(client)
    assert api(client, "/api/prices/sources", provider="test")["models"] == []
    models = sorted({v["model"] for v in api(client, "/api/prices")["versions"]})
    providers = Counter(name.split("/", 1)[0] for name in models)
    biggest = max(providers, key=lambda name: (providers[name], name))
    assert providers[biggest] > PAGE_SIZE
    for lang, heading in (("en", "Prices"), ("zh_CN", "价格")):
        client.cookies.set("lang", lang)
        first = client.get("/prices")
        assert first.status_code == 200 and f"<h1>{heading}</h1>" in first.text
        for name, count in providers.items():
            link = f'<a class="swap" href="/prices?provider={name}">{name}</a>'
            assert f'{link}</td><td class="n">{count:,}</td>' in first.text, name
        # No version on the first page: it stays small whatever the catalog holds.
        assert "data-version=" not in first.text
        own = [name for name in models if name.startswith(f"{biggest}/")]
        page = client.get("/prices", params={"provider": biggest})
        assert page.status_code == 200
        shown = [name for name in own if f'id="model-{name}"' in page.text]
        assert shown == own[:PAGE_SIZE]
        for name in shown[:3]:
            _checked_against_the_api(client, page.text, name)
        assert f'href="/prices?provider={biggest}&amp;page=2"' in page.text
        second = client.get("/prices", params={"provider": biggest, "page": "2"}).text
        assert [name for name in own if f'id="model-{name}"' in second] == \
            own[PAGE_SIZE:2 * PAGE_SIZE]
    client.cookies.set("lang", "en")
    for page_number in ("0", "x", "-1"):
        bad = client.get("/prices", params={"provider": biggest, "page": page_number})
        assert bad.status_code == 400 and "page: a whole number from 1" in bad.text
    assert "No models match." in client.get("/prices", params={"q": "no-such-model"}).text


def test_a_search_finds_models_of_every_provider_by_name(client: httpx.Client) -> None:
    price_m1(client)
    sign_in(client)
    page = client.get("/prices", params={"q": "M1"})
    assert page.status_code == 200
    _checked_against_the_api(client, page.text, "test/m1")
    found = page.text.count('<section class="model"')
    expected = [v["model"] for v in api(client, "/api/prices")["versions"]
                if "m1" in v["model"].lower()]
    assert found == min(len(set(expected)), PAGE_SIZE)


def test_a_version_added_on_the_page_is_the_api_s_and_audited(client: httpx.Client) -> None:
    sign_in(client)
    form = {"model": "test/web", "currency": "USD", "effective_from": "2026-03-01",
            "unit": "1M", "input_tokens": "0.15", "cached_input_tokens": "0.075",
            "output_tokens": "0.6", "cache_write_tokens": "", "reasoning_tokens": "",
            "source": SCRIPT_SOURCE}
    added = client.post("/prices", data=form, headers=same_site(client),
                        follow_redirects=False)
    assert added.status_code == 303 and added.headers["location"] == "/prices?q=test%2Fweb"
    [version] = api(client, "/api/prices", model="test/web")["versions"]
    assert (version["currency"], version["effective_from"], version["source"],
            version["layer"]) == ("USD", "2026-03-01T00:00:00+00:00", SCRIPT_SOURCE, "operator")
    assert {meter: _per_million(version, meter) for meter in version["prices"]} == {
        "input_tokens": Decimal("0.15"), "cached_input_tokens": Decimal("0.075"),
        "output_tokens": Decimal("0.6")}
    [entry] = audited(client, "price.set")
    assert (entry["actor"], entry["target"]) == (session_actor(client), version["id"])
    for lang in ("en", "zh_CN"):
        client.cookies.set("lang", lang)
        page = client.get(added.headers["location"]).text
        _checked_against_the_api(client, page, "test/web")
        assert SCRIPT_SOURCE not in page and str(escape(SCRIPT_SOURCE)) in page


def test_a_refused_price_form_names_its_field_with_the_api_s_status(
        client: httpx.Client) -> None:
    sign_in(client)
    price_m1(client)
    count = len(api(client, "/api/prices", model="test/m1")["versions"])
    for lang in ("en", "zh_CN"):
        client.cookies.set("lang", lang)
        for form, body, field in (
                ({"model": "m1", "effective_from": "2026-01-01", "input_tokens": "1"},
                 {"model": "m1", "effective_from": "2026-01-01",
                  "prices": {"input_tokens": "1"}}, "model"),
                ({"model": "test/m1", "currency": "USD", "effective_from": "someday",
                  "input_tokens": "1"},
                 {"model": "test/m1", "currency": "USD", "effective_from": "someday",
                  "prices": {"input_tokens": "1"}}, "effective_from"),
                ({"model": "test/m1", "currency": "USD", "effective_from": "2026-01-01",
                  "input_tokens": "-1"},
                 {"model": "test/m1", "currency": "USD", "effective_from": "2026-01-01",
                  "prices": {"input_tokens": "-1"}}, None),
                ({"model": "test/m1", "currency": "USD", "effective_from": "2020-01-01",
                  "unit": "1", "input_tokens": "1"},
                 {"model": "test/m1", "currency": "USD", "effective_from": "2020-01-01",
                  "unit": "1", "prices": {"input_tokens": "1"}}, None)):
            expected = client.post("/api/prices", json=body, headers=ADMIN)
            page = client.post("/prices", data=form, headers=same_site(client))
            assert page.status_code == expected.status_code >= 400, (form, expected.text)
            message = expected.json()["error"]["message"]
            assert str(escape(message)) in page.text
            if field:
                assert expected.json()["error"]["field"] == field
                label = page.text.index('<label class="invalid">')
                assert f'name="{field}"' in page.text[label:page.text.index("</label>", label)]
    assert client.post("/prices", data={"model": "test/x", "colour": "red"},
                       headers=same_site(client)).status_code == 400
    assert client.post("/prices", data={"model": "test/x", "effective_from": "2026-01-01",
                                        "input_tokens": "1"},
                       headers={"origin": "https://evil.example"}).status_code == 403
    assert len(api(client, "/api/prices", model="test/m1")["versions"]) == count
    assert api(client, "/api/prices/sources", provider="test")["models"][0]["model"] == \
        "test/m1"
