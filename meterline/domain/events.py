"""Usage events reported by clients (SPEC §4) and the statuses a call can end in.

``parse_event`` validates one JSON event; ``parse_batch`` the envelope. Errors name the field
(``events[3].usage.input_tokens: must not be negative``) so a client can fix its input.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from types import MappingProxyType
from typing import Any, Final, NamedTuple

from meterline.domain.usage import Usage
from meterline.errors import InvalidInput, InvalidUsage

MAX_BATCH: Final = 1000
MAX_ID_LENGTH: Final = 200
MAX_USER_LENGTH: Final = 128
#: Nesting of metadata: the journal's and the ledger's JSON encoder refuse 255 levels, and a
#: value it refuses after the call would leave the call unrecorded.
MAX_METADATA_DEPTH: Final = 32
#: Events are accepted from the Unix epoch to a day ahead of now (clocks drift; a later time is
#: a client's mistake, and periods and time zones need room below ``datetime.max``).
EARLIEST_EVENT: Final = datetime(1970, 1, 1, tzinfo=UTC)
MAX_AHEAD: Final = timedelta(days=1)


#: The fields of an event (SPEC §4, with tags and attributes). Any other is refused, not
#: ignored: a misspelt ``usage`` or ``user`` would otherwise be recorded as a free call or as the
#: tenant's own; a client's extra data has ``metadata``.
EVENT_FIELDS: Final = ("id", "timestamp", "user", "model", "usage", "status", "metadata", "tags",
                       "attributes")


class CallStatus(StrEnum):
    SUCCESS = "success"
    ERROR = "error"
    CANCELLED = "cancelled"
    TIMEOUT = "timeout"
    #: The gateway process ended between calling the provider and recording the call; the
    #: usage is estimated from the request (gateway/inflight.py).
    INTERRUPTED = "interrupted"


_STATUSES: Final = {s.value: s for s in CallStatus}


_NOTHING: Final[Mapping[str, Any]] = MappingProxyType({})


class UsageEvent(NamedTuple):
    id: str
    timestamp: datetime
    model: str
    usage: Usage
    status: CallStatus = CallStatus.SUCCESS
    user: str | None = None
    metadata: Mapping[str, Any] = _NOTHING
    tags: tuple[str, ...] = ()
    attributes: Mapping[str, str] = _NOTHING


def parse_timestamp(value: object, field_name: str = "timestamp") -> datetime:
    """ISO 8601; ``Z`` or an offset, a value without one is taken as UTC."""
    if not isinstance(value, str):
        raise InvalidInput(f"{field_name}: must be an ISO 8601 string, got {value!r}",
                           field=field_name)
    field = field_name.rsplit(".", 1)[-1]
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00").replace("z", "+00:00"))
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    except (ValueError, OverflowError):
        raise InvalidInput(f"{field_name}: {value!r} is not an ISO 8601 timestamp in range",
                           field=field) from None


_INT64 = range(-(1 << 63), 1 << 63)


def _json_scalar(value: object) -> bool:
    """A JSON leaf the journal's encoder writes: no 65-bit integer, no NaN, no Python object."""
    if value is None or isinstance(value, str | bool):
        return True
    if isinstance(value, int):
        return value in _INT64
    return isinstance(value, float) and math.isfinite(value)


def metadata_object(value: object, field: str = "metadata") -> dict[str, Any]:
    """A metadata object, checked to be one the journal and the ledger can store."""
    if not isinstance(value, Mapping):
        raise InvalidInput(f"{field}: must be an object", field=field)
    level: list[Mapping[str, Any] | list[Any]] = [value]  # the objects and lists one deep
    for _ in range(MAX_METADATA_DEPTH):
        below: list[Mapping[str, Any] | list[Any]] = []
        for item in level:
            if isinstance(item, Mapping) and not all(isinstance(k, str) for k in item):
                raise InvalidInput(f"{field}: object keys must be strings", field=field)
            children = item.values() if isinstance(item, Mapping) else item
            for child in children:
                if isinstance(child, Mapping | list):
                    below.append(child)
                elif not _json_scalar(child):
                    raise InvalidInput(f"{field}: {child!r} is not a JSON value the ledger "
                                       "can store", field=field)
        if not below:
            return dict(value)
        level = below
    raise InvalidInput(f"{field}: nested more than {MAX_METADATA_DEPTH} levels deep",
                       field=field)


