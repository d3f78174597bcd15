"""Build, tag and size MoonHub's images from images/spec.yaml, with the machine's own means.

    python -m images.build                 # the CI images (spec.yaml `ci: true`)
    python -m images.build --gpu           # every image, the CUDA ones too
    python -m images.build pytorch-notebook  # one image and its parents
    python -m images.build --platform      # the CI images without a framework (`up` first)
    python -m images.build --frameworks --progress F --pull
                                           # the CI framework images, one after the other,
                                           # each pushed and pulled onto the local node as it
                                           # is done, progress in F (`up`, in the background)

No registry is reachable: the base OS is a Debian rootfs made with debootstrap from
Debian's mirror and imported; Debian's Docker engine is started here when none runs.
Python packages are fetched on the host (whose pip trusts this machine's TLS set-up) into
a wheelhouse cached in ~/.cache/moonhub/wheelhouse and served to the builds over the
Docker bridge, so nothing in a build reaches the internet but Debian's mirror. Layers are
cached by Docker; an unchanged image rebuilds in seconds.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from localcluster import registry
from moonhub_core import image_builds

from . import buildkit, code_server
from .push import push_image
from .wheelhouse import Wheelhouse

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
CACHE = Path(os.environ.get("MOONHUB_CACHE", Path.home() / ".cache" / "moonhub"))
WHEELHOUSE = CACHE / "wheelhouse"
DOCKER_ROOT = Path(os.environ.get("MOONHUB_DOCKER_ROOT", "/var/cache/moonhub/docker"))
BUILD_DIR = REPO / ".state" / "image-build"
#: the lines of `docker build` shown as progress
PROGRESS = ("Step ", " ---> Using cache", "Successfully built", "Successfully tagged")


def say(msg: str) -> None:
    print(f"[images {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Image:
    name: str
    parent: str
    context: str
    requirements: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    framework: dict[str, str] = field(default_factory=dict)
    ci: bool = False
    #: the image whose Dockerfile and framework this one builds with CPU wheels only
    cpu_build_of: str = ""

    @property
    def ref(self) -> str:
        return f"moonhub/{self.name}:latest"


@dataclass(frozen=True)
class Spec:
    os: dict[str, str]
    images: dict[str, Image]
    #: VS Code in the browser: code-server's and its Node.js's versions (spec.yaml `vscode`)
    vscode: dict[str, str] = field(default_factory=dict)
    #: the image builder's BuildKit and RootlessKit versions (spec.yaml `buildkit`)
    buildkit: dict[str, str] = field(default_factory=dict)

    @property
    def os_ref(self) -> str:
        return f"{self.os['image']}:{self.os['tag']}"

    def parent_ref(self, img: Image) -> str:
        return self.os_ref if img.parent == "os" else self.images[img.parent].ref

    def lineage(self, name: str) -> list[Image]:
        """``name`` and its ancestors, oldest first."""
        out: list[Image] = []
        while name != "os":
            out.insert(0, self.images[name])
            name = self.images[name].parent
        return out

    def descendants(self, name: str) -> list[str]:
        """``name`` and every image built on it."""
        return [n for n in self.images if name in [i.name for i in self.lineage(n)]]


def load_spec(path: Path = HERE / "spec.yaml") -> Spec:
    doc = yaml.safe_load(path.read_text())
    images = {}
    for name, raw in (doc.get("images") or {}).items():
        unknown = set(raw) - {"parent", "context", "requirements", "tags", "framework", "ci", "cpu_build_of"}
        if unknown:
            raise SystemExit(f"{path}: images.{name}: unknown key(s) {', '.join(sorted(unknown))}")
        images[name] = Image(name=name, **raw)
    vscode = doc.get("vscode") or {}
    if set(vscode) != {"code_server", "node"}:
        raise SystemExit(f"{path}: vscode: needs code_server and node (versions), has {sorted(vscode)}")
    kit = doc.get("buildkit") or {}
    if set(kit) != {"buildkit", "rootlesskit"}:
        raise SystemExit(f"{path}: buildkit: needs buildkit and rootlesskit (versions), has {sorted(kit)}")
    spec = Spec(
        os=doc["os"],
        images=images,
        vscode={k: str(v) for k, v in vscode.items()},
        buildkit={k: str(v) for k, v in kit.items()},
    )
    for img in images.values():
        if img.parent != "os" and img.parent not in images:
            raise SystemExit(f"{path}: images.{img.name}.parent: no image {img.parent!r}")
        if img.cpu_build_of and img.cpu_build_of not in images:
            raise SystemExit(f"{path}: images.{img.name}.cpu_build_of: no image {img.cpu_build_of!r}")
        if not (HERE / img.context / "Dockerfile").exists():
            raise SystemExit(f"{path}: images.{img.name}.context: no {img.context}/Dockerfile")
        spec.lineage(img.name)  # a cycle would not end; the names above make that impossible
    return spec


def run(*argv: str, **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, check=True, text=True, **kw)


# ---- the Docker engine ------------------------------------------------------------------
def docker_ok() -> bool:
    return subprocess.run(["docker", "info"], capture_output=True).returncode == 0


def ensure_docker() -> None:
    if not shutil.which("dockerd"):
        say("installing Debian's Docker engine and debootstrap (apt)")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        if subprocess.run(["apt-get", "install", "-y", "-q", "docker.io", "debootstrap"], env=env).returncode:
            run("apt-get", "update", "-q")
            run("apt-get", "install", "-y", "-q", "docker.io", "debootstrap", env=env)
    if docker_ok():
        return
    DOCKER_ROOT.mkdir(parents=True, exist_ok=True)
    log = DOCKER_ROOT.parent / "dockerd.log"
    say(f"starting dockerd (data in {DOCKER_ROOT}, log {log})")
    with log.open("ab") as out:
        subprocess.Popen(
            ["dockerd", "--data-root", str(DOCKER_ROOT), "--pidfile", "/var/run/moonhub-dockerd.pid"],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    for _ in range(60):
        if docker_ok():
            return
        time.sleep(1)
    raise SystemExit(f"dockerd did not start; see {log}")


def image_exists(ref: str) -> bool:
    return subprocess.run(["docker", "image", "inspect", ref], capture_output=True).returncode == 0


# ---- the base OS ------------------------------------------------------------------------
def ensure_os(spec: Spec) -> None:
    if image_exists(spec.os_ref):
        return
    suite, mirror = spec.os["suite"], spec.os["mirror"]
    tar = CACHE / "rootfs" / f"debian-{suite}.tar"
    if not tar.exists():
        root = CACHE / "rootfs" / f"debian-{suite}"
        shutil.rmtree(root, ignore_errors=True)
        root.parent.mkdir(parents=True, exist_ok=True)
        say(f"debootstrap: a minimal Debian {suite} from {mirror} (a minute or so)")
        run("debootstrap", "--variant=minbase", "--include=ca-certificates", suite, str(root), mirror)
        (root / "etc" / "apt" / "sources.list").write_text(
            f"deb {mirror} {suite} main\ndeb {mirror} {suite}-updates main\n"
            f"deb {mirror.rsplit('/', 1)[0]}/debian-security {suite}-security main\n"
        )
        shutil.rmtree(root / "var" / "cache" / "apt" / "archives", ignore_errors=True)
        run("tar", "-C", str(root), "-cf", str(tar), ".")
        shutil.rmtree(root)
    say(f"importing the Debian {suite} rootfs as {spec.os_ref}")
    with tar.open("rb") as f:
        run("docker", "import", "-c", 'CMD ["bash"]', "-", spec.os_ref, stdin=f, stdout=subprocess.DEVNULL)


# ---- what goes into the builds ----------------------------------------------------------
def _digest(*paths: Path) -> str:
    h = hashlib.sha256()
    for p in paths:
        h.update(p.read_bytes())
    return h.hexdigest()[:16]


def target_flags(os_spec: dict[str, str]) -> list[str]:
    """pip's flags for the images' interpreter and libc (Debian's python3, not this one)."""
    glibc_minor = int(os_spec["glibc"].split(".")[1])
    platforms = [f"manylinux_2_{m}_x86_64" for m in range(glibc_minor, 4, -1)]
    platforms += ["manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64"]
    return [
        "--only-binary=:all:",
        f"--python-version={os_spec['python']}",
        "--implementation=cp",
        *(f"--abi={a}" for a in (f"cp{''.join(os_spec['python'].split('.')[:2])}", "abi3", "none")),
        *(f"--platform={p}" for p in platforms),
    ]


def fill_wheelhouse(spec: Spec, inputs: list[Path]) -> None:
    """Wheels for the images' Python (requirements files, and what our own wheels need),
    fetched on this host once per input content."""
    WHEELHOUSE.mkdir(parents=True, exist_ok=True)
    for f in inputs:
        # an image whose folder holds constraints.txt (the hub's, images/lock.py) gets exactly
        # the versions it pins
        pinned = f.parent / "constraints.txt"
        pins = [pinned] if pinned.is_file() else []
        stamp = WHEELHOUSE / f".{f.parent.name}-{f.name}.{_digest(f, *pins)}"
        if stamp.exists():
            continue
        say(f"wheelhouse: {f.relative_to(REPO)}")
        what = [*(a for p in pins for a in ("-c", str(p))), *(["-r", str(f)] if f.suffix == ".txt" else [str(f)])]
        pip = [sys.executable, "-m", "pip", "download", "-q", *target_flags(spec.os), "--find-links", str(WHEELHOUSE)]
        run(*pip, "-d", str(WHEELHOUSE), *what)
        stamp.touch()


def own_wheel(project: Path, into: Path) -> None:
    run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(into), str(project))
    shutil.rmtree(project / "build", ignore_errors=True)


