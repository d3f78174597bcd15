"""Which server pods are orphans (spawner_ext/orphans.py): the pure choice, and the hub's
record of its servers read from a real JupyterHub database."""

from __future__ import annotations

import datetime
from types import SimpleNamespace
from typing import Any

from jupyterhub import orm

from moonhub_core import pods
from spawner_ext import orphans

NOW = datetime.datetime(2026, 12, 4, 12, 0, tzinfo=datetime.UTC)
HUB = pods.hub_id("https://moonhub.example.com/")


def pod(name: str, user: str, server: str = "", age: float = 3600, hub: str = HUB, **meta: Any) -> dict[str, Any]:
    notes = {pods.HUB_USER: user} | ({pods.HUB_SERVER: server} if server else {})
    made = (NOW - datetime.timedelta(seconds=age)).isoformat().replace("+00:00", "Z")
    return {
        "metadata": {
            "name": name,
            "uid": f"uid-{name}",
            "creationTimestamp": made,
            "labels": {"component": "singleuser-server", pods.HUB: hub},
            "annotations": notes,
            **meta,
        }
    }


def test_the_hub_id_is_its_public_url_s() -> None:
    assert pods.hub_id("https://moonhub.example.com") == HUB, "a trailing slash changes nothing"
    assert pods.hub_id("http://127.0.0.1:18000") != pods.hub_id("http://127.0.0.1:18600")
    assert len(HUB) == 12


def test_an_orphan_is_an_old_pod_of_this_hub_that_no_server_claims() -> None:
    found = orphans.candidates(
        [
            pod("jupyter-ada", "ada"),  # no server: an orphan
            pod("jupyter-bob", "bob"),  # bob's server runs
            pod("jupyter-bob--gpu", "bob", "gpu"),  # bob's named server "gpu" does not
            pod("jupyter-cy", "cy", age=30),  # too young: a start may be on its way
            pod("jupyter-dee", "dee", hub=pods.hub_id("http://another-hub")),  # another hub's
            pod("jupyter-eve", "eve", deletionTimestamp="2026-12-04T11:59:00Z"),  # going already
            pod("jupyter-fay", ""),  # does not say whose it is
        ],
        HUB,
        {("bob", "")},
        NOW,
        grace=600,
    )
    assert found == {
        "uid-jupyter-ada": ("jupyter-ada", ("ada", "")),
        "uid-jupyter-bob--gpu": ("jupyter-bob--gpu", ("bob", "gpu")),
    }
    unlabelled = pod("jupyter-gus", "gus")
    del unlabelled["metadata"]["labels"][pods.HUB]
    assert orphans.candidates([unlabelled], HUB, set(), NOW, 600) == {}, "a pod made before the label: never"


def test_checks_come_often_enough_for_the_grace() -> None:
    assert orphans.every(600) == 60 and orphans.every(20) == 5 and orphans.every(100) == 25


def test_the_hub_s_servers_claim_their_pods() -> None:
    """Servers with a server record (running, or a start begun: JupyterHub records it first)
    and servers in memory with an action pending (a stop) claim their pods; stopped ones do not."""
    db = orm.new_session_factory("sqlite:///:memory:")()
    for name in ("ada", "bob", "cy"):
        db.add(orm.User(name=name))
    db.commit()
    users = {u.name: u for u in db.query(orm.User)}
    running = orm.Spawner(user=users["ada"], name="", server=orm.Server(base_url="/user/ada/"))
    named = orm.Spawner(user=users["ada"], name="gpu", server=orm.Server(base_url="/user/ada/gpu/"))
    stopped = orm.Spawner(user=users["bob"], name="")
    stopping = orm.Spawner(user=users["cy"], name="")
    db.add_all([running, named, stopped, stopping])
    db.commit()
    in_memory = {
        1: SimpleNamespace(name="cy", spawners={"": SimpleNamespace(active=False, pending="stop")}),
        2: SimpleNamespace(name="bob", spawners={"": SimpleNamespace(active=False, pending=None)}),
    }
    assert orphans.claimed(db, in_memory) == {("ada", ""), ("ada", "gpu"), ("cy", "")}
