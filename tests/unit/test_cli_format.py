"""What `airflow kubernetes-namespaces` prints: rows, check reports and the RBAC manifests it suggests."""

from __future__ import annotations

import argparse
import importlib
import json
import re
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import cast

import pytest
import yaml
from airflow.cli.cli_config import ActionCommand
from kubernetes import client

from airflow_provider_nsdiscovery.cli.definition import (
    ARG_AS,
    ARG_NAMESPACE,
    NAMESPACE_COMMANDS,
    get_namespace_discovery_cli_commands,
)
from airflow_provider_nsdiscovery.cli.format import (
    ROLE_NAME,
    check_report,
    namespace_rows,
    rbac_manifest,
    report_followup,
    report_properties,
    source_summary,
    structured_text,
    timestamp_text,
    usable,
)
from airflow_provider_nsdiscovery.config import SECTION, DiscoverySettings
from airflow_provider_nsdiscovery.discovery.permissions import REQUIRED_PERMISSIONS, rule_grants
from airflow_provider_nsdiscovery.discovery.remedies import rbac_subject, role_rules
from airflow_provider_nsdiscovery.discovery.status import NamespaceStatus, State
from airflow_provider_nsdiscovery.discovery.tenancy import TenantPolicy

SCHEDULER = "system:serviceaccount:airflow:airflow-scheduler"
CHECKED_AT = 1_790_000_000.0  # 2026-09-21T14:13:20Z
TROUBLESHOOTING = Path(__file__).parents[2] / "docs" / "troubleshooting.md"


def _status(name: str, state: State, *, fix: str = "", reason: str = "because") -> NamespaceStatus:
    return NamespaceStatus(name, state, reason, fix, checked_at=CHECKED_AT)


# list rows -------------------------------------------------------------------------------------


def test_rows_are_sorted_and_say_which_namespaces_would_be_watched() -> None:
    statuses = [
        _status("team-b", State.FORBIDDEN, fix="kubectl -n team-b create role ..."),
        _status("airflow", State.PERMITTED),
        _status("team-a", State.DRAINING),
    ]

    rows = namespace_rows(statuses, with_fix=False)

    assert rows == [
        {
            "namespace": "airflow",
            "state": "permitted",
            "reason": "because",
            "watcher": True,
            "last_checked": "2026-09-21T14:13:20Z",
        },
        {
            "namespace": "team-a",
            "state": "draining",
            "reason": "because",
            "watcher": True,
            "last_checked": "2026-09-21T14:13:20Z",
        },
        {
            "namespace": "team-b",
            "state": "forbidden",
            "reason": "because",
            "watcher": False,
            "last_checked": "2026-09-21T14:13:20Z",
        },
    ]


def test_machine_readable_rows_carry_the_fix() -> None:
    rows = namespace_rows(
        [
            _status("team-c", State.NOT_SELECTED, fix="kubectl label namespace team-c airflow-enabled=true"),
            _status("airflow", State.PERMITTED),
        ],
        with_fix=True,
    )
    assert [row["fix"] for row in rows] == [None, "kubectl label namespace team-c airflow-enabled=true"]


@pytest.mark.parametrize(("output", "load"), [("json", json.loads), ("yaml", yaml.safe_load)])
def test_machine_readable_rows_keep_booleans_and_nulls(output: str, load: Callable[[str], object]) -> None:
    rows = namespace_rows([_status("airflow", State.PERMITTED)], with_fix=True)

    assert load(structured_text(rows, output)) == [
        {
            "namespace": "airflow",
            "state": "permitted",
            "reason": "because",
            "watcher": True,
            "last_checked": "2026-09-21T14:13:20Z",
            "fix": None,
        }
    ]


@pytest.mark.parametrize(("output", "load"), [("json", json.loads), ("yaml", yaml.safe_load)])
def test_unusable_namespace_reads_as_false_to_a_script(output: str, load: Callable[[str], object]) -> None:
    """A string "False" is truthy: `jq -e .[0].usable` or `if report["usable"]` would pass."""
    report = check_report(_status("team-b", State.FORBIDDEN), identity=SCHEDULER, missing=("get pods",))

    (loaded,) = cast("list[dict[str, object]]", load(structured_text([report], output)))

    assert loaded["usable"] is False
    assert loaded["missing"] == ["get pods"]
    assert loaded["manifest"] == report["manifest"]


def test_timestamps_are_utc_to_the_second() -> None:
    assert timestamp_text(0.9) == "1970-01-01T00:00:00Z"
    assert timestamp_text(CHECKED_AT) == "2026-09-21T14:13:20Z"


@pytest.mark.parametrize(
    ("state", "expected"),
    [(State.PERMITTED, True), (State.DRAINING, False), (State.PENDING, False), (State.FORBIDDEN, False)],
)
def test_only_permitted_namespaces_take_new_tasks(state: State, expected: bool) -> None:
    assert usable(_status("team-a", state)) is expected