def lab_wheel(into: Path) -> None:
    """The lab extension's wheel, kept in the cache by the content of what it is built from.
    Its bundle differs by the checkout's path (webpack's module ids), so each fresh clone
    would make a new wheel and rebuild every image above it, the 8 GB PyTorch layer too;
    the same sources now give the same bytes."""
    project = REPO / "lab_extension"
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "lab_extension"], cwd=REPO, capture_output=True, text=True
    )
    if listed.returncode:  # not a git checkout: build it, uncached
        own_wheel(project, into)
        return
    inputs = [REPO / f for f in listed.stdout.split()] + [
        REPO / "jobs_service" / "openapi.yaml",
        HERE / "base-notebook" / "requirements.txt",  # the build environment's JupyterLab
    ]
    h = hashlib.sha256()
    for f in sorted(i for i in inputs if i.is_file()):
        h.update(str(f.relative_to(REPO)).encode() + b"\0" + f.read_bytes() + b"\0")
    cached = CACHE / "lab-wheel" / h.hexdigest()[:16]
    if not any(cached.glob("*.whl")):
        building = cached.with_name(cached.name + ".partial")
        shutil.rmtree(building, ignore_errors=True)
        # the builder skips the bundle when an earlier one is there (skip-if-exists): in a
        # working tree that is a bundle of older sources, which would be cached as this one
        shutil.rmtree(project / "moonhub_lab" / "labextension", ignore_errors=True)
        own_wheel(project, building)
        shutil.rmtree(cached, ignore_errors=True)
        building.rename(cached)
    for wheel in cached.glob("*.whl"):
        shutil.copy2(wheel, into)


