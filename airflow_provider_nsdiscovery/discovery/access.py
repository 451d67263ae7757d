"""Access reviews with the scheduler's own identity, cached with a TTL.

A label only says a team *wants* Airflow in its namespace; whether the scheduler may actually run
pods there is decided by RBAC, so every namespace is reviewed before it is used. One
SelfSubjectRulesReview per namespace answers for all verbs at once; SelfSubjectAccessReview is
asked only for verbs the rules left undecided (``incomplete``, e.g. with a webhook authorizer).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from cachetools import TTLCache
from kubernetes import client

from airflow_provider_nsdiscovery.discovery.state import AccessDecision

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Permission:
    verb: str
    resource: str
    subresource: str = ""

    def __str__(self) -> str:
        resource = f"{self.resource}/{self.subresource}" if self.subresource else self.resource
        return f"{self.verb} {resource}"


REQUIRED_PERMISSIONS: tuple[Permission, ...] = (
    *(Permission(verb, "pods") for verb in ("create", "get", "list", "watch", "patch", "delete")),
    Permission("get", "pods", "log"),
)


def rule_grants(rule: client.V1ResourceRule, permission: Permission) -> bool:
    """Whether one RBAC rule grants ``permission``, with the API server's wildcard semantics."""
    if rule.resource_names:
        return False  # a rule limited to named pods never allows create or list
    if not {"", "*"} & set(rule.api_groups or ()):
        return False
    if not {permission.verb, "*"} & set(rule.verbs or ()):
        return False
    resources = set(rule.resources or ())
    if permission.subresource:
        return bool(
            {"*", f"{permission.resource}/{permission.subresource}", f"*/{permission.subresource}"}
            & resources
        )
    return bool({"*", permission.resource} & resources)


def username(api_client: client.ApiClient) -> str:
    """The username the API server sees for our credentials (a SelfSubjectReview); raises on errors."""
    review = client.AuthenticationV1Api(api_client).create_self_subject_review(client.V1SelfSubjectReview())
    return str(review.status.user_info.username)


def who_am_i(api_client: client.ApiClient) -> str:
    """:func:`username` for messages that name the identity, with a stand-in when it cannot be asked."""
    try:
        return username(api_client)
    except client.ApiException as err:
        log.warning("could not ask the API server who the scheduler is (%s); messages say 'scheduler'", err)
        return "the scheduler"


class AccessReviewer:
    """Reviews namespaces and remembers decisions for ``ttl`` seconds.

    ``invalidate`` drops a decision at once: a 403 seen anywhere means the cached "allowed" is
    already wrong, and the next lookup must ask the API server again.
    """

    def __init__(
        self,
        api_client: client.ApiClient,
        identity: str,
        ttl: float,
        *,
        required: Iterable[Permission] = REQUIRED_PERMISSIONS,
        maxsize: int = 100_000,
        on_request: Callable[[str], None] = lambda kind: None,
    ) -> None:
        self._api = client.AuthorizationV1Api(api_client)
        self.identity = identity
        self._required = tuple(required)
        self._cache: TTLCache[str, AccessDecision] = TTLCache(maxsize=maxsize, ttl=ttl)
        self._lock = threading.Lock()
        self._on_request = on_request

    def cached(self, namespace: str) -> AccessDecision | None:
        with self._lock:
            return self._cache.get(namespace)

    def invalidate(self, namespace: str) -> None:
        with self._lock:
            self._cache.pop(namespace, None)

    def review(self, namespace: str) -> AccessDecision:
        """Ask the API server now (ignoring the cache) and cache the answer."""
        decision = AccessDecision(self.identity, tuple(str(p) for p in self._missing(namespace)))
        with self._lock:
            self._cache[namespace] = decision
        return decision

    def _missing(self, namespace: str) -> list[Permission]:
        self._on_request("selfsubjectrulesreviews")
        rules_review = self._api.create_self_subject_rules_review(
            client.V1SelfSubjectRulesReview(spec=client.V1SelfSubjectRulesReviewSpec(namespace=namespace))
        )
        status = rules_review.status
        rules = status.resource_rules or []
        missing = [p for p in self._required if not any(rule_grants(r, p) for r in rules)]
        if not status.incomplete:
            return missing
        log.debug(
            "rules review for %s is incomplete (%s); asking access reviews for %s",
            namespace,
            status.evaluation_error,
            ", ".join(map(str, missing)),
        )
        return [p for p in missing if not self._allowed(namespace, p)]

    def _allowed(self, namespace: str, permission: Permission) -> bool:
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
        )
    )
    return bool(review.status.allowed)
