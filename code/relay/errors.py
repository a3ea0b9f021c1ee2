"""The relay's errors: one base class, turned into the envelope in one place.

Each error carries the CTR error `code`, a `message` shown to the analyst and
a `type`, `fatal` (the call failed) or `warning` (the answer is partial).
"""

from __future__ import annotations

FATAL = "fatal"
WARNING = "warning"


class RelayError(Exception):
    """A problem reported to XDR in the envelope's `errors` list."""

    code = "unknown"

    def __init__(
        self, message: str, *, code: str | None = None, type_: str = FATAL
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.code
        self.type = type_

    def json(self) -> dict[str, str]:
        """Return the error as it appears in the envelope."""
        return {"type": self.type, "code": self.code, "message": self.message}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RelayError) and self.json() == other.json()

    def __hash__(self) -> int:
        return hash((self.type, self.code, self.message))


class InvalidArgumentError(RelayError):
    """The request body is not a list of observables."""

    code = "invalid argument"

    def __init__(self, detail: str) -> None:
        super().__init__(f"Invalid JSON payload received. {detail}")


class AuthorizationError(RelayError):
    """The configuration token, or the SpyCloud key in it, was refused."""

    code = "authorization error"
    kind = "refused"  # for operators, as a SpyCloudError's kind
    status: int | None = None  # SpyCloud's status, when it refused the key
    reason: str | None = None  # a log reason more precise than the text

    def __init__(self, reason: str) -> None:
        super().__init__(f"Authorization failed: {reason}")


class HealthCheckError(RelayError):
    """The watchdog was called without its header."""

    code = "health check failed"

    def __init__(self) -> None:
        super().__init__("Invalid Health Check")


class SpyCloudError(RelayError):
    """SpyCloud failed or answered something the relay cannot use.

    `kind` names the failure for operators (logs, metrics) and `status` is
    SpyCloud's HTTP status, when it answered one.
    """

    def __init__(
        self, message: str, *, code: str | None = None,
        kind: str = "error", status: int | None = None,
    ) -> None:
        super().__init__(message, code=code)
        self.kind = kind
        self.status = status


class RetryableError(SpyCloudError):
    """A SpyCloud failure worth another attempt (throttling, 5xx, timeouts).

    `retry_after` holds the seconds SpyCloud asked the relay to wait, when it
    said so; reported as is when the attempts run out.
    """

    def __init__(
        self, message: str, *, code: str | None = None,
        kind: str = "error", status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, code=code, kind=kind, status=status)
        self.retry_after = retry_after


def warning(code: str, message: str) -> RelayError:
    """Return a non-fatal error: the answer is partial, not failed."""
    return RelayError(message, code=code, type_=WARNING)