# RBAC manifests --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("identity", "subject"),
    [
        (SCHEDULER, {"kind": "ServiceAccount", "name": "airflow-scheduler", "namespace": "airflow"}),
        (
            "jane@example.com",
            {"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "jane@example.com"},
        ),
        (
            "system:serviceaccount:airflow",
            {
                "kind": "User",
                "apiGroup": "rbac.authorization.k8s.io",
                "name": "system:serviceaccount:airflow",
            },
        ),
    ],
)
def test_subjects_bind_service_accounts_as_service_accounts(identity: str, subject: dict[str, str]) -> None:
    assert rbac_subject(identity) == subject


def test_role_grants_exactly_what_access_reviews_require() -> None:
    rules = [
        client.V1ResourceRule(api_groups=r["apiGroups"], resources=r["resources"], verbs=r["verbs"])
        for r in role_rules()
    ]

    assert all(any(rule_grants(rule, p) for rule in rules) for p in REQUIRED_PERMISSIONS)
    assert role_rules() == [
        {
            "apiGroups": [""],
            "resources": ["pods"],
            "verbs": ["create", "get", "list", "watch", "patch", "delete"],
        },
        {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
    ]


def test_manifest_is_a_role_and_binding_for_the_identity_in_the_namespace() -> None:
    text = rbac_manifest("team-b", SCHEDULER, ("watch pods", "get pods/log"))

    assert text.splitlines()[0] == f"# {SCHEDULER} lacks in namespace team-b: watch pods, get pods/log"
    role, binding = yaml.safe_load_all(text)
    assert role == {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": ROLE_NAME, "namespace": "team-b"},
        "rules": role_rules(),
    }
    assert binding == {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": ROLE_NAME, "namespace": "team-b"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": ROLE_NAME},
        "subjects": [{"kind": "ServiceAccount", "name": "airflow-scheduler", "namespace": "airflow"}],
    }


# check reports ---------------------------------------------------------------------------------


def test_forbidden_report_names_missing_verbs_and_carries_the_manifest() -> None:
    status = _status("team-b", State.FORBIDDEN, fix="kubectl -n team-b create role airflow-task-pods ...")

    report = check_report(status, identity=SCHEDULER, missing=("watch pods",))

    assert report["usable"] is False
    assert report["missing"] == ["watch pods"]
    assert report["manifest"] == rbac_manifest("team-b", SCHEDULER, ("watch pods",))
    followup = report_followup(report)
    assert followup.startswith("fix: kubectl -n team-b create role airflow-task-pods ...\n\n# ")
    assert "also needs RBAC" not in followup
    assert followup.endswith("namespace: airflow")  # the subject, last line of the manifest


def test_unlabelled_namespace_without_rbac_says_both_fixes() -> None:
    status = _status("team-c", State.NOT_SELECTED, fix="kubectl label namespace team-c airflow-enabled=true")

    report = check_report(status, identity=SCHEDULER, missing=("create pods",))

    lines = report_followup(report).splitlines()
    assert lines[:4] == [
        "fix: kubectl label namespace team-c airflow-enabled=true",
        "it also needs RBAC before tasks can run there:",
        "",
        f"# {SCHEDULER} lacks in namespace team-c: create pods",
    ]


def test_permitted_report_has_nothing_to_fix() -> None:
    report = check_report(_status("team-a", State.PERMITTED), identity=SCHEDULER, missing=())

    assert report == {
        "namespace": "team-a",
        "usable": True,
        "state": "permitted",
        "reason": "because",
        "fix": None,
        "accepts": "all",
        "identity": SCHEDULER,
        "missing": [],
        "manifest": None,
    }
    assert report_followup(report) == ""
    assert [row["property_name"] for row in report_properties(report)] == [
        "namespace",
        "usable",
        "state",
        "reason",
        "accepts",
        "identity",
    ]


def test_permitted_report_says_which_tasks_the_namespace_owners_accept() -> None:
    status = replace(
        _status("team-a", State.PERMITTED),
        tenancy=TenantPolicy(allowed_dags=("etl_*", "report"), allowed_teams=("data",)),
    )

    report = check_report(status, identity=SCHEDULER, missing=())

    assert report["accepts"] == "DAGs matching etl_*, report; teams data"


def test_home_namespace_without_pod_rights_is_not_usable_though_permitted() -> None:
    status = _status("airflow", State.PERMITTED, reason="it is the executor's home namespace")

    report = check_report(status, identity=SCHEDULER, missing=("create pods",))

    assert (report["state"], report["usable"], report["accepts"]) == ("permitted", False, None)
    assert report_followup(report).splitlines()[:2] == [
        "the executor uses this namespace without a review, but would be refused pods there:",
        "",
    ]


