"""`airflow kubernetes-namespaces` run as an operator runs it: a subprocess with a kubeconfig.

Each command is the real `airflow` CLI with the provider discovered through its entry point and
only configuration in the environment: no scheduler and no metadata database.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from kubernetes import client, utils

from airflow_provider_nsdiscovery.discovery.access import access_allowed
from airflow_provider_nsdiscovery.discovery.permissions import REQUIRED_PERMISSIONS, Permission
from airflow_provider_nsdiscovery.get_provider_info import EXECUTOR
from kubeharness import NAMESPACE_READ_RULES, Cluster, Identity, wait_until
from tests.harness.executor_pods import POD_RULES

REPO_ROOT = Path(__file__).parents[2]
Run = Callable[..., subprocess.CompletedProcess[str]]
PODS_WITHOUT_WATCH = [
    client.V1PolicyRule(
        api_groups=[""], resources=["pods"], verbs=["create", "get", "list", "patch", "delete"]
    )
]


def _kubeconfig(path: Path, cluster: Cluster, token: str) -> Path:
    """A kubeconfig for any token, like the harness writes for ServiceAccounts."""
    ca = base64.b64encode(cluster.ca_file.read_bytes()).decode()
    path.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {"name": "c", "cluster": {"server": cluster.host, "certificate-authority-data": ca}}
                ],
                "users": [{"name": "u", "user": {"token": token}}],
                "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "c",
            }
        )
    )
    return path


@pytest.fixture
def run(scheduler: Identity, selector_label: str) -> Run:
    """`airflow kubernetes-namespaces ARGS` configured for the scheduler identity.

    PYTHONPATH holds the repository so the provider (and its entry point metadata) is found
    whether or not the package is installed into this interpreter's environment.
    """

    def run_cli(
        *args: str, kubeconfig: Path | None = None, **options: str
    ) -> subprocess.CompletedProcess[str]:
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
            # As deployed: Airflow before 3.2 takes provider CLI commands only from the executor
            # configured here (later releases also read the provider's "cli" entry).
            "AIRFLOW__CORE__EXECUTOR": EXECUTOR,
            "AIRFLOW__KUBERNETES_EXECUTOR__IN_CLUSTER": "False",
            "AIRFLOW__KUBERNETES_EXECUTOR__CONFIG_FILE": str(kubeconfig or scheduler.kubeconfig_path),
            "AIRFLOW__KUBERNETES_EXECUTOR__NAMESPACE": scheduler.namespace,
            "AIRFLOW__KUBERNETES_NAMESPACE_DISCOVERY__LABEL_SELECTOR": f"{selector_label}=true",
            **{f"AIRFLOW__KUBERNETES_NAMESPACE_DISCOVERY__{k.upper()}": v for k, v in options.items()},
        }
        result = subprocess.run(
            [sys.executable, "-m", "airflow", "kubernetes-namespaces", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if "invalid choice: 'kubernetes-namespaces'" in result.stderr:
            pytest.fail(
                "the airflow CLI has no kubernetes-namespaces group: the provider's entry point is not "
                "registered here (pip install -e . makes it so)",
                pytrace=False,
            )
        return result

    return run_cli


def _allowed(identity: Identity, permission: Permission, namespace: str | None) -> bool:
    return access_allowed(client.AuthorizationV1Api(identity.api_client), permission, namespace)


def test_list_shows_the_state_table_as_table_and_json(
    control_plane: Cluster, ns_factory: Callable[..., str], scheduler: Identity, selector_label: str, run: Run
) -> None:
    permitted = ns_factory(labels={selector_label: "true"})
    control_plane.grant(scheduler, permitted, POD_RULES)
    forbidden = ns_factory(labels={selector_label: "true"})
    unlabelled = ns_factory()
    control_plane.grant(scheduler, unlabelled, POD_RULES)

    table = run("list")

    assert table.returncode == 0, table.stderr
    assert f"as {scheduler.username}: namespaces selected by '{selector_label}=true'" in table.stderr
    header, *lines = [line for line in table.stdout.splitlines() if "|" in line]
    assert [cell.strip() for cell in header.split("|")] == [
        "namespace",
        "state",
        "reason",
        "watcher",
        "last_checked",
    ]
    cells = {line.split("|")[0].strip(): [c.strip() for c in line.split("|")] for line in lines}
    assert cells[scheduler.namespace][1:4] == ["permitted", "it is the executor's home namespace", "True"]
    assert cells[permitted][1] == "permitted"
    assert cells[permitted][3] == "True"
    assert cells[forbidden][1] == "forbidden"
    assert cells[forbidden][3] == "False"
    assert unlabelled not in cells

    listed = run("list", "--output", "json")

    assert listed.returncode == 0, listed.stderr
    rows = {row["namespace"]: row for row in json.loads(listed.stdout)}
    assert set(rows) == {scheduler.namespace, permitted, forbidden}
    assert rows[forbidden]["state"] == "forbidden"
    assert rows[forbidden]["watcher"] is False
    assert rows[forbidden]["reason"].startswith(f"scheduler identity {scheduler.username} lacks: create pods")
    assert rows[forbidden]["fix"].startswith(f"kubectl -n {forbidden} create role airflow-task-pods")
    assert rows[permitted]["fix"] is None
    assert rows[permitted]["last_checked"].endswith("Z")


def test_check_permitted_namespace_exits_zero(
    control_plane: Cluster, ns_factory: Callable[..., str], scheduler: Identity, selector_label: str, run: Run
) -> None:
    team = ns_factory(labels={selector_label: "true"})
    control_plane.grant(scheduler, team, POD_RULES)

    result = run("check", team)

    assert result.returncode == 0, result.stdout + result.stderr
    properties = {
        cells[0].strip(): cells[1].strip()
        for cells in (line.split("|", 1) for line in result.stdout.splitlines() if "|" in line)
    }
    assert properties["usable"] == "True"
    assert properties["state"] == "permitted"
    assert properties["accepts"] == "all"
    assert properties["identity"] == scheduler.username
    assert "fix:" not in result.stdout


def test_check_unlabelled_namespace_prints_the_label_fix(
    control_plane: Cluster, ns_factory: Callable[..., str], scheduler: Identity, selector_label: str, run: Run
) -> None:
    team = ns_factory()
    control_plane.grant(scheduler, team, POD_RULES)

    result = run("check", team)

    assert result.returncode == 1, result.stdout + result.stderr
    assert f"fix: kubectl label namespace {team} {selector_label}=true\n" in result.stdout
    assert "kind: Role" not in result.stdout  # RBAC is in place: the label is all it lacks


def test_check_unlabelled_namespace_without_rbac_says_it_needs_both(
    ns_factory: Callable[..., str], scheduler: Identity, selector_label: str, run: Run
) -> None:
    team = ns_factory()

    result = run("check", team, "-o", "yaml")

    assert result.returncode == 1
    (report,) = yaml.safe_load(result.stdout)
    assert report["state"] == "not-selected"
    assert report["fix"] == f"kubectl label namespace {team} {selector_label}=true"
    assert report["missing"] == [str(p) for p in REQUIRED_PERMISSIONS]
    assert f"name: {scheduler.name}" in report["manifest"]


def test_check_without_rbac_prints_a_role_that_fixes_it(
    control_plane: Cluster, ns_factory: Callable[..., str], scheduler: Identity, selector_label: str, run: Run
) -> None:
    team = ns_factory(labels={selector_label: "true"})
    control_plane.grant(scheduler, team, PODS_WITHOUT_WATCH)

    table = run("check", team)

    assert table.returncode == 1, table.stdout + table.stderr
    assert f"# {scheduler.username} lacks in namespace {team}: watch pods, get pods/log\n" in table.stdout
    assert f"fix: kubectl -n {team} create role airflow-task-pods" in table.stdout

    result = run("check", team, "--output", "json")

    assert result.returncode == 1
    (report,) = json.loads(result.stdout)
    assert (report["usable"], report["state"]) == (False, "forbidden")
    assert report["missing"] == ["watch pods", "get pods/log"]
    assert (
        report["reason"]
        == f"scheduler identity {scheduler.username} lacks: watch pods, get pods/log in {team}"
    )

    # The snippet is ready to apply: with it, the namespace becomes usable.
    with control_plane.admin_api_client() as admin:
        for manifest in yaml.safe_load_all(report["manifest"]):
            utils.create_from_dict(admin, manifest)
    wait_until(lambda: all(_allowed(scheduler, p, team) for p in REQUIRED_PERMISSIONS), "the Role to apply")
    assert run("check", team).returncode == 0


def test_check_home_namespace_is_forbidden_like_any_other_when_the_scheduler_lacks_pod_rights_there(
    control_plane: Cluster, ns_factory: Callable[..., str], scheduler: Identity, run: Run
) -> None:
    assert run("check", scheduler.namespace).returncode == 0
    elsewhere = ns_factory()
    bare = control_plane.service_account_client(elsewhere, "bare", cluster_rules=NAMESPACE_READ_RULES)

    result = run("check", scheduler.namespace, "-o", "json", kubeconfig=bare.kubeconfig_path)

    assert result.returncode == 1, result.stdout + result.stderr
    (report,) = json.loads(result.stdout)
    assert (report["state"], report["usable"]) == ("forbidden", False)
    assert report["missing"] == [str(p) for p in REQUIRED_PERMISSIONS]


def test_check_as_the_scheduler_from_an_admin_kubeconfig(
    control_plane: Cluster,
    ns_factory: Callable[..., str],
    scheduler: Identity,
    selector_label: str,
    run: Run,
    tmp_path: Path,
) -> None:
    """From an admin kubeconfig everything looks usable; --as gives the scheduler's answer."""
    team = ns_factory(labels={selector_label: "true"})
    admin = _kubeconfig(tmp_path / "admin.yaml", control_plane, control_plane.admin_token)

    assert run("check", team, kubeconfig=admin).returncode == 0
    impersonated = run("check", team, "--as", scheduler.username, kubeconfig=admin)

    assert impersonated.returncode == 1, impersonated.stdout + impersonated.stderr
    assert f"as {scheduler.username}:" in impersonated.stderr
    assert f"# {scheduler.username} lacks in namespace {team}: create pods" in impersonated.stdout


