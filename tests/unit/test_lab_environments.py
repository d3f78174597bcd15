"""moonhub-env's pure parts: names, what a requirements file may say, the kernel it registers."""

from __future__ import annotations

from pathlib import Path

import pytest
from moonhub_lab import environments as envs


@pytest.mark.parametrize("name", ["lightgbm", "proj-2", "a_b", "x" * 40])
def test_plain_names_are_taken(name: str) -> None:
    assert envs.check_name(name) == name


@pytest.mark.parametrize("name", ["", "Proj", "-x", "a/b", "..", "x" * 41, "a b"])
def test_other_names_are_refused_by_field(name: str) -> None:
    with pytest.raises(envs.EnvironmentError_, match=r"^name: "):
        envs.check_name(name)


def test_a_requirements_file_names_packages_from_the_platforms_index() -> None:
    lines = ["# pinned", "", "lightgbm==4.5.0  # the model", "scikit-learn[alldeps]>=1.5; python_version >= '3.10'"]
    assert envs.check_requirements(lines, "req.txt") == [
        "lightgbm==4.5.0",
        'scikit-learn[alldeps]>=1.5; python_version >= "3.10"',
    ]


@pytest.mark.parametrize(
    ("line", "text"),
    [
        ("pkg @ http://10.0.0.5/pkg.whl", "no URLs"),
        ("http://169.254.169.254/latest/meta-data/", "no URLs or paths"),
        ("git+https://git.internal/x.git", "no URLs or paths"),
        ("./local-dir", "no URLs or paths"),
        ("/etc/passwd", "no URLs or paths"),
        ("--index-url http://evil.internal/simple", "options are not taken"),
        ("-e .", "options are not taken"),
        ("-r other.txt", "options are not taken"),
        ("not a requirement!!", "is not a requirement"),
    ],
)
def test_urls_paths_and_options_are_refused_naming_the_line(line: str, text: str) -> None:
    with pytest.raises(envs.EnvironmentError_) as e:
        envs.check_requirements(["numpy", line], "req.txt")
    assert str(e.value).startswith("req.txt, line 2: ") and text in str(e.value)


def test_its_kernel_runs_the_environments_python() -> None:
    spec = envs.kernel_spec("lightgbm", Path("/home/jovyan/envs/lightgbm"))
    assert spec["argv"][:3] == ["/home/jovyan/envs/lightgbm/bin/python", "-m", "ipykernel_launcher"]
    assert spec["display_name"] == "lightgbm (environment)" and spec["metadata"]["moonhub"]["environment"] == "lightgbm"
    assert envs.kernel_name("lightgbm") == "env-lightgbm"
