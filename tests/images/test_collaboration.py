"""Editing together in the images (docs/collaboration.md): jupyter-collaboration is there, its
state stays in the pod (not the workspace), and a server stopped right after an edit writes it
to the file and exits at once: it is not left for Kubernetes to kill."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
import uuid
from typing import Any

import requests
from pycrdt import Array, Doc, create_sync_message, create_update_message, handle_sync_message
from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect

from tests.helpers import notebook

from .conftest import TOKEN, Container, built

IMAGE = "base-notebook"
HEADERS = {"Authorization": f"token {TOKEN}"}


def _put(url: str, path: str, body: dict[str, Any]) -> requests.Response:
    r = requests.put(f"{url}{path}", headers=HEADERS, data=json.dumps(body), timeout=30)
    assert r.status_code in (200, 201), r.text
    return r


async def _edit_in_room(url: str, path: str, text: str) -> None:
    """Join ``path``'s room as JupyterLab would, and append ``text`` to its first cell."""
    session = _put(url, f"/api/collaboration/session/{path}", {"format": "json", "type": "notebook"}).json()
    room = f"json:notebook:{session['fileId']}?sessionId={session['sessionId']}"
    ws = await websocket_connect(
        HTTPRequest(f"{url.replace('http', 'ws', 1)}/api/collaboration/room/{room}", headers=HEADERS)
    )
    doc = Doc()
    await ws.write_message(create_sync_message(doc), binary=True)
    deadline = time.monotonic() + 30
    while not list(doc.get("cells", type=Array)):
        assert time.monotonic() < deadline, "the room never sent the notebook"
        message = await asyncio.wait_for(ws.read_message(), timeout=30)
        assert isinstance(message, bytes), message
        if message[0] == 0:
            reply = handle_sync_message(message[1:], doc)
            if reply is not None:
                await ws.write_message(reply, binary=True)
    updates: list[bytes] = []
    subscription = doc.observe(lambda event: updates.append(event.update))
    source = doc.get("cells", type=Array)[0]["source"]
    source += text
    doc.unobserve(subscription)
    for update in updates:
        await ws.write_message(create_update_message(update), binary=True)
    await asyncio.sleep(0.2)  # in the server, well within its one-second wait before a write


def test_editing_together_is_there_and_keeps_its_state_in_the_pod(lab: Container) -> None:
    server = lab.exec("jupyter", "server", "extension", "list").replace("\x1b[32m", "").replace("\x1b[0m", "")
    assert "jupyter_server_ydoc" in server and "jupyter_server_fileid" in server, server
    assert "@jupyter/collaboration-extension" in lab.exec("jupyter", "labextension", "list")
    _put(lab.url, "/api/contents/state.ipynb", {"type": "notebook", "format": "json", "content": notebook("x = 1")})
    asyncio.run(_edit_in_room(lab.url, "state.ipynb", "\ny = 2"))
    in_tmp = lab.exec("sh", "-c", "ls /tmp")
    assert "moonhub-ystore.db" in in_tmp and "moonhub-file-ids.db" in in_tmp, in_tmp
    in_home = lab.exec(
        "sh", "-c", "cd $HOME && find . -name '*ystore*' -o -name 'file_id_manager.db' -o -name '*collaboration*'"
    )
    assert not in_home.strip(), f"collaboration state in the workspace: {in_home}"


def test_a_server_stopped_right_after_an_edit_has_it_on_disk_and_exits_at_once(
    image: str, timings: dict[str, float]
) -> None:
    ref = built(image)
    name = f"moonhub-test-stop-{uuid.uuid4().hex[:6]}"
    lab = ["jupyter", "lab", "--ip=0.0.0.0", "--port=8888", "--no-browser", f"--IdentityProvider.token={TOKEN}"]
    run = ["docker", "run", "-d", "--name", name, "-p", "127.0.0.1::8888", ref, *lab]
    subprocess.run(run, check=True, capture_output=True)
    try:
        port = subprocess.run(["docker", "port", name, "8888"], capture_output=True, text=True, check=True)
        url = f"http://{port.stdout.split()[0]}"
        deadline = time.monotonic() + 90
        while True:
            try:
                if requests.get(f"{url}/api/status", headers=HEADERS, timeout=5).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline, "JupyterLab did not answer"
            time.sleep(0.5)
        _put(url, "/api/contents/stop.ipynb", {"type": "notebook", "format": "json", "content": notebook("a = 1")})
        session = {"path": "stop.ipynb", "type": "notebook", "name": "stop.ipynb", "kernel": {"name": "python3"}}
        r = requests.post(f"{url}/api/sessions", headers=HEADERS, data=json.dumps(session), timeout=60)
        assert r.status_code == 201, r.text  # a kernel running too, as in a user's server
        asyncio.run(_edit_in_room(url, "stop.ipynb", "\nlast = 2"))
        t0 = time.monotonic()
        subprocess.run(["docker", "stop", "-t", "30", name], check=True, capture_output=True)
        took = time.monotonic() - t0
        timings[f"editing together ({image}): stop with a notebook open and its kernel running"] = took
        logs = subprocess.run(["docker", "logs", name], capture_output=True, text=True)
        assert took < 20, f"the server did not exit after SIGTERM (killed at 30 s): {logs.stderr[-3000:]}"
        subprocess.run(["docker", "start", name], check=True, capture_output=True)
        saved = subprocess.run(
            ["docker", "exec", name, "cat", "/home/jovyan/stop.ipynb"], capture_output=True, text=True, check=True
        )
        assert "".join(json.loads(saved.stdout)["cells"][0]["source"]) == "a = 1\nlast = 2"
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True)
