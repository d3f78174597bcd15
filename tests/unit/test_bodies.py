"""What the jobs service receives is bounded whatever arrives (issue 32, item 2): bodies in
flight per caller and in all, spooled past a small size, gzip unpacked in steps and refused
past a limit."""

from __future__ import annotations

import asyncio
import gzip
import io
import json
import zlib
from pathlib import Path

import pytest

from jobs_service import bodies
from jobs_service.outputs import OutputStore
from moonhub_core.errors import FieldError


def test_a_caller_past_its_share_waits_and_the_service_past_its_total_asks_everyone_to() -> None:
    f = bodies.InFlight(per_caller=100, total=150)
    f.take("ann", 60)
    f.take("ann", 40)
    with pytest.raises(bodies.TooMuch) as e:
        f.take("ann", 1)
    assert e.value.status == 429 and "ann is already sending" in e.value.message
    f.take("bob", 50)
    with pytest.raises(bodies.TooMuch) as e:
        f.take("cat", 1)
    assert e.value.status == 503
    assert (f.held("ann"), f.held("bob"), f.held()) == (100, 50, 150), "a refusal takes nothing"
    f.give_back("ann", 100)
    f.take("cat", 1)
    f.give_back("bob", 50)
    f.give_back("cat", 1)
    assert f.held() == 0 and f.held("ann") == 0


def test_a_body_is_spooled_to_disk_and_kept_no_further_than_its_cap() -> None:
    s = bodies.Spool(cap=3 * bodies.SPOOL_MEMORY)
    chunk = b"x" * (bodies.SPOOL_MEMORY // 2)
    for _ in range(4):
        assert s.write(chunk) == len(chunk)
    assert s.file._rolled, "past SPOOL_MEMORY it is on disk, not in memory"  # type: ignore[attr-defined]
    assert s.read() == chunk * 4
    for _ in range(3):
        s.write(chunk)
    assert s.too_large and s.write(chunk) == 0
    s.file.seek(0, io.SEEK_END)
    assert s.file.tell() == 0, "what a too-large body had sent is dropped"
    s.close()


def test_gzip_is_unpacked_in_steps_and_a_bomb_is_refused() -> None:
    bomb = gzip.compress(b"\0" * (64 * 2**20), compresslevel=9)
    assert len(bomb) < 2**20 // 4, "a small body"
    with pytest.raises(FieldError, match="unpacks to more than 16 MiB"):
        bodies.gunzip_to(io.BytesIO(bomb), None, 16 * 2**20)
    out = io.BytesIO()
    assert bodies.gunzip_to(io.BytesIO(gzip.compress(b"hello")), out, 10) == 5 and out.getvalue() == b"hello"
    for bad, why in ((b"not gzip", "is not gzip"), (gzip.compress(b"hello" * 1000)[:-20], "not a whole gzip stream")):
        with pytest.raises(FieldError, match=why):
            bodies.gunzip_to(io.BytesIO(bad), None, 2**20)


def test_a_run_keeps_an_unpacked_notebook_within_the_limit_and_nothing_of_a_refused_one(tmp_path: Path) -> None:
    store = OutputStore(tmp_path)
    nb = json.dumps({"cells": []}).encode()
    assert store.put_notebook("run-1", gzip.compress(nb)) == len(nb)
    assert store.notebook("run-1") == nb
    with pytest.raises(FieldError):
        store.put_notebook("run-2", zlib.compress(b"\0" * 2**20), limit=2**20)
    with pytest.raises(FieldError, match="unpacks to more than"):
        store.put_notebook("run-2", gzip.compress(b"\0" * (2 * 2**20)), limit=2**20)
    assert store.notebook("run-2") is None and not [p for p in (tmp_path / "run-2").iterdir()], "nothing left"
    store.put_file("run-1", "a/b.csv", b"1,2")
    with pytest.raises(FieldError):
        store.put_file("run-1", "a", b"a folder's name")
    assert [f["path"] for f in store.files("run-1")] == ["a/b.csv"]


async def test_large_json_is_parsed_off_the_loop_and_bad_json_names_the_body() -> None:
    big = json.dumps({"x": "y" * bodies.PARSE_ON_LOOP}).encode()
    assert (await bodies.parse_json(big))["x"].startswith("y")
    assert await bodies.parse_json(b"") is None
    for bad in (b"{", b"\xff\xfe", big[:-1]):
        with pytest.raises(FieldError) as e:
            await bodies.parse_json(bad)
        assert e.value.field == "body"


async def test_a_large_spooled_body_is_parsed_from_disk_one_at_a_time() -> None:
    s = bodies.Spool(cap=8 * 2**20)
    s.write(json.dumps({"cells": ["x" * (2 * 2**20)]}).encode())
    assert s.file._rolled  # type: ignore[attr-defined]
    got = await asyncio.gather(s.json(), s.json())
    assert got[0] == got[1] and len(got[0]["cells"][0]) == 2 * 2**20
    bad = bodies.Spool(cap=8 * 2**20)
    bad.write(b"[" + b"1," * 2**20)
    with pytest.raises(FieldError) as e:
        await bad.json()
    assert e.value.field == "body"