def test_candidate_namespaces_are_used_when_namespaces_may_not_be_listed(
    control_plane: Cluster, ns_factory: Callable[..., str], run: Run
) -> None:
    home, team = ns_factory(), ns_factory()
    restricted = control_plane.service_account_client(
        home, "restricted", namespace_rules={home: POD_RULES, team: POD_RULES}
    )

    result = run(
        "list", "-o", "json", kubeconfig=restricted.kubeconfig_path, candidate_namespaces=f"{team},absent-ns"
    )

    assert result.returncode == 0, result.stderr
    assert (
        "which may not list namespaces cluster-wide: using [kubernetes_namespace_discovery] " in result.stderr
    )
    states = {row["namespace"]: row["state"] for row in json.loads(result.stdout)}
    assert states[team] == "permitted"
    assert states["absent-ns"] == "forbidden"


def test_unusable_credentials_exit_2(control_plane: Cluster, run: Run, tmp_path: Path) -> None:
    bogus = _kubeconfig(tmp_path / "bogus.yaml", control_plane, "not-a-token")

    result = run("check", "default", kubeconfig=bogus)

    assert result.returncode == 2
    assert "refused the credentials: 401" in result.stderr


@pytest.mark.parametrize(
    ("subcommand", "says"),
    [
        (
            "list",
            [
                "Runs namespace discovery once",
                "kubernetes_namespace_discovery and kubernetes_executor",
                "--output",
            ],
        ),
        ("check", ["Exits 0 when a task could start in the namespace now", "namespace", "--as USERNAME"]),
    ],
)
def test_help_of_each_subcommand_renders_its_description_and_options(
    run: Run, subcommand: str, says: list[str]
) -> None:
    shown = run(subcommand, "--help")

    assert shown.returncode == 0, shown.stderr
    text = " ".join(shown.stdout.split())  # the help formatter wraps at the terminal's width
    for words in says:
        assert words in text, f"{words!r} missing from `{subcommand} --help`:\n{shown.stdout}"


def test_group_help_lists_both_subcommands(run: Run) -> None:
    shown = run("--help")

    assert shown.returncode == 0, shown.stderr
    text = " ".join(shown.stdout.split())
    assert "List the namespaces tasks may run in" in text
    assert "Check whether a task could start in NAMESPACE now" in text
