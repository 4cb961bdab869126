"""Column types that keep money exact and time zone-aware on both backends.

PostgreSQL stores money in unconstrained ``NUMERIC`` (exact, any scale). SQLite has no exact
decimal type (its NUMERIC affinity turns values into binary floating point), so there money is
TEXT in plain notation, and ``money_sum`` compiles to a Decimal aggregate registered on every SQLite
connection (see :mod:`meterline.store.engine`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson
from sqlalchemy import DateTime, Dialect, Numeric, String, Text, TypeDecorator
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import GenericFunction
from sqlalchemy.types import TypeEngine

from meterline.domain.money import MONEY_CONTEXT, format_decimal


class Money(TypeDecorator[Decimal]):
    """An exact decimal: NUMERIC on PostgreSQL, TEXT on SQLite."""

    impl = Numeric
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(64))
        return dialect.type_descriptor(Numeric(asdecimal=True))

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        if isinstance(value, bool | float):
            raise TypeError(f"money must be a Decimal or int, not {type(value).__name__} "
                            f"({value!r})")
        if isinstance(value, int):
            value = Decimal(value)
        if dialect.name == "sqlite":
            return format_decimal(value)
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        return value if isinstance(value, Decimal) else Decimal(str(value))


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out, on every backend."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Json(TypeDecorator[Any]):
    """JSON as text: identical on both backends, money inside stays as strings."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        return None if value is None else orjson.dumps(value).decode()

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        return None if value is None else orjson.loads(value)


class money_sum(GenericFunction[Decimal]):
    """SUM over a Money column that stays exact on SQLite too."""

    type = Money()
    inherit_cache = True
    name = "money_sum"


@compiles(money_sum)
def _money_sum_default(element: money_sum, compiler: Any, **kw: Any) -> str:
    return f"sum({compiler.process(element.clauses, **kw)})"


@compiles(money_sum, "sqlite")
def _money_sum_sqlite(element: money_sum, compiler: Any, **kw: Any) -> str:
    return f"decimal_sum({compiler.process(element.clauses, **kw)})"


class DecimalSum:
    """The SQLite aggregate behind ``money_sum``: exact sum of decimal strings."""

    def __init__(self) -> None:
        self.total: Decimal | None = None

    def step(self, value: object) -> None:
        if value is None:
            return
        number = Decimal(str(value))
        self.total = number if self.total is None else MONEY_CONTEXT.add(self.total, number)

    def finalize(self) -> str | None:
        return None if self.total is None else format_decimal(self.total)
