"""Pre-launch check: a pod is created only in a permitted namespace."""

from __future__ import annotations

import pytest
from kubernetes.client import models as k8s

from airflow_provider_nsdiscovery.config import DiscoverySettings
from airflow_provider_nsdiscovery.discovery.decide import decide
from airflow_provider_nsdiscovery.discovery.status import AccessDecision, NamespaceStatus, Observation, State
from airflow_provider_nsdiscovery.validation import NamespaceRefusal, check_pod_namespace

SETTINGS = DiscoverySettings(home_namespace="airflow")
SA = "system:serviceaccount:airflow:scheduler"
LABELLED = Observation(exists=True, labels={"airflow-enabled": "true"})


class Lookup:
    """The state table as validation sees it: a function of the namespace name, calls recorded."""

    def __init__(self, *statuses: NamespaceStatus) -> None:
        self.rows = {s.name: s for s in statuses}
        self.asked: list[str] = []

    def __call__(self, name: str) -> NamespaceStatus:
        self.asked.append(name)
        return self.rows.get(name) or decide(name, SETTINGS, None, None)


def pod(namespace: str | None) -> k8s.V1Pod:
    return k8s.V1Pod(metadata=k8s.V1ObjectMeta(name="task", namespace=namespace))


def test_pod_in_a_permitted_namespace_passes_with_its_status() -> None:
    status = decide("team-b", SETTINGS, LABELLED, AccessDecision(SA, ()))
    lookup = Lookup(status)
    assert check_pod_namespace(pod("team-b"), lookup) is status
    assert lookup.asked == ["team-b"]


def test_pod_in_the_home_namespace_passes() -> None:
    assert check_pod_namespace(pod("airflow"), Lookup()).state is State.PERMITTED


@pytest.mark.parametrize(
    "status",
    [
        decide("team-b", SETTINGS, Observation(exists=True, labels={}), AccessDecision(SA, ())),
        decide("team-b", SETTINGS, LABELLED, AccessDecision(SA, ("create pods",))),
        decide("team-b", SETTINGS, LABELLED, None),
        decide("team-b", SETTINGS, Observation(exists=False), None),
        decide("team-b", SETTINGS, Observation(exists=True, terminating=True), None),
        NamespaceStatus("team-b", State.DRAINING, "not selected: it lacks label airflow-enabled=true"),
    ],
    ids=lambda s: s.state.value,
)
def test_pod_in_a_namespace_that_is_not_permitted_is_refused_with_the_status(status: NamespaceStatus) -> None:
    with pytest.raises(NamespaceRefusal) as caught:
        check_pod_namespace(pod("team-b"), Lookup(status))
    assert caught.value.status is status
    assert str(caught.value) == status.message


def test_refusal_message_names_namespace_reason_and_fix() -> None:
    with pytest.raises(NamespaceRefusal) as caught:
        check_pod_namespace(pod("team-c"), Lookup())
    assert str(caught.value) == (
        "namespace 'team-c' is not selected: it does not match label selector 'airflow-enabled=true' "
        "(kubectl label namespace team-c airflow-enabled=true)"
    )


def test_excluded_namespace_is_refused() -> None:
    with pytest.raises(NamespaceRefusal) as caught:
        check_pod_namespace(pod("kube-system"), Lookup())
    assert caught.value.status.state is State.EXCLUDED


@pytest.mark.parametrize(
    "unplaced",
    [k8s.V1Pod(), k8s.V1Pod(metadata=k8s.V1ObjectMeta(name="task")), pod("")],
    ids=["no-metadata", "no-namespace", "empty-namespace"],
)
def test_pod_without_a_namespace_is_looked_up_as_empty_and_refused(unplaced: k8s.V1Pod) -> None:
    lookup = Lookup()
    with pytest.raises(NamespaceRefusal) as caught:
        check_pod_namespace(unplaced, lookup)
    assert lookup.asked == [""]
    assert caught.value.status.state is State.INVALID_NAME
