"""decide(): every namespace state, every refusal reason and fix, and the drain transitions."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from airflow_provider_nsdiscovery.config import DiscoverySettings
from airflow_provider_nsdiscovery.discovery import remedies
from airflow_provider_nsdiscovery.discovery.decide import decide
from airflow_provider_nsdiscovery.discovery.status import (
    AccessDecision,
    NamespaceStatus,
    Observation,
    State,
    is_valid_namespace_name,
)
from airflow_provider_nsdiscovery.discovery.table import StateTable
from tests.unit.discovery_fakes import SA_FLAG, grant_command

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
EXCLUDING_TEAM_B = DiscoverySettings(home_namespace="airflow", exclude_namespaces=("team-b",))


def permitted(name: str = "team-b") -> NamespaceStatus:
    status = decide(name, SETTINGS, LABELLED, ALLOWED)
    assert status.state is State.PERMITTED
    return status


def draining(name: str = "team-b", tasks: int = 2) -> NamespaceStatus:
    status = decide(name, SETTINGS, UNLABELLED, ALLOWED, previous=permitted(name), tasks=tasks)
    assert status.state is State.DRAINING
    return status


# invalid names ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["", "a" * 64, "Team-B", "team.b", "team_b", "-team", "team-", "team b", "tëam"]
)
def test_invalid_namespace_name_is_refused_even_when_labelled_and_allowed(name: str) -> None:
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
def test_invalid_name_fix_suggests_a_valid_name(name: str, suggestion: str) -> None:
    status = decide(name, SETTINGS, None, None)
    assert status.fix.endswith(f"to a valid name, e.g. '{suggestion}'")
    assert is_valid_namespace_name(suggestion)


@pytest.mark.parametrize("name", ["", "___", "..."])
def test_invalid_name_with_nothing_to_salvage_suggests_no_name(name: str) -> None:
    status = decide(name, SETTINGS, None, None)
    assert status.state is State.INVALID_NAME
    assert "e.g." not in status.fix


@settings(database=None)
@given(st.text(max_size=80))
def test_any_suggested_namespace_name_is_itself_valid(name: str) -> None:
    status = decide(name, SETTINGS, None, None)
    if status.state is not State.INVALID_NAME:
        assert is_valid_namespace_name(name)
        return
    suggestion = re.search(r"e\.g\. '(.*)'$", status.fix)
    if suggestion is not None:
        assert is_valid_namespace_name(suggestion.group(1))
        assert suggestion.group(1) != name


@pytest.mark.parametrize("name", ["a", "team-b", "a" * 63, "0team", "t-1"])
def test_dns1123_labels_are_valid_namespace_names(name: str) -> None:
    assert is_valid_namespace_name(name)


def test_namespace_name_with_trailing_newline_is_invalid() -> None:
    assert decide("team-b\n", SETTINGS, LABELLED, ALLOWED).state is State.INVALID_NAME


# home, excluded, absent, terminating -----------------------------------------------------------


@pytest.mark.parametrize("observation", [None, UNLABELLED, LABELLED, CANDIDATE, GONE])
@pytest.mark.parametrize("access", [None, ALLOWED])
def test_home_namespace_is_permitted_without_label_while_unreviewed_or_allowed(
    observation: Observation | None, access: AccessDecision | None
) -> None:
    status = decide("airflow", SETTINGS, observation, access)
    assert status.state is State.PERMITTED
    assert status.reason == "it is the executor's home namespace"
    assert status.watched


def test_home_namespace_is_permitted_even_if_it_is_listed_as_excluded() -> None:
    settings = DiscoverySettings(home_namespace="airflow", exclude_namespaces=("airflow",))
    assert decide("airflow", settings, None, None).state is State.PERMITTED


@pytest.mark.parametrize("observation", [None, UNLABELLED, LABELLED])
def test_home_namespace_is_forbidden_when_its_access_review_finds_permissions_missing(
    observation: Observation | None,
) -> None:
    status = decide("airflow", SETTINGS, observation, CANNOT_CREATE)
    assert status.state is State.FORBIDDEN
    assert status.reason == f"scheduler identity {SA} lacks: create pods in airflow"
    assert status.fix == remedies.rbac_fix("airflow", SA, ("create pods",))
    assert not status.watched


def test_home_namespace_listed_as_excluded_is_still_forbidden_when_reviewed_so() -> None:
    settings = DiscoverySettings(home_namespace="airflow", exclude_namespaces=("airflow",))
    assert decide("airflow", settings, None, CANNOT_LIST).state is State.FORBIDDEN


def test_forbidden_home_namespace_that_can_still_be_watched_drains_its_tasks() -> None:
    status = decide("airflow", SETTINGS, None, CANNOT_CREATE, tasks=2)
    assert status.state is State.DRAINING
    assert status.reason.startswith(f"forbidden: scheduler identity {SA} lacks: create pods in airflow;")


def test_home_namespace_that_can_no_longer_be_watched_is_forbidden_even_with_tasks_there() -> None:
    status = decide("airflow", SETTINGS, None, CANNOT_WATCH, tasks=2)
    assert status.state is State.FORBIDDEN
    assert status.tasks == 2


@pytest.mark.parametrize("name", ["kube-system", "kube-public", "kube-node-lease"])
def test_system_namespaces_are_excluded_by_default_even_when_labelled_and_allowed(name: str) -> None:
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


def test_configured_exclusion_refuses_a_labelled_namespace() -> None:
    settings = DiscoverySettings(home_namespace="airflow", exclude_namespaces=("team-b",))
    assert decide("team-b", settings, LABELLED, ALLOWED).state is State.EXCLUDED
    assert decide("kube-system", settings, LABELLED, ALLOWED).state is State.PERMITTED


def test_namespace_the_api_server_does_not_have_is_absent_with_create_and_label_fix() -> None:
    status = decide("team-b", SETTINGS, GONE, ALLOWED)
    assert status.state is State.ABSENT
    assert status.message == (
        "namespace 'team-b' does not exist: the API server has no namespace of that name "
        "(kubectl create namespace team-b && kubectl label namespace team-b airflow-enabled=true)"
    )


def test_namespace_being_deleted_is_terminating_even_when_labelled_and_allowed() -> None:
    status = decide("team-b", SETTINGS, TERMINATING, ALLOWED)
    assert status.state is State.TERMINATING
    assert status.reason == "it is being deleted"
    assert "recreate it" in status.fix


# not selected, pending, forbidden, permitted ---------------------------------------------------


def test_unseen_namespace_is_not_selected_with_label_fix() -> None:
    status = decide("team-b", SETTINGS, None, ALLOWED)
    assert status.state is State.NOT_SELECTED
    assert status.reason == "it does not match label selector 'airflow-enabled=true'"
    assert status.fix == "kubectl label namespace team-b airflow-enabled=true"


def test_unseen_namespace_fix_sets_every_equality_label_of_the_selector() -> None:
    settings = DiscoverySettings(
        home_namespace="airflow", label_selector="airflow-enabled=true,team in (a,b)"
    )
    status = decide("team-b", settings, None, None)
    assert status.fix == "kubectl label namespace team-b airflow-enabled=true team=a"


def test_unseen_namespace_under_a_selector_without_equality_says_what_to_match() -> None:
    settings = DiscoverySettings(home_namespace="airflow", label_selector="!legacy")
    status = decide("team-b", settings, None, None)
    assert status.fix == "label namespace team-b so that it matches '!legacy'"


def test_namespace_without_the_label_is_not_selected_even_when_allowed() -> None:
    status = decide("team-b", SETTINGS, UNLABELLED, ALLOWED)
    assert status.state is State.NOT_SELECTED
    assert status.message == (
        "namespace 'team-b' is not selected: it lacks label airflow-enabled=true "
        "(kubectl label namespace team-b airflow-enabled=true)"
    )


def test_namespace_with_the_wrong_label_value_is_told_to_overwrite_it() -> None:
    observation = Observation(exists=True, labels={"airflow-enabled": "false"})
    status = decide("team-b", SETTINGS, observation, ALLOWED)
    assert status.state is State.NOT_SELECTED
    assert status.reason == "its label airflow-enabled=false does not satisfy 'airflow-enabled=true'"
    assert status.fix == "kubectl label namespace team-b airflow-enabled=true --overwrite"


def test_not_selected_reason_names_the_clause_that_fails() -> None:
    settings = DiscoverySettings(
        home_namespace="airflow", label_selector="airflow-enabled=true,team in (a,b)"
    )
    observation = Observation(exists=True, labels={"airflow-enabled": "true", "team": "c"})
    status = decide("team-b", settings, observation, ALLOWED)
    assert status.state is State.NOT_SELECTED
    assert status.reason == "its label team=c does not satisfy 'team in (a,b)'"
    assert status.fix == "kubectl label namespace team-b team=a --overwrite"


def test_not_selected_by_a_notin_clause_is_told_to_remove_the_label() -> None:
    settings = DiscoverySettings(home_namespace="airflow", label_selector="team notin (legacy)")
    observation = Observation(exists=True, labels={"team": "legacy"})
    status = decide("team-b", settings, observation, ALLOWED)
    assert status.state is State.NOT_SELECTED
    assert status.fix == "kubectl label namespace team-b team-"


@pytest.mark.parametrize("observation", [LABELLED, CANDIDATE])
def test_selected_namespace_without_a_finished_review_is_pending(observation: Observation) -> None:
    status = decide("team-b", SETTINGS, observation, None)
    assert status.state is State.PENDING
    assert status.reason == "its access review has not finished yet"
    assert not status.watched


def test_pending_namespace_whose_review_failed_says_why_and_that_it_retries() -> None:
    status = decide("team-b", SETTINGS, LABELLED, None, unknown="HTTP 503")
    assert status.state is State.PENDING
    assert status.reason == "its access review failed (HTTP 503); retrying"


def test_missing_verbs_make_a_selected_namespace_forbidden_naming_identity_and_verbs() -> None:
    status = decide("team-b", SETTINGS, LABELLED, CANNOT_WATCH)
    assert status.state is State.FORBIDDEN
    assert (
        "scheduler identity system:serviceaccount:airflow:scheduler lacks: watch pods, delete pods in team-b"
        in status.message
    )
    assert status.fix == grant_command("airflow-task-pods-pods-watch-delete", "watch,delete", "pods", SA_FLAG)
    assert status.checked_at == CANNOT_WATCH.checked_at
    assert not status.confirmed


def test_forbidden_fix_for_only_pod_logs_missing_grants_only_get_pods_log_re_runnably_to_a_user() -> None:
    access = AccessDecision("alice@example.com", ("get pods/log",))
    status = decide("team-b", SETTINGS, LABELLED, access)
    assert status.state is State.FORBIDDEN
    assert status.fix == grant_command(
        "airflow-task-pods-pods-log-get", "get", "pods/log", "--user=alice@example.com"
    )
    assert "--serviceaccount" not in status.fix


def test_forbidden_candidate_namespace_is_forbidden() -> None:
    assert decide("team-b", SETTINGS, CANDIDATE, CANNOT_CREATE).state is State.FORBIDDEN


def test_selected_namespace_with_every_verb_allowed_is_permitted() -> None:
    status = decide("team-b", SETTINGS, LABELLED, ALLOWED)
    assert status.state is State.PERMITTED
    assert status.reason == f"selected by 'airflow-enabled=true' and {SA} may manage pods there"
    assert status.fix == ""
    assert status.checked_at == ALLOWED.checked_at
    assert status.watched


def test_candidate_namespace_that_cannot_be_read_is_permitted_by_access_alone() -> None:
    status = decide("team-b", SETTINGS, CANDIDATE, ALLOWED)
    assert status.state is State.PERMITTED
    assert status.reason == (
        f"listed in [kubernetes_namespace_discovery] candidate_namespaces and {SA} may manage pods there"
    )


# draining ----------------------------------------------------------------------------------------


def test_namespace_that_loses_its_label_with_tasks_placed_there_drains() -> None:
    status = decide("team-b", SETTINGS, UNLABELLED, ALLOWED, previous=permitted(), tasks=2)
    assert status.state is State.DRAINING
    assert status.watched
    assert status.tasks == 2
    assert status.reason == (
        "not selected: it lacks label airflow-enabled=true; no new tasks start here and its watcher "
        "stays until the 2 tasks launched here finish"
    )
    assert status.fix == "kubectl label namespace team-b airflow-enabled=true"


def test_draining_reason_counts_a_single_task_in_the_singular() -> None:
    status = decide("team-b", SETTINGS, UNLABELLED, ALLOWED, previous=permitted(), tasks=1)
    assert status.reason.endswith("its watcher stays until the 1 task launched here finishes")


def test_namespace_that_leaves_the_selection_with_tasks_placed_there_drains() -> None:
    status = decide("team-b", SETTINGS, None, None, previous=permitted(), tasks=1)
    assert status.state is State.DRAINING
    assert status.reason.startswith("not selected: it does not match label selector 'airflow-enabled=true';")


def test_terminating_namespace_with_tasks_placed_there_drains() -> None:
    status = decide("team-b", SETTINGS, TERMINATING, ALLOWED, previous=permitted(), tasks=3)
    assert status.state is State.DRAINING
    assert status.reason.startswith("terminating: it is being deleted; no new tasks start here")


def test_excluded_namespace_with_tasks_placed_there_drains() -> None:
    status = decide("team-b", EXCLUDING_TEAM_B, LABELLED, ALLOWED, previous=permitted(), tasks=2)
    assert status.state is State.DRAINING
    assert status.reason.startswith("excluded: it is listed in [kubernetes_namespace_discovery]")


@pytest.mark.parametrize("previous", [None, "permitted", "draining"])
@pytest.mark.parametrize("access", [None, ALLOWED, CANNOT_CREATE])
def test_absent_namespace_never_drains_because_its_pods_are_gone_with_it(
    previous: str | None, access: AccessDecision | None
) -> None:
    before = {None: None, "permitted": permitted(), "draining": draining()}[previous]
    status = decide("team-b", SETTINGS, GONE, access, previous=before, tasks=3)
    assert status.state is State.ABSENT
    assert not status.watched
    assert status.tasks == 3
    assert status.gives_up_tasks


@pytest.mark.parametrize(
    "previous",
    [
        None,
        NamespaceStatus("team-b", State.NOT_SELECTED, "it lacks label airflow-enabled=true"),
        NamespaceStatus("team-b", State.PENDING, "its access review has not finished yet"),
        NamespaceStatus("team-b", State.FORBIDDEN, "lacks create pods"),
    ],
)
@pytest.mark.parametrize(
    ("settings_", "observation", "access"),
    [
        (SETTINGS, UNLABELLED, ALLOWED),
        (SETTINGS, None, None),
        (SETTINGS, TERMINATING, ALLOWED),
        (EXCLUDING_TEAM_B, LABELLED, ALLOWED),
        (SETTINGS, LABELLED, CANNOT_CREATE),
    ],
    ids=["not-selected", "unseen", "terminating", "excluded", "forbidden-can-watch"],
)
def test_namespace_drains_for_tasks_placed_there_even_if_it_was_never_in_use_before(
    previous: NamespaceStatus | None,
    settings_: DiscoverySettings,
    observation: Observation | None,
    access: AccessDecision | None,
) -> None:
    status = decide("team-b", settings_, observation, access, previous=previous, tasks=3)
    assert status.state is State.DRAINING
    assert status.tasks == 3
    assert status.watched


def test_draining_namespace_keeps_draining_while_tasks_remain_and_counts_them_anew() -> None:
    status = decide("team-b", SETTINGS, UNLABELLED, ALLOWED, previous=draining(tasks=2), tasks=1)
    assert status.state is State.DRAINING
    assert status.tasks == 1
    assert status.reason.endswith("until the 1 task launched here finishes")


def test_draining_namespace_stops_as_soon_as_its_last_task_finished_without_one_more_poll() -> None:
    status = decide("team-b", SETTINGS, UNLABELLED, ALLOWED, previous=draining(), tasks=0)
    assert status.state is State.NOT_SELECTED
    assert not status.watched
    assert status.tasks == 0


@pytest.mark.parametrize(
    ("settings_", "observation", "access", "state"),
    [
        (SETTINGS, UNLABELLED, ALLOWED, State.NOT_SELECTED),
        (SETTINGS, TERMINATING, ALLOWED, State.TERMINATING),
        (EXCLUDING_TEAM_B, LABELLED, ALLOWED, State.EXCLUDED),
        (SETTINGS, LABELLED, CANNOT_CREATE, State.FORBIDDEN),
    ],
)
def test_permitted_namespace_without_tasks_placed_there_stops_at_once(
    settings_: DiscoverySettings, observation: Observation, access: AccessDecision, state: State
) -> None:
    status = decide("team-b", settings_, observation, access, previous=permitted(), tasks=0)
    assert status.state is state
    assert not status.watched


def test_draining_namespace_that_is_labelled_again_is_permitted_again() -> None:
    status = decide("team-b", SETTINGS, LABELLED, ALLOWED, previous=draining(), tasks=2)
    assert status.state is State.PERMITTED


@pytest.mark.parametrize("tasks", [0, 1])
def test_pending_answer_keeps_the_watched_previous_status(tasks: int) -> None:
    for previous in (permitted(), draining()):
        assert decide("team-b", SETTINGS, LABELLED, None, previous=previous, tasks=tasks) is previous


def test_pending_namespace_not_watched_before_stays_pending_with_its_tasks_and_keeps_them() -> None:
    previous = NamespaceStatus("team-b", State.NOT_SELECTED, "it lacks label airflow-enabled=true")
    status = decide("team-b", SETTINGS, LABELLED, None, previous=previous, tasks=2)
    assert status.state is State.PENDING
    assert status.tasks == 2
    assert not status.watched
    assert not status.gives_up_tasks


def test_permitted_namespace_whose_create_is_revoked_but_can_still_watch_drains() -> None:
    status = decide("team-b", SETTINGS, LABELLED, CANNOT_CREATE, previous=permitted(), tasks=1)
    assert status.state is State.DRAINING
    assert status.reason.startswith(
        f"forbidden: scheduler identity {SA} lacks: create pods in team-b; no new tasks start here"
    )
    assert status.fix == remedies.rbac_fix("team-b", SA, ("create pods",))


@pytest.mark.parametrize("access", [CANNOT_WATCH, CANNOT_LIST])
def test_namespace_that_can_no_longer_be_watched_is_forbidden_at_once_keeping_its_task_count(
    access: AccessDecision,
) -> None:
    status = decide("team-b", SETTINGS, LABELLED, access, previous=permitted(), tasks=4)
    assert status.state is State.FORBIDDEN
    assert not status.watched
    assert status.tasks == 4
    assert not status.confirmed
    assert not status.gives_up_tasks


OBSERVATIONS = st.sampled_from([None, LABELLED, UNLABELLED, TERMINATING, GONE, CANDIDATE])
ACCESSES = st.sampled_from([None, ALLOWED, CANNOT_CREATE, CANNOT_WATCH, CANNOT_LIST])
NAMES = st.sampled_from(["team-b", "airflow", "kube-system", "Team_B"])


@settings(database=None)
@given(NAMES, OBSERVATIONS, ACCESSES, st.sampled_from([None, "permitted", "draining"]))
def test_without_tasks_a_namespace_drains_only_when_a_pending_answer_keeps_a_draining_previous(
    name: str, observation: Observation | None, access: AccessDecision | None, previous: str | None
) -> None:
    before = {
        None: None,
        "permitted": NamespaceStatus(name, State.PERMITTED, "r"),
        "draining": NamespaceStatus(name, State.DRAINING, "r", tasks=1),
    }[previous]
    status = decide(name, SETTINGS, observation, access, previous=before, tasks=0)
    if status.state is State.DRAINING:
        assert status is before


@settings(database=None)
@given(NAMES, OBSERVATIONS, ACCESSES, st.integers(min_value=1, max_value=50))
def test_with_tasks_placed_there_a_drainable_namespace_always_drains_and_an_absent_one_never(
    name: str, observation: Observation | None, access: AccessDecision | None, tasks: int
) -> None:
    base = decide(name, SETTINGS, observation, access)
    status = decide(name, SETTINGS, observation, access, tasks=tasks)
    drainable = base.state in (State.NOT_SELECTED, State.TERMINATING, State.EXCLUDED) or (
        base.state is State.FORBIDDEN and (access is None or access.can_watch)
    )
    assert (status.state is State.DRAINING) is drainable
    if base.state is State.ABSENT:
        assert status.state is State.ABSENT
    if status.state is not State.PERMITTED:
        assert status.tasks == tasks


# NamespaceStatus and AccessDecision ------------------------------------------------------------


@pytest.mark.parametrize("state", list(State))
def test_only_permitted_and_draining_namespaces_are_watched(state: State) -> None:
    status = NamespaceStatus("team-b", state, "why")
    assert status.watched is (state in (State.PERMITTED, State.DRAINING))


@pytest.mark.parametrize("confirmed", [False, True])
@pytest.mark.parametrize("state", [State.PERMITTED, State.DRAINING])
def test_watched_namespace_never_gives_up_its_tasks(state: State, confirmed: bool) -> None:
    assert not NamespaceStatus("team-b", state, "why", tasks=3, confirmed=confirmed).gives_up_tasks


@pytest.mark.parametrize("confirmed", [False, True])
def test_pending_namespace_keeps_its_tasks_because_pending_is_no_answer(confirmed: bool) -> None:
    assert not NamespaceStatus("team-b", State.PENDING, "why", tasks=3, confirmed=confirmed).gives_up_tasks


def test_unconfirmed_forbidden_namespace_keeps_its_tasks() -> None:
    assert not NamespaceStatus("team-b", State.FORBIDDEN, "why", tasks=3).gives_up_tasks


def test_confirmed_forbidden_namespace_gives_up_its_tasks() -> None:
    assert NamespaceStatus("team-b", State.FORBIDDEN, "why", tasks=3, confirmed=True).gives_up_tasks


@pytest.mark.parametrize(
    "state",
    [State.ABSENT, State.NOT_SELECTED, State.TERMINATING, State.EXCLUDED, State.INVALID_NAME, State.DENIED],
)
def test_namespace_in_any_other_state_gives_up_its_tasks(state: State) -> None:
    assert NamespaceStatus("team-b", state, "why", tasks=3).gives_up_tasks


@pytest.mark.parametrize("state", list(State))
def test_every_state_has_a_message_naming_the_namespace_and_reason(state: State) -> None:
    message = NamespaceStatus("team-b", state, "because").message
    assert message.startswith("namespace 'team-b' ")
    assert message.endswith(": because")


def test_message_puts_the_fix_in_parentheses() -> None:
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


def test_access_decision_can_watch_unless_list_or_watch_pods_is_missing() -> None:
    assert ALLOWED.allowed
    assert ALLOWED.can_watch
    assert not CANNOT_CREATE.allowed
    assert CANNOT_CREATE.can_watch
    assert not CANNOT_WATCH.can_watch
    assert not CANNOT_LIST.can_watch


# StateTable ------------------------------------------------------------------------------------


def test_state_table_put_returns_the_status_it_replaced() -> None:
    table = StateTable()
    first = permitted()
    assert table.put(first) is None
    second = draining()
    assert table.put(second) is first
    assert table.get("team-b") is second
    assert table.get("team-c") is None


def test_state_table_snapshot_is_a_copy() -> None:
    table = StateTable()
    table.put(permitted("team-a"))
    snapshot = table.snapshot()
    snapshot.pop("team-a")
    table.put(permitted("team-b"))
    assert set(table.snapshot()) == {"team-a", "team-b"}
    assert snapshot == {}


def test_state_table_watched_is_a_frozenset_of_permitted_and_draining_namespaces() -> None:
    table = StateTable()
    table.put(permitted("team-a"))
    table.put(draining("team-b"))
    table.put(decide("team-c", SETTINGS, LABELLED, None))
    table.put(decide("team-d", SETTINGS, LABELLED, CANNOT_WATCH))
    watched = table.watched()
    assert isinstance(watched, frozenset)
    assert watched == frozenset({"team-a", "team-b"})


def test_state_table_watched_follows_every_change_of_a_namespaces_state() -> None:
    table = StateTable()
    table.put(permitted("team-a"))
    table.put(permitted("team-b"))
    before = table.watched()
    assert table.watched() is before  # unchanged membership: the same set, not rebuilt
    table.put(draining("team-a"))  # still watched
    assert table.watched() == {"team-a", "team-b"}
    table.put(decide("team-b", SETTINGS, LABELLED, CANNOT_WATCH))
    assert table.watched() == {"team-a"}
    table.put(permitted("team-b"))
    assert table.watched() == {"team-a", "team-b"}
    assert before == {"team-a", "team-b"}  # an earlier answer is a snapshot, never changed under its reader
