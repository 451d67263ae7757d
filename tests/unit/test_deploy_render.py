"""The RBAC renderer for the Helm chart, and deploy/'s files as its output for the default release.

tests/integration/test_deploy.py applies the rendered objects to a real API server; these check
what can be told without one: the chart's naming, the one home of every rule, and that the
committed files are what the renderer prints today.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from airflow_provider_nsdiscovery.config import OPTIONS
from airflow_provider_nsdiscovery.deploy import Manifest, Release, main, render
from airflow_provider_nsdiscovery.discovery.permissions import (
    LOG_READER_PERMISSIONS,
    NAMESPACE_DISCOVERY_PERMISSIONS,
    RBAC_WATCH_RULE,
    REQUIRED_PERMISSIONS,
    WORKER_PERMISSIONS,
)
from airflow_provider_nsdiscovery.discovery.remedies import role_rules
from airflow_provider_nsdiscovery.get_provider_info import EXECUTOR

DEPLOY = Path(__file__).parents[2] / "deploy"
PLACEHOLDER = "${TEAM_NAMESPACE}"


def _file(name: str) -> list[Manifest]:
    return [doc for doc in yaml.safe_load_all((DEPLOY / name).read_text()) if doc]


def _named(manifests: list[Manifest], kind: str, suffix: str) -> Manifest:
    (found,) = [m for m in manifests if m["kind"] == kind and m["metadata"]["name"].endswith(suffix)]
    return found


@pytest.mark.parametrize(
    ("name", "part", "teams"),
    [
        ("cluster-role.yaml", "cluster", ()),
        ("rbac-watch.yaml", "rbac-watch", ()),
        ("release-namespace.yaml", "release-namespace", ()),
        ("team-namespace.yaml", "team", (PLACEHOLDER,)),
    ],
)
def test_deploy_files_are_the_rendering_for_release_airflow_in_namespace_airflow(
    name: str, part: str, teams: tuple[str, ...]
) -> None:
    assert _file(name) == render(part, Release(), teams)


def test_default_names_follow_the_charts_fullname_and_service_account_rules() -> None:
    assert (Release().fullname, Release().scheduler) == ("airflow", "airflow-scheduler")
    prod = Release(name="prod", namespace="data")
    assert prod.fullname == "prod-airflow"
    assert (prod.scheduler, prod.api_server, prod.worker) == (
        "prod-airflow-scheduler",
        "prod-airflow-api-server",
        "prod-airflow-worker",
    )
    assert Release(name="x", fullname_override="af").scheduler == "af-scheduler"
    assert Release(name="my-airflow-release").fullname == "my-airflow-release"


def test_subjects_are_the_releases_service_accounts_wherever_they_are_named() -> None:
    release = Release(
        name="prod",
        namespace="data",
        scheduler_account="sched",
        api_server_account="api",
        worker_account="work",
    )
    team = render("team", release, ["team-a"])
    subjects = {m["metadata"]["name"]: m["subjects"] for m in team if m["kind"] == "RoleBinding"}
    assert subjects == {
        "data-prod-airflow-task-pods": [{"kind": "ServiceAccount", "name": "sched", "namespace": "data"}],
        "data-prod-airflow-pod-log-reader": [{"kind": "ServiceAccount", "name": "api", "namespace": "data"}],
        "data-prod-airflow-worker-pods": [{"kind": "ServiceAccount", "name": "work", "namespace": "team-a"}],
    }
    assert _named(team, "ServiceAccount", "work")["metadata"]["namespace"] == "team-a"
    (cluster_binding,) = [m for m in render("cluster", release) if m["kind"] == "ClusterRoleBinding"]
    assert cluster_binding["subjects"] == [{"kind": "ServiceAccount", "name": "sched", "namespace": "data"}]


def test_two_releases_render_no_object_name_twice() -> None:
    """Same release name in two namespaces: the chart's fullname alone would collide."""
    names = []
    for release in (Release(namespace="a"), Release(namespace="b")):
        for part in ("cluster", "rbac-watch", "release-namespace"):
            names += [
                (m["kind"], m["metadata"].get("namespace"), m["metadata"]["name"])
                for m in render(part, release)
            ]
        names += [
            (m["kind"], m["metadata"].get("namespace"), m["metadata"]["name"])
            for m in render("team", release, ["shared"])
            if m["kind"] not in ("Namespace", "ServiceAccount")  # shared on purpose
        ]
    assert len(names) == len(set(names))


def test_every_rule_comes_from_permissions() -> None:
    release = Release()
    team = render("team", release, ["team-a"])
    home = render("release-namespace", release)
    assert _named(team, "Role", "-task-pods")["rules"] == role_rules(REQUIRED_PERMISSIONS)
    assert _named(home, "Role", "-task-pods")["rules"] == role_rules(REQUIRED_PERMISSIONS)
    assert _named(team, "Role", "-pod-log-reader")["rules"] == role_rules(LOG_READER_PERMISSIONS)
    assert _named(team, "Role", "-worker-pods")["rules"] == role_rules(WORKER_PERMISSIONS)
    assert _named(render("cluster", release), "ClusterRole", "")["rules"] == role_rules(
        NAMESPACE_DISCOVERY_PERMISSIONS
    )
    assert _named(render("rbac-watch", release), "ClusterRole", "")["rules"] == [RBAC_WATCH_RULE]


def test_team_namespace_is_labelled_for_the_selector_and_worker_rbac_can_be_left_out() -> None:
    team = render("team", Release(), ["team-a"], label_selector="tier=batch,airflow in (yes)")
    assert _named(team, "Namespace", "team-a")["metadata"]["labels"] == {"tier": "batch", "airflow": "yes"}
    default = _named(render("team", Release(), ["team-a"]), "Namespace", "team-a")
    assert str(OPTIONS["label_selector"].default) == "airflow-enabled=true"
    assert default["metadata"]["labels"] == {"airflow-enabled": "true"}

    bare = render("team", Release(), ["team-a"], worker_rbac=False)
    assert not [m for m in bare if m["metadata"]["name"].endswith("worker-pods")]
    assert _named(bare, "ServiceAccount", "airflow-worker")  # pods still need their account


def test_command_line_renders_several_team_namespaces_and_refuses_a_missing_one(
    capsys: pytest.CaptureFixture[str],
) -> None:
    main(["team", "team-a", "team-b", "--release", "prod", "--namespace", "data"])
    rendered = [m for m in yaml.safe_load_all(capsys.readouterr().out) if m]
    assert rendered == render("team", Release(name="prod", namespace="data"), ["team-a", "team-b"])

    with pytest.raises(SystemExit) as exit_info:
        main(["team"])
    assert exit_info.value.code == 2
    assert "TEAM_NAMESPACE" in capsys.readouterr().err


def test_helm_values_switch_the_executor_on_with_known_options() -> None:
    values = yaml.safe_load((DEPLOY / "helm-values.yaml").read_text())

    assert values["executor"] == EXECUTOR
    # The ServiceAccounts keep the chart's default names, which the rendered RBAC binds.
    assert "serviceAccount" not in values.get("scheduler", {})
    assert values["multiNamespaceMode"] is False
    assert values["apiServer"]["allowPodLogReading"] is True
    assert set(values["config"]["kubernetes_namespace_discovery"]) <= set(OPTIONS)
    assert "multi_namespace_mode_namespace_list" not in values["config"]["kubernetes_executor"]
    assert all(isinstance(v, str) for v in values["config"]["kubernetes_namespace_discovery"].values())
