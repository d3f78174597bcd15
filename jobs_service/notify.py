"""Tell owners when a run fails (or, if they asked, succeeds): e-mail over SMTP, a webhook.

Secrets stay out of CronJobs and logs: SMTP credentials come from the service's
environment, and webhook URLs (which often carry a token) are logged by host only.

A webhook is a request the service makes from inside the cluster to an address a user chose,
so it must not reach what only the cluster can reach (server-side request forgery): the
service's loopback, the cluster's pods and Services, private networks, the cloud metadata
address. :class:`WebhookPolicy` refuses such hosts when a job is saved (literal addresses
and internal names) and again when it sends: the name is resolved then, every address it
resolves to must be public, and the connection goes to the address that was checked
(no second lookup to rebind). Redirects are not followed. Operators allow internal
receivers (a chat relay in their network) by listing their networks.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import smtplib
import socket
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any
from urllib.parse import urlparse

from tornado.httpclient import AsyncHTTPClient, HTTPRequest
from tornado.netutil import DefaultLoopResolver, Resolver

from moonhub_core.errors import FieldError

from .outbox import Rate

log = logging.getLogger("moonhub.jobs")


@dataclass(frozen=True)
class SmtpSettings:
    host: str = ""
    port: int = 25
    sender: str = "moonhub@localhost"
    username: str = ""
    password: str = ""
    starttls: bool = False


#: a run still going after its job's ``notify.overdue_after_seconds``
OVERDUE = "run.overdue"


def _duration(seconds: float) -> str:
    minutes = int(seconds // 60)
    return f"{minutes // 60} h {minutes % 60} min" if minutes >= 60 else f"{minutes} min"


def headline(job: dict[str, Any], run: dict[str, Any], event: str) -> str:
    """What happened, in one line (pure)."""
    if event == OVERDUE:
        limit = (job.get("notify") or {}).get("overdue_after_seconds", 0)
        return f"job {job['name']} is still running after {_duration(limit)} (run {run['name']})"
    return f"job {job['name']} {run['status'].replace('_', ' ')} (run {run['name']})"


def payload(job: dict[str, Any], run: dict[str, Any], event: str, fmt: str = "plain") -> dict[str, Any]:
    """A webhook's JSON (pure): MoonHub's own (``plain``), or a message chat tools that
    accept Slack's incoming-webhook format show (``slack``: ``text``, with mrkdwn)."""
    if fmt == "slack":
        lines = [f"*MoonHub*: {headline(job, run, event)}", f"Owner: {job['owner']} · trigger: {run['trigger']}"]
        if run.get("reason"):
            lines.append(f"Reason: {run['reason']}")
        if run.get("output"):
            lines.append(f"Output: `{run['output']}` (in the owner's workspace)")
        return {"text": "\n".join(lines)}
    return {"event": event, "job": {k: job[k] for k in ("id", "name", "owner")}, "run": run}


def message(job: dict[str, Any], run: dict[str, Any], sender: str, to: list[str], event: str = "") -> EmailMessage:
    """The e-mail for a finished (or overdue) run (pure)."""
    msg = EmailMessage()
    msg["From"], msg["To"] = sender, ", ".join(to)
    msg["Subject"] = f"[MoonHub] {headline(job, run, event)}"
    lines = [
        f"Job:      {job['name']} (owner {job['owner']}, version {run['version']})",
        f"Run:      {run['name']} ({run['trigger']})",
        f"Status:   {run['status']}",
        f"Reason:   {run['reason'] or '-'}",
        f"Started:  {run['started'] or '-'}",
        f"Finished: {run['finished'] or '-'}",
        f"Output:   {run['output']} (in your workspace)",
    ]
    msg.set_content("\n".join(lines) + "\n")
    return msg


def _send(smtp: SmtpSettings, msg: EmailMessage) -> None:
    with smtplib.SMTP(smtp.host, smtp.port, timeout=30) as s:
        if smtp.starttls:
            s.starttls()
        if smtp.username:
            s.login(smtp.username, smtp.password)
        s.send_message(msg)


