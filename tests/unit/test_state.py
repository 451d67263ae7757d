"""decide(): every namespace state, every refusal reason and fix, and the drain transitions."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from airflow_provider_nsdiscovery.config import DiscoverySettings
from airflow_provider_nsdiscovery.discovery.state import (
    AccessDecision,
    NamespaceStatus,
    Observation,
    State,
    StateTable,
    decide,
    is_valid_namespace_name,
)

SA = "system:serviceaccount:airflow:scheduler"
SETTINGS = DiscoverySettings(home_namespace="airflow")
LABELLED = Observation(exists=True, labels={"airflow-enabled": "true"})
UNLABELLED = Observation(exists=True, labels={})
TERMINATING = Observation(exists=True, labels={"airflow-enabled": "true"}, terminating=True)
GONE = Observation(exists=False)
CANDIDATE = Observation(exists=None)
ALLOWED = AccessDecision(SA, (), checked_at=1234.0)
CANNOT_CREATE = AccessDecision(SA, ("create pods",))
CANNOT_WATCH = AccessDecision(SA, ("watch pods", "delete pods"))
CANNOT_LIST = AccessDecision(SA, ("list pods",))


def permitted(name: str = "team-b") -> NamespaceStatus:
    status = decide(name, SETTINGS, LABELLED, ALLOWED)
    assert status.state is State.PERMITTED
    return status


def draining(name: str = "team-b", pods: int = 2) -> NamespaceStatus:
    status = decide(name, SETTINGS, UNLABELLED, ALLOWED, previous=permitted(name), active_pods=pods)
    assert status.state is State.DRAINING
    return status


# invalid names ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["", "a" * 64, "Team-B", "team.b", "team_b", "-team", "team-", "team b", "tëam"]
)
def test_invalid_namespace_name_is_refused_even_when_labelled_and_allowed(name: str):
    status = decide(name, SETTINGS, LABELLED, ALLOWED)
    assert status.state is State.INVALID_NAME
    assert "DNS-1123 label" in status.reason
    assert "executor_config pod_override" in status.fix
    assert not status.watched


@pytest.mark.parametrize(
    ("name", "suggestion"),
    [
        ("Team-B", "team-b"),
        ("team.b", "team-b"),
        ("team_b", "team-b"),
        ("Team__B.", "team-b"),
        ("a" * 64, "a" * 63),
        ("-team-", "team"),
    ],
)
def test_invalid_name_fix_suggests_a_valid_name(name: str, suggestion: str):
    status = decide(name, SETTINGS, None, None)
    assert status.fix.endswith(f"to a valid name, e.g. '{suggestion}'")
    assert is_valid_namespace_name(suggestion)


@pytest.mark.parametrize("name", ["", "___", "..."])
def test_invalid_name_with_nothing_to_salvage_suggests_no_name(name: str):
    status = decide(name, SETTINGS, None, None)
    assert status.state is State.INVALID_NAME
    assert "e.g." not in status.fix


@settings(database=None)
@given(st.text(max_size=80))
def test_any_suggested_namespace_name_is_itself_valid(name: str):
    status = decide(name, SETTINGS, None, None)
    if status.state is not State.INVALID_NAME:
        assert is_valid_namespace_name(name)
        return
    suggestion = re.search(r"e\.g\. '(.*)'$", status.fix)
    if suggestion is not None:
        assert is_valid_namespace_name(suggestion.group(1))
        assert suggestion.group(1) != name


@pytest.mark.parametrize("name", ["a", "team-b", "a" * 63, "0team", "t-1"])
def test_dns1123_labels_are_valid_namespace_names(name: str):
    assert is_valid_namespace_name(name)


def test_namespace_name_with_trailing_newline_is_invalid():
    assert decide("team-b\n", SETTINGS, LABELLED, ALLOWED).state is State.INVALID_NAME


# home, excluded, absent, terminating -----------------------------------------------------------


@pytest.mark.parametrize("observation", [None, UNLABELLED, LABELLED, CANDIDATE])
def test_home_namespace_is_permitted_without_label_or_access_review(observation: Observation | None):
    status = decide("airflow", SETTINGS, observation, None)
    assert status.state is State.PERMITTED
    assert status.reason == "it is the executor's home namespace"
    assert status.watched


def test_home_namespace_is_permitted_even_if_it_is_listed_as_excluded():
    settings = DiscoverySettings(home_namespace="airflow", exclude_namespaces=("airflow",))
    assert decide("airflow", settings, None, None).state is State.PERMITTED


@pytest.mark.parametrize("name", ["kube-system", "kube-public", "kube-node-lease"])
def test_system_namespaces_are_excluded_by_default_even_when_labelled_and_allowed(name: str):
    status = decide(name, SETTINGS, LABELLED, ALLOWED)
    assert status.state is State.EXCLUDED
    assert status.reason == (
        "it is listed in [kubernetes_namespace_discovery] exclude_namespaces, so it is never used, "
        "labelled or not"
    )
    assert status.fix == (
        f"run the task in another namespace, or remove '{name}' from "
        "[kubernetes_namespace_discovery] exclude_namespaces"
    )


def test_configured_exclusion_refuses_a_labelled_namespace():
    settings = DiscoverySettings(home_namespace="airflow", exclude_namespaces=("team-b",))
    assert decide("team-b", settings, LABELLED, ALLOWED).state is State.EXCLUDED
    assert decide("kube-system", settings, LABELLED, ALLOWED).state is State.PERMITTED


def test_namespace_the_api_server_does_not_have_is_absent_with_create_and_label_fix():
    status = decide("team-b", SETTINGS, GONE, ALLOWED)
    assert status.state is State.ABSENT
    assert status.message == (
        "namespace 'team-b' does not exist: the API server has no namespace of that name "
        "(kubectl create namespace team-b && kubectl label namespace team-b airflow-enabled=true)"
    )


def test_namespace_being_deleted_is_terminating_even_when_labelled_and_allowed():
    status = decide("team-b", SETTINGS, TERMINATING, ALLOWED)
    assert status.state is State.TERMINATING
    assert status.reason == "it is being deleted"
    assert "recreate it" in status.fix


# not selected, pending, forbidden, permitted ---------------------------------------------------


def test_unseen_namespace_is_not_selected_with_label_fix():
    status = decide("team-b", SETTINGS, None, ALLOWED)
    assert status.state is State.NOT_SELECTED
    assert status.reason == "it does not match label selector 'airflow-enabled=true'"
    assert status.fix == "kubectl label namespace team-b airflow-enabled=true"


def test_unseen_namespace_fix_sets_every_equality_label_of_the_selector():
    settings = DiscoverySettings(
        home_namespace="airflow", label_selector="airflow-enabled=true,team in (a,b)"
    )
    status = decide("team-b", settings, None, None)
    assert status.fix == "kubectl label namespace team-b airflow-enabled=true team=a"


def test_unseen_namespace_under_a_selector_without_equality_says_what_to_match():
    settings = DiscoverySettings(home_namespace="airflow", label_selector="!legacy")
    status = decide("team-b", settings, None, None)
    assert status.fix == "label namespace team-b so that it matches '!legacy'"


def test_namespace_without_the_label_is_not_selected_even_when_allowed():
    status = decide("team-b", SETTINGS, UNLABELLED, ALLOWED)
    assert status.state is State.NOT_SELECTED
    assert status.message == (
        "namespace 'team-b' is not selected: it lacks label airflow-enabled=true "
        "(kubectl label namespace team-b airflow-enabled=true)"
    )


def test_namespace_with_the_wrong_label_value_is_told_to_overwrite_it():
    observation = Observation(exists=True, labels={"airflow-enabled": "false"})
    status = decide("team-b", SETTINGS, observation, ALLOWED)
    assert status.state is State.NOT_SELECTED
    assert status.reason == "its label airflow-enabled=false does not satisfy 'airflow-enabled=true'"
    assert status.fix == "kubectl label namespace team-b airflow-enabled=true --overwrite"


def test_not_selected_reason_names_the_clause_that_fails():
    settings = DiscoverySettings(
        home_namespace="airflow", label_selector="airflow-enabled=true,team in (a,b)"
    )
    observation = Observation(exists=True, labels={"airflow-enabled": "true", "team": "c"})
    status = decide("team-b", settings, observation, ALLOWED)
    assert status.state is State.NOT_SELECTED
    assert status.reason == "its label team=c does not satisfy 'team in (a,b)'"
    assert status.fix == "kubectl label namespace team-b team=a --overwrite"


def test_not_selected_by_a_notin_clause_is_told_to_remove_the_label():
    settings = DiscoverySettings(home_namespace="airflow", label_selector="team notin (legacy)")
    observation = Observation(exists=True, labels={"team": "legacy"})
    status = decide("team-b", settings, observation, ALLOWED)
    assert status.state is State.NOT_SELECTED
    assert status.fix == "kubectl label namespace team-b team-"


@pytest.mark.parametrize("observation", [LABELLED, CANDIDATE])
def test_selected_namespace_without_a_finished_review_is_pending(observation: Observation):
    status = decide("team-b", SETTINGS, observation, None)
    assert status.state is State.PENDING
    assert status.reason == "its access review has not finished yet"
    assert not status.watched


def test_missing_verbs_make_a_selected_namespace_forbidden_naming_identity_and_verbs():
    status = decide("team-b", SETTINGS, LABELLED, CANNOT_WATCH)
    assert status.state is State.FORBIDDEN
    assert (
        "scheduler identity system:serviceaccount:airflow:scheduler lacks: watch pods, delete pods in team-b"
        in status.message
    )
    assert status.fix == (
        "kubectl -n team-b create role airflow-task-pods --verb=create,get,list,watch,patch,delete "
        "--resource=pods,pods/log && kubectl -n team-b create rolebinding airflow-task-pods "
        "--role=airflow-task-pods --serviceaccount=airflow:scheduler"
    )
    assert status.checked_at == CANNOT_WATCH.checked_at


def test_forbidden_fix_for_a_plain_user_binds_the_user():
    access = AccessDecision("alice@example.com", ("get pods/log",))
    status = decide("team-b", SETTINGS, LABELLED, access)
    assert status.state is State.FORBIDDEN
    assert status.fix.endswith("--role=airflow-task-pods --user=alice@example.com")
    assert "--serviceaccount" not in status.fix


def test_forbidden_candidate_namespace_is_forbidden():
    assert decide("team-b", SETTINGS, CANDIDATE, CANNOT_CREATE).state is State.FORBIDDEN


def test_selected_namespace_with_every_verb_allowed_is_permitted():
    status = decide("team-b", SETTINGS, LABELLED, ALLOWED)
    assert status.state is State.PERMITTED
    assert status.reason == f"selected by 'airflow-enabled=true' and {SA} may manage pods there"
    assert status.fix == ""
    assert status.checked_at == ALLOWED.checked_at
    assert status.watched


def test_candidate_namespace_that_cannot_be_read_is_permitted_by_access_alone():
    status = decide("team-b", SETTINGS, CANDIDATE, ALLOWED)
    assert status.state is State.PERMITTED
    assert status.reason == (
        f"listed in [kubernetes_namespace_discovery] candidate_namespaces and {SA} may manage pods there"
    )


# transitions -----------------------------------------------------------------------------------


def test_namespace_that_loses_its_label_with_running_pods_drains():
    status = decide("team-b", SETTINGS, UNLABELLED, ALLOWED, previous=permitted(), active_pods=2)
    assert status.state is State.DRAINING
    assert status.watched
    assert status.active_pods == 2
    assert status.reason == (
        "not selected: it lacks label airflow-enabled=true; no new tasks start here and its watcher "
        "stays until 2 pods launched here finish"
    )
    assert status.fix == "kubectl label namespace team-b airflow-enabled=true"


def test_draining_reason_counts_a_single_pod_in_the_singular():
    status = decide("team-b", SETTINGS, UNLABELLED, ALLOWED, previous=permitted(), active_pods=1)
    assert status.reason.endswith("its watcher stays until 1 pod launched here finish")


def test_namespace_that_leaves_the_selection_with_running_pods_drains():
    status = decide("team-b", SETTINGS, None, None, previous=permitted(), active_pods=1)
    assert status.state is State.DRAINING
    assert status.reason.startswith("not selected: it does not match label selector 'airflow-enabled=true';")


def test_terminating_namespace_with_running_pods_drains():
    status = decide("team-b", SETTINGS, TERMINATING, ALLOWED, previous=permitted(), active_pods=3)
    assert status.state is State.DRAINING
    assert status.reason.startswith("terminating: it is being deleted; no new tasks start here")


def test_absent_namespace_with_running_pods_drains():
    status = decide("team-b", SETTINGS, GONE, None, previous=permitted(), active_pods=1)
    assert status.state is State.DRAINING
    assert status.reason.startswith("does not exist: the API server has no namespace of that name;")


def test_draining_namespace_keeps_draining_while_pods_remain():
    status = decide("team-b", SETTINGS, UNLABELLED, ALLOWED, previous=draining(pods=2), active_pods=1)
    assert status.state is State.DRAINING
    assert status.active_pods == 1


def test_draining_namespace_keeps_its_watcher_for_one_poll_after_its_last_pod_finishes():
    status = decide("team-b", SETTINGS, UNLABELLED, ALLOWED, previous=draining(), active_pods=0)
    assert status.state is State.DRAINING
    assert status.watched
    assert status.active_pods == 0


def test_draining_namespace_becomes_not_selected_on_the_poll_after_its_last_pod_finished():
    last_poll = decide("team-b", SETTINGS, UNLABELLED, ALLOWED, previous=draining(), active_pods=0)
    status = decide("team-b", SETTINGS, UNLABELLED, ALLOWED, previous=last_poll, active_pods=0)
    assert status.state is State.NOT_SELECTED
    assert not status.watched


def test_permitted_namespace_that_loses_its_label_without_pods_stops_at_once():
    status = decide("team-b", SETTINGS, UNLABELLED, ALLOWED, previous=permitted(), active_pods=0)
    assert status.state is State.NOT_SELECTED


def test_draining_namespace_that_is_labelled_again_is_permitted_again():
    status = decide("team-b", SETTINGS, LABELLED, ALLOWED, previous=draining(), active_pods=2)
    assert status.state is State.PERMITTED


def test_draining_namespace_labelled_again_keeps_its_watcher_while_its_review_runs():
    status = decide("team-b", SETTINGS, LABELLED, None, previous=draining(), active_pods=2)
    assert status.watched


def test_permitted_namespace_whose_create_is_revoked_but_can_still_watch_drains():
    status = decide("team-b", SETTINGS, LABELLED, CANNOT_CREATE, previous=permitted(), active_pods=1)
    assert status.state is State.DRAINING
    assert status.reason.startswith(
        f"forbidden: scheduler identity {SA} lacks: create pods in team-b; no new tasks start here"
    )
    assert "create rolebinding" in status.fix


@pytest.mark.parametrize("access", [CANNOT_WATCH, CANNOT_LIST])
def test_permitted_namespace_that_can_no_longer_be_watched_is_forbidden_at_once(access: AccessDecision):
    status = decide("team-b", SETTINGS, LABELLED, access, previous=permitted(), active_pods=4)
    assert status.state is State.FORBIDDEN
    assert not status.watched


@pytest.mark.parametrize(
    "previous",
    [
        None,
        NamespaceStatus("team-b", State.NOT_SELECTED, "it lacks label airflow-enabled=true"),
        NamespaceStatus("team-b", State.PENDING, "its access review has not finished yet"),
        NamespaceStatus("team-b", State.FORBIDDEN, "lacks create pods"),
    ],
)
def test_namespace_that_was_never_in_use_does_not_drain_for_pods_found_there(
    previous: NamespaceStatus | None,
):
    status = decide("team-b", SETTINGS, UNLABELLED, CANNOT_CREATE, previous=previous, active_pods=3)
    assert status.state is State.NOT_SELECTED
    assert decide("team-b", SETTINGS, LABELLED, CANNOT_CREATE, previous=previous, active_pods=3).state is (
        State.FORBIDDEN
    )


def test_excluded_namespace_never_drains():
    settings = DiscoverySettings(home_namespace="airflow", exclude_namespaces=("team-b",))
    status = decide("team-b", settings, LABELLED, ALLOWED, previous=permitted(), active_pods=2)
    assert status.state is State.EXCLUDED


# NamespaceStatus and AccessDecision ------------------------------------------------------------


@pytest.mark.parametrize("state", list(State))
def test_only_permitted_and_draining_namespaces_are_watched(state: State):
    status = NamespaceStatus("team-b", state, "why")
    assert status.watched is (state in (State.PERMITTED, State.DRAINING))


@pytest.mark.parametrize("state", list(State))
def test_every_state_has_a_message_naming_the_namespace_and_reason(state: State):
    message = NamespaceStatus("team-b", state, "because").message
    assert message.startswith("namespace 'team-b' ")
    assert message.endswith(": because")


def test_message_puts_the_fix_in_parentheses():
    status = NamespaceStatus(
        "team-b",
        State.NOT_SELECTED,
        "it lacks label airflow-enabled=true",
        "kubectl label namespace team-b airflow-enabled=true",
    )
    assert status.message == (
        "namespace 'team-b' is not selected: it lacks label airflow-enabled=true "
        "(kubectl label namespace team-b airflow-enabled=true)"
    )


def test_access_decision_without_missing_verbs_is_allowed():
    assert ALLOWED.allowed
    assert ALLOWED.can_watch
    assert not CANNOT_CREATE.allowed
    assert CANNOT_CREATE.can_watch
    assert not CANNOT_WATCH.can_watch
    assert not CANNOT_LIST.can_watch


# StateTable ------------------------------------------------------------------------------------


def test_state_table_put_returns_the_status_it_replaced():
    table = StateTable()
    first = permitted()
    assert table.put(first) is None
    second = draining()
    assert table.put(second) is first
    assert table.get("team-b") is second
    assert table.get("team-c") is None


def test_state_table_snapshot_is_a_copy():
    table = StateTable()
    table.put(permitted("team-a"))
    snapshot = table.snapshot()
    snapshot.pop("team-a")
    table.put(permitted("team-b"))
    assert set(table.snapshot()) == {"team-a", "team-b"}
    assert snapshot == {}


def test_state_table_watched_lists_permitted_and_draining_namespaces():
    table = StateTable()
    table.put(permitted("team-a"))
    table.put(draining("team-b"))
    table.put(decide("team-c", SETTINGS, LABELLED, None))
    table.put(decide("team-d", SETTINGS, LABELLED, CANNOT_WATCH))
    assert table.watched() == {"team-a", "team-b"}