def test_table_properties_list_missing_verbs_but_leave_long_text_below() -> None:
    report = check_report(
        _status("team-b", State.FORBIDDEN, fix="x"), identity=SCHEDULER, missing=("get pods", "watch pods")
    )

    properties = {row["property_name"]: row["property_value"] for row in report_properties(report)}

    assert properties["missing"] == "get pods, watch pods"
    assert "accepts" not in properties  # only meaningful where tasks may start
    assert "fix" not in properties
    assert "manifest" not in properties


# context line ----------------------------------------------------------------------------------


def test_summary_names_the_identity_and_the_source() -> None:
    settings = DiscoverySettings(home_namespace="airflow")
    assert source_summary(SCHEDULER, "label-selector", settings) == (
        f"as {SCHEDULER}: namespaces selected by 'airflow-enabled=true'; home namespace 'airflow'"
    )


def test_summary_says_when_discovery_fell_back_to_candidates() -> None:
    settings = DiscoverySettings(home_namespace="airflow", candidate_namespaces=("team-a", "team-b"))
    assert source_summary(SCHEDULER, "candidate-namespaces", settings) == (
        f"as {SCHEDULER}, which may not list namespaces cluster-wide: using "
        "[kubernetes_namespace_discovery] candidate_namespaces (team-a, team-b); home namespace 'airflow'"
    )


# command definitions ---------------------------------------------------------------------------


def test_commands_parse_like_other_airflow_commands() -> None:
    from airflow.cli.cli_parser import _add_command  # noqa: PLC0415 (loads every provider's CLI)

    parser = argparse.ArgumentParser(prog="airflow")
    subparsers = parser.add_subparsers(dest="subcommand")
    for group in get_namespace_discovery_cli_commands():
        _add_command(subparsers, group)

    args = parser.parse_args(
        ["kubernetes-namespaces", "check", "team-a", "-o", "yaml", "--as", SCHEDULER, "-v"]
    )
    assert (args.namespace, args.output, args.impersonate, args.verbose) == (
        "team-a",
        "yaml",
        SCHEDULER,
        True,
    )
    listed = parser.parse_args(["kubernetes-namespaces", "list"])
    assert (listed.output, listed.impersonate) == ("table", None)
    assert listed.func.__name__ == "list_namespaces"


@pytest.mark.parametrize("command", NAMESPACE_COMMANDS, ids=lambda c: c.name)
def test_help_shows_our_text_as_written(
    command: ActionCommand, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rendered by Airflow's own help formatter, which reads ``[section]`` as markup and drops it."""
    from airflow.cli.cli_parser import _add_command  # noqa: PLC0415 (loads every provider's CLI)

    monkeypatch.setenv("COLUMNS", "200")
    parser = argparse.ArgumentParser(prog="airflow")
    subparsers = parser.add_subparsers(dest="subcommand")
    for group in get_namespace_discovery_cli_commands():
        _add_command(subparsers, group)

    with pytest.raises(SystemExit):
        parser.parse_args(["kubernetes-namespaces", command.name, "--help"])

    rendered = " ".join(capsys.readouterr().out.split())
    ours = [
        command.description,
        *(arg.kwargs["help"] for arg in command.args if arg in (ARG_AS, ARG_NAMESPACE)),
    ]
    for text in ours:
        assert " ".join(text.split()) in rendered
    if command.name == "list":
        assert SECTION in rendered


# docs ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("state", list(State))
def test_troubleshooting_covers_every_state_the_cli_can_print(state: State) -> None:
    """Operators go from a state in this output to the troubleshooting table."""
    rows = [line for line in TROUBLESHOOTING.read_text().splitlines() if line.startswith("|")]
    assert any(re.search(rf"`{re.escape(state.value)}`", row) for row in rows)


def test_provider_info_points_airflow_at_the_group() -> None:
    """Airflow 3.3 warns about executor providers without a ``cli`` entry and loads commands
    from it, so it must resolve to our group."""
    from airflow_provider_nsdiscovery.get_provider_info import get_provider_info  # noqa: PLC0415

    (path,) = get_provider_info()["cli"]
    module, _, name = path.rpartition(".")
    commands = getattr(importlib.import_module(module), name)
    assert [group.name for group in commands()] == ["kubernetes-namespaces"]


def test_executor_keeps_the_upstream_kubernetes_group() -> None:
    from airflow_provider_nsdiscovery.executors import DynamicNamespaceKubernetesExecutor  # noqa: PLC0415

    groups = DynamicNamespaceKubernetesExecutor.get_cli_commands()

    assert [group.name for group in groups] == ["kubernetes", "kubernetes-namespaces"]
