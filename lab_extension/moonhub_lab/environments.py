"""Named environments in the workspace: ``moonhub-env``.

An environment is a virtual environment of the image's Python under ``~/envs/<name>`` (the
workspace), made from a requirements file or a list of packages (from the platform's package
index; the kernel itself, ipykernel, from the image's kernel site, after the environment's own
packages), with a Jupyter kernel of its own registered in the workspace
(``~/.local/share/jupyter/kernels/env-<name>``). So it is a kernel in every server its owner
starts, of any image on the same Python, and a scheduled run of a notebook saved with that
kernel (or a job that names it) runs in exactly it. A run whose environment is gone or
broken fails with the kernel's error; nothing falls back to another kernel.

    moonhub-env create NAME (-r requirements.txt | PACKAGE ...)
    moonhub-env list
    moonhub-env remove NAME
    moonhub-env image NAME [--base ENVIRONMENT]   build an image of it (its log follows)
    moonhub-env images                            your images and how far each is

Nothing is left half-made: an environment whose install failed is removed with its kernel,
and the error says why (pip's own message: an unknown package, a full workspace).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

#: an environment's name: also part of its kernel's name and its folder
NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,39}")
#: a kernel of a workspace environment is named this plus the environment's name
KERNEL_PREFIX = "env-"
#: what every environment needs besides what the user asks for: its kernel
KERNEL_PACKAGE = "ipykernel"
#: the images' own copy of it and what it needs (images/base-notebook): an environment reads
#: it after its own packages (a .pth file), so making one does not install ~9,000 files into
#: the workspace; where an image lacks it, ipykernel is installed into the environment
KERNEL_SITE = Path("/opt/moonhub/kernel-site")
KERNEL_PTH = "zz-moonhub-kernel.pth"
#: the interpreter environments are made with: the image's own Python (the catalog's images
#: share it), not the image's virtual environment (its packages stay out)
BASE_PYTHON = "/usr/bin/python3"
#: the file in an environment's folder while it is being made (a crash leaves it: `list`
#: shows such an environment as broken, `create` of the same name says to remove it)
MAKING = ".moonhub-making"


class EnvironmentError_(ValueError):
    """A request that can not be done; the message says why and what to do."""


def home() -> Path:
    return Path(os.environ.get("HOME") or "/home/jovyan")


def envs_dir() -> Path:
    return home() / "envs"


def kernels_dir() -> Path:
    """Where Jupyter finds the user's kernels (its data folder under HOME, the workspace)."""
    data = os.environ.get("JUPYTER_DATA_DIR") or str(home() / ".local" / "share" / "jupyter")
    return Path(data) / "kernels"


def kernel_name(name: str) -> str:
    return f"{KERNEL_PREFIX}{name}"


def check_name(name: str) -> str:
    if not NAME.fullmatch(name):
        raise EnvironmentError_(
            f"name: {name!r} must be 1-40 lowercase letters, digits, '-' and '_', starting with a letter or digit"
        )
    return name


def check_requirements(lines: list[str], source: str = "requirements") -> list[str]:
    """The requirement lines of a requirements file or a command line, checked: packages by
    name (with versions, extras and markers) from the platform's index only. Refused, naming
    the line: URLs and paths (a file, VCS or internal address), options that change the
    index or install something else (``-i``, ``--extra-index-url``, ``-f``, ``-e``, ``-r``),
    and anything that is not a requirement. Pure."""
    from packaging.requirements import InvalidRequirement, Requirement

    out = []
    for number, raw in enumerate(lines, 1):
        line = raw.split(" #", 1)[0].strip() if not raw.lstrip().startswith("#") else ""
        if not line:
            continue
        where = f"{source}, line {number}" if source != "arguments" else "packages"
        if line.startswith("-"):
            raise EnvironmentError_(
                f"{where}: {line!r}: options are not taken; packages come from the platform's index "
                "(ask an admin to add a mirror to it)"
            )
        if "://" in line or line.startswith((".", "/", "~")) or re.match(r"^(git|hg|svn|bzr)\+", line):
            raise EnvironmentError_(
                f"{where}: {line!r}: only packages by name, from the platform's index (no URLs or paths)"
            )
        try:
            req = Requirement(line)
        except InvalidRequirement as e:
            raise EnvironmentError_(f"{where}: {line!r} is not a requirement: {e}") from None
        if req.url:
            raise EnvironmentError_(f"{where}: {line!r}: only packages by name, from the platform's index (no URLs)")
        out.append(str(req))
    return out


