"""``/prices[?provider=][&q=][&page=]``: the price catalog — the price book the gateway charges
with (``GET /api/prices`` reads the same one), by provider.

Without a provider or a search the page lists the providers with their number of models (the
catalog holds about 2,500 models: listing every version would make a page of megabytes); with
one, the models of that provider or whose name holds the search text, ``PAGE_SIZE`` to a page,
each with all its versions: start, currency, layer, source, whether it is the version charged
now (``services.prices.sources``, what ``GET /api/prices/sources`` shows), and its unit prices
— token prices per million tokens, every other price per its own unit.

``POST /prices`` adds a price version through ``services.prices.add_version``, the service of
``POST /api/prices`` (web/forms.py: POST, same-site, the session as the audit log's actor): a
token price version of the operator's layer, its prices given per 1, 1K or 1M tokens.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Final
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from meterline.api.state import state
from meterline.domain.pricebook import PriceBook
from meterline.domain.prices import PriceVersion
from meterline.domain.usage import Meter
from meterline.errors import InvalidInput
from meterline.services import prices as price_service
from meterline.services.inputs import whole_number
from meterline.store.audit import Actor
from meterline.web.forms import FormError, again, change
from meterline.web.layout import show

TITLE: Final = "Prices"
PAGE_SIZE: Final = 25
#: Token prices are shown per this many tokens.
PER_TOKENS: Final = 1_000_000
TOKEN_METERS: Final = (Meter.INPUT_TOKENS, Meter.CACHED_INPUT_TOKENS, Meter.CACHE_WRITE_TOKENS,
                       Meter.CACHE_WRITE_1H_TOKENS, Meter.OUTPUT_TOKENS, Meter.REASONING_TOKENS)
#: The columns of the version table; the other prices are listed beside them.
MAIN_METERS: Final = (Meter.INPUT_TOKENS, Meter.CACHED_INPUT_TOKENS, Meter.OUTPUT_TOKENS)
UNITS: Final = ("1", "1K", "1M")
PRICE_FIELDS: Final = ("model", "currency", "effective_from", "unit", "source",
                       *(meter.value for meter in TOKEN_METERS))
MAX_SEARCH: Final = 200

router = APIRouter(include_in_schema=False)


@dataclass(frozen=True, slots=True)
class UnitPriceRow:
    """A meter's price: per million tokens for a token meter, else per ``unit`` of it."""

    meter: str
    price: Decimal
    unit: str


@dataclass(frozen=True, slots=True)
class VersionRow:
    version: PriceVersion
    layer: str
    in_force: bool
    main: Mapping[str, UnitPriceRow]
    other: list[UnitPriceRow]


@dataclass(frozen=True, slots=True)
class ModelRow:
    model: str
    versions: list[VersionRow]


@dataclass(frozen=True, slots=True)
class PricesView:
    providers: list[tuple[str, int]]
    models: list[ModelRow]
    matched: int
    page: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.matched // PAGE_SIZE))


def unit_prices(version: PriceVersion) -> tuple[dict[str, UnitPriceRow], list[UnitPriceRow]]:
    main, other = {}, []
    for meter, price in version.prices.items():
        if meter in TOKEN_METERS:
            row = UnitPriceRow(meter.value, price.price * PER_TOKENS / price.per, "1M")
        else:
            row = UnitPriceRow(meter.value, price.price, price.unit_label(meter))
        if meter in MAIN_METERS:
            main[meter.value] = row
        else:
            other.append(row)
    return main, other


def page_number(value: str | None) -> int:
    number = whole_number(value) if value else 1
    if isinstance(number, bool) or not isinstance(number, int) or number < 1:
        raise InvalidInput("page: a whole number from 1", field="page")
    return number


def load(book: PriceBook, provider: str | None, search: str | None, page: int,
         now: datetime) -> PricesView:
    names = book.models()
    providers = sorted(Counter(name.split("/", 1)[0] for name in names).items())
    if provider is None and search is None:
        return PricesView(providers, [], 0, 1)
    if search is not None and len(search) > MAX_SEARCH:
        raise InvalidInput(f"q: at most {MAX_SEARCH} characters", field="q")
    wanted = search.lower() if search else None
    matched = [name for name in names
               if (provider is None or name.startswith(f"{provider}/"))
               and (wanted is None or wanted in name.lower())]
    shown = matched[(page - 1) * PAGE_SIZE:page * PAGE_SIZE]
    rows = []
    for name in shown:
        charged = {entry.version.id for found in price_service.sources(book, now, model=name)
                   for entry in found.layers if entry.in_force}
        versions = []
        for entry in reversed(book.entries(name)):  # newest first
            main, other = unit_prices(entry.version)
            versions.append(VersionRow(entry.version, entry.layer.label,
                                       entry.version.id in charged, main, other))
        rows.append(ModelRow(name, versions))
    return PricesView(providers, rows, len(matched), page)


def _url(**params: object) -> str:
    query = urlencode({k: v for k, v in params.items() if v})
    return "/prices" + (f"?{query}" if query else "")


def _context(found: PricesView, provider: str | None, search: str | None, *,
             form: Mapping[str, str] | None = None, error: FormError | None = None,
             ) -> dict[str, Any]:
    more = found.page < found.pages
    return {"title": TITLE, "view": found, "provider": provider, "search": search,
            "form": dict(form) if form is not None else {"currency": "USD", "unit": "1M"},
            "error": error, "units": UNITS, "page_size": PAGE_SIZE,
            "previous_url": _url(provider=provider, q=search, page=found.page - 1)
            if found.page > 1 else None,
            "next_url": _url(provider=provider, q=search, page=found.page + 1) if more else None}


@router.get("/prices")
async def prices_page(request: Request, provider: str | None = None, q: str | None = None,
                      page: str | None = None) -> Response:
    metering = state(request).metering
    chosen, search = provider or None, (q or "").strip() or None

    def work() -> PricesView:
        return load(metering.book, chosen, search, page_number(page), datetime.now(UTC))

    return await show(request, "prices.html", TITLE, work,
                      lambda found: _context(found, chosen, search))


def version_input(form: Mapping[str, str]) -> dict[str, Any]:
    """The form as ``POST /api/prices``'s body (the catalog shape): a token price version."""
    data: dict[str, Any] = {name: form[name] for name in
                            ("model", "currency", "effective_from", "unit", "source")
                            if name in form}
    data["billing_type"] = "token"
    data["prices"] = {meter.value: form[meter.value] for meter in TOKEN_METERS
                      if meter.value in form}
    return data


@router.post("/prices")
async def add_price(request: Request) -> Response:
    """Add a price version (``POST /api/prices``'s service)."""
    app = state(request)

    def work(form: dict[str, str], actor: Actor) -> PriceVersion:
        version = price_service.add_version(app.engine, version_input(form), actor=actor)
        app.metering.refresh(force=True)
        return version

    def done(version: PriceVersion, form: dict[str, str]) -> Response:
        return RedirectResponse(_url(q=version.model), status_code=303)

    async def refused(error: FormError, form: dict[str, str]) -> Response:
        return await again(request, "prices.html", TITLE,
                           lambda: load(app.metering.book, None, None, 1, datetime.now(UTC)),
                           lambda found: _context(found, None, None, form=form, error=error),
                           error.status)

    return await change(request, TITLE, PRICE_FIELDS, work, done, refused)
