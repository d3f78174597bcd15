"""Errors of the jobs service; each carries its HTTP status and names the field."""

from __future__ import annotations

from moonhub_core.errors import FieldError


class InvalidField(FieldError):
    status = 400


class NotFound(FieldError):
    status = 404


class Conflict(FieldError):
    status = 409


class Forbidden(FieldError):
    status = 403


class Unavailable(FieldError):
    """Something the answer depends on (the hub) can not be asked now; retry."""

    status = 503
