"""The one exception tree of callscreen.

::

    CallscreenError
    ├── InvalidInput            bad input from a user, a file or the dialplan
    │   ├── InvalidNumber       not a phone number or prefix we can screen
    │   ├── InvalidName         a list or campaign name out of bounds
    │   └── TooLarge            a request or upload past a size limit
    ├── NotFound                a list, entry or campaign that does not exist
    ├── Conflict                a name already taken, or a change that would clash
    ├── Refused                 a rule forbids the change (permanent entries, ...)
    │   └── NeedsConfirmation   a change that cannot be undone was not confirmed
    ├── StoreError              the Redis store failed (converted at the boundary)
    │   ├── StoreAuthError      Redis refused the credentials (AUTH)
    │   ├── StoreUnavailable    Redis could not be reached or did not answer in time
    │   └── StoreProtocolError  Redis sent bytes that are not RESP, or past our limits
    ├── AmiUnavailable          Asterisk's manager interface (AMI) could not be used
    ├── Unauthenticated         no API key, or one unknown, revoked or expired
    ├── Forbidden               the API key lacks a scope, or the list is not one of its lists
    ├── RateLimited             too many attempts from one client: wait and retry
    └── ProtocolError           the AGI peer broke the protocol
        └── PeerHangup          the AGI peer closed the connection or sent HANGUP
"""

from __future__ import annotations


class CallscreenError(Exception):
    """Root of every error callscreen raises on purpose."""


class InvalidInput(CallscreenError):
    """Raised when input (CLI argument, CSV row, dialplan argument) is malformed."""


class InvalidNumber(InvalidInput):
    """Raised when a string is not a phone number or prefix that can be screened."""


class InvalidName(InvalidInput):
    """Raised when a list or campaign name is empty, too long or otherwise unusable."""


class TooLarge(InvalidInput):
    """Raised when a request is past a size limit (a body, the entries of one request)."""


class NotFound(CallscreenError):
    """Raised when a named list, entry or campaign does not exist."""


class Conflict(CallscreenError):
    """Raised when a change clashes with what exists (a duplicate list name, ...)."""


class Refused(CallscreenError):
    """Raised when a rule forbids a change, e.g. removing a permanently approved entry."""


class NeedsConfirmation(Refused):
    """Raised when a change that cannot be undone and reaches far (approving a whole
    country code permanently) was not explicitly confirmed; confirm and repeat it."""


class StoreError(CallscreenError):
    """Raised when the Redis store fails; the redis-py or socket error is the cause."""


class StoreAuthError(StoreError):
    """Raised when Redis refuses the credentials (``AUTH``): a wrong password or user."""


class StoreUnavailable(StoreError):
    """Raised when Redis cannot be reached, or does not answer within the deadline."""


class StoreProtocolError(StoreError):
    """Raised by the RESP parser when Redis sends bytes that are not valid RESP2 or that
    exceed a size limit; the connection is then dropped and its pending calls fail with
    :class:`StoreUnavailable`."""


class AmiUnavailable(CallscreenError):
    """Raised when AMI is not configured, cannot be reached, refuses the login, or does
    not answer an action in time; the socket or panoramisk error is the cause."""


class Unauthenticated(CallscreenError):
    """Raised when an API request carries no key, or a key that is unknown, revoked or
    expired. The message never contains the key."""


class Forbidden(CallscreenError):
    """Raised when an API key lacks the scope an operation needs (``scope`` names it),
    or is restricted to lists that do not include the one asked for."""

    def __init__(self, message: str, scope: str = "") -> None:
        super().__init__(message)
        self.scope = scope


class RateLimited(CallscreenError):
    """Raised when a client made too many attempts (failed authentications); it may
    retry after ``retry_after`` seconds."""

    def __init__(self, message: str, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ProtocolError(CallscreenError):
    """Raised when the AGI peer sends something the protocol does not allow."""


class PeerHangup(ProtocolError):
    """Raised when the AGI peer closes the connection or reports HANGUP."""
