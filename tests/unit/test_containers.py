import pytest

from localcluster.agent.containers import ConfigError, container_argv, container_env, expand, identity, probe_port
from localcluster.agent.images import ENVS_DIR, LocalImage, repository
from localcluster.config import REPO

IMG = LocalImage(entrypoint=("tini", "--"), cmd=("start.sh",), env={"LANG": "C"}, user=1000, home="/home/jovyan")
POD = {
    "metadata": {"name": "p", "namespace": "ns", "uid": "u1", "labels": {"app": "x"}},
    "spec": {"nodeName": "n1"},
    "status": {"podIP": "127.20.0.9"},
}


@pytest.mark.parametrize(
    ("text", "env", "want"),
    [
        ("$(A)-$(B)", {"A": "1", "B": "2"}, "1-2"),
        ("$(MISSING)", {}, "$(MISSING)"),
        ("$$(A)", {"A": "1"}, "$(A)"),
        ("$A $(A)", {"A": "1"}, "$A 1"),
        ("http://$(IP):8888/", {"IP": "127.0.0.2"}, "http://127.0.0.2:8888/"),
    ],
)
def test_expand(text: str, env: dict, want: str) -> None:
    assert expand(text, env) == want


@pytest.mark.parametrize(
    ("container", "want"),
    [
        ({}, ["tini", "--", "start.sh"]),
        ({"args": ["jupyterhub-singleuser"]}, ["tini", "--", "jupyterhub-singleuser"]),
        ({"command": ["sh", "-c"], "args": ["echo $(X)"]}, ["sh", "-c", "echo 1"]),
    ],
)
def test_argv_follows_entrypoint_and_cmd_rules(container: dict, want: list) -> None:
    assert container_argv(container, IMG, {"X": "1"}) == want


def test_argv_without_any_command_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="no command"):
        container_argv({}, LocalImage(), {})


def test_env_order_and_sources() -> None:
    container = {
        "env": [
            {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "URL", "value": "http://$(IP)/"},
            {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
            {"name": "K", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "k"}}},
            {"name": "S", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "s"}}},
            {"name": "OPT", "valueFrom": {"secretKeyRef": {"name": "nope", "key": "s", "optional": True}}},
        ],
        "envFrom": [{"configMapRef": {"name": "cm"}, "prefix": "CM_"}],
    }
    env = container_env(POD, container, IMG, {"cm": {"data": {"k": "v"}}}, {"sec": {"data": {"s": "c2VjcmV0"}}})
    assert env["URL"] == "http://127.20.0.9/"
    assert (env["APP"], env["K"], env["S"], env["CM_k"], env["LANG"], env["HOME"]) == (
        "x",
        "v",
        "secret",
        "v",
        "C",
        "/home/jovyan",
    )
    assert "OPT" not in env and env["HOSTNAME"] == "p"


def test_missing_required_secret_is_a_config_error() -> None:
    container = {"env": [{"name": "S", "valueFrom": {"secretKeyRef": {"name": "gone", "key": "s"}}}]}
    with pytest.raises(ConfigError, match="secret 'gone' not found"):
        container_env(POD, container, IMG, {}, {})


def test_identity_precedence_and_run_as_non_root() -> None:
    pod = {"spec": {"securityContext": {"runAsUser": 1001, "fsGroup": 100, "supplementalGroups": [5]}}}
    who = identity(pod, {"securityContext": {"runAsGroup": 7}}, IMG)
    assert (who.uid, who.gid, who.groups) == (1001, 7, (5, 100))
    with pytest.raises(ConfigError, match="runAsNonRoot"):
        identity({"spec": {"securityContext": {"runAsNonRoot": True}}}, {}, LocalImage(user=0))


@pytest.mark.parametrize(
    ("image", "repo"),
    [
        ("busybox", "busybox"),
        ("moonhub/base-notebook:dev", "moonhub/base-notebook"),
        ("registry:5000/moonhub/base-notebook:1.0", "registry:5000/moonhub/base-notebook"),
        ("busybox@sha256:abc", "busybox"),
    ],
)
def test_repository_strips_tag_and_digest(image: str, repo: str) -> None:
    assert repository(image) == repo


def test_api_server_env_like_the_kubelet() -> None:
    env = container_env(POD, {}, IMG, {}, {}, ("127.0.0.1", 7443))
    assert (env["KUBERNETES_SERVICE_HOST"], env["KUBERNETES_SERVICE_PORT"]) == ("127.0.0.1", "7443")
    assert "KUBERNETES_SERVICE_HOST" not in container_env(POD, {}, IMG, {}, {})


def test_probe_port_by_number_or_name() -> None:
    container = {"name": "hub", "ports": [{"name": "hub", "containerPort": 8081}]}
    assert (probe_port(8081, container), probe_port("9000", container), probe_port("hub", container)) == (
        8081,
        9000,
        8081,
    )
    with pytest.raises(ConfigError, match="'api' is not a port of container 'hub'"):
        probe_port("api", container)


def test_image_env_names_the_checkout_and_the_environments() -> None:
    img = LocalImage(env={"PYTHONPATH": "$MOONHUB_REPO", "X": "$MOONHUB_ENVS/hub"})
    env = container_env(POD, {}, img, {}, {})
    assert env["PYTHONPATH"] == str(REPO) and env["X"] == f"{ENVS_DIR}/hub"
