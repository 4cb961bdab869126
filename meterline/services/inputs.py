"""Small checks of admin input shared by the services (CLI and API give them the same values)."""

from __future__ import annotations

from meterline.errors import InvalidInput


def optional_text(value: object, field: str, limit: int = 200) -> str | None:
    """A name or note: None when empty; refused when not a string, too long, or with NUL."""
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > limit or "\x00" in value:
        raise InvalidInput(f"{field} must be a string of at most {limit} characters",
                           field=field)
    return value
