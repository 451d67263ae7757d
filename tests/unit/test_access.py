"""Access reviews: RBAC wildcard semantics, rules review vs access review, and the TTL cache."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from cachetools import TTLCache
from kubernetes import client

from airflow_provider_nsdiscovery.discovery import access
from airflow_provider_nsdiscovery.discovery.access import (
    REQUIRED_PERMISSIONS,
    AccessReviewer,
    Permission,
    rule_grants,
    who_am_i,
)
from airflow_provider_nsdiscovery.discovery.state import AccessDecision

SA = "system:serviceaccount:airflow:scheduler"
POD_LOG = Permission("get", "pods", "log")
ALL_VERBS = ["create", "get", "list", "watch", "patch", "delete"]


def rule(
    verbs: list[str],
    resources: list[str],
    api_groups: list[str] | None = None,
    resource_names: list[str] | None = None,
) -> client.V1ResourceRule:
    return client.V1ResourceRule(
        verbs=verbs,
        resources=resources,
        api_groups=[""] if api_groups is None else api_groups,
        resource_names=resource_names,
    )


# rule_grants -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("granting", "permission", "expected"),
    [
        (rule(["get"], ["pods"]), Permission("get", "pods"), True),
        (rule(["get"], ["pods"]), Permission("list", "pods"), False),
        (rule(["*"], ["pods"]), Permission("delete", "pods"), True),
        (rule(["get"], ["*"]), Permission("get", "pods"), True),
        (rule(["get"], ["services"]), Permission("get", "pods"), False),
        (rule(["get"], ["pods"], api_groups=["*"]), Permission("get", "pods"), True),
        (rule(["get"], ["pods"], api_groups=["apps"]), Permission("get", "pods"), False),
        (rule(["get"], ["pods"], api_groups=["apps", ""]), Permission("get", "pods"), True),
        (rule(["get"], ["pods"], api_groups=[]), Permission("get", "pods"), False),
        (rule(["get"], ["pods"], resource_names=["task-pod"]), Permission("get", "pods"), False),
        (rule(["*"], ["*"], api_groups=["*"], resource_names=["x"]), Permission("create", "pods"), False),
        (rule(["get"], ["pods/log"]), POD_LOG, True),
        (rule(["get"], ["*"]), POD_LOG, True),
        (rule(["get"], ["*/log"]), POD_LOG, True),
        (rule(["get"], ["pods"]), POD_LOG, False),
        (rule(["get"], ["pods/exec"]), POD_LOG, False),
        (rule(["get"], ["*/exec"]), POD_LOG, False),
        (rule(["list"], ["pods/log"]), POD_LOG, False),
        (rule(["get"], ["pods/log"]), Permission("get", "pods"), False),
    ],
)
def test_rule_grants_follows_rbac_wildcards(
    granting: client.V1ResourceRule, permission: Permission, expected: bool
):
    assert rule_grants(granting, permission) is expected


def test_required_permissions_are_every_pod_verb_and_pod_logs():
    assert [str(p) for p in REQUIRED_PERMISSIONS] == [
        "create pods",
        "get pods",
        "list pods",
        "watch pods",
        "patch pods",
        "delete pods",
        "get pods/log",
    ]


# AccessReviewer --------------------------------------------------------------------------------


class FakeAuthorizationApi:
    """Answers rules reviews from ``rules`` and access reviews from ``allowed``; records every call."""

    def __init__(self) -> None:
        self.rules: list[client.V1ResourceRule] = []
        self.incomplete = False
        self.allowed: set[str] = set()
        self.rules_reviews: list[str] = []
        self.access_reviews: list[tuple[str, str, str, str | None]] = []

    def create_self_subject_rules_review(self, body: client.V1SelfSubjectRulesReview) -> Any:
        self.rules_reviews.append(body.spec.namespace)
        return SimpleNamespace(
            status=SimpleNamespace(
                resource_rules=list(self.rules),
                incomplete=self.incomplete,
                evaluation_error="webhook authorizer" if self.incomplete else None,
            )
        )

    def create_self_subject_access_review(self, body: client.V1SelfSubjectAccessReview) -> Any:
        attributes = body.spec.resource_attributes
        self.access_reviews.append(
            (attributes.namespace, attributes.verb, attributes.resource, attributes.subresource)
        )
        permission = Permission(attributes.verb, attributes.resource, attributes.subresource or "")
        return SimpleNamespace(status=SimpleNamespace(allowed=str(permission) in self.allowed))


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> FakeAuthorizationApi:
    fake = FakeAuthorizationApi()
    monkeypatch.setattr(access.client, "AuthorizationV1Api", lambda api_client: fake)
    return fake


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(
        access, "TTLCache", lambda maxsize, ttl: TTLCache(maxsize=maxsize, ttl=ttl, timer=fake)
    )
    return fake


def reviewer(ttl: float = 60.0, **kwargs: Any) -> AccessReviewer:
    return AccessReviewer(object(), SA, ttl, **kwargs)  # type: ignore[arg-type]


def test_complete_rules_granting_everything_leave_nothing_missing(api: FakeAuthorizationApi):
    api.rules = [rule(["*"], ["pods", "pods/log"])]
    requests: list[str] = []
    decision = reviewer(on_request=requests.append).review("team-b")
    assert decision.allowed
    assert decision.identity == SA
    assert api.rules_reviews == ["team-b"]
    assert api.access_reviews == []
    assert requests == ["selfsubjectrulesreviews"]


def test_complete_rules_report_missing_permissions_in_required_order(api: FakeAuthorizationApi):
    api.rules = [rule(["patch", "create"], ["pods"]), rule(["get"], ["pods"])]
    decision = reviewer().review("team-b")
    assert decision.missing == ("list pods", "watch pods", "delete pods", "get pods/log")
    assert not decision.can_watch
    assert api.access_reviews == []


def test_rules_from_another_api_group_do_not_count(api: FakeAuthorizationApi):
    api.rules = [rule(ALL_VERBS, ["pods", "pods/log"], api_groups=["apps"])]
    assert reviewer().review("team-b").missing == tuple(str(p) for p in REQUIRED_PERMISSIONS)


def test_incomplete_rules_ask_access_reviews_only_for_the_missing_verbs(api: FakeAuthorizationApi):
    api.rules = [rule(["create", "get", "list", "patch"], ["pods"])]
    api.incomplete = True
    api.allowed = {"watch pods", "get pods/log"}
    requests: list[str] = []
    decision = reviewer(on_request=requests.append).review("team-b")
    assert api.access_reviews == [
        ("team-b", "watch", "pods", None),
        ("team-b", "delete", "pods", None),
        ("team-b", "get", "pods", "log"),
    ]
    assert decision.missing == ("delete pods",)
    assert requests == ["selfsubjectrulesreviews"] + ["selfsubjectaccessreviews"] * 3


def test_incomplete_rules_that_already_grant_everything_ask_no_access_review(api: FakeAuthorizationApi):
    api.rules = [rule(["*"], ["*"])]
    api.incomplete = True
    assert reviewer().review("team-b").allowed
    assert api.access_reviews == []


def decide_once(subject: AccessReviewer, namespace: str) -> AccessDecision:
    """What the engine does: trust a cached decision, review only on a miss."""
    return subject.cached(namespace) or subject.review(namespace)


def test_no_decision_is_cached_before_a_review(api: FakeAuthorizationApi):
    assert reviewer().cached("team-b") is None
    assert api.rules_reviews == []


def test_cached_decision_is_reused_without_asking_again(api: FakeAuthorizationApi):
    api.rules = [rule(["*"], ["*"])]
    subject = reviewer()
    first = decide_once(subject, "team-b")
    second = decide_once(subject, "team-b")
    assert second is first
    assert api.rules_reviews == ["team-b"]


def test_decisions_are_cached_per_namespace(api: FakeAuthorizationApi):
    subject = reviewer()
    decide_once(subject, "team-a")
    decide_once(subject, "team-b")
    decide_once(subject, "team-a")
    assert api.rules_reviews == ["team-a", "team-b"]


def test_review_asks_again_even_when_cached_and_replaces_the_cached_decision(api: FakeAuthorizationApi):
    api.rules = [rule(["*"], ["*"])]
    subject = reviewer()
    assert decide_once(subject, "team-b").allowed
    api.rules = []
    fresh = subject.review("team-b")
    assert not fresh.allowed
    assert subject.cached("team-b") is fresh
    assert api.rules_reviews == ["team-b", "team-b"]


def test_invalidate_forces_a_new_review(api: FakeAuthorizationApi):
    api.rules = [rule(["*"], ["*"])]
    subject = reviewer()
    assert decide_once(subject, "team-b").allowed
    api.rules = [rule(["get", "list", "watch"], ["pods"])]
    subject.invalidate("team-b")
    assert subject.cached("team-b") is None
    assert decide_once(subject, "team-b").missing == (
        "create pods",
        "patch pods",
        "delete pods",
        "get pods/log",
    )
    assert api.rules_reviews == ["team-b", "team-b"]


def test_invalidate_drops_only_that_namespace(api: FakeAuthorizationApi):
    subject = reviewer()
    decide_once(subject, "team-a")
    decide_once(subject, "team-b")
    subject.invalidate("team-a")
    subject.invalidate("never-reviewed")
    assert subject.cached("team-a") is None
    assert subject.cached("team-b") is not None


def test_cached_decision_expires_after_the_ttl(api: FakeAuthorizationApi, clock: FakeClock):
    subject = reviewer(ttl=60.0)
    first = decide_once(subject, "team-b")
    clock.now = 59.0
    assert decide_once(subject, "team-b") is first
    assert api.rules_reviews == ["team-b"]
    clock.now = 61.0
    assert subject.cached("team-b") is None
    assert decide_once(subject, "team-b") is not first
    assert api.rules_reviews == ["team-b", "team-b"]


# who_am_i --------------------------------------------------------------------------------------


class FakeAuthenticationApi:
    def __init__(self, username: str | None = None, error: Exception | None = None) -> None:
        self.username = username
        self.error = error

    def create_self_subject_review(self, body: Any) -> Any:
        if self.error is not None:
            raise self.error
        return SimpleNamespace(status=SimpleNamespace(user_info=SimpleNamespace(username=self.username)))


def test_who_am_i_returns_the_username_the_api_server_sees(monkeypatch: pytest.MonkeyPatch):
    fake = FakeAuthenticationApi(username=SA)
    monkeypatch.setattr(access.client, "AuthenticationV1Api", lambda api_client: fake)
    assert who_am_i(object()) == SA  # type: ignore[arg-type]


def test_who_am_i_falls_back_to_a_generic_name_when_refused(monkeypatch: pytest.MonkeyPatch):
    fake = FakeAuthenticationApi(error=client.ApiException(status=403, reason="Forbidden"))
    monkeypatch.setattr(access.client, "AuthenticationV1Api", lambda api_client: fake)
    assert who_am_i(object()) == "the scheduler"  # type: ignore[arg-type]