def kernel_spec(name: str, env: Path) -> dict[str, Any]:
    """The kernel of environment ``name`` in folder ``env`` (pure)."""
    return {
        "argv": [str(env / "bin" / "python"), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": f"{name} (environment)",
        "language": "python",
        "metadata": {"moonhub": {"environment": name}},
    }


def create(name: str, requirements: list[str], out: Any = sys.stdout) -> Path:
    """Make environment ``name`` with ``requirements`` (checked) and its kernel; on any
    failure remove what was made and raise with the reason."""
    check_name(name)
    env = envs_dir() / name
    spec_dir = kernels_dir() / kernel_name(name)
    if env.exists() or spec_dir.exists():
        raise EnvironmentError_(
            f"name: environment {name!r} exists ({env}); remove it first (moonhub-env remove {name})"
        )
    env.parent.mkdir(parents=True, exist_ok=True)
    try:
        print(f"moonhub-env: making {env} with Python {_python_version()}", file=out, flush=True)
        _run([BASE_PYTHON, "-m", "venv", str(env)], "making the environment")
        (env / MAKING).write_text("")
        python = str(env / "bin" / "python")
        packages = list(requirements)
        if KERNEL_SITE.is_dir():
            Path(_purelib(python), KERNEL_PTH).write_text(f"{KERNEL_SITE}\n")
        else:
            packages.insert(0, KERNEL_PACKAGE)
        if packages:
            print(f"moonhub-env: installing {' '.join(packages)}", file=out, flush=True)
            _run([python, "-m", "pip", "install", "--progress-bar", "off", *packages], "installing the packages")
        spec_dir.mkdir(parents=True)
        (spec_dir / "kernel.json").write_text(json.dumps(kernel_spec(name, env), indent=1))
        (env / MAKING).unlink()
    except BaseException:
        shutil.rmtree(env, ignore_errors=True)
        shutil.rmtree(spec_dir, ignore_errors=True)
        raise
    print(
        f"moonhub-env: {name} is ready: kernel {name!r} (environment) in every server you start", file=out, flush=True
    )
    return env


def remove(name: str) -> None:
    check_name(name)
    env, spec_dir = envs_dir() / name, kernels_dir() / kernel_name(name)
    if not env.exists() and not spec_dir.exists():
        raise EnvironmentError_(f"name: no environment {name!r}")
    shutil.rmtree(spec_dir, ignore_errors=True)
    shutil.rmtree(env, ignore_errors=True)


def listing() -> list[dict[str, Any]]:
    """Every environment: its name, kernel, state (ready, or broken and why), packages."""
    found = []
    folder = envs_dir()
    for env in sorted(folder.iterdir() if folder.is_dir() else []):
        if not env.is_dir() or not NAME.fullmatch(env.name):
            continue
        spec = kernels_dir() / kernel_name(env.name) / "kernel.json"
        state = "ready"
        if (env / MAKING).exists():
            state = "broken: its making stopped before the end; remove it and make it again"
        elif not (env / "bin" / "python").exists():
            state = "broken: its Python is missing"
        elif not spec.exists():
            state = "broken: its kernel is not registered"
        found.append({"name": env.name, "kernel": kernel_name(env.name), "path": str(env), "state": state})
    return found


def frozen(name: str) -> list[str]:
    """The packages environment ``name`` holds itself (``pip freeze`` of its own site, not
    the image's kernel site it reads after it): what an image of it installs."""
    check_name(name)
    env = envs_dir() / name
    python = env / "bin" / "python"
    if not python.exists() or (env / MAKING).exists():
        raise EnvironmentError_(f"name: no working environment {name!r} (moonhub-env list)")
    site = _purelib(str(python))
    got = subprocess.run(
        [str(python), "-m", "pip", "freeze", "--path", site], capture_output=True, text=True, check=False
    )
    if got.returncode:
        raise EnvironmentError_(f"name: pip freeze of {name!r} failed: {got.stderr.strip()[-300:]}")
    packages = [ln.strip() for ln in got.stdout.splitlines() if ln.strip() and not ln.startswith("#")]
    if not packages:
        raise EnvironmentError_(f"name: environment {name!r} holds no packages of its own: nothing to build")
    return packages


def _purelib(python: str) -> str:
    """An environment's own site-packages folder, as its ``python`` names it."""
    return subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip


def _python_version() -> str:
    return subprocess.run([BASE_PYTHON, "-c", "import platform; print(platform.python_version())"],
                          capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip


def _run(argv: list[str], what: str) -> None:
    """``argv`` with its output shown as it comes (pip's progress); a failure is raised
    with its last lines (pip's reason)."""
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    tail: list[str] = []
    assert proc.stdout is not None
    for line in proc.stdout:
        sys.stdout.write(line)
        sys.stdout.flush()
        tail = [*tail[-19:], line.rstrip()]
    if proc.wait():
        reason = next((t for t in reversed(tail) if t.startswith("ERROR:")), tail[-1] if tail else "")
        if "No space left on device" in "\n".join(tail):
            reason = "the workspace is full (No space left on device): free space or ask for a larger workspace"
        raise EnvironmentError_(f"{what} failed: {reason}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="moonhub-env", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = p.add_subparsers(dest="command", required=True)
    c = sub.add_parser("create", help="make an environment and its kernel")
    c.add_argument("name")
    c.add_argument("-r", "--requirements", type=Path, help="a requirements file (packages by name and version)")
    c.add_argument("packages", nargs="*", help="packages, e.g. 'lightgbm==4.5.0' scikit-learn")
    sub.add_parser("list", help="the environments, and whether each works")
    r = sub.add_parser("remove", help="remove an environment and its kernel")
    r.add_argument("name")
    i = sub.add_parser("image", help="build an image of an environment in the cluster, and follow its log")
    i.add_argument("name")
    i.add_argument("--base", help="the catalog environment to build on (default: this server's)")
    i.add_argument("--no-follow", action="store_true", help="queue the build and return")
    sub.add_parser("images", help="your images built from environments")
    args = p.parse_args(argv)
    try:
        if args.command == "create":
            reqs = check_requirements(args.packages, "arguments")
            if args.requirements:
                try:
                    text = args.requirements.read_text()
                except OSError as e:
                    raise EnvironmentError_(f"requirements: {e.strerror}: {args.requirements}") from None
                reqs += check_requirements(text.splitlines(), str(args.requirements))
            create(args.name, reqs)
        elif args.command == "remove":
            remove(args.name)
            print(f"moonhub-env: removed {args.name}")
        elif args.command == "image":
            from . import env_image_cli

            return env_image_cli.build(args.name, args.base, follow=not args.no_follow)
        elif args.command == "images":
            from . import env_image_cli

            return env_image_cli.listing()
        else:
            for env in listing():
                print(f"{env['name']:<20} {env['state']:<10} kernel {env['kernel']}  {env['path']}")
    except EnvironmentError_ as e:
        print(f"moonhub-env: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
