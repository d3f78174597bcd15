"""Images built from environments: the pure parts (moonhub_core/env_images.py, the spawn
option in spawner_ext/own_images.py, the ``builds`` settings)."""

from __future__ import annotations

import json
import re
from dataclasses import replace

import pytest

from moonhub_core import env_images as ei
from moonhub_core.errors import FieldError, NotEntitled, UnknownChoice
from moonhub_core.platform import (
    DEFAULT_CONFIG,
    BuildsSection,
    JobsSection,
    PlatformConfig,
    check_consistency,
    load,
)
from moonhub_core.typed import DocumentError
from spawner_ext import own_images

BASE = "127.0.0.1:5000/moonhub/base-notebook@sha256:" + "a" * 64


def test_a_request_names_the_environment_its_frozen_packages_and_a_base() -> None:
    req = ei.check_request(
        {"environment": "lgbm", "packages": ["lightgbm==4.5.0", "Pandas[pa]==2.2.3"], "base": "python"}
    )
    assert req == ei.Request("lgbm", ("lightgbm==4.5.0", "Pandas[pa]==2.2.3"), "python")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ([], "body"),
        ({"environment": "lgbm", "packages": ["x==1"], "base": "python", "image": "evil"}, "image"),
        ({"environment": "../x", "packages": ["x==1"], "base": "python"}, "environment"),
        ({"environment": "Upper", "packages": ["x==1"], "base": "python"}, "environment"),
        ({"environment": "lgbm", "packages": ["x==1"], "base": ""}, "base"),
        ({"environment": "lgbm", "packages": [], "base": "python"}, "packages"),
        ({"environment": "lgbm", "packages": "x==1", "base": "python"}, "packages"),
        (
            {"environment": "lgbm", "packages": ["x==1", "pkg @ http://10.0.0.5/pkg.whl"], "base": "python"},
            "packages[1]",
        ),
        ({"environment": "lgbm", "packages": ["--index-url=http://evil/"], "base": "python"}, "packages[0]"),
        ({"environment": "lgbm", "packages": ["git+https://x/y"], "base": "python"}, "packages[0]"),
        ({"environment": "lgbm", "packages": ["x>=1"], "base": "python"}, "packages[0]"),
        ({"environment": "lgbm", "packages": ["x==1\nRUN curl evil"], "base": "python"}, "packages[0]"),
        ({"environment": "lgbm", "packages": ["x==1", "X_==2"], "base": "python"}, "packages[1]"),
        ({"environment": "lgbm", "packages": [3], "base": "python"}, "packages[0]"),
        ({"environment": "lgbm", "packages": [f"p{i}==1" for i in range(301)], "base": "python"}, "packages"),
    ],
)
def test_bad_requests_are_refused_naming_the_field(body: object, field: str) -> None:
    with pytest.raises(FieldError) as e:
        ei.check_request(body)
    assert e.value.field == field and e.value.status == 400


def test_repositories_are_per_user_and_names_that_had_to_change_never_meet() -> None:
    assert ei.repository("moonhub-users", "ada", "lgbm") == "moonhub-users/ada/lgbm"
    a, b = ei.repository("p", "Ada", "e"), ei.repository("p", "ada@x", "e")
    assert a != b and a.startswith("p/ada-") and b.startswith("p/ada-x-")
    assert ei.repository("p/", "..", "e").startswith("p/user-")


def test_the_dockerfile_is_the_base_by_digest_plus_the_requirements_and_runs_as_a_user() -> None:
    text = ei.dockerfile(BASE, "ada", "lgbm", "http://10.85.0.1:3141/index/", "10.85.0.1")
    lines = text.splitlines()
    assert f"FROM {BASE}" in lines
    assert not any(ln.startswith("# syntax") for ln in lines), "BuildKit's own frontend: no image to fetch"
    assert lines.index("USER root") < lines.index(f"USER {ei.RUN_AS}")
    run = next(ln for ln in lines if ln.startswith("RUN "))
    assert "/opt/moonhub/venv/bin/pip install" in run and "--index-url http://10.85.0.1:3141/index/" in run
    assert "--trusted-host 10.85.0.1" in run and "-r /opt/moonhub/environment-requirements.txt" in run
    # the packages never go in the Dockerfile (the file carries them, checked)
    assert (
        "lightgbm" not in text
        and text.endswith("\n")
        and f"USER {ei.RUN_AS}" == [ln for ln in lines if ln.startswith("USER")][-1]
    )


