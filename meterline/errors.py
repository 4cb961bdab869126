"""Every error meterline raises on purpose, in one tree.

::

    MeterlineError                      base; carries a message and a context dict
    ├── InvalidInput                    bad input from a user or a file (HTTP 400, CLI exit 2)
    │   ├── InvalidUsage                a usage event or quantity that breaks SPEC §1
    │   ├── InvalidPrice                a price version or price file row that does not parse
    │   ├── CurrencyMismatch            adding or comparing amounts of two currencies
    │   ├── InvalidTransition           a bill status change the life cycle does not allow
    │   ├── BatchRefused                an all-or-nothing batch refused whole; lists refusals
    │   └── BodyTooLarge                a request body over its endpoint's limit (HTTP 413)
    ├── NotFound                        a named thing does not exist (HTTP 404)
    │   ├── UnknownTenant
    │   ├── UnknownUser                 a user id a tenant has never had
    │   ├── UnknownModel
    │   └── PriceNotFound               no price version is in force for a model at a time
    ├── FxRateMissing                   no stored FX rate covers a conversion (never guessed)
    ├── AuthError                       a missing, unknown, revoked or expired key (HTTP 401)
    ├── Forbidden                       a key that may not use a model (HTTP 403)
    │   └── UserNotAllowed              a bound key's call names another user
    ├── LimitExceeded                   a call that no longer fits a limit (HTTP 402)
    │   ├── BudgetExceeded              a ``block`` budget has not enough money left
    │   └── QuotaExceeded               a prepaid quota has not enough units left
    ├── RateLimited                     a key over its requests/tokens per minute (HTTP 429)
    ├── UpstreamError                   the provider failed or broke the connection (HTTP 502)
    │   └── UpstreamTimeout             the provider did not answer in time (HTTP 504)
    ├── Conflict                        a request that clashes with stored state (HTTP 409)
    │   └── BillClosed                  lines added to an issued, paid or void bill
    └── StoreError                      database unreachable or schema incomplete (HTTP 503,
        │                               Retry-After; see the class for what the answer says)
        └── SchemaIncomplete

Domain errors carry ``context`` (field names, values) so an adapter can render a precise answer.
Adapters translate library exceptions into these at their boundary (``raise ... from exc``); one
table in ``meterline.asgi.errors`` maps them to HTTP answers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class MeterlineError(Exception):
    """Base class: a human message plus machine-readable context."""

    code = "error"

    def __init__(self, message: str, **context: Any) -> None:
        super().__init__(message)
        self.message = message
        self.context = context

    def __str__(self) -> str:
        return self.message


class InvalidInput(MeterlineError):
    code = "invalid_request"

    def __init__(self, message: str, *, field: str | None = None, **context: Any) -> None:
        super().__init__(message, field=field, **context)
        self.field = field


class InvalidUsage(InvalidInput):
    pass


class InvalidPrice(InvalidInput):
    pass


class CurrencyMismatch(InvalidInput):
    code = "currency_mismatch"


class InvalidTransition(InvalidInput):
    """A bill status change the life cycle does not allow; names field ``status``, the bill's
    current status and the changes allowed from it (``allowed``)."""

    code = "invalid_status_transition"

    def __init__(self, bill: str, current: str, requested: str, allowed: Sequence[str]) -> None:
        super().__init__(
            f"status: bill {bill} is {current} and cannot become {requested}; "
            f"allowed from {current}: {', '.join(allowed) or 'none'}",
            field="status", current=current, requested=requested, allowed=list(allowed),
        )
        self.allowed = list(allowed)


class BatchRefused(InvalidInput):
    """A batch that is all or nothing, refused as a whole: ``refusals`` in the context lists
    every item that could not go through, and why (nothing of the batch was done)."""

    code = "batch_refused"


class BodyTooLarge(InvalidInput):
    """A request body over its endpoint's limit, refused while it is read: the rest of it is
    never read (``limit`` in the context, in bytes)."""

    code = "body_too_large"


class NotFound(MeterlineError):
    code = "not_found"


class UnknownTenant(NotFound):
    code = "tenant_not_found"


class UnknownUser(NotFound):
    code = "user_not_found"


class UnknownModel(NotFound):
    code = "model_not_found"


class PriceNotFound(NotFound):
    code = "price_not_found"


class FxRateMissing(MeterlineError):
    code = "fx_rate_missing"


class AuthError(MeterlineError):
    code = "invalid_api_key"


class Forbidden(MeterlineError):
    code = "model_not_allowed"


class UserNotAllowed(Forbidden):
    """A key bound to a user was sent with another user (``x-meterline-user``): the spend of a
    bound key is its user's, whatever a header says, or a user's budget could be bypassed."""

    code = "user_not_allowed"


class LimitExceeded(MeterlineError):
    code = "limit_exceeded"


class BudgetExceeded(LimitExceeded):
    code = "budget_exceeded"


class QuotaExceeded(LimitExceeded):
    code = "quota_exceeded"


class RateLimited(MeterlineError):
    """Carries ``retry_after`` (whole seconds) in its context, sent as ``Retry-After``."""

    code = "rate_limited"


class UpstreamError(MeterlineError):
    code = "upstream_error"


class UpstreamTimeout(UpstreamError):
    code = "upstream_timeout"


class Conflict(MeterlineError):
    code = "conflict"


class BillClosed(Conflict):
    """Lines added to a bill that is no longer open (issued bills never change)."""

    code = "bill_not_open"


class StoreError(MeterlineError):
    """The database (or Redis) cannot do what was asked. The message may carry the driver's
    words, for the log and the command line; an HTTP answer shows ``public`` from the context
    instead where it is set (else the message, when no driver error caused it), and
    ``Retry-After`` (``retry_after`` in the context, else a default)."""

    code = "store_unavailable"


class SchemaIncomplete(StoreError):
    code = "schema_incomplete"
