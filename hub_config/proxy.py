"""``MoonProxy``: configurable-http-proxy, with routes restored within seconds of the proxy
being replaced.

A proxy that restarts (its pod rescheduled, its process restarted) comes back with an empty
routing table; JupyterHub re-adds the routes only at its next route check
(``hub.route_check_interval``, minutes: it also reads every route's activity, which costs at
thousands of servers). Meanwhile every user's server answers 404. Here the hub keeps one
marker route in the proxy and asks for that one route every ``route_watch_interval`` seconds
(one small request, whatever the number of servers); when it is gone, the proxy lost its
table and JupyterHub's own route check runs at once, re-adding every route.

The marker's path is a host name that can not resolve (``.invalid``), so it is a valid
routespec with and without per-user host names, and it leads only to the hub.
"""

from __future__ import annotations

import time
from typing import Any

from aiohttp import ClientResponseError
from jupyterhub.proxy import ConfigurableHTTPProxy
from tornado.ioloop import PeriodicCallback
from traitlets import Float

#: the marker route (never a user's: user routes live under the hub's base URL)
MARKER = "/moonhub-proxy-marker.invalid/"
#: seconds between two restores at most
RESTORE_AT_MOST_EVERY = 10.0


class MoonProxy(ConfigurableHTTPProxy):
    route_watch_interval = Float(
        2.0,
        config=True,
        help="""
        Seconds between the hub's checks that the proxy still holds its routes (one request
        for one marker route). When the proxy lost them (replaced, restarted), every route is
        added again at once. 0: only JupyterHub's periodic route check restores them.
        """,
    )

    _watch: PeriodicCallback | None = None
    _restoring = False
    #: when the routes were last restored (a marker that can not be added must not make every
    #: look a full route check)
    _restored_at = -1e18

    async def check_routes(self, user_dict: Any, service_dict: Any, routes: Any = None) -> None:
        await super().check_routes(user_dict, service_dict, routes)
        await self._add_marker()
        if self._watch is None and self.route_watch_interval > 0:
            self._watch = PeriodicCallback(self._look, 1e3 * self.route_watch_interval)
            self._watch.start()

    async def _add_marker(self) -> None:
        # through CHP's API directly: without JupyterHub's mark, its route check leaves it be;
        # a failure here never fails the route check itself (the watch then finds no marker
        # and checks again)
        try:
            await self.api_request(MARKER, method="POST", body={"target": self.app.hub.host})
        except Exception as e:
            self.log.warning("proxy route watch: the marker route was not added (%s)", e)

    async def _look(self) -> None:
        if self._restoring or time.monotonic() - self._restored_at < RESTORE_AT_MOST_EVERY:
            return
        try:
            await self.api_request(MARKER, method="GET")
            return
        except ClientResponseError as e:
            if e.status != 404:
                self.log.warning("proxy route watch: %s", e)
                return
        except Exception as e:  # the proxy is away (restarting): the next look tells
            self.log.warning("proxy route watch: proxy not answering (%s)", e)
            return
        self._restoring, self._restored_at = True, time.monotonic()
        try:
            self.log.warning("the proxy lost its routes (replaced or restarted): adding them again")
            await self.check_routes(self.app.users, self.app._service_map)
            self.log.info("proxy routes restored")
        finally:
            self._restoring = False