async def email(
    smtp: SmtpSettings,
    job: dict[str, Any],
    run: dict[str, Any],
    to: list[str],
    policy: EmailPolicy | None = None,
    event: str = "",
    trusted: Iterable[str] = (),
) -> None:
    if not smtp.host:
        log.warning("job %s: e-mail asked for but no SMTP server is configured", job["name"])
        return
    if policy is not None:
        try:
            policy.check(job["owner"], to, trusted)  # the rules may have changed since the job was saved
        except FieldError as e:
            log.warning("job %s of %s: e-mail not sent: %s", job["name"], job["owner"], e.message)
            return
        if not policy.take(job["owner"], 1, time.time()):
            log.warning("job %s of %s: e-mail not sent: over %d per hour", job["name"], job["owner"], policy.per_hour)
            return
    await asyncio.to_thread(_send, smtp, message(job, run, smtp.sender, to, event))
    log.info("job %s of %s: mailed %d recipient(s) about run %s", job["name"], job["owner"], len(to), run["name"])


async def plain(smtp: SmtpSettings, to: list[str], subject: str, text: str) -> None:
    """A short message to ``to`` (e.g. "an admin paused your job")."""
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = smtp.sender, ", ".join(to), subject
    msg.set_content(text)
    await asyncio.to_thread(_send, smtp, msg)


@dataclass
class EmailPolicy:
    """Where alert e-mails may go through the organisation's SMTP server: the job owner's
    own address (when their user name is one) and addresses in ``domains``; at most
    ``per_hour`` messages per owner."""

    domains: tuple[str, ...] = ()
    per_hour: int = 30
    _rate: Rate = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._rate = Rate(self.per_hour)

    def check(self, owner: str, emails: list[str], trusted: Iterable[str] = ()) -> None:
        """Refuse an address that is not the owner's own or of an allowed domain (``trusted``:
        addresses an admin set, e.g. a team's alert addresses)."""
        allowed = {d.lower().lstrip("@") for d in self.domains}
        ok = {t.lower() for t in trusted}
        for e in emails:
            if e.lower() == owner.lower() or e.lower() in ok or e.rsplit("@", 1)[-1].lower() in allowed:
                continue
            where = f"@{', @'.join(sorted(allowed))} or " if allowed else ""
            raise FieldError("notify", f"e-mails may go to {where}your own address, not {e}")

    def take(self, owner: str, count: int, now: float) -> bool:
        """Whether ``owner`` may send ``count`` more messages now (and count them)."""
        return self._rate.take(owner, count, now)


#: host names that only mean something inside a machine or a cluster
INTERNAL_SUFFIXES = (".localhost", ".local", ".internal", ".svc", ".cluster.local", ".localdomain")


#: IPv6 ranges that carry an IPv4 address the service can not tell apart reliably (Teredo's
#: client is obscured; local-use NAT64 prefixes put it at the operator's offset; SIIT and the
#: old IPv4-compatible form): refused unless an operator allows them
OPAQUE_V4_CARRIERS = tuple(
    ipaddress.IPv6Network(n) for n in ("2001::/32", "64:ff9b:1::/48", "::ffff:0:0:0/96", "::/96")
)
#: the well-known NAT64 prefix (RFC 6052): the IPv4 address is the last 32 bits
NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


def _carried_v4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address ``ip`` stands for: mapped (``::ffff:a.b.c.d``), 6to4 (``2002::/16``)
    or the well-known NAT64 prefix."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


class WebhookRefused(Exception):
    """The webhook's address is not one the service may call."""


