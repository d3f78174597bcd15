"""Domain errors that carry their HTTP status and the field they are about."""

from __future__ import annotations


class FieldError(Exception):
    """Bad input about one field. ``status`` is the HTTP status to answer with; API layers
    render ``{"status": ..., "field": ..., "message": ...}`` from it."""

    status = 400

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class NotFound(FieldError):
    """No such object, or one the caller may not see (the two look the same)."""

    status = 404


class Forbidden(FieldError):
    status = 403


class Conflict(FieldError):
    """The request clashes with the object's state (a name in use, a run that ended)."""

    status = 409


class ReadOnly(Conflict):
    """The object is managed somewhere else and can not be changed here."""


class TooLarge(FieldError):
    """More than a route takes or shows (the field says what)."""

    status = 413


class Unprocessable(FieldError):
    """Stored data the request asks for can not be turned into the answer (a run's output
    that does not render): the request was fine, the thing is not."""

    status = 422


class Unavailable(FieldError):
    """Something the answer depends on (e.g. the hub) can not be asked now; retry."""

    status = 503


class ChoiceError(FieldError):
    """A refused spawn or job choice (environment, size, GPUs)."""


class UnknownChoice(ChoiceError):
    """A value the catalog does not have, a malformed value, or a field that is not accepted."""

    status = 400


class NotEntitled(ChoiceError):
    """The user's groups do not allow this item."""

    status = 403


class NotReady(ChoiceError):
    """The environment's image is still being built (a local platform's first ``up``)."""

    status = 503


class OverQuota(ChoiceError):
    """The request would exceed the user's or a group's GPU quota."""

    status = 403
