"""JSON answers for MoonHub's tornado handlers (the jobs API, the admin console's API):
data as JSON, and every error as ``{"status", "field"?, "message"}``, whether it is a
domain error (:class:`~moonhub_core.errors.FieldError`) or one tornado raised."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from tornado import web

from .errors import FieldError

# a plain mixin at run time: subclassing RequestHandler would put tornado's methods ahead of
# other mixins' (e.g. JupyterHub's HubOAuthenticated.get_login_url) in the handler's MRO
if TYPE_CHECKING:
    _Handler = web.RequestHandler
else:
    _Handler = object


class _NotJsonNumber(ValueError):
    pass


def _refuse_constant(name: str) -> Any:
    raise _NotJsonNumber(name)


def read_json(data: bytes) -> Any:
    """A request body as JSON, or a 400 naming ``body``: not JSON, not text, nested past what
    the parser follows (``[[[[...`` raised RecursionError, a 500), or holding ``NaN`` or
    ``Infinity``. Python's parser takes those, but they are not JSON: stored, they came back
    in answers no browser can parse (one user's job with ``NaN`` in it broke every job
    admin's list)."""
    try:
        return json.loads(data or b"null", parse_constant=_refuse_constant)
    except _NotJsonNumber as e:
        raise FieldError("body", f"is not valid JSON ({e} is not a JSON number)") from None
    except json.JSONDecodeError as e:
        raise FieldError("body", f"is not valid JSON ({e.msg})") from None
    except UnicodeDecodeError as e:
        raise FieldError("body", f"is not valid JSON ({e.reason})") from None
    except RecursionError:
        raise FieldError("body", "is nested too deeply") from None


class JsonResponses(_Handler):
    """Mix in first: ``class H(JsonResponses, HubOAuthenticated, RequestHandler)``."""

    def send(self, data: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(data))

    def send_field_error(self, e: FieldError) -> None:
        self.send({"status": e.status, "field": e.field, "message": str(e)}, e.status)

    def json_errors(self) -> bool:
        """Whether errors of this request are answered as JSON (pages may answer HTML)."""
        return True

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        if not self.json_errors():
            super().write_error(status_code, **kwargs)
            return
        exc = kwargs.get("exc_info", (None, None, None))[1]
        body: dict[str, Any] = {"status": status_code, "message": self._reason}
        if isinstance(exc, web.HTTPError) and exc.log_message:
            body["message"] = exc.log_message % exc.args if exc.args else exc.log_message
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(body))
