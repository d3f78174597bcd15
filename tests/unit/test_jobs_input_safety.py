"""Every value a user sends is either refused with a 400 naming its field or arrives as
typed; names of different owners' jobs never collide; webhooks can not reach inside."""

from __future__ import annotations

import datetime
import itertools
import re
from typing import Any

import pytest

from jobs_service import manifests, notify, validation
from moonhub_core.errors import FieldError

BASE = {"name": "daily", "notebook": "reports/daily.ipynb", "schedule": "0 6 * * *"}

#: values of every JSON type, and strings that trip up patterns and parsers
ODD: list[Any] = [
    None,
    True,
    0,
    -1,
    2**70,
    1.5,
    float("inf"),
    "",
    " ",
    "x\n",
    "\n",
    "a" * 5000,
    "\x00",
    "$(HOME)",
    [],
    ["skip"],
    {},
    {"a": 1},
]


@pytest.mark.parametrize("field", sorted(validation.FIELDS))
def test_any_value_of_any_field_is_accepted_or_named(field: str) -> None:
    for value in ODD:
        try:
            validation.parse({**BASE, field: value})
        except FieldError as e:
            assert e.status == 400 and e.field == field, (field, value, e)


@pytest.mark.parametrize("schedule", ["0 0 30 2 *", "0 0 31 4 *", "0 0 31 2,4,6 *"])
def test_a_schedule_that_never_fires_is_refused(schedule: str) -> None:
    with pytest.raises(FieldError, match="never fires") as e:
        validation.parse({**BASE, "schedule": schedule})
    assert e.value.field == "schedule"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"name": "daily\n"}, "name"),
        ({"concurrency": []}, "concurrency"),
        ({"concurrency": {"skip": 1}}, "concurrency"),
        ({"parameters": {"rows\n": 1}}, "parameters"),
        ({"parameters": {"class": 1}}, "parameters"),
        ({"parameters": {"None": 1}}, "parameters"),
    ],
)
def test_patterns_match_whole_values(change: dict[str, Any], field: str) -> None:
    with pytest.raises(FieldError) as e:
        validation.parse({**BASE, **change})
    assert e.value.field == field


def kubernetes_expand(value: str, env: dict[str, str]) -> str:
    """What the kubelet does to a container's environment value (k8s.io/kubernetes
    third_party/forked/golang/expansion): ``$$`` -> ``$``, ``$(NAME)`` -> NAME's value when
    defined, anything else as it is."""
    out, i = [], 0
    while i < len(value):
        if value[i] == "$" and i + 1 < len(value):
            nxt = value[i + 1]
            if nxt == "$":
                out.append("$")
                i += 2
                continue
            if nxt == "(":
                end = value.find(")", i + 2)
                if end != -1:
                    name = value[i + 2 : end]
                    out.append(env.get(name, value[i : end + 1]))
                    i = end + 1
                    continue
        out.append(value[i])
        i += 1
    return "".join(out)


@pytest.mark.parametrize("text", ["$(HOME)", "$$(HOME)", "$", "a$", "$$$", "$(", "$()", "${HOME}", "é $(X) $$"])
def test_parameter_values_reach_the_notebook_as_typed(text: str) -> None:
    env = {"HOME": "/home/jovyan", "X": "x"}
    assert kubernetes_expand(manifests.literal_env(text), env) == text
    assert kubernetes_expand("$(HOME)", env) == "/home/jovyan", "the model expands as the kubelet does"


def test_job_names_of_different_owners_never_collide() -> None:
    owners = ["alice", "alice-bob", "bob", "Alice", "a.lice", "x" * 40, "x" * 41]
    jobs = ["bob-x", "x", "report", "a" * 30, "a" * 29 + "b"]
    seen: dict[str, tuple[str, str]] = {}
    for owner, job in itertools.product(owners, jobs):
        name = manifests.Names(owner, job).cronjob
        assert len(name) <= 52 and re.fullmatch(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?", name), name
        assert name not in seen, f"{(owner, job)} and {seen[name]} share {name}"
        seen[name] = (owner, job)
    # a definition made by an older version keeps its CronJob's name
    assert manifests.Names("alice", "x", stored="nb-alice-x").cronjob == "nb-alice-x"


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/hook",
        "http://[::1]/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.5/x",
        "http://192.168.1.1/x",
        "http://100.64.0.1/x",
        "http://0.0.0.0/x",
        "http://[::ffff:10.0.0.1]/x",
        # IPv6 transition addresses that carry an internal IPv4 one (issue 32, item 10)
        "http://[64:ff9b::a9fe:a9fe]/latest/meta-data/",  # NAT64 to 169.254.169.254
        "http://[64:ff9b::127.0.0.1]/x",
        "http://[2002:7f00:1::]/x",  # 6to4 of 127.0.0.1
        "http://[2002:a00:5::1]/x",  # 6to4 of 10.0.0.5
        "http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/x",  # Teredo
        "http://[64:ff9b:1::a00:5]/x",  # local-use NAT64
        "http://[::ffff:0:a00:5]/x",  # IPv4-translated (SIIT)
        "http://[::a00:5]/x",  # IPv4-compatible
        "http://[::ffff:127.0.0.1]/x",
        "http://localhost:8080/x",
        "http://kubernetes.default.svc/api",
        "http://moonhub-hub.moonhub.svc.cluster.local:8081/hub/api",
        "http://metadata.google.internal/computeMetadata/v1/",
        "http://intranet/x",
    ],
)
def test_webhooks_to_internal_addresses_are_refused_when_saved(url: str) -> None:
    with pytest.raises(FieldError) as e:
        notify.WebhookPolicy().check_url(url)
    assert e.value.field == "notify"