def _pod(secret: str = "") -> dict:
    return ei.build_pod(
        name="moonhub-image-build-7",
        build_id=7,
        owner="ada",
        builder_image="reg/moonhub/image-builder:latest",
        dockerfile_text="FROM x\n",
        packages=("a==1", "b==2"),
        push_to="10.85.0.1:5000/moonhub-users/ada/lgbm:build-7",
        plain_http_registries=["10.85.0.1:5000"],
        push_secret=secret,
        bounds=ei.Bounds("2", "4Gi", "30Gi", 1800, 10**9),
    )


def test_the_build_pod_is_bounded_and_only_the_push_holds_the_login() -> None:
    pod = _pod("moonhub-builds/push-login")
    spec = pod["spec"]
    assert spec["automountServiceAccountToken"] is False and spec["activeDeadlineSeconds"] == 1800
    (build,), (push,) = spec["initContainers"], spec["containers"]
    assert build["resources"]["limits"] == {"cpu": "2", "memory": "4Gi", "ephemeral-storage": "30Gi"}
    assert {"name": "work", "emptyDir": {"sizeLimit": "30Gi"}} in spec["volumes"]
    # the build (where packages' own scripts run) has no login, no secret mounted
    assert [m["name"] for m in build["volumeMounts"]] == ["work"]
    assert all("AUTH" not in e["name"] for e in build["env"])
    assert {m["name"] for m in push["volumeMounts"]} == {"work", "push-login"}
    assert {"name": "PUSH_AUTHFILE", "value": "/run/push-login/config.json"} in push["env"]
    env = {e["name"]: e["value"] for e in build["env"]}
    assert env["BUILD_REQUIREMENTS"] == "a==1\nb==2" and env["BUILD_PLAIN_HTTP_REGISTRIES"] == "10.85.0.1:5000"
    assert env["BUILD_DISK_BYTES"] == str(30 * 2**30)  # the build's own watch of its disk
    # both run as uid 1000; the push as the restricted level asks, the build with what a user
    # namespace needs and nothing more
    assert build["securityContext"]["runAsUser"] == push["securityContext"]["runAsUser"] == 1000
    assert "capabilities" not in build["securityContext"]
    assert push["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert push["securityContext"]["allowPrivilegeEscalation"] is False
    assert {e["name"]: e["value"] for e in push["env"]}["PUSH_TLS_VERIFY"] == "false"
    assert pod["metadata"]["labels"][ei.BUILD_ID] == "7"
    assert "push-login" not in json.dumps(_pod())


def _removal(push_secret: str = "", ref: str = "10.85.0.1:5001/moonhub-users/ann/tab@sha256:" + "a" * 64) -> dict:
    return ei.removal_pod(
        name="image-removal-7",
        build_id=7,
        owner="ann",
        builder_image="builder@sha256:1",
        ref=ref,
        plain_http_registries=["10.85.0.1:5001"],
        push_secret=push_secret,
    )


def test_a_removed_builds_image_is_deleted_by_digest_with_the_push_login_alone() -> None:
    pod = _removal("moonhub-builds/push-login")
    spec = pod["spec"]
    (c,) = spec["containers"]
    assert c["command"] == [
        "skopeo", "delete", "--retry-times", "3", "--tls-verify=false", "--authfile", "/run/push-login/config.json",
        "docker://10.85.0.1:5001/moonhub-users/ann/tab@sha256:" + "a" * 64,
    ]  # fmt: skip
    assert c["volumeMounts"] == [{"name": "push-login", "mountPath": "/run/push-login", "readOnly": True}]
    assert spec["automountServiceAccountToken"] is False and spec["restartPolicy"] == "Never"
    assert spec["securityContext"] == {"fsGroup": 1000}, "its user reads the login (mode 0440, the pod's group)"
    assert c["securityContext"]["capabilities"] == {"drop": ["ALL"]} and c["securityContext"]["runAsNonRoot"]
    assert pod["metadata"]["labels"] == {"moonhub.io/component": ei.REMOVAL, ei.BUILD_ID: "7"}
    # no login configured: none mounted; an HTTPS registry is verified
    bare = _removal(ref="registry.example/u/e@sha256:" + "b" * 64)["spec"]
    assert bare["volumes"] == [] and "--authfile" not in bare["containers"][0]["command"]
    assert "--tls-verify=true" in bare["containers"][0]["command"]
    # a tag could name another image by then: only a digest
    with pytest.raises(ValueError, match="digest"):
        _removal(ref="10.85.0.1:5001/moonhub-users/ann/tab:build-7")


def test_a_removal_pods_end_is_read_from_its_status() -> None:
    assert ei.removal_outcome(_status(phase="Running")) is None
    assert ei.removal_outcome(_status(phase="Succeeded")) == (True, "")
    said = "Unable to delete ...: unsupported"
    failed = _status(phase="Failed", containerStatuses=[{"state": {"terminated": {"exitCode": 1, "message": said}}}])
    assert ei.removal_outcome(failed) == (False, said)
    assert ei.removal_outcome(_status(phase="Failed", reason="DeadlineExceeded")) == (False, "DeadlineExceeded")


def test_an_image_the_catalog_or_another_build_uses_stays_in_the_registry() -> None:
    d = "sha256:" + "c" * 64
    assert ei.still_used(d, ["img/a:1@sha256:" + "0" * 64], ["sha256:" + "1" * 64]) is None
    assert "catalog" in (ei.still_used(d, [f"127.0.0.1:5000/moonhub-users/ann/tab:build-7@{d}"], []) or "")
    assert "another build" in (ei.still_used(d, [], [d]) or "")
    assert ei.still_used("", [], []) == "nothing was pushed"


def _status(**kw: object) -> dict:
    return {"status": kw}


def test_a_build_pods_end_is_read_from_its_status() -> None:
    assert ei.pod_outcome(_status(phase="Pending")) is None
    assert ei.pod_outcome(_status(phase="Running", initContainerStatuses=[{"state": {"running": {}}}])) is None
    pushed = _status(
        phase="Succeeded",
        initContainerStatuses=[{"state": {"terminated": {"exitCode": 0}}}],
        containerStatuses=[
            {"state": {"terminated": {"exitCode": 0, "message": '{"digest": "sha256:ab", "bytes": 9}'}}}
        ],
    )
    assert ei.pod_outcome(pushed) == ("pushed", "", {"digest": "sha256:ab", "bytes": 9})
    failed = _status(
        phase="Failed",
        initContainerStatuses=[
            {
                "state": {
                    "terminated": {"exitCode": 1, "message": "...\nERROR: No matching distribution found for nosuch==1"}
                }
            }
        ],
    )
    state, said, _ = ei.pod_outcome(failed)  # type: ignore[misc]
    assert state == "failed" and "No matching distribution found for nosuch==1" in said
    oom = _status(
        phase="Failed", initContainerStatuses=[{"state": {"terminated": {"exitCode": 137, "reason": "OOMKilled"}}}]
    )
    assert "out of memory (builds.memory)" in ei.pod_outcome(oom)[1]  # type: ignore[index]
    step_oom = _status(
        phase="Failed",
        initContainerStatuses=[
            {
                "state": {
                    "terminated": {
                        "exitCode": 1,
                        "message": 'ERROR: process "pip" did not complete successfully: exit code: 137',
                    }
                }
            }
        ],
    )
    assert "out of memory" in ei.pod_outcome(step_oom)[1]  # type: ignore[index]
    volume = _status(
        phase="Failed", reason="Evicted", message='Usage of EmptyDir volume "work" exceeds the limit "1Gi".'
    )
    assert "more disk than it may" in ei.pod_outcome(volume)[1]  # type: ignore[index]
    watched = _status(
        phase="Failed",
        initContainerStatuses=[
            {
                "state": {
                    "terminated": {
                        "exitCode": ei.OVER_DISK,
                        "message": "moonhub-build: ERROR: the build used 2050 MiB of disk, more than it may "
                        "(1024 MiB, builds.disk): stopped",
                    }
                }
            }
        ],
    )
    state, said, _ = ei.pod_outcome(watched)  # type: ignore[misc]
    assert state == "failed" and said.startswith("the build used more disk than it may (builds.disk)")
    assert "2050 MiB" in said
    late = _status(phase="Failed", reason="DeadlineExceeded")
    assert "time limit (builds.timeout)" in ei.pod_outcome(late)[1]  # type: ignore[index]
    disk = _status(
        phase="Failed",
        reason="Evicted",
        message="Pod ephemeral local storage usage exceeds the total limit of containers 1Gi.",
    )
    assert "more disk than it may (builds.disk)" in ei.pod_outcome(disk)[1]  # type: ignore[index]
    big = _status(
        phase="Failed",
        initContainerStatuses=[{"state": {"terminated": {"exitCode": 0}}}],
        containerStatuses=[
            {"state": {"terminated": {"exitCode": 3, "message": '{"refused": "too-large", "bytes": 12}'}}}
        ],
    )
    assert "over the platform's limit (builds.max_image_bytes)" in ei.pod_outcome(big)[1]  # type: ignore[index]


def test_the_reason_of_a_failed_build_is_the_steps_own_error() -> None:
    log = """#7 [2/3] RUN /opt/moonhub/venv/bin/pip install -r req.txt
#7 1.902 ERROR: Could not find a version that satisfies the requirement nosuch==1.0 (from versions: none)
#7 1.903 ERROR: No matching distribution found for nosuch==1.0
#7 ERROR: process "/bin/sh -c pip install" did not complete successfully: exit code: 1
error: failed to solve: process "/bin/sh -c pip install" did not complete successfully: exit code: 1
moonhub-build: the build failed (exit 1)"""
    assert ei.reason_in_log(log).startswith("ERROR: Could not find a version that satisfies the requirement nosuch")
    assert ei.reason_in_log("a\nlast words\n") == "last words" and ei.reason_in_log("") == ""


def test_an_image_that_runs_as_root_fails_its_check() -> None:
    assert ei.config_problems({"config": {"User": "1000"}}) == []
    assert ei.config_problems({"config": {"User": "jovyan:users"}}) == []
    for user in ("", "0", "root", "0:0"):
        assert ei.config_problems({"config": {"User": user}}), user
    assert ei.config_problems({})


def test_added_bytes_counts_the_layers_the_base_lacks() -> None:
    base = {"layers": [{"digest": "a", "size": 10}, {"digest": "b", "size": 20}]}
    assert ei.added_bytes({"layers": [*base["layers"], {"digest": "c", "size": 5}]}, base) == 5


def test_the_spawn_option_names_one_of_the_users_ready_images() -> None:
    assert own_images.parse(None) is None and own_images.parse([""]) is None and own_images.parse(["7"]) == 7
    for bad in ("x", "-1", True, "1.5"):
        with pytest.raises(UnknownChoice):
            own_images.parse(bad)
    mine = [{"id": 7, "base": "python", "image": "r/u/a/e@sha256:1"}, {"id": 8, "base": "python", "image": ""}]
    assert own_images.pick(mine, 7, None)["id"] == 7
    assert own_images.pick(mine, 7, ["python"])["id"] == 7
    with pytest.raises(NotEntitled):
        own_images.pick(mine, 9, None)  # someone else's (not in the list) or none
    with pytest.raises(NotEntitled):
        own_images.pick(mine, 8, None)  # not ready
    with pytest.raises(UnknownChoice):
        own_images.pick(mine, 7, "pytorch")


def test_builds_settings_are_checked() -> None:
    example = load(DEFAULT_CONFIG)
    assert example.builds.enabled and PlatformConfig().builds.enabled is False  # off unless said
    on = BuildsSection(enabled=True, builder_image="r/moonhub/image-builder", registry="r:5000")
    with pytest.raises(DocumentError, match=r"needs jobs\.enabled"):
        check_consistency(replace(example, builds=on, jobs=JobsSection(enabled=False)))
    check_consistency(replace(example, builds=on))
    for bad, words in [
        (BuildsSection(memory="lots"), "builds.memory"),
        (BuildsSection(at_once=0), "builds.at_once"),
        (BuildsSection(removal_grace=-1), "builds.removal_grace"),
        (BuildsSection(enabled=True, registry="r:5000"), "builds.builder_image"),
        (BuildsSection(enabled=True, builder_image="b", registry="r:5000/x"), "no path"),
        (BuildsSection(enabled=True, builder_image="b", registry="r", push_secret="x"), "builds.push_secret"),
    ]:
        with pytest.raises(DocumentError, match=re.escape(words)):
            check_consistency(replace(example, builds=bad))
