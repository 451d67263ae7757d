"""Access reviews: RBAC wildcard semantics, rules review vs access review, undecided answers, who_am_i."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest
from kubernetes import client

from airflow_provider_nsdiscovery.discovery import access
from airflow_provider_nsdiscovery.discovery.access import (
    UNKNOWN_IDENTITY,
    AccessReviewer,
    UndecidedReviewError,
    access_allowed,
    username,
    who_am_i,
)
from airflow_provider_nsdiscovery.discovery.permissions import (
    REQUIRED_PERMISSIONS,
    WATCH_PERMISSIONS,
    Permission,
    ResourceRule,
    rule_grants,
)
from airflow_provider_nsdiscovery.discovery.source import REQUEST_TIMEOUT

SA = "system:serviceaccount:airflow:scheduler"
# The kubernetes.client module as access sees it, named as a path: mypy does not let a test reach a
# module's imports as attributes (access.client) since access does not re-export them.
ACCESS_CLIENT = f"{access.__name__}.client"
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


WILDCARD_CASES = [
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
]


@pytest.mark.parametrize(("granting", "permission", "expected"), WILDCARD_CASES)
def test_rule_grants_follows_rbac_wildcards(
    granting: client.V1ResourceRule, permission: Permission, expected: bool
) -> None:
    assert rule_grants(granting, permission) is expected


@pytest.mark.parametrize(("granting", "permission", "expected"), WILDCARD_CASES)
def test_a_rule_read_from_the_reviews_json_grants_what_the_client_model_grants(
    granting: client.V1ResourceRule, permission: Permission, expected: bool
) -> None:
    as_json = client.ApiClient().sanitize_for_serialization(granting)
    assert rule_grants(ResourceRule.from_json(as_json), permission) is expected


def test_required_permissions_are_every_pod_verb_and_pod_logs() -> None:
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
    """Answers rules reviews from ``rules`` and access reviews from ``allowed``, ``denied`` and
    ``undecided`` (permission name -> evaluation error); records every call and its timeout."""

    def __init__(self) -> None:
        self.rules: list[client.V1ResourceRule] = []
        self.incomplete = False
        self.allowed: set[str] = set()
        self.denied: set[str] = set()
        self.undecided: dict[str, str] = {}
        self.rules_reviews: list[str] = []
        self.access_reviews: list[tuple[str | None, str, str, str | None]] = []
        self.timeouts: list[Any] = []

    def create_self_subject_rules_review(
        self, body: dict[str, Any], _preload_content: bool = True, _request_timeout: Any = None
    ) -> Any:
        """Answers like the API server does, as the raw JSON the reviewer asks for."""
        assert not _preload_content
        self.rules_reviews.append(body["spec"]["namespace"])
        self.timeouts.append(_request_timeout)
        status = {
            "resourceRules": client.ApiClient().sanitize_for_serialization(self.rules),
            "incomplete": self.incomplete,
        }
        if self.incomplete:
            status["evaluationError"] = "webhook authorizer"
        return SimpleNamespace(data=json.dumps({"kind": "SelfSubjectRulesReview", "status": status}))

    def create_self_subject_access_review(
        self, body: client.V1SelfSubjectAccessReview, _request_timeout: Any = None
    ) -> Any:
        attributes = body.spec.resource_attributes
        self.access_reviews.append(
            (attributes.namespace, attributes.verb, attributes.resource, attributes.subresource)
        )
        self.timeouts.append(_request_timeout)
        name = str(Permission(attributes.verb, attributes.resource, attributes.subresource or ""))
        return SimpleNamespace(
            status=SimpleNamespace(
                allowed=name in self.allowed,
                denied=name in self.denied,
                evaluation_error=self.undecided.get(name),
            )
        )


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> FakeAuthorizationApi:
    fake = FakeAuthorizationApi()
    monkeypatch.setattr(f"{ACCESS_CLIENT}.AuthorizationV1Api", lambda api_client: fake)
    return fake


def reviewer(**kwargs: Any) -> AccessReviewer:
    return AccessReviewer(object(), SA, **kwargs)


def test_complete_rules_granting_everything_leave_nothing_missing(api: FakeAuthorizationApi) -> None:
    api.rules = [rule(["*"], ["pods", "pods/log"])]
    requests: list[str] = []
    decision = reviewer(on_request=requests.append).review("team-b")
    assert decision.allowed
    assert decision.identity == SA
    assert api.rules_reviews == ["team-b"]
    assert api.access_reviews == []
    assert requests == ["selfsubjectrulesreviews"]


def test_complete_rules_report_missing_permissions_in_required_order(api: FakeAuthorizationApi) -> None:
    api.rules = [rule(["patch", "create"], ["pods"]), rule(["get"], ["pods"])]
    decision = reviewer().review("team-b")
    assert decision.missing == ("list pods", "watch pods", "delete pods", "get pods/log")
    assert not decision.can_watch
    assert api.access_reviews == []


def test_rules_from_another_api_group_do_not_count(api: FakeAuthorizationApi) -> None:
    api.rules = [rule(ALL_VERBS, ["pods", "pods/log"], api_groups=["apps"])]
    assert reviewer().review("team-b").missing == tuple(str(p) for p in REQUIRED_PERMISSIONS)


def test_incomplete_rules_ask_access_reviews_only_for_the_missing_verbs(api: FakeAuthorizationApi) -> None:
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


def test_incomplete_rules_that_already_grant_everything_ask_no_access_review(
    api: FakeAuthorizationApi,
) -> None:
    api.rules = [rule(["*"], ["*"])]
    api.incomplete = True
    assert reviewer().review("team-b").allowed
    assert api.access_reviews == []


def test_required_permissions_can_be_narrowed_to_what_is_reviewed(api: FakeAuthorizationApi) -> None:
    api.rules = [rule(["list"], ["pods"])]
    assert reviewer(required=WATCH_PERMISSIONS).review("team-b").missing == ("watch pods",)


def test_every_review_asks_the_api_server_again_because_nothing_is_cached(api: FakeAuthorizationApi) -> None:
    api.rules = [rule(["*"], ["*"])]
    subject = reviewer()
    assert subject.review("team-b").allowed
    api.rules = [rule(["get", "list", "watch"], ["pods"])]
    assert subject.review("team-b").missing == ("create pods", "patch pods", "delete pods", "get pods/log")
    assert subject.review("team-a").missing == ("create pods", "patch pods", "delete pods", "get pods/log")
    assert api.rules_reviews == ["team-b", "team-b", "team-a"]


def test_decisions_name_the_identity_set_on_the_reviewer_at_review_time(api: FakeAuthorizationApi) -> None:
    subject = AccessReviewer(object())
    assert subject.review("team-b").identity == UNKNOWN_IDENTITY == "the scheduler"
    subject.identity = SA
    assert subject.review("team-b").identity == SA


def test_every_review_request_is_bounded_in_time(api: FakeAuthorizationApi) -> None:
    api.incomplete = True
    reviewer().review("team-b")
    reviewer().may_watch_pods_everywhere()
    assert api.rules_reviews == ["team-b"]
    assert (None, "list", "pods", None) in api.access_reviews
    assert len(api.timeouts) == len(api.rules_reviews) + len(api.access_reviews)
    assert set(api.timeouts) == {REQUEST_TIMEOUT}


def test_may_watch_pods_everywhere_asks_cluster_wide_access_reviews_for_list_and_watch(
    api: FakeAuthorizationApi,
) -> None:
    api.allowed = {"list pods", "watch pods"}
    requests: list[str] = []
    assert reviewer(on_request=requests.append).may_watch_pods_everywhere()
    assert api.access_reviews == [(None, "list", "pods", None), (None, "watch", "pods", None)]
    assert api.rules_reviews == []
    assert requests == ["selfsubjectaccessreviews"] * 2


@pytest.mark.parametrize("allowed", [set(), {"list pods"}, {"watch pods"}])
def test_may_not_watch_pods_everywhere_without_both_list_and_watch(
    api: FakeAuthorizationApi, allowed: set[str]
) -> None:
    api.allowed = allowed
    assert not reviewer().may_watch_pods_everywhere()


# undecided access reviews ----------------------------------------------------------------------


def test_undecided_access_review_with_an_evaluation_error_raises_naming_permission_and_namespace(
    api: FakeAuthorizationApi,
) -> None:
    api.undecided = {"watch pods": "webhook authorizer timed out"}
    with pytest.raises(UndecidedReviewError) as raised:
        access_allowed(api, Permission("watch", "pods"), "team-b")
    assert str(raised.value) == "watch pods in team-b: webhook authorizer timed out"


def test_undecided_cluster_wide_access_review_raises_naming_all_namespaces(api: FakeAuthorizationApi) -> None:
    api.undecided = {"list pods": "webhook down"}
    with pytest.raises(UndecidedReviewError, match=r"^list pods in all namespaces: webhook down$"):
        reviewer().may_watch_pods_everywhere()


def test_explicit_denial_is_a_definite_answer_even_with_an_evaluation_error(
    api: FakeAuthorizationApi,
) -> None:
    api.denied = {"watch pods"}
    api.undecided = {"watch pods": "one of several authorizers failed"}
    assert access_allowed(api, Permission("watch", "pods"), "team-b") is False


def test_allowed_is_a_definite_answer_even_with_an_evaluation_error(api: FakeAuthorizationApi) -> None:
    api.allowed = {"watch pods"}
    api.undecided = {"watch pods": "one of several authorizers failed"}
    assert access_allowed(api, Permission("watch", "pods"), "team-b") is True


def test_no_opinion_without_an_evaluation_error_means_not_allowed(api: FakeAuthorizationApi) -> None:
    assert access_allowed(api, Permission("watch", "pods"), "team-b") is False


def test_review_raises_instead_of_reporting_missing_when_an_access_review_is_undecided(
    api: FakeAuthorizationApi,
) -> None:
    api.rules = [rule(["create", "get", "list", "patch", "delete"], ["pods"])]
    api.incomplete = True
    api.allowed = {"get pods/log"}
    api.undecided = {"watch pods": "webhook down"}
    with pytest.raises(UndecidedReviewError, match="watch pods in team-b"):
        reviewer().review("team-b")


# who_am_i --------------------------------------------------------------------------------------


class FakeAuthenticationApi:
    def __init__(self, username: str | None = None, error: Exception | None = None) -> None:
        self.username = username
        self.error = error
        self.timeouts: list[Any] = []

    def create_self_subject_review(self, body: Any, _request_timeout: Any = None) -> Any:
        self.timeouts.append(_request_timeout)
        if self.error is not None:
            raise self.error
        if self.username is None:
            return SimpleNamespace(status=None)  # a malformed answer
        return SimpleNamespace(status=SimpleNamespace(user_info=SimpleNamespace(username=self.username)))


def test_who_am_i_returns_the_username_the_api_server_sees_with_a_bounded_request(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = FakeAuthenticationApi(username=SA)
    monkeypatch.setattr(f"{ACCESS_CLIENT}.AuthenticationV1Api", lambda api_client: fake)
    assert who_am_i(object()) == SA
    assert fake.timeouts == [REQUEST_TIMEOUT]


@pytest.mark.parametrize(
    "error",
    [
        client.ApiException(status=403, reason="Forbidden"),
        client.ApiException(status=404, reason="Not Found"),
        ConnectionRefusedError("connection refused"),
        TimeoutError("read timed out"),
        ValueError("unexpected answer"),
        None,  # a malformed answer: no status
    ],
    ids=["forbidden", "no-api", "refused", "timeout", "bad-value", "malformed"],
)
def test_who_am_i_returns_none_on_any_failure_so_it_is_asked_again(
    monkeypatch: pytest.MonkeyPatch, error: Exception | None
) -> None:
    fake = FakeAuthenticationApi(error=error)
    monkeypatch.setattr(f"{ACCESS_CLIENT}.AuthenticationV1Api", lambda api_client: fake)
    assert who_am_i(object()) is None


def test_username_raises_what_went_wrong(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeAuthenticationApi(error=client.ApiException(status=403, reason="Forbidden"))
    monkeypatch.setattr(f"{ACCESS_CLIENT}.AuthenticationV1Api", lambda api_client: fake)
    with pytest.raises(client.ApiException):
        username(object())
