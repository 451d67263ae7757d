"""Access reviews behind a real webhook authorizer, where rules reviews cannot answer.

A module of its own because it needs a kube-apiserver in `RBAC,Webhook` mode: switching the
session's control plane would change what every other test is checking.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest
from kubernetes import client

from airflow_provider_nsdiscovery.discovery.access import AccessReviewer
from airflow_provider_nsdiscovery.discovery.permissions import REQUIRED_PERMISSIONS
from airflow_provider_nsdiscovery.discovery.status import State
from kubeharness import NAMESPACE_READ_RULES, ControlPlane, Identity, find_binaries
from kubeharness.webhook_authorizer import WebhookAuthorizer
from tests.integration.executor_helpers import Executor

ALL_REQUIRED = tuple(str(p) for p in REQUIRED_PERMISSIONS)


@pytest.fixture(scope="module")
def webhook() -> WebhookAuthorizer:
    return WebhookAuthorizer()


@pytest.fixture(scope="module")
def webhook_plane(webhook: WebhookAuthorizer) -> Iterator[ControlPlane]:
    binaries = find_binaries()
    if binaries is None:
        pytest.skip("a webhook authorizer needs the process control plane's kube-apiserver flags")
    with ControlPlane(binaries, webhook=webhook) as plane:
        yield plane


@pytest.fixture(scope="module")
def webhook_scheduler(webhook_plane: ControlPlane) -> Identity:
    """Reads namespaces through RBAC, like the deployed scheduler, but holds no pod rights there."""
    return webhook_plane.service_account_client("airflow", "scheduler", cluster_rules=NAMESPACE_READ_RULES)


@pytest.fixture(scope="module")
def namespaces(
    webhook: WebhookAuthorizer, webhook_plane: ControlPlane, webhook_scheduler: Identity
) -> tuple[str, str, str]:
    """(selector label, namespace the webhook allows, namespace it has no opinion on)."""
    label = f"nsd-{uuid.uuid4().hex[:8]}"
    allowed, refused = f"t-allowed-{uuid.uuid4().hex[:6]}", f"t-refused-{uuid.uuid4().hex[:6]}"
    for name in (allowed, refused):
        webhook_plane.create_namespace(name, {label: "true"})
    webhook.allow(
        webhook_scheduler.username, allowed, "pods", {"create", "get", "list", "watch", "patch", "delete"}
    )
    webhook.allow(webhook_scheduler.username, allowed, "pods", {"get"}, subresource="log")
    return label, allowed, refused


def test_rules_review_is_incomplete_and_lists_no_pod_rules_behind_a_webhook(
    webhook_scheduler: Identity, namespaces: tuple[str, str, str]
) -> None:
    """Why the product must fall back to access reviews: the rules alone would refuse everything."""
    _, allowed, _ = namespaces
    review = client.AuthorizationV1Api(webhook_scheduler.api_client).create_self_subject_rules_review(
        client.V1SelfSubjectRulesReview(spec=client.V1SelfSubjectRulesReviewSpec(namespace=allowed))
    )

    assert review.status.incomplete is True
    assert not [rule for rule in review.status.resource_rules or [] if "pods" in (rule.resources or [])]


def test_namespace_the_webhook_allows_is_permitted_by_access_reviews_the_webhook_decides(
    webhook: WebhookAuthorizer, webhook_scheduler: Identity, namespaces: tuple[str, str, str]
) -> None:
    _, allowed, _ = namespaces
    requests: list[str] = []
    reviewer = AccessReviewer(
        webhook_scheduler.api_client, webhook_scheduler.username, on_request=requests.append
    )

    decision = reviewer.review(allowed)

    assert decision.allowed, decision.missing
    assert requests.count("selfsubjectaccessreviews") == len(REQUIRED_PERMISSIONS)
    decided = {(d.verb, d.resource) for d in webhook.decisions() if d.namespace == allowed and d.allowed}
    assert decided == {(p.verb, p.resource_path) for p in REQUIRED_PERMISSIONS}


def test_namespace_the_webhook_has_no_opinion_on_is_refused_naming_every_missing_permission(
    webhook_scheduler: Identity, namespaces: tuple[str, str, str]
) -> None:
    _, _, refused = namespaces
    reviewer = AccessReviewer(webhook_scheduler.api_client, webhook_scheduler.username)

    decision = reviewer.review(refused)

    assert not decision.allowed
    assert decision.missing == ALL_REQUIRED


def test_executor_discovers_the_webhook_allowed_namespace_and_refuses_the_other_with_a_reason(
    make_executor: Callable[..., Executor],
    webhook_scheduler: Identity,
    namespaces: tuple[str, str, str],
) -> None:
    label, allowed, refused = namespaces
    executor = make_executor(identity=webhook_scheduler, label_selector=f"{label}=true")

    assert executor.discovery is not None
    permitted = executor.discovery.status(allowed)
    forbidden = executor.discovery.status(refused)
    assert permitted is not None
    assert permitted.state is State.PERMITTED
    assert forbidden is not None
    assert forbidden.state is State.FORBIDDEN
    assert f"{webhook_scheduler.username} lacks: {', '.join(ALL_REQUIRED)} in {refused}" in forbidden.message