def chp(into: Path) -> None:
    """configurable-http-proxy for the hub image, at the version the repository pins."""
    version = yaml.safe_load((REPO / "package.json").read_text())["dependencies"]["configurable-http-proxy"]
    cached = CACHE / "chp" / version.strip("^~")
    if not (cached / "node_modules" / ".bin" / "configurable-http-proxy").exists():
        say(f"npm: configurable-http-proxy@{version}")
        cached.mkdir(parents=True, exist_ok=True)
        run(
            "npm",
            "install",
            "--no-audit",
            "--no-fund",
            "--omit=dev",
            "--prefix",
            str(cached),
            f"configurable-http-proxy@{version}",
        )
    shutil.copytree(cached, into, symlinks=True)


def context(spec: Spec, img: Image) -> Path:
    ctx = BUILD_DIR / img.name
    shutil.rmtree(ctx, ignore_errors=True)
    shutil.copytree(HERE / img.context, ctx)
    if img.context != img.name:  # a shared folder: only this image's requirements go in, so
        for other in ctx.glob("*.txt"):  # editing another image's file keeps this one's cache
            if other.name not in img.requirements:
                other.unlink()
    if img.name == "base-notebook":
        lab_wheel(ctx)
        code_server.install(spec.vscode["code_server"], spec.vscode["node"], CACHE, ctx / "code-server", say)
    if img.name == "image-builder":
        buildkit.install(spec.buildkit["buildkit"], spec.buildkit["rootlesskit"], CACHE, ctx / "buildkit", say)
    if img.name == "hub":
        own_wheel(REPO, ctx)
        chp(ctx / "chp")
    return ctx


