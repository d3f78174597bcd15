"""A real OpenSSH server for a test (Debian's ``sshd``, which ``./moonhub test`` installs), of
its own: its own host key, one key let in as root, and for that key only a forced command
(``authorized_keys``' ``restrict,command=``), as an operator sets up a Gluster server for the
storage agent (docs/storage.md)."""

from __future__ import annotations

import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

SSHD = Path("/usr/sbin/sshd")


@dataclass(frozen=True)
class Server:
    address: str
    port: int
    #: the key the server lets in (OpenSSH's private key format)
    private_key: str
    #: the server's host key, as ``known_hosts`` holds it
    known_hosts: str
    log: Path
    commands: Path

    def sent(self) -> list[str]:
        """The commands the key asked for, in order (before ``command`` judged them)."""
        return self.commands.read_text().splitlines() if self.commands.exists() else []


def _keygen(path: Path, comment: str) -> str:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)], check=True, capture_output=True
    )
    return path.with_suffix(".pub").read_text().strip()


@contextmanager
def sshd(address: str, port: int, command: str) -> Iterator[Server]:
    """sshd on ``address:port``; the key it yields logs in as root and runs ``command``,
    whatever it asks for (the asked command is in ``$SSH_ORIGINAL_COMMAND``, and noted for
    :meth:`Server.sent`)."""
    if not SSHD.exists():
        raise RuntimeError("OpenSSH's server is not installed: ./moonhub test installs it (Debian openssh-server)")
    where = Path(tempfile.mkdtemp(prefix="moonhub-sshd-"))
    host = _keygen(where / "host", "moonhub-test-host")
    client = _keygen(where / "client", "moonhub-test-agent")
    forced, commands = where / "forced", where / "commands"
    forced.write_text(f"#!/bin/sh\nprintf '%s\\n' \"$SSH_ORIGINAL_COMMAND\" >> {commands}\nexec {command}\n")
    forced.chmod(0o755)
    (where / "authorized_keys").write_text(f'restrict,command="{forced}" {client}\n')
    config = where / "sshd_config"
    config.write_text(
        "\n".join([
            f"Port {port}", f"ListenAddress {address}", f"HostKey {where / 'host'}",
            f"AuthorizedKeysFile {where / 'authorized_keys'}", f"PidFile {where / 'sshd.pid'}",
            "PermitRootLogin forced-commands-only", "AllowUsers root", "PasswordAuthentication no",
            "KbdInteractiveAuthentication no", "UsePAM no",
            "StrictModes no",  # its files are under /tmp, which every user may write to
            "LogLevel VERBOSE", "",
        ])
    )  # fmt: skip
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # its privilege separation folder
    log = where / "sshd.log"
    with log.open("w") as out:
        proc = subprocess.Popen([str(SSHD), "-D", "-e", "-f", str(config)], stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection((address, port), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"sshd did not start on {address}:{port}: {log.read_text()[-2000:]}") from None
                time.sleep(0.2)
        known = f"[{address}]:{port} {' '.join(host.split()[:2])}\n"
        yield Server(address, port, (where / "client").read_text(), known, log, commands)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        subprocess.run(["rm", "-rf", str(where)], check=False)
