"""The package index's pure parts: proxpi's settings, the request log."""

from __future__ import annotations

import logging

import pytest

from package_index.__main__ import DOWNLOAD_SECONDS, logged, proxy_env


def test_the_proxy_serves_every_file_itself_from_its_upstream() -> None:
    env = proxy_env("/var/cache/p", "https://nexus.example.com/repository/pypi/simple/")
    assert env["PROXPI_INDEX_URL"] == "https://nexus.example.com/repository/pypi/simple/"
    assert env["PROXPI_CACHE_DIR"] == "/var/cache/p"
    # never the redirect to the upstream's address, which users' pods can not reach
    assert float(env["PROXPI_DOWNLOAD_TIMEOUT"]) == DOWNLOAD_SECONDS >= 600
    assert proxy_env("/c")["PROXPI_INDEX_URL"] == "https://pypi.org/simple/"


def test_each_request_but_the_probes_is_logged_with_its_status(caplog: pytest.LogCaptureFixture) -> None:
    def app(environ: dict[str, str], start_response: object) -> list[bytes]:
        start_response("404 NOT FOUND", [])  # type: ignore[operator]
        return [b"no"]

    seen: list[str] = []
    wrapped = logged(app)
    with caplog.at_level(logging.INFO, "moonhub.package_index"):
        for path in ("/index/nosuch/", "/health"):
            body = wrapped(
                {"REQUEST_METHOD": "GET", "PATH_INFO": path}, lambda line, headers, exc=None: seen.append(line)
            )
            assert list(body) == [b"no"]
    assert seen == ["404 NOT FOUND", "404 NOT FOUND"], "the answer itself is unchanged"
    assert [r.getMessage().rsplit(" ", 1)[0] for r in caplog.records] == ["GET /index/nosuch/ 404"]