def build(spec: Spec, img: Image, ctx: Path, wheels: str, refs: list[str] | None = None) -> float:
    """``docker build`` of ``img`` from ``ctx``, tagged ``latest`` and its spec tags (or
    ``refs`` alone)."""
    t0 = time.monotonic()
    argv = [
        "docker", "build",
        "--build-arg", f"PARENT={spec.parent_ref(img)}",
        "--build-arg", f"WHEELS={wheels}",
        "--build-arg", f"WHEELS_HOST={wheels.split('/')[2].split(':')[0]}",
        "--label", f"io.moonhub.image={img.name}",
    ]  # fmt: skip
    if img.requirements and img.context != img.name:
        argv += ["--build-arg", f"REQUIREMENTS={' '.join(img.requirements)}"]
    for ref in refs or [img.ref, *(f"moonhub/{img.name}:{tag}" for tag in img.tags)]:
        argv += ["-t", ref]
    say(f"building {img.ref} on {spec.parent_ref(img)}")
    proc = subprocess.Popen([*argv, str(ctx)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    for line in proc.stdout:  # progress: the engine's step lines, prefixed
        if line.startswith(PROGRESS) or "ERROR" in line:
            print(f"  {img.name}: {line.rstrip()}", file=sys.stderr, flush=True)
    if proc.wait():
        raise SystemExit(f"building {img.name} failed (docker build exit {proc.returncode}); context {ctx}")
    return time.monotonic() - t0


def build_at(commit: str, name: str, tag: str) -> str:
    """The hub image as commit ``commit`` made it (that tree's Dockerfile, requirements and
    MoonHub's own wheel; today's OS image and configurable-http-proxy), pushed to the local
    registry as ``moonhub/<name>:<tag>`` only: the previous release's image, for the upgrade
    test (tests/cluster/test_chart_upgrade.py). Returns its registry reference."""
    if name != "hub":
        raise SystemExit(f"--at builds the hub image only (its wheel is MoonHub's code), not {name}")
    tree = BUILD_DIR / f"tree-{commit[:12]}"
    shutil.rmtree(tree, ignore_errors=True)
    tree.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(REPO), "archive", commit], capture_output=True)
    if archive.returncode:
        raise SystemExit(f"git archive {commit}: {archive.stderr.decode(errors='replace').strip()}")
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive.stdout, check=True)
    raw = yaml.safe_load((tree / "images" / "spec.yaml").read_text())["images"][name]
    img = Image(name=name, **raw)
    ctx = BUILD_DIR / f"{name}-at-{commit[:12]}"
    shutil.rmtree(ctx, ignore_errors=True)
    shutil.copytree(tree / "images" / img.context, ctx)
    own_wheel(tree, ctx)
    chp(ctx / "chp")
    spec = load_spec()
    ensure_docker()
    ensure_os(spec)
    fill_wheelhouse(spec, [ctx / r for r in img.requirements] + list(ctx.glob("*.whl")))
    registry.ensure()
    with Wheelhouse(WHEELHOUSE, CACHE) as wheels:
        took = build(spec, img, ctx, wheels, refs=[f"moonhub/{name}:{tag}"])
    push_image(name, [tag], say)
    shutil.rmtree(tree, ignore_errors=True)
    say(f"moonhub/{name}:{tag} as of {commit[:12]} built in {took:.1f}s")
    return registry.ref(f"moonhub/{name}", tag)


def size(ref: str) -> int:
    return int(run("docker", "image", "inspect", ref, "-f", "{{.Size}}", capture_output=True).stdout.strip())


def wanted_images(spec: Spec, names: list[str], gpu: bool = False, only: str = "") -> list[str]:
    """The images asked for (pure): ``names``, else the CI images (every image with ``gpu``),
    of those only the ones with a framework (``only="frameworks"``) or without
    (``only="platform"``)."""
    for n in names:
        if n not in spec.images:
            raise SystemExit(f"no image {n!r} in images/spec.yaml (known: {', '.join(spec.images)})")
    out = names or [n for n, i in spec.images.items() if i.ci or gpu]
    if only == "frameworks":
        out = [n for n in out if spec.images[n].framework]
    elif only == "platform":
        out = [n for n in out if not spec.images[n].framework]
    return out


