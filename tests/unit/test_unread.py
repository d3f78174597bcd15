"""The API server's words for a refusal (moonhub_core.unread.message): what the jobs API's
502 answers and a run's missing log say."""

from __future__ import annotations

from kubernetes_asyncio.client import ApiException

from moonhub_core.unread import message


def _refusal(status: int, reason: str, body: bytes | None) -> ApiException:
    e = ApiException(status=status, reason=reason)
    e.body = body
    return e


def test_the_status_message_when_there_is_one_else_the_reason_else_the_code() -> None:
    said = b'{"kind":"Status","message":"pods \\"x\\" is forbidden: exceeded quota","code":403}'
    assert message(_refusal(403, "Forbidden", said)) == 'pods "x" is forbidden: exceeded quota'
    assert message(_refusal(502, "Bad Gateway", b"<html>proxy error</html>")) == "Bad Gateway"
    assert message(_refusal(500, "Internal Server Error", b'["not", "a status"]')) == "Internal Server Error"
    assert message(_refusal(400, "Bad Request", None)) == "Bad Request"
    assert message(_refusal(504, "", b"")) == "504"
