"""The framework images: the framework imports and reports the CUDA version it was built
for; TensorBoard is in the launcher; the GPU dashboard is installed."""

from __future__ import annotations

import pytest

from .conftest import SPEC, Container

IMAGE = "base-notebook"


@pytest.fixture
def framework(image: str) -> dict[str, str]:
    fw = SPEC.images[image].framework
    if not fw:
        pytest.skip(f"{image} has no framework")
    return fw


def test_framework_reports_its_cuda(lab: Container, framework: dict[str, str]) -> None:
    if framework["module"] == "torch":
        code = "import torch; print('FRAMEWORK', torch.__version__, torch.version.cuda)"
    else:
        code = (
            "import tensorflow as tf; b = tf.sysconfig.get_build_info();"
            "print('FRAMEWORK', tf.__version__, b['cuda_version'])"
        )
    line = next(x for x in lab.exec("python", "-c", code).splitlines() if x.startswith("FRAMEWORK "))
    version, cuda = line.split()[1:]
    assert version.startswith(framework["version"]), version
    assert cuda.startswith(framework["cuda"]), cuda


def test_tensorboard_in_the_launcher_and_gpu_dashboard(lab: Container, framework: dict[str, str]) -> None:
    servers = lab.get("/server-proxy/servers-info").json()["server_processes"]
    tb = next(s for s in servers if s["name"] == "tensorboard")
    assert tb["launcher_entry"]["enabled"] and tb["launcher_entry"]["title"] == "TensorBoard"
    assert "jupyterlab-nvdashboard" in lab.exec("jupyter", "labextension", "list")
