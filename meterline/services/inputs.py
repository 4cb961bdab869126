"""Small checks of admin input shared by the services (CLI and API give them the same values)."""

from __future__ import annotations

import re

from meterline.errors import InvalidInput

_WHOLE = re.compile(r"-?[0-9]+")


def optional_text(value: object, field: str, limit: int = 200) -> str | None:
    """A note (a reason, a reference): None when empty; refused when not a string, too long,
    or with NUL."""
    if value is None or value == "":
        return None
    return _checked(value, field, limit)


def optional_name(value: object, field: str, limit: int = 200) -> str | None:
    """A name or id that may be left out (None) but not given empty: an empty scope field
    would silently widen what it limits (a budget of ``"key": ""`` covered every call)."""
    if value is None:
        return None
    if value == "":
        raise InvalidInput(f"{field}: must not be empty (leave it out instead)", field=field)
    return _checked(value, field, limit)


def _checked(value: object, field: str, limit: int) -> str:
    if not isinstance(value, str) or len(value) > limit or "\x00" in value:
        raise InvalidInput(f"{field} must be a string of at most {limit} characters",
                           field=field)
    return value


def whole_number(value: object) -> object:
    """A string of ASCII digits (a query parameter, a command-line option) as an int; any other
    value as it came, for the caller's own check. Not ``str.isdigit``: it takes "²" and "١",
    which ``int`` refuses or reads as another number."""
    if isinstance(value, str) and _WHOLE.fullmatch(value.strip()):
        return int(value.strip())
    return value
