"""Tell owners when a run fails (or, if they asked, succeeds): e-mail over SMTP, a webhook.

Secrets stay out of CronJobs and logs: SMTP credentials come from the service's
environment, and webhook URLs (which often carry a token) are logged by host only.
"""

from __future__ import annotations

import asyncio
import json
import logging
import smtplib
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any
from urllib.parse import urlparse

from tornado.httpclient import AsyncHTTPClient, HTTPRequest

log = logging.getLogger("moonhub.jobs")


@dataclass(frozen=True)
class SmtpSettings:
    host: str = ""
    port: int = 25
    sender: str = "moonhub@localhost"
    username: str = ""
    password: str = ""
    starttls: bool = False


def message(job: dict[str, Any], run: dict[str, Any], sender: str, to: list[str]) -> EmailMessage:
    """The e-mail for a finished run (pure)."""
    msg = EmailMessage()
    msg["From"], msg["To"] = sender, ", ".join(to)
    msg["Subject"] = f"[MoonHub] job {job['name']} {run['status'].replace('_', ' ')} (run {run['name']})"
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


async def email(smtp: SmtpSettings, job: dict[str, Any], run: dict[str, Any], to: list[str]) -> None:
    if not smtp.host:
        log.warning("job %s: e-mail asked for but no SMTP server is configured", job["name"])
        return
    await asyncio.to_thread(_send, smtp, message(job, run, smtp.sender, to))
    log.info("job %s of %s: mailed %d recipient(s) about run %s", job["name"], job["owner"], len(to), run["name"])


async def webhook(url: str, job: dict[str, Any], run: dict[str, Any]) -> None:
    body = json.dumps(
        {"event": f"run.{run['status']}", "job": {k: job[k] for k in ("id", "name", "owner")}, "run": run}
    )
    req = HTTPRequest(url, method="POST", body=body, headers={"Content-Type": "application/json"}, request_timeout=30)
    resp = await AsyncHTTPClient().fetch(req, raise_error=False)
    log.info("job %s of %s: webhook to %s answered %s", job["name"], job["owner"], urlparse(url).hostname, resp.code)
