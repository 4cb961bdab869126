"""What can go wrong fetching a provider's bill, as meterline's own errors (meterline/errors.py).

Each carries the provider, its account and, where the provider said one, its error code in the
context; none ever carries a credential (messages from a provider are scrubbed of them first,
``meterline.billing.http``)."""

from __future__ import annotations

from meterline.errors import AuthError, Forbidden, RateLimited, UpstreamError


class ProviderAuthFailed(AuthError):
    """The provider refused the credentials: an unknown key, a wrong secret (its signature does
    not match) or an expired one."""

    code = "provider_auth_failed"


class ProviderPermissionMissing(Forbidden):
    """The credentials are good but may not call the billing action; ``permission`` in the
    context names what to grant (a RAM / CAM / IAM action, or an admin key's scope)."""

    code = "provider_permission_missing"


class ProviderThrottled(RateLimited):
    """The provider still throttled the account after every retry."""

    code = "provider_throttled"


class ProviderUnavailable(UpstreamError):
    """The provider failed (5xx, a broken connection, a timeout, an answer that is not its
    documented shape) after every retry."""

    code = "provider_unavailable"