def test_operators_may_allow_internal_receivers() -> None:
    policy = notify.WebhookPolicy(("10.20.0.0/16",))
    policy.check_url("http://10.20.3.4/relay")
    with pytest.raises(FieldError):
        policy.check_url("http://10.21.0.1/relay")
    notify.WebhookPolicy().check_url("https://hooks.example.com/T000/B000")
    # a transition address of a public IPv4 one is as public as it
    notify.WebhookPolicy().check_url("http://[64:ff9b::8.8.8.8]/x")
    notify.WebhookPolicy().check_url("http://[2002:808:808::1]/x")
    policy.check_url("http://[64:ff9b::10.20.3.4]/relay")


async def test_a_name_that_resolves_inside_is_refused_when_sent(caplog: pytest.LogCaptureFixture) -> None:
    """``localhost.`` passes no name check here (a trailing dot), but resolves to loopback:
    the send-time check refuses it, and nothing reaches the listener."""
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.setblocking(False)
    port = listener.getsockname()[1]
    job = {"id": 1, "name": "daily", "owner": "ann"}
    run = {"status": "failed", "name": "r1"}
    policy = notify.WebhookPolicy()
    caplog.set_level("WARNING", "moonhub.jobs")
    try:
        policy_resolver = notify._CheckedResolver(policy=policy)
        with pytest.raises(notify.WebhookRefused):
            await policy_resolver.resolve("localhost", port)
        await notify.webhook(f"http://127.0.0.1:{port}/x", job, run, policy)
        with pytest.raises(BlockingIOError):
            listener.accept()
    finally:
        listener.close()
    assert "webhook not sent" in caplog.text


def test_departure_needs_a_404_for_the_whole_grace_period(tmp_path: Any) -> None:
    from jobs_service.db import open_db
    from jobs_service.departures import due

    db = open_db(f"sqlite:///{tmp_path / 'jobs.sqlite'}")
    grace = datetime.timedelta(hours=1)
    t0 = datetime.datetime(2026, 12, 1, tzinfo=datetime.UTC)
    with db() as s:
        assert due(s, {"sam"}, {"sam", "ann"}, grace, t0) == set(), "the clock starts at the first 404"
        assert due(s, {"sam"}, {"sam"}, grace, t0 + grace / 2) == set()
        assert due(s, {"sam"}, {"sam"}, grace, t0 + grace) == {"sam"}
        # back on the hub: forgotten; gone again: the clock starts again
        assert due(s, set(), {"sam"}, grace, t0 + grace * 2) == set()
        assert due(s, {"sam"}, {"sam"}, grace, t0 + grace * 3) == set()
        # not asked about this time (the hub did not answer for them): nothing decided
        assert due(s, set(), set(), grace, t0 + grace * 5) == set()


def test_alert_mail_goes_only_to_the_owner_or_allowed_domains() -> None:
    policy = notify.EmailPolicy(("example.org",), per_hour=3)
    policy.check("ann@corp.com", ["ann@corp.com", "team@example.org", "Ops@EXAMPLE.ORG"])
    for outside in (["boss@corp.com"], ["x@example.org.evil.com"], ["a@b@example.com"]):
        with pytest.raises(FieldError) as e:
            policy.check("ann@corp.com", outside)
        assert e.value.field == "notify" and "@example.org" in e.value.message
    with pytest.raises(FieldError):
        notify.EmailPolicy().check("ann", ["ann@corp.com"]), "no domains: only the owner's own address"
    # at most per_hour messages per owner in any hour
    assert [policy.take("ann", 1, t) for t in (0, 10, 20, 30)] == [True, True, True, False]
    assert policy.take("bob", 1, 30), "per owner"
    assert policy.take("ann", 1, 3601), "the hour moves on"