class Progress:
    """The progress of the images asked for, written for ``./moonhub status`` and the spawn
    form (:mod:`moonhub_core.image_builds`); nothing when no file is named."""

    def __init__(self, path: Path | None, names: list[str]) -> None:
        self.path = path
        self.entries = [
            {"name": n, "state": "waiting", "position": i + 1, "of": len(names)} for i, n in enumerate(names)
        ]
        self._write()

    def set(self, name: str, state: str, message: str = "") -> None:
        for e in self.entries:
            if e["name"] == name:
                e["state"], e["message"] = state, message
        self._write()

    def _write(self) -> None:
        if self.path is not None:
            image_builds.write(self.path, self.entries)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m images.build", description=__doc__.split("\n\n")[0])
    p.add_argument("names", nargs="*", help="images to build (with their parents); default: the CI images")
    p.add_argument("--gpu", action="store_true", help="build every image, the CUDA ones too")
    which = p.add_mutually_exclusive_group()
    which.add_argument(
        "--platform", action="store_true", help="only those without a framework (the hub and a Python server need them)"
    )
    which.add_argument("--frameworks", action="store_true", help="only the framework images")
    p.add_argument("--progress", type=Path, help="write each image's progress to this JSON file")
    p.add_argument("--pull", action="store_true", help="pull each image onto the local cluster's node once pushed")
    p.add_argument("--at", metavar="COMMIT", help="build the hub image as this commit made it (with --tag)")
    p.add_argument("--tag", help="with --at: the one tag it is pushed under")
    a = p.parse_args(argv)
    if a.at:
        if not a.tag or a.names != ["hub"]:
            p.error("--at builds one image, hub, under one --tag")
        print(build_at(a.at, "hub", a.tag))
        return
    spec = load_spec()
    only = "frameworks" if a.frameworks else "platform" if a.platform else ""
    wanted = wanted_images(spec, a.names, a.gpu, only)
    progress = Progress(a.progress, wanted)
    try:
        build_all(spec, wanted, progress, a.pull)
    except BaseException as e:
        for entry in progress.entries:
            if entry["state"] not in ("ready", "failed"):
                progress.set(str(entry["name"]), "failed", str(e) or type(e).__name__)
        raise


def build_all(spec: Spec, wanted: list[str], progress: Progress, pull: bool) -> None:
    """Build ``wanted`` (their parents first), push them to the local registry; with
    ``pull``, each is pushed and pulled onto the node as soon as it is built."""
    order: list[Image] = []
    for n in wanted:
        for img in spec.lineage(n):
            if img not in order:
                order.append(img)
    ensure_docker()
    ensure_os(spec)
    contexts = {img.name: context(spec, img) for img in order}
    own = [w for ctx in contexts.values() for w in ctx.glob("*.whl")]
    fill_wheelhouse(spec, [HERE / i.context / r for i in order for r in i.requirements] + own)
    # the base OS too: tests and the storage provisioner's helper pods use it as a shell image
    registry.ensure()
    push_image(spec.os["image"].split("/", 1)[1], [spec.os["tag"]], say)
    times = {}
    with Wheelhouse(WHEELHOUSE, CACHE) as wheels:
        for img in order:
            progress.set(img.name, "building")
            times[img.name] = build(spec, img, contexts[img.name], wheels)
            progress.set(img.name, "pushing")
            push_image(img.name, ["latest", *img.tags], say)
            if pull:
                progress.set(img.name, "pulling")
                onto_node([registry.ref(f"moonhub/{img.name}", tag) for tag in ["latest", *img.tags]])
            progress.set(img.name, "ready")
    # a rebuilt image leaves its predecessor untagged: drop those (MoonHub's own only)
    subprocess.run(["docker", "image", "prune", "-f", "--filter", "label=io.moonhub.image"], capture_output=True)
    for img in order:
        tags = ", ".join(img.tags)
        say(f"{img.ref:40} {size(img.ref) / 1e9:6.2f} GB  built in {times[img.name]:6.1f}s  tags: {tags}")


def onto_node(refs: list[str]) -> None:
    """Pull ``refs`` into the local cluster's node (the first server of them starts at once)."""
    from localcluster import cli, config

    t0 = time.monotonic()
    cli.pull_onto_node(config.ClusterConfig.load(config.default_state_dir()), refs)
    say(f"pulled {', '.join(refs)} onto the node in {time.monotonic() - t0:.1f}s")


if __name__ == "__main__":
    main()
