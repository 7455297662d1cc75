"""One error taxonomy: every failure a user can cause or meet has a class here.

The CLI prints `str(error)` (and `hint` when present); the HTTP middleware renders
`status`, `code`, the English message and, when the raiser named it, `reason` (a stable
name of this particular refusal, e.g. "attachment_type") with the `params` its message
names: a UI words it in its own language (the desk: `errors.<reason>` in
ctl/desk/i18n/<lang>/errors.json) and shows the message for reasons it does not know.
Nothing else formats errors.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any


class CtlError(Exception):
    status = 500
    code = "internal"

    def __init__(self, message: str, hint: str | None = None, *, reason: str | None = None,
                 params: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.hint = hint
        self.reason = reason
        self.params = params or {}

    def render(self) -> str:
        return f"{self}\n  hint: {self.hint}" if self.hint else str(self)


class ConfigError(CtlError):
    status = 400
    code = "bad_config"


class DependencyMissing(CtlError):
    code = "dependency_missing"


class PortInUse(CtlError):
    code = "port_in_use"


class ProvisionError(CtlError):
    code = "provision_failed"


class NotFound(CtlError):
    status = 404
    code = "not_found"


class InvalidTransition(CtlError):
    status = 409
    code = "invalid_transition"


class TelephonyError(CtlError):
    status = 502
    code = "telephony"


class NoSuchChannel(TelephonyError, NotFound):
    """ARI answered 404 for a channel: it hung up meanwhile."""

    status = 404
    code = "no_such_channel"


class TelephonyUnavailable(TelephonyError):
    status = 503
    code = "telephony_unavailable"


class BadRequest(CtlError):
    status = 400
    code = "bad_request"


class Unauthorized(CtlError):
    status = 401
    code = "unauthorized"


class AccountLocked(CtlError):
    """Too many failed logins: no password is checked until `until`."""

    status = 429
    code = "locked"

    def __init__(self, until: datetime) -> None:
        at = f"{until:%Y-%m-%d %H:%M:%S} UTC"
        super().__init__(f"too many failed logins: this login is locked until {at}",
                         hint="wait, or ask an admin for a new password (ctl agents password)",
                         reason="login_locked", params={"until": at})
        self.until = until


class Forbidden(CtlError):
    status = 403
    code = "forbidden"


class Conflict(CtlError):
    """The thing changed since the caller read it (optimistic locking)."""

    status = 409
    code = "conflict"
