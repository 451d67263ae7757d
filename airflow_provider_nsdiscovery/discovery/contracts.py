"""What the discovery controller takes and what it publishes: its seams, written down.

The controller is driven through two small Protocols, so that unit tests give it fakes that
honour the same contract (``tests/unit/discovery_fakes.py``) while the Airflow adapter gives it
the real :class:`~airflow_provider_nsdiscovery.discovery.source.NamespaceWatch` and
:class:`~airflow_provider_nsdiscovery.discovery.access.AccessReviewer`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from airflow_provider_nsdiscovery.discovery.status import AccessDecision, Observation


class DiscoveryMode(StrEnum):
    LABEL_SELECTOR = "label-selector"
    CANDIDATES = "candidate-namespaces"


@dataclass(frozen=True)
class WatchPlan:
    """What the pod watchers should cover: these namespaces, or one watch over all of them."""

    namespaces: frozenset[str] = frozenset()
    cluster_wide: bool = False


@dataclass
class DiscoveryCounters:
    requests: Counter[str] = field(default_factory=Counter)
    refusals: Counter[str] = field(default_factory=Counter)  # by reason: a state, or a config error
    validation_hits: int = 0
    validation_misses: int = 0
    retries: int = 0
    foreign_pods: int = 0  # pod events and adoptions refused: not where the task was placed


class NamespaceSource(Protocol):
    """A list+watch of the selected namespaces that calls the controller's handlers.

    ``sync_once`` lists if nothing is listed yet (``on_snapshot`` with every selected namespace),
    then follows the watch (``on_event`` per change) until the server ends it, and calls
    ``on_open`` whenever a list or watch is answered. It raises ``ListForbiddenError`` on a 403
    to the list and anything else on a transport error: the caller retries with backoff.
    ``read`` returns a namespace as it is now (``exists=False`` when it is gone, None when it may
    not be read) and raises on anything transient. ``stop`` ends a blocked ``sync_once`` at once.
    """

    @property
    def listed(self) -> bool: ...
    def sync_once(self) -> None: ...
    def read(self, name: str) -> Observation | None: ...
    def stop(self) -> None: ...


class Reviewer(Protocol):
    """Access reviews with our identity.

    ``review`` returns a definite decision for one namespace or raises (a transport error, or
    ``UndecidedReviewError`` when an authorizer could not decide); ``may_watch_pods_everywhere``
    likewise. ``identity`` names us in the decisions' reasons.
    """

    identity: str

    def review(self, namespace: str) -> AccessDecision: ...
    def may_watch_pods_everywhere(self) -> bool: ...


SourceFactory = Callable[
    [
        Callable[[dict[str, Observation]], None],
        Callable[[str, str, Observation], None],
        Callable[[], None],
    ],
    NamespaceSource,
]
"""Builds the source with its handlers: snapshot, event, and "the list or watch is open"."""


class AccessWatch(Protocol):
    """Watches that report access changes as they happen (the real one: rbac_watch.RbacWatch).

    ``loops`` gives one step function per watch for the controller's supervised loops; a step
    may call ``pause`` to wait (interruptibly) before it is run again. ``watching`` is true while
    a change anywhere would be seen, which lets periodic re-checks slow down to a backstop.
    """

    @property
    def watching(self) -> bool: ...
    def loops(self, pause: Callable[[float], object]) -> dict[str, Callable[[], None]]: ...
    def stop(self) -> None: ...


AccessWatchFactory = Callable[[Callable[[str | None, str], None]], AccessWatch]
"""Builds the access watch with its handler: ``(namespace or None for all, what changed)``."""
