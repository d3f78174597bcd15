"""The catalog's GPU budgets as Kueue objects, and reading admissions back (pure)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from localcluster import kueue
from moonhub_core import admissions
from moonhub_core import queue_objects as q
from moonhub_core.admissions import workload_gpus
from moonhub_core.catalog import CatalogError, load
from moonhub_core.kueue_api import admission, physical_gpus
from tests.helpers import example_catalog

PHYSICAL = {"a100": 8, "v100": 8, "t4": 4}


def _by(objs: list[dict], kind: str) -> dict[str, dict]:
    return {o["metadata"]["name"]: o for o in objs if o["kind"] == kind}


def test_each_gpu_type_is_a_flavor_with_its_node_labels_and_the_budget_has_its_own() -> None:
    flavors = _by(q.shared_objects(example_catalog(), PHYSICAL), "ResourceFlavor")
    assert set(flavors) == {"moonhub-gpus", "moonhub-compute", "moonhub-gpu-a100", "moonhub-gpu-v100", "moonhub-gpu-t4"}
    other = _by(q.shared_objects(example_catalog(), PHYSICAL, "staging"), "ResourceFlavor")
    assert "staging-gpu-t4" in other and other["staging-gpu-t4"]["metadata"]["labels"][q.MANAGED] == "staging"
    assert flavors["moonhub-gpu-t4"]["spec"]["nodeLabels"] == {"nvidia.com/gpu.product": "Tesla-T4"}
    assert flavors["moonhub-gpus"]["spec"] == {}, "the budget flavor fits every node"
    assert flavors["moonhub-compute"]["spec"] == {}, "so does the one of CPU, memory and pods"
    assert all(f["metadata"]["labels"][q.MANAGED] == "moonhub" for f in flavors.values())


def test_the_cluster_cohort_holds_the_physical_gpus_and_the_pool_no_team_owns() -> None:
    root = _by(q.shared_objects(example_catalog(), PHYSICAL), "Cohort")[q.root_cohort_name()]
    per_type, _pool, compute = root["spec"]["resourceGroups"]
    assert compute["coveredResources"] == ["cpu", "memory", "pods"]
    assert all("borrowingLimit" not in r for r in compute["flavors"][0]["resources"])
    assert admissions.compute_bounds(root["spec"]) == {}, "the cluster lends CPU, memory and pods without a bound"
    assert per_type["coveredResources"] == ["nvidia.com/gpu"]
    got = {f["name"]: f["resources"][0]["nominalQuota"] for f in per_type["flavors"]}
    assert got == {"moonhub-gpu-a100": "8", "moonhub-gpu-v100": "8", "moonhub-gpu-t4": "4"}
    # 20 GPUs, 16 of them ml-research's
    assert admissions.budget(root["spec"]) == (4, None)
    assert "parentName" not in root["spec"]


def test_a_team_owns_its_quota_and_borrows_only_what_the_admin_allows() -> None:
    cat = example_catalog()
    team = _by(q.shared_objects(cat, PHYSICAL), "Cohort")[q.team_cohort("ml-research")]
    assert team["spec"]["parentName"] == q.root_cohort_name()
    assert admissions.budget(team["spec"]) == (16, 0), "no borrowing unless the catalog says so"
    assert team["metadata"]["annotations"][q.GROUP_ANNOTATION] == "ml-research"
    lending = dataclasses.replace(cat, group_gpu_borrowing_limits={"ml-research": 4})
    team = _by(q.shared_objects(lending, PHYSICAL), "Cohort")[q.team_cohort("ml-research")]
    assert admissions.budget(team["spec"]) == (16, 4)


def test_a_users_queue_carries_their_maximum_their_gpu_types_and_their_team() -> None:
    cat = example_catalog()
    plain = q.user_queue(cat, "frank", [], False, "moonhub-users")
    spec = plain.cluster_queue["spec"]
    assert spec["cohortName"] == q.root_cohort_name() and plain.team is None
    assert [f["name"] for f in spec["resourceGroups"][0]["flavors"]] == ["moonhub-gpu-t4"], "entitled types only"
    assert admissions.budget(spec) == (0, 1), "nothing of their own; their maximum, borrowed from the tree"
    assert spec["preemption"] == {"reclaimWithinCohort": "LowerPriority", "withinClusterQueue": "Never"}
    assert plain.local_queue["spec"]["clusterQueue"] == q.user_cluster_queue("frank")
    assert plain.local_queue["metadata"]["namespace"] == "moonhub-users"

    grace = q.user_queue(cat, "grace", ["ml-research", "vision"], False, "moonhub-users")
    assert grace.cluster_queue["spec"]["cohortName"] == q.team_cohort("ml-research")
    assert admissions.budget(grace.cluster_queue["spec"]) == (0, 8)
    assert len(grace.cluster_queue["spec"]["resourceGroups"][0]["flavors"]) == 3
    ann = grace.cluster_queue["metadata"]["annotations"]
    assert (ann[q.USER_ANNOTATION], ann[q.GROUPS_ANNOTATION], ann[q.ADMIN_ANNOTATION]) == (
        "grace",
        "ml-research,vision",
        "False",
    )


def test_a_user_in_two_teams_counts_against_the_first_the_catalog_lists() -> None:
    cat = dataclasses.replace(example_catalog(), group_gpu_quotas={"vision": 4, "ml-research": 16})
    assert q.team_of(cat, ["ml-research", "vision"]) == "vision"
    assert q.team_of(cat, ["ops"]) is None


def test_preempting_borrowed_servers_is_the_admins_choice() -> None:
    cat = dataclasses.replace(example_catalog(), preempt_borrowed_servers=True)
    spec = q.user_queue(cat, "grace", ["ml-research"], False, "ns").cluster_queue["spec"]
    assert spec["preemption"]["reclaimWithinCohort"] == "Any"


def test_names_are_valid_kubernetes_names_for_any_user() -> None:
    for user in ("Ann.Lee@example.org", "ünïcode", "x" * 200):
        for name in (q.user_cluster_queue(user), q.user_local_queue(user)):
            assert len(name) <= 63 and name == name.lower() and name.replace("-", "").isalnum(), name


def test_servers_and_runs_name_the_users_queue_with_their_priority() -> None:
    labels = q.queue_labels("ann", server=True)
    assert labels == {q.QUEUE_LABEL: "moonhub-gpus-ann", q.PRIORITY_LABEL: q.SERVER_PRIORITY}
    assert q.queue_labels("ann", server=False)[q.PRIORITY_LABEL] == q.JOB_PRIORITY
    prios = {p["metadata"]["name"]: p["value"] for p in q.priority_classes()}
    assert prios[q.SERVER_PRIORITY] > prios[q.JOB_PRIORITY]


def test_borrowing_needs_a_quota_and_is_never_negative(tmp_path: Path) -> None:
    doc = yaml.safe_load(Path("moonhub_core/examples/catalog.yaml").read_text())
    for limits, text in (
        ({"vision": 2}, "group_gpu_borrowing_limits.vision: the group has no entry in group_gpu_quotas"),
        ({"ml-research": -1}, "group_gpu_borrowing_limits.ml-research: must not be negative"),
    ):
        doc["group_gpu_borrowing_limits"] = limits
        path = tmp_path / "catalog.yaml"
        path.write_text(yaml.safe_dump(doc))
        with pytest.raises(CatalogError, match=text):
            load(path)


def _node(name: str, product: str | None, gpus: int, ready: bool = True) -> dict:
    labels = {"nvidia.com/gpu.product": product} if product else {}
    return {
        "metadata": {"name": name, "labels": labels},
        "spec": {},
        "status": {
            "allocatable": {"nvidia.com/gpu": str(gpus)},
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }


def test_physical_gpus_count_usable_nodes_of_each_type() -> None:
    nodes = [_node("a", "Tesla-T4", 4), _node("b", "Tesla-T4", 2, ready=False), _node("c", None, 4)]
    assert physical_gpus(example_catalog(), nodes) == {"a100": 0, "v100": 0, "t4": 4}


def _wl(uid: str, created: str, priority: int = 100, admitted: bool = False, gpus: int = 1) -> dict:
    conds = [{"type": "QuotaReserved", "status": "True" if admitted else "False", "message": "insufficient"}]
    container = {"name": "c", "resources": {"requests": {"nvidia.com/gpu": str(gpus)}}}
    return {
        "metadata": {"uid": uid, "creationTimestamp": created},
        "spec": {"priority": priority, "podSets": [{"count": 1, "template": {"spec": {"containers": [container]}}}]},
        "status": {"conditions": conds},
    }


def test_place_in_the_queue_follows_kueues_order_priority_then_age() -> None:
    old, new, urgent = (
        _wl("1", "2026-01-01T00:00:00Z"),
        _wl("2", "2026-01-02T00:00:00Z"),
        _wl("3", "2026-01-03T00:00:00Z", 1000),
    )
    running = _wl("4", "2025-12-31T00:00:00Z", admitted=True)
    peers = [old, new, urgent, running]
    assert admission(new, peers).position == 3
    assert admission(urgent, peers).position == 1
    assert admission(old, [new, old]).position == 1, "itself among its peers counts once"
    state = admission(running, peers)
    assert state.admitted and state.position == 0
    assert admission(new, peers).message == "insufficient"


def test_a_workloads_gpus_are_its_pod_sets_requests() -> None:
    assert workload_gpus(_wl("1", "t", gpus=2)) == 2


def test_standing_in_words() -> None:
    assert admissions.standing_words(1, 1, None, 0, 0) == "you use 1 of your 1"
    assert (
        admissions.standing_words(8, 1, "ml-research", 16, 16) == "ml-research uses 16 of its 16; you use 1 of your 8"
    )
    borrowing = admissions.standing_words(8, 0, "ml-research", 4, 8, 4)
    assert borrowing == "ml-research uses 8 of its 4 (4 borrowed, at most 4); you use 0 of your 8"


def test_kueue_on_the_local_cluster_is_upstreams_install_adapted() -> None:
    upstream = [
        {"kind": "APIService", "metadata": {"name": "v1beta2.visibility.kueue.x-k8s.io"}},
        {
            "kind": "ConfigMap",
            "metadata": {"name": "kueue-manager-config"},
            "data": {"controller_manager_config.yaml": "kind: Configuration\nleaderElection: {leaderElect: true}\n"},
        },
        {
            "kind": "Deployment",
            "metadata": {"name": kueue.DEPLOYMENT},
            "spec": {
                "template": {
                    "spec": {
                        "containers": [{"name": "manager", "image": "x:main", "args": ["--zap-log-level=2", "--a"]}]
                    }
                }
            },
        },
    ]
    upstream.append(
        {
            "kind": "MutatingWebhookConfiguration",
            "metadata": {"name": "kueue-mutating-webhook-configuration"},
            "webhooks": [{"name": "mpod.kb.io"}, {"name": "mclusterqueue.kb.io"}],
        }
    )
    out = kueue.manifests(upstream, "v0.17.0")
    kinds = [d["kind"] for d in out]
    assert kinds == ["ConfigMap", "Deployment", "MutatingWebhookConfiguration"], "no aggregated API here"
    pod_hook, cq_hook = out[2]["webhooks"]
    assert pod_hook["objectSelector"]["matchExpressions"] == [{"key": q.QUEUE_LABEL, "operator": "Exists"}]
    assert "objectSelector" not in cq_hook
    cfg = yaml.safe_load(out[0]["data"]["controller_manager_config.yaml"])
    assert cfg["resources"]["transformations"][0]["outputs"] == {q.BUDGET_RESOURCE: "1"}
    assert cfg["integrations"]["frameworks"] == ["batch/job", "pod"]
    assert cfg["manageJobsWithoutQueueName"] is False and cfg["leaderElection"] == {"leaderElect": False}
    manager = out[1]["spec"]["template"]["spec"]["containers"][0]
    assert manager["image"] == "127.0.0.1:5000/moonhub/kueue:v0.17.0" and manager["args"] == ["--a"]
    assert upstream[2]["spec"]["template"]["spec"]["containers"][0]["image"] == "x:main", "the input is not changed"


def test_the_admins_view_of_the_queues() -> None:
    cat = example_catalog()
    shared = q.shared_objects(cat, PHYSICAL)
    cohorts = [o for o in shared if o["kind"] == "Cohort"]
    cqs = [
        q.user_queue(cat, "grace", ["ml-research"], False, "ns").cluster_queue,
        q.user_queue(cat, "frank", [], False, "ns").cluster_queue,
    ]

    def wl(user: str, created: str, gpus: int, admitted: bool, kind: str) -> dict:
        w = _wl(created, created, admitted=admitted, gpus=gpus)
        w["spec"]["queueName"] = q.user_local_queue(user)
        w["metadata"]["ownerReferences"] = [{"kind": kind}]
        return w

    finished = wl("grace", "t0", 8, True, "Job")
    finished["status"]["conditions"].append({"type": "Finished", "status": "True"})
    workloads = [
        wl("grace", "t2", 8, False, "Job"),
        wl("grace", "t1", 4, True, "Pod"),
        wl("frank", "t3", 1, False, "Pod"),
        finished,
        wl("stranger", "t4", 1, False, "Pod"),
    ]
    team, pool = admissions.queue_view(cohorts, cqs, workloads)
    assert (team["team"], team["quota"], team["used"], team["borrowed"], team["may_borrow"]) == (
        "ml-research",
        16,
        4,
        0,
        0,
    )
    assert team["waiting"] == [{"owner": "grace", "gpus": 8, "kind": "job run"}]
    assert pool["team"] is None and pool["waiting"] == [{"owner": "frank", "gpus": 1, "kind": "server"}]


def test_a_team_may_own_gpus_of_a_type_which_the_cluster_then_does_not_share() -> None:
    cat = dataclasses.replace(example_catalog(), group_gpu_type_quotas={"ml-research": {"a100": 6}})
    cohorts = _by(q.shared_objects(cat, PHYSICAL), "Cohort")
    team = cohorts[q.team_cohort("ml-research")]["spec"]["resourceGroups"]
    assert admissions.budget({"resourceGroups": team}) == (16, 0)
    assert team[1]["flavors"] == [
        {"name": "moonhub-gpu-a100", "resources": [{"name": "nvidia.com/gpu", "nominalQuota": "6"}]}
    ]
    root = cohorts[q.root_cohort_name()]["spec"]["resourceGroups"][0]["flavors"]
    assert {f["name"]: f["resources"][0]["nominalQuota"] for f in root}["moonhub-gpu-a100"] == "2"


def test_type_quotas_must_fit_the_groups_quota(tmp_path: Path) -> None:
    doc = yaml.safe_load(Path("moonhub_core/examples/catalog.yaml").read_text())
    for per_type, text in (
        ({"ml-research": {"a100": 17}}, "group_gpu_type_quotas.ml-research: 17 GPUs by type is more than"),
        ({"ml-research": {"h100": 1}}, "group_gpu_type_quotas.ml-research.h100: unknown GPU type"),
        ({"vision": {"a100": 1}}, "group_gpu_type_quotas.vision: the group has no entry in group_gpu_quotas"),
    ):
        doc["group_gpu_type_quotas"] = per_type
        path = tmp_path / "catalog.yaml"
        path.write_text(yaml.safe_dump(doc))
        with pytest.raises(CatalogError, match=text):
            load(path)


def test_only_this_moonhubs_objects_and_each_users_own_queue_are_changed() -> None:
    """Two MoonHubs may share a cluster, and slugs of different names may meet: an object is
    changed only when its label says it is this MoonHub's and, for a user's queue, its
    annotation names the same user (issue 32, items 6 and 10)."""
    from moonhub_core.errors import Conflict
    from moonhub_core.kueue_api import _check_ours

    cat = example_catalog()
    mine = q.user_queue(cat, "frank", [], False, "moonhub-users").cluster_queue
    _check_ours(mine, mine)
    theirs = q.user_queue(cat, "frank", [], False, "moonhub-users", "moonhub-b").cluster_queue
    other = {**theirs, "metadata": {**theirs["metadata"], "name": mine["metadata"]["name"]}}
    unlabelled = {**mine, "metadata": {"name": mine["metadata"]["name"]}}
    for current in (other, unlabelled):
        with pytest.raises(Conflict) as e:
            _check_ours(current, mine)
        assert e.value.field == "spawner.queue_prefix" and "not this MoonHub's" in e.value.message
    someone = q.user_queue(cat, "Frank", [], False, "moonhub-users").cluster_queue
    with pytest.raises(Conflict, match="queue of user 'Frank'"):
        _check_ours({**someone, "metadata": {**someone["metadata"], "name": mine["metadata"]["name"]}}, mine)
    for obj in q.shared_objects(cat, PHYSICAL):
        _check_ours(obj, obj)


# ---- CPU, memory and pods (every server and run) ----------------------------------------


def _compute(spec: dict) -> dict:
    (group,) = [g for g in spec["resourceGroups"] if g["coveredResources"] == list(q.COMPUTE)]
    return {r["name"]: r for r in group["flavors"][0]["resources"]}


def test_every_users_queue_bounds_cpu_memory_and_pods_even_without_gpus() -> None:
    from moonhub_core.catalog import Entitlement

    cat = dataclasses.replace(example_catalog(), entitlements=[Entitlement(groups=["*"])])
    no_gpus = q.user_queue(cat, "ann", ["nobody-with-gpus"], False, "moonhub-users")
    res = _compute(no_gpus.cluster_queue["spec"])
    assert {r: v["nominalQuota"] for r, v in res.items()} == {"cpu": "0", "memory": "0", "pods": "0"}
    assert res["pods"]["borrowingLimit"] == "20", "20 pods by default, servers and runs together"
    assert "borrowingLimit" not in res["cpu"] and "borrowingLimit" not in res["memory"]
    assert admissions.compute_bounds(no_gpus.cluster_queue["spec"]) == {"pods": 20.0}


def test_the_most_generous_entitlement_gives_each_bound_and_unset_means_unbounded() -> None:
    from moonhub_core.catalog import Compute, Entitlement

    cat = dataclasses.replace(
        example_catalog(),
        entitlements=[
            Entitlement(groups=["*"], max_per_user=Compute(cpu=4, memory="16Gi", pods=5)),
            Entitlement(groups=["big"], max_per_user=Compute(cpu=12.5, memory="8Gi", pods=3)),
            Entitlement(groups=["free"], max_per_user=Compute(cpu=None, memory="1Gi", pods=2)),
        ],
    )
    assert admissions.compute_bounds(q.user_queue(cat, "a", [], False, "ns").cluster_queue["spec"]) == {
        "cpu": 4.0,
        "memory": 16 * 2**30,
        "pods": 5.0,
    }
    big = _compute(q.user_queue(cat, "b", ["big"], False, "ns").cluster_queue["spec"])
    assert (big["cpu"]["borrowingLimit"], big["memory"]["borrowingLimit"], big["pods"]["borrowingLimit"]) == (
        "12500m",
        "16Gi",
        "5",
    )
    free = q.user_queue(cat, "c", ["free"], False, "ns").cluster_queue["spec"]
    assert set(admissions.compute_bounds(free)) == {"memory", "pods"}, "one unset entitlement lifts that bound"
    admin = q.user_queue(cat, "root", [], True, "ns").cluster_queue["spec"]
    assert admissions.compute_bounds(admin) == {}, "admins are not bounded"


def test_a_team_bounds_its_members_together_and_a_team_without_gpus_borrows_them_from_the_pool() -> None:
    from moonhub_core.catalog import Compute

    cat = dataclasses.replace(
        example_catalog(),
        group_compute_quotas={"ml-research": Compute(cpu=64, memory="256Gi", pods=100), "interns": Compute(pods=3)},
    )
    cohorts = _by(q.shared_objects(cat, PHYSICAL), "Cohort")
    team = cohorts[q.team_cohort("ml-research")]["spec"]
    assert admissions.compute_bounds(team) == {"cpu": 64.0, "memory": 256 * 2**30, "pods": 100.0}
    assert admissions.budget(team) == (16, 0), "its GPU quota is as before"
    own = _compute(team)
    assert (own["cpu"]["nominalQuota"], own["cpu"]["borrowingLimit"]) == ("64", "0"), (
        "a team owns its bound and borrows none: a member reclaiming GPUs must not be borrowing"
    )
    interns = cohorts[q.team_cohort("interns")]["spec"]
    assert admissions.compute_bounds(interns) == {"pods": 3.0}
    assert _compute(interns)["cpu"]["nominalQuota"] == q.UNBOUNDED["cpu"], "no bound: what the cluster lends"
    assert admissions.budget(interns) == (0, None), "no GPU quota: the pool's GPUs, as for a user in no team"
    assert q.team_of(cat, ["interns", "ml-research"]) == "ml-research", "GPU teams are picked first"
    uq = q.user_queue(cat, "ivy", ["interns"], False, "ns")
    assert uq.team == "interns" and uq.cluster_queue["spec"]["cohortName"] == q.team_cohort("interns")


def test_kueue_counts_cpu_memory_and_pods() -> None:
    excluded = q.KUEUE_CONFIGURATION["resources"]["excludeResourcePrefixes"]
    assert not {"cpu", "memory", "pods"} & set(excluded)


def test_what_kueue_says_names_the_bound_that_refuses() -> None:
    says = "couldn't assign flavors to pod set main: insufficient quota for pods in flavor moonhub-compute, "
    assert admissions.blocked_by(
        says + "previously considered podsets requests (0) + current podset request (1) > maximum capacity (0)"
    ) == ["pods"]
    both = (
        "insufficient unused quota for cpu in flavor moonhub-compute; "
        "insufficient quota for nvidia.com/gpu in flavor moonhub-gpu-t4"
    )
    assert admissions.blocked_by(both) == [q.BUDGET_RESOURCE, "cpu"]
    assert admissions.blocked_by("LocalQueue moonhub-gpus-x doesn't exist") == []
    words = admissions.bound_words("pods", 20, 20, "you")
    assert words == "you hold 20 pods of your 20 pods (max_per_user.pods)"
    assert admissions.bound_words("pods", 1, 1, "you") == "you hold 1 pod of your 1 pod (max_per_user.pods)"
    assert admissions.bound_words("memory", 3 * 2**30, 4 * 2**30, "ml-research").startswith(
        "ml-research holds 3 GiB of its 4 GiB"
    )


def test_a_pods_request_is_its_containers_or_its_largest_init_container() -> None:
    spec = {
        "initContainers": [{"resources": {"requests": {"cpu": "3", "memory": "1Gi"}}}],
        "containers": [
            {"resources": {"requests": {"cpu": "500m", "memory": "2Gi"}}},
            {"resources": {"requests": {"cpu": "1"}}},
        ],
    }
    assert admissions.pod_request(spec) == {"cpu": 3.0, "memory": 2 * 2**30, "pods": 1.0}
    assert admissions.pod_request(spec, 2)["pods"] == 2.0


def test_an_admitted_workload_holds_what_kueue_recorded() -> None:
    wl = {
        "spec": {"podSets": [{"count": 1, "template": {"spec": {"containers": []}}}]},
        "status": {
            "admission": {
                "podSetAssignments": [{"count": 1, "resourceUsage": {"cpu": "1500m", "memory": "2Gi", "pods": "1"}}]
            }
        },
    }
    assert admissions.workload_usage(wl) == {"cpu": 1.5, "memory": 2 * 2**30, "pods": 1.0, q.BUDGET_RESOURCE: 0.0}
