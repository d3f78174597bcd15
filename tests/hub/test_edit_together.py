"""Editing together, at the protocol (issue 37, item 3): a client of jupyter-collaboration
built with pycrdt, as JupyterLab's would be, joins a notebook's room in a shared server
through the real hub and proxy, and sends an edit. A user the server is shared with in full
changes the notebook on disk; one shared with to read follows the room (gets the document,
their presence goes through) but their edit and their save are dropped by the server, not
merely hidden by their lab. Nobody else gets into the room, and a share revoked while its
grantee is in the room closes their connection."""

from __future__ import annotations

import asyncio
import json
import time

import requests
from pycrdt import (
    Array,
    Doc,
    Text,
    YMessageType,
    create_sync_message,
    create_update_message,
    handle_sync_message,
)
from tornado.httpclient import HTTPClientError, HTTPRequest
from tornado.websocket import WebSocketClientConnection, websocket_connect

from tests.conftest import Hub
from tests.helpers import jobs_api, notebook, wait_for

OWNER, EDITOR, READER, STRANGER = "yuki", "yves", "yara", "yoshi"
NOTEBOOK = "together-protocol.ipynb"


class Room:
    """A notebook's room in ``OWNER``'s server, joined with ``token`` the way JupyterLab's
    document provider joins it: ask for the room, open its websocket, sync."""

    def __init__(self, hub: Hub, token: str) -> None:
        self.hub, self.token = hub, token
        self.doc = Doc()
        self.ws: WebSocketClientConnection | None = None

    def _session(self) -> requests.Response:
        return requests.put(
            f"{self.hub.url}/user/{OWNER}/api/collaboration/session/{NOTEBOOK}",
            headers={"Authorization": f"token {self.token}"},
            data=json.dumps({"format": "json", "type": "notebook"}),
            timeout=30,
        )

    async def join(self) -> None:
        r = await asyncio.to_thread(self._session)
        assert r.status_code in (200, 201), f"{r.status_code} {r.text[:300]}"
        session = r.json()
        ws_url = self.hub.url.replace("http", "ws", 1)
        room = f"json:notebook:{session['fileId']}?sessionId={session['sessionId']}"
        url = f"{ws_url}/user/{OWNER}/api/collaboration/room/{room}"
        self.ws = await websocket_connect(HTTPRequest(url, headers={"Authorization": f"token {self.token}"}))
        await self.ws.write_message(create_sync_message(self.doc), binary=True)
        deadline = time.monotonic() + 30
        while not self.cells():
            assert time.monotonic() < deadline, "the room never sent the notebook"
            await self._receive(timeout=deadline - time.monotonic())

    async def _receive(self, timeout: float) -> None:
        assert self.ws is not None
        message = await asyncio.wait_for(self.ws.read_message(), timeout=max(timeout, 0.1))
        assert message is not None, f"the room closed: {self.ws.close_code} {self.ws.close_reason}"
        if isinstance(message, bytes) and message[0] == YMessageType.SYNC:
            reply = handle_sync_message(message[1:], self.doc)
            if reply is not None:
                await self.ws.write_message(reply, binary=True)

    def cells(self) -> list[str]:
        return [str(cell["source"]) for cell in self.doc.get("cells", type=Array)]

    async def edit(self, text: str) -> None:
        """Type ``text`` at the end of the first cell, and send the change as JupyterLab would."""
        assert self.ws is not None
        updates: list[bytes] = []
        subscription = self.doc.observe(lambda event: updates.append(event.update))
        source: Text = self.doc.get("cells", type=Array)[0]["source"]
        source += text
        self.doc.unobserve(subscription)
        for update in updates:
            await self.ws.write_message(create_update_message(update), binary=True)

    async def save(self) -> None:
        """jupyter-collaboration's save message (what JupyterLab's Save sends in a room)."""
        assert self.ws is not None
        await self.ws.write_message(bytes([2, 4]) + b"save" + bytes([1]), binary=True)

    async def drain(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                await self._receive(timeout=deadline - time.monotonic())
            except TimeoutError:
                return

    def close(self) -> None:
        if self.ws is not None:
            self.ws.close()


async def _closed(ws: WebSocketClientConnection) -> int | None:
    """Read (and drop) what a websocket sends until the server closes it: its close code."""
    while await ws.read_message() is not None:
        pass
    return ws.close_code


async def test_a_reader_in_a_notebooks_room_changes_nothing_an_editor_does(hub: Hub, timings: dict[str, float]) -> None:
    owner_s = hub.login(OWNER)
    sessions = {u: hub.login(u) for u in (EDITOR, READER, STRANGER)}
    owner_token = hub.token(owner_s, OWNER, f"access:servers!server={OWNER}/")
    jobs = jobs_api(hub, owner_s, OWNER)
    r = hub.spawn_form(owner_s, OWNER, environment="python", size="small")
    assert r.status_code == 200, r.text[:500]
    hub.open_lab(owner_s, OWNER, timeout=240)
    rooms: list[Room] = []

    def on_disk() -> list[str]:
        r = requests.get(
            f"{hub.url}/user/{OWNER}/api/contents/{NOTEBOOK}",
            headers={"Authorization": f"token {owner_token}"},
            timeout=30,
        )
        assert r.status_code == 200, r.text
        return ["".join(c["source"]) for c in r.json()["content"]["cells"]]

    try:
        r = await asyncio.to_thread(
            requests.put,
            f"{hub.url}/user/{OWNER}/api/contents/{NOTEBOOK}",
            headers={"Authorization": f"token {owner_token}"},
            data=json.dumps({"type": "notebook", "format": "json", "content": notebook("kept = 1")}),
            timeout=30,
        )
        assert r.status_code in (200, 201), r.text
        for user, access in ((EDITOR, "full"), (READER, "read")):
            assert jobs("POST", "/shares", {"user": user, "access": access}).status_code == 201
        tokens = {u: hub.token(s, u, f"access:servers!server={OWNER}/") for u, s in sessions.items() if u != STRANGER}
        tokens[STRANGER] = hub.token(sessions[STRANGER], STRANGER)  # all of their own rights, none to this server

        # someone the server is not shared with gets no room, and no websocket
        r = await asyncio.to_thread(Room(hub, tokens[STRANGER])._session)
        assert r.status_code == 403, r.text[:300]
        ws_url = hub.url.replace("http", "ws", 1)
        try:
            await websocket_connect(
                HTTPRequest(
                    f"{ws_url}/user/{OWNER}/api/collaboration/room/JupyterLab:globalAwareness",
                    headers={"Authorization": f"token {tokens[STRANGER]}"},
                )
            )
            raise AssertionError("a stranger opened a room's websocket")
        except HTTPClientError as e:
            assert e.code == 403, e

        editor, reader = Room(hub, tokens[EDITOR]), Room(hub, tokens[READER])
        rooms += [editor, reader]
        await editor.join()
        await reader.join()
        assert editor.cells() == reader.cells() == ["kept = 1"]

        # the reader's edit and save go nowhere: not to the others, not to the file
        await reader.edit("\nfrom_reader = 2")
        await reader.save()
        assert reader.cells() == ["kept = 1\nfrom_reader = 2"]  # their own copy only
        await editor.drain(3)
        assert editor.cells() == ["kept = 1"]
        assert await asyncio.to_thread(on_disk) == ["kept = 1"]

        # the editor's edit reaches the reader live and the file within seconds
        await editor.edit("\nfrom_editor = 3")
        await reader.drain(2)
        assert "from_editor = 3" in reader.cells()[0]
        await wait_for(
            lambda: on_disk(), lambda cells: cells == ["kept = 1\nfrom_editor = 3"], timeout=30, what="the edit saved"
        )

        # the editor's share is revoked while their room is open: the server closes it (within
        # its 30 s memory of the hub's shares and a 5 s sweep), and a new one is refused
        t0 = time.monotonic()
        assert jobs("DELETE", f"/shares/user/{EDITOR}").status_code == 204
        assert editor.ws is not None
        closed = await asyncio.wait_for(_closed(editor.ws), timeout=60)
        timings["editing together: revoke -> the grantee's open room closed"] = time.monotonic() - t0
        assert closed == 4403, (closed, editor.ws.close_reason)
        r = await asyncio.to_thread(editor._session)
        assert r.status_code == 403, r.text[:300]
    finally:
        for room in rooms:
            room.close()
        for user in (EDITOR, READER):
            jobs("DELETE", f"/shares/user/{user}")
        hub.api(owner_s, "DELETE", f"/users/{OWNER}/server")
