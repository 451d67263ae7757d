"""Access reviews with the scheduler's own identity.

A label only says a team *wants* Airflow in its namespace; whether the scheduler may actually run
pods there is decided by RBAC, so every namespace is reviewed before it is used. One
SelfSubjectRulesReview per namespace answers for all verbs at once; SelfSubjectAccessReview is
asked only for verbs the rules left undecided (``incomplete``, e.g. with a webhook authorizer).

Only a definite answer is returned. An authorizer that could not decide (an ``evaluationError``
on an undecided access review, typically a webhook that is down) raises
:class:`UndecidedReviewError`, which callers treat like any other transient failure: the last
good decision stands and the review is retried.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable

from kubernetes import client

from airflow_provider_nsdiscovery.discovery.permissions import (
    REQUIRED_PERMISSIONS,
    WATCH_PERMISSIONS,
    Permission,
    ResourceRule,
    rule_grants,
)
from airflow_provider_nsdiscovery.discovery.source import REQUEST_TIMEOUT
from airflow_provider_nsdiscovery.discovery.status import AccessDecision

log = logging.getLogger(__name__)

UNKNOWN_IDENTITY = "the scheduler"
"""How messages name the identity until the API server has said who we are."""


class UndecidedReviewError(Exception):
    """The authorizer gave no definite answer; ask again later."""


def username(api_client: client.ApiClient) -> str:
    """The username the API server sees for our credentials (a SelfSubjectReview); raises on errors."""
    review = client.AuthenticationV1Api(api_client).create_self_subject_review(
        client.V1SelfSubjectReview(), _request_timeout=REQUEST_TIMEOUT
    )
    return str(review.status.user_info.username)


def who_am_i(api_client: client.ApiClient) -> str | None:
    """:func:`username`, or None when the API server cannot be asked now (it is asked again later)."""
    try:
        return username(api_client)
    except Exception as err:
        log.warning("could not ask the API server who the scheduler is (%s); asking again later", err)
        return None


class AccessReviewer:
    """Reviews what our identity may do; holds no state but the identity used in messages."""

    def __init__(
        self,
        api_client: client.ApiClient,
        identity: str = UNKNOWN_IDENTITY,
        *,
        required: Iterable[Permission] = REQUIRED_PERMISSIONS,
        on_request: Callable[[str], None] = lambda kind: None,
    ) -> None:
        self._api = client.AuthorizationV1Api(api_client)
        self.identity = identity
        self._required = tuple(required)
        self._on_request = on_request

    def review(self, namespace: str) -> AccessDecision:
        return AccessDecision(self.identity, tuple(str(p) for p in self._missing(namespace)))

    def may_watch_pods_everywhere(self) -> bool:
        """Whether one cluster-wide pod watch could replace the per-namespace ones."""
        return all(self._allowed(None, p) for p in WATCH_PERMISSIONS)

    def _missing(self, namespace: str) -> list[Permission]:
        self._on_request("selfsubjectrulesreviews")
        # Plain JSON both ways: the client's models cost 0.6 ms of CPU per review (building the
        # request model copies the client configuration; reading the answer builds a model per
        # rule), 10x the JSON, and a start-up with 1000 namespaces makes 1000 reviews.
        response = self._api.create_self_subject_rules_review(
            {
                "apiVersion": "authorization.k8s.io/v1",
                "kind": "SelfSubjectRulesReview",
                "spec": {"namespace": namespace},
            },
            _preload_content=False,
            _request_timeout=REQUEST_TIMEOUT,
        )
        status = json.loads(response.data).get("status") or {}
        rules = [ResourceRule.from_json(rule) for rule in status.get("resourceRules") or ()]
        missing = [p for p in self._required if not any(rule_grants(r, p) for r in rules)]
        if not status.get("incomplete"):
            return missing
        log.debug(
            "rules review for %s is incomplete (%s); asking access reviews for %s",
            namespace,
            status.get("evaluationError"),
            ", ".join(map(str, missing)),
        )
        return [p for p in missing if not self._allowed(namespace, p)]

    def _allowed(self, namespace: str | None, permission: Permission) -> bool:
        self._on_request("selfsubjectaccessreviews")
        return access_allowed(self._api, permission, namespace)


def access_allowed(api: client.AuthorizationV1Api, permission: Permission, namespace: str | None) -> bool:
    """One SelfSubjectAccessReview: may our identity do ``permission`` in ``namespace``?

    ``namespace`` None asks about the whole cluster (e.g. listing pods in every namespace).
    """
    review = api.create_self_subject_access_review(
        client.V1SelfSubjectAccessReview(
            spec=client.V1SelfSubjectAccessReviewSpec(
                resource_attributes=client.V1ResourceAttributes(
                    namespace=namespace,
                    verb=permission.verb,
                    resource=permission.resource,
                    subresource=permission.subresource or None,
                )
            )
        ),
        _request_timeout=REQUEST_TIMEOUT,
    )
    status = review.status
    if not status.allowed and not status.denied and status.evaluation_error:
        raise UndecidedReviewError(
            f"{permission} in {namespace or 'all namespaces'}: {status.evaluation_error}"
        )
    return bool(status.allowed)
