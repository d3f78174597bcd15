"""Tests that run inside the built images. A test module names the image it is for
(``IMAGE``); its tests run for that image and every image built on it, so a child reruns
its parents' tests. The CI images (spec.yaml ``ci: true``, the PyTorch and CPU TensorFlow
images among them) must exist; the others are tested when they have been built
(``python -m images.build --gpu``)."""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import requests

from images.build import Spec, image_exists, load_spec
from tests.helpers import parameter_notebook

SPEC: Spec = load_spec()
TOKEN = "moonhub-image-test"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "image" not in metafunc.fixturenames:
        return
    base = metafunc.module.IMAGE
    names = SPEC.descendants(base)
    metafunc.parametrize("image", names, ids=names, scope="module")


@dataclass
class Container:
    name: str
    image: str
    url: str

    def exec(self, *argv: str, env: dict[str, str] | None = None, check: bool = True, user: str = "") -> str:
        flags = [f"--env={k}={v}" for k, v in (env or {}).items()] + ([f"--user={user}"] if user else [])
        r = subprocess.run(["docker", "exec", *flags, self.name, *argv], capture_output=True, text=True, timeout=300)
        if check and r.returncode:
            raise AssertionError(f"{' '.join(argv)} exited {r.returncode}: {r.stdout[-2000:]}{r.stderr[-2000:]}")
        return r.stdout + r.stderr

    def get(self, path: str) -> requests.Response:
        return requests.get(f"{self.url}{path}", headers={"Authorization": f"token {TOKEN}"}, timeout=30)


def built(image: str) -> str:
    """The reference of ``image``, which must be built: a CI image fails the test when it is
    not, another (built by ``--gpu`` only) skips it."""
    info = SPEC.images[image]
    if not image_exists(info.ref):
        if info.ci:
            pytest.fail(f"{info.ref} is not built: ./moonhub test builds it (python -m images.build)")
        pytest.skip(f"{info.ref} not built (python -m images.build --gpu)")
    return info.ref


@pytest.fixture(scope="module")
def lab(image: str) -> Iterator[Container]:
    """The image's default command (JupyterLab) running, reachable on a local port."""
    info = SPEC.images[image]
    built(image)
    name = f"moonhub-test-{image}-{uuid.uuid4().hex[:6]}"
    subprocess.run(
        [
            "docker", "run", "-d", "--name", name, "-p", "127.0.0.1::8888", info.ref,
            "jupyter", "lab", "--ip=0.0.0.0", "--port=8888", "--no-browser", f"--IdentityProvider.token={TOKEN}",
        ],
        check=True, capture_output=True,
    )  # fmt: skip
    try:
        port = subprocess.run(["docker", "port", name, "8888"], capture_output=True, text=True, check=True)
        c = Container(name, info.ref, f"http://{port.stdout.split()[0]}")
        deadline = time.monotonic() + 90
        while True:
            try:
                if c.get("/api/status").status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline:
                logs = subprocess.run(["docker", "logs", name], capture_output=True, text=True)
                raise AssertionError(
                    f"JupyterLab in {info.ref} did not answer: {logs.stdout[-2000:]}{logs.stderr[-3000:]}"
                )
            time.sleep(0.5)
        yield c
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True)


def notebook(source: str, parameters: str) -> str:
    """The JSON of a notebook with a parameters cell and ``source`` after it."""
    return json.dumps(parameter_notebook(parameters, source))