def event_time(value: object, field_name: str, now: datetime) -> datetime:
    """An event's timestamp, from the Unix epoch to a day ahead of ``now``."""
    at = parse_timestamp(value, field_name)
    if not EARLIEST_EVENT <= at <= now + MAX_AHEAD:
        raise InvalidInput(f"{field_name}: {value!r} is out of range (from "
                           f"{EARLIEST_EVENT.date().isoformat()} to a day from now)",
                           field=field_name.rsplit(".", 1)[-1])
    return at


def _text(data: Mapping[str, Any], key: str, where: str, *, required: bool,
          limit: int = MAX_ID_LENGTH) -> str | None:
    value = data.get(key)
    if value is None:
        if required:
            raise InvalidInput(f"{where}{key}: missing", field=key)
        return None
    if not isinstance(value, str) or not value or len(value) > limit or "\x00" in value:
        raise InvalidInput(f"{where}{key}: must be a non-empty string of at most {limit} "
                           "characters (no NUL)", field=key)
    return value


def parse_event(data: object, *, where: str = "", now: datetime | None = None) -> UsageEvent:
    if not isinstance(data, Mapping):
        raise InvalidInput(f"{where.rstrip('.') or 'event'}: must be an object", field="event")
    unknown = sorted(str(name) for name in data if name not in EVENT_FIELDS)
    if unknown:
        raise InvalidInput(f"{where}{unknown[0]}: unknown field; expected "
                           f"{', '.join(EVENT_FIELDS)} (anything else goes in metadata)",
                           field=unknown[0])
    event_id = _text(data, "id", where, required=True)
    model = _text(data, "model", where, required=True)
    assert event_id is not None and model is not None
    user = _text(data, "user", where, required=False, limit=MAX_USER_LENGTH)
    now = now or datetime.now(UTC)
    stamp = data.get("timestamp")
    timestamp = event_time(stamp, f"{where}timestamp", now) if stamp is not None else now
    try:
        usage = Usage.parse(data.get("usage", {}))
    except InvalidUsage as exc:
        raise InvalidUsage(f"{where}{exc.message}", field=exc.field) from None
    raw_status = data.get("status", "success")
    status = _STATUSES.get(raw_status) if isinstance(raw_status, str) else None
    if status is None:
        raise InvalidInput(f"{where}status: {raw_status!r} is not one of "
                           f"{', '.join(s.value for s in CallStatus)}", field="status")
    metadata = data.get("metadata") or {}
    try:
        metadata = metadata_object(metadata)
    except InvalidInput as exc:
        raise InvalidInput(f"{where}{exc.message}", field="metadata") from None
    tags = data.get("tags") or []
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise InvalidInput(f"{where}tags: must be a list of strings", field="tags")
    attributes = data.get("attributes") or {}
    if not isinstance(attributes, Mapping) or not all(
            isinstance(v, str | int) for v in attributes.values()):
        raise InvalidInput(f"{where}attributes: must be an object of strings", field="attributes")
    return UsageEvent(event_id, timestamp, model, usage, status, user, metadata,
                      tuple(tags), {str(k): str(v) for k, v in attributes.items()})


def parse_batch(body: object) -> list[object]:
    """The ``events`` list of a batch, checked as a whole: size and unique ids."""
    if not isinstance(body, Mapping) or not isinstance(body.get("events"), list):
        raise InvalidInput('body: must be {"events": [...]}', field="events")
    events: list[object] = body["events"]
    if not events:
        raise InvalidInput("events: must not be empty", field="events")
    if len(events) > MAX_BATCH:
        raise InvalidInput(f"events: at most {MAX_BATCH} per request, got {len(events)}",
                           field="events")
    seen: set[object] = set()
    for index, event in enumerate(events):
        event_id = event.get("id") if isinstance(event, Mapping) else None
        if isinstance(event_id, str):
            if event_id in seen:
                raise InvalidInput(f"events[{index}].id: {event_id!r} appears twice in this batch",
                                   field="id")
            seen.add(event_id)
    return events