@dataclass(frozen=True)
class WebhookPolicy:
    #: networks (CIDR) that webhooks may reach although they are not public
    allowed_networks: tuple[str, ...] = ()
    #: webhooks one owner's jobs may send per hour (``jobs.webhooks_per_hour``)
    per_hour: int = 60
    _nets: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = field(init=False, repr=False, compare=False)
    _rate: Rate = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_nets", tuple(ipaddress.ip_network(n, strict=False) for n in self.allowed_networks))
        object.__setattr__(self, "_rate", Rate(self.per_hour))

    def take(self, owner: str) -> bool:
        """Whether ``owner`` may send one more webhook now (and count it)."""
        return self._rate.take(owner)

    def address_ok(self, addr: str) -> bool:
        ip = ipaddress.ip_address(addr.split("%", 1)[0])
        if any(ip in n for n in self._nets):
            return True
        if isinstance(ip, ipaddress.IPv6Address):
            # an IPv6 address that carries an IPv4 one reaches that one (through a NAT64
            # gateway, a 6to4 relay, the dual stack): it is what the IPv4 address is
            if any(ip in n for n in OPAQUE_V4_CARRIERS):
                return False
            carried = _carried_v4(ip)
            if carried is not None:
                return self.address_ok(str(carried))
        return ip.is_global and not ip.is_multicast

    def check_url(self, url: str) -> None:
        """Refuse, when a job is saved, URLs that name an internal host outright."""
        host = (urlparse(url).hostname or "").rstrip(".").lower()
        if not host:
            raise FieldError("notify", "webhook needs a host name")
        try:
            ipaddress.ip_address(host)
        except ValueError:
            if host == "localhost" or host.endswith(INTERNAL_SUFFIXES) or "." not in host:
                raise FieldError("notify", f"webhook host {host!r} is an internal name; use a public one") from None
            return
        if not self.address_ok(host):
            raise FieldError("notify", f"webhook address {host} is not public (loopback, private or cluster)")


class _CheckedResolver(Resolver):
    """Resolves like the default resolver, then keeps only the addresses the policy allows
    (the connection uses what is returned here: no second lookup)."""

    def initialize(self, policy: WebhookPolicy) -> None:
        self.policy, self.inner = policy, DefaultLoopResolver()

    async def resolve(self, host: str, port: int, family: socket.AddressFamily = socket.AF_UNSPEC) -> Any:
        found = await self.inner.resolve(host, port, family)
        bad = [a[1][0] for a in found if not self.policy.address_ok(a[1][0])]
        if bad:
            raise WebhookRefused(f"{host} resolves to {', '.join(sorted(set(bad)))}, which webhooks may not reach")
        return found


async def webhook(
    url: str,
    job: dict[str, Any],
    run: dict[str, Any],
    policy: WebhookPolicy | None = None,
    event: str = "",
    fmt: str = "plain",
) -> None:
    policy = policy or WebhookPolicy()
    host = urlparse(url).hostname
    try:
        policy.check_url(url)
    except FieldError as e:
        log.warning("job %s of %s: webhook not sent: %s", job["name"], job["owner"], e.message)
        return
    body = json.dumps(payload(job, run, event or f"run.{run['status']}", fmt))
    req = HTTPRequest(
        url,
        method="POST",
        body=body,
        headers={"Content-Type": "application/json"},
        # a receiver gets 10 s (the outbox gives up on a send after its own deadline)
        connect_timeout=5,
        request_timeout=10,
        follow_redirects=False,
    )
    http = AsyncHTTPClient(force_instance=True, resolver=_CheckedResolver(policy=policy))
    try:
        resp = await http.fetch(req, raise_error=False)
    except WebhookRefused as e:
        log.warning("job %s of %s: webhook not sent: %s", job["name"], job["owner"], e)
        return
    finally:
        http.close()
    if resp.code == 599 and isinstance(resp.error, WebhookRefused):
        log.warning("job %s of %s: webhook not sent: %s", job["name"], job["owner"], resp.error)
        return
    log.info("job %s of %s: webhook to %s answered %s", job["name"], job["owner"], host, resp.code)
