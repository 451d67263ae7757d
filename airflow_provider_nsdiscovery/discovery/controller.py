"""The discovery controller: observations in, one ``reconcile(name)`` at a time, a state table out.

Shaped like a client-go controller. Handlers (the namespace watch, 403s seen by pod watchers or
pod creation, task placement, the on-demand check) only record what they saw and put the
namespace name on a :class:`WorkQueue`. Workers take names off the queue and run
:meth:`NamespaceDiscovery.reconcile`, which reads the latest observations, does the I/O the name
still needs (a GET, an access review), decides once with :func:`decide`, publishes the status and
hands the watcher set the new :class:`WatchPlan`. The queue never gives one name to two workers,
so no older result can overwrite a newer one. Failures are retried through the queue with per-key
backoff; a transient failure never changes a state. Every thread is supervised. Nothing here
knows about Airflow.
"""

from __future__ import annotations

import logging
import random
import threading
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import replace
from enum import Enum
from typing import Any

from cachetools import TTLCache
from kubernetes import client

from airflow_provider_nsdiscovery.config import SECTION, DiscoverySettings
from airflow_provider_nsdiscovery.discovery.access import UNKNOWN_IDENTITY
from airflow_provider_nsdiscovery.discovery.contracts import (
    AccessWatchFactory,
    DiscoveryCounters,
    DiscoveryMode,
    Reviewer,
    SourceFactory,
    WatchPlan,
)
from airflow_provider_nsdiscovery.discovery.decide import decide
from airflow_provider_nsdiscovery.discovery.placement import TaskPlacement
from airflow_provider_nsdiscovery.discovery.source import ListForbiddenError
from airflow_provider_nsdiscovery.discovery.status import (
    AccessDecision,
    NamespaceStatus,
    Observation,
    State,
    is_valid_namespace_name,
)
from airflow_provider_nsdiscovery.discovery.table import StateTable
from airflow_provider_nsdiscovery.discovery.workqueue import Clock, MonotonicClock, WorkQueue
from airflow_provider_nsdiscovery.loops import LoopHealth, Supervisor

log = logging.getLogger(__name__)

CLUSTER_SCOPE = "*"
"""Queue key of the cluster-wide decisions (who we are, may we watch pods everywhere); never a
namespace name, so it cannot collide with one."""
CHECK_TIMEOUT = 2.0
"""How long the scheduler thread waits for an on-demand look before it defers the task."""
WARMUP_SECONDS = 10.0
"""After the namespace watch reconnects (an API server restart, typically), how long a review that
takes access away is asked again before it is believed: a kube-apiserver that has just started
answers 403 to everything until its RBAC caches are filled."""
AUTHORIZER_SETTLE = (0.05, 0.25, 1.0)
"""After an RBAC change, a namespace is reviewed at once and again these many seconds later: the
API server's authorizer learns of the change from a watch like ours, so the first review can still
see the old rules (measured: about 1 change in 20 on an idle 2-core machine)."""
NEGATIVE_TTL = 2.0
"""How long a refusal (or a look that found no answer) is reused: a burst of tasks for one bad
namespace costs one look, and an API server that is down costs the scheduler loop one wait."""


class _Read(Enum):
    LOOK = "look"  # a fresh look was asked for; a refused GET keeps what the watch said
    LEFT = "left"  # the selector watch dropped it; a refused GET means it is no longer selected


class NamespaceDiscovery:
    """Keeps :attr:`table` current for every namespace the executor may use or still uses."""

    def __init__(
        self,
        settings: DiscoverySettings,
        source: SourceFactory,
        reviewer: Reviewer,
        *,
        on_change: Callable[[WatchPlan], None] = lambda plan: None,
        clock: Clock | None = None,
        identify: Callable[[], str | None] = lambda: None,
        counters: DiscoveryCounters | None = None,
        access_watch: AccessWatchFactory | None = None,
    ) -> None:
        self.settings = settings
        self.table = StateTable()
        self.counters = counters or DiscoveryCounters()
        self.placement: TaskPlacement[Any] = TaskPlacement(self._on_placement)
        self.mode = DiscoveryMode.LABEL_SELECTOR
        self.discovery_latencies: deque[float] = deque(maxlen=1000)
        self._clock = clock or MonotonicClock()
        self._reviewer = reviewer
        self._identify = identify
        self._on_change = on_change
        self._source_health: LoopHealth | None = None
        self._source = source(self._on_snapshot, self._on_watch_event, self._on_source_open)
        self.queue: WorkQueue[str] = WorkQueue(self._clock)
        self._supervisor = Supervisor()
        self._lock = threading.Lock()
        self._reconciled = threading.Condition(self._lock)
        self._publish_lock = threading.Lock()
        self._observed: dict[str, Observation] = {}
        self._generation: Counter[str] = Counter()
        self._to_read: dict[str, _Read] = {}
        # The last good decision per namespace: it stands while reviews fail for transient reasons.
        self._access: dict[str, AccessDecision] = {}
        self._review_at: dict[str, float] = {}
        self._settle_reviews: dict[str, list[float]] = {}
        self._forbidden_since: dict[str, float] = {}
        # Asks for a fresh look, and the newest ask a finished reconcile had seen when it began.
        self._asked: Counter[str] = Counter()
        self._answered: Counter[str] = Counter()
        self._event_at: dict[str, float] = {}
        self._refusals: TTLCache[str, NamespaceStatus] = TTLCache(10_000, NEGATIVE_TTL, timer=self._clock.now)
        self._plan = WatchPlan()
        self._plan_behind = False  # the table's watched set may differ from _plan (an on_change raised)
        self._cluster_wide = False
        self._cluster_refused = False
        self._cluster_probe_at = 0.0
        self._list_forbidden_since: float | None = None
        self._source_failed = False
        self._reconnected_at = float("-inf")
        self._next_list_probe = 0.0
        self._listed = threading.Event()
        self.identity = UNKNOWN_IDENTITY
        self._access_watch = access_watch(self.access_changed) if access_watch else None

    # lifecycle ---------------------------------------------------------------------------------

    def start(self, *, threads: bool = True) -> None:
        """Start the loops and wait (bounded) until every selected namespace has a decision.

        Waiting matters: adoption after a scheduler restart looks for pods only in namespaces
        known at that moment. An API server that cannot be reached does not stop the start: the
        scheduler starts with what is known, and discovery catches up with backoff.
        """
        self._resolve_identity()
        self.queue.add(CLUSTER_SCOPE)
        self.queue.add(self.settings.home_namespace)
        if not threads:
            return
        self._source_health = self._supervisor.spawn("nsd-namespace-watch", self._source_step)
        for number in range(self.settings.review_concurrency):
            self._supervisor.spawn(f"nsd-reconcile-{number}", self._work)
        if self._access_watch is not None:
            for name, step in self._access_watch.loops(self._supervisor.stopped.wait).items():
                self._supervisor.spawn(name, step)
        timeout = self.settings.initial_sync_timeout
        if not self._listed.wait(timeout) or not self._wait_idle(timeout):
            log.warning(
                "namespace discovery did not finish within %.0fs (initial_sync_timeout); "
                "the scheduler starts with what is known and adds the rest as reviews finish",
                timeout,
            )

    def stop(self) -> None:
        self._supervisor.stopped.set()
        self._source.stop()
        if self._access_watch is not None:
            self._access_watch.stop()
        self.queue.shut_down()
        with self._lock:
            self._reconciled.notify_all()
        self._supervisor.stop()

    def health(self) -> list[LoopHealth]:
        return self._supervisor.health()

    # queries (any thread) ----------------------------------------------------------------------

    def status(self, name: str) -> NamespaceStatus | None:
        return self.table.get(name)

    def watched(self) -> frozenset[str]:
        return self.table.watched()

    @property
    def plan(self) -> WatchPlan:
        return self._plan

    def check(self, name: str) -> NamespaceStatus:
        """Decide whether a task may start in ``name`` now; called on the scheduler thread.

        A permitted namespace is answered from the table. Anything else gets at most one bounded
        look (so a namespace labelled a second ago is accepted), and a refusal is reused for
        :data:`NEGATIVE_TTL` seconds. ``pending`` means no answer yet: defer, do not fail.
        """
        current = self.table.get(name)
        if current is not None and current.state is State.PERMITTED:
            self.counters.validation_hits += 1
            return current
        self.counters.validation_misses += 1
        if not is_valid_namespace_name(name):
            return decide(name, self.settings, None, None)  # not stored: the table holds real names only
        if current is not None and current.state is State.EXCLUDED:
            return current
        with self._lock:  # a TTLCache is not thread-safe
            cached = self._refusals.get(name)
        if cached is not None:
            return cached
        return self._look(name, review=False)

    def recheck(self, name: str, why: str) -> NamespaceStatus:
        """A 403 was seen for ``name``: look and review again now, and wait (bounded) for the verdict."""
        log.warning("re-checking namespace '%s': %s", name, why)
        return self._look(name, review=True)

    def _look(self, name: str, *, review: bool) -> NamespaceStatus:
        with self._lock:
            self._asked[name] += 1
            ask = self._asked[name]
            self._ask_read_locked(name, _Read.LOOK, review=review)
        self.queue.add(name, urgent=True)
        with self._lock:
            finished = (
                self._reconciled.wait_for(
                    lambda: self._answered[name] >= ask or self._supervisor.stopped.is_set(), CHECK_TIMEOUT
                )
                and self._answered[name] >= ask
            )
        status = self.table.get(name)
        if status is None or not finished:
            status = NamespaceStatus(
                name, State.PENDING, f"its check did not finish within {CHECK_TIMEOUT:.0f}s"
            )
        if status.state is not State.PERMITTED:
            with self._lock:  # a refusal, or no answer yet: the next tasks do not wait for it again
                self._refusals[name] = status
        return status

    # handlers: record and enqueue, nothing else -------------------------------------------------

    def invalidate(self, name: str, why: str) -> None:
        """Like :meth:`recheck` without waiting, for threads that must not block (pod watchers)."""
        log.warning("re-checking namespace '%s': %s", name, why)
        if name == CLUSTER_SCOPE:
            with self._lock:
                self._cluster_refused = True
            self.queue.add(CLUSTER_SCOPE, urgent=True)
            return
        with self._lock:
            self._ask_read_locked(name, _Read.LOOK, review=True)
        self.queue.add(name, urgent=True)

    def access_changed(self, namespace: str | None, why: str) -> None:
        """An RBAC change that can grant or take pod rights in ``namespace`` (None: anywhere):
        review what it can affect now, and again :data:`AUTHORIZER_SETTLE` later."""
        now = self._clock.now()
        with self._lock:
            names = [n for n in ([namespace] if namespace else list(self._access)) if n in self._access]
            for name in names:
                self._review_at[name] = float("-inf")
                self._settle_reviews[name] = [now + delay for delay in AUTHORIZER_SETTLE]
                self._refusals.pop(name, None)
            if namespace is None:
                self._cluster_probe_at = float("-inf")
        which = ", ".join(names) if len(names) <= 5 else f"{len(names)} namespaces"
        log.info("access may have changed (%s): reviewing %s again", why, which or "nothing")
        for name in names:
            self.queue.add(name)
        if namespace is None:
            self.queue.add(CLUSTER_SCOPE)

    @property
    def access_watched(self) -> bool:
        """Whether RBAC changes are seen as they happen (else only the periodic re-check sees them)."""
        return self._access_watch is not None and self._access_watch.watching

    def _recheck_interval(self) -> float:
        """The periodic re-check, slowed to a backstop while RBAC changes are watched."""
        interval = self.settings.access_recheck_interval
        return max(interval, self.settings.access_backstop_interval) if self.access_watched else interval

    def _ask_read_locked(self, name: str, why: _Read, *, review: bool) -> None:
        if self._to_read.get(name) is not _Read.LEFT:
            self._to_read[name] = why
        if review:
            self._review_at[name] = float("-inf")
        self._refusals.pop(name, None)

    def _on_source_open(self) -> None:
        if self._source_failed:
            self._source_failed = False
            self._reconnected_at = self._clock.now()
        if self._source_health is not None:
            self._source_health.progressed()

    def _on_placement(self, name: str) -> None:
        self.queue.add(name)

    def _on_snapshot(self, selected: dict[str, Observation]) -> None:
        with self._lock:
            if self.mode is DiscoveryMode.CANDIDATES:
                log.info(
                    "namespaces can be listed again: back to label selector '%s'", self.settings.selector.text
                )
                self.mode = DiscoveryMode.LABEL_SELECTOR
            vanished = [n for n, o in self._observed.items() if n not in selected and o.exists is not False]
            for name in vanished:
                self._to_read[name] = _Read.LEFT
            for name, observation in selected.items():
                self._record_locked(name, observation)
        for name in (*vanished, *selected):
            self.queue.add(name)
        self._listed.set()

    def _on_watch_event(self, kind: str, name: str, observation: Observation) -> None:
        with self._lock:
            if kind == "DELETED":
                self._to_read[name] = _Read.LEFT
                self._generation[name] += 1
            else:
                self._record_locked(name, observation)
                self._event_at.setdefault(name, self._clock.now())
        self.queue.add(name)

    def _record_locked(self, name: str, observation: Observation) -> None:
        self._observed[name] = observation
        self._generation[name] += 1
        self._to_read.pop(name, None)

    # workers -----------------------------------------------------------------------------------

    def _work(self) -> None:
        self.process_next()

    def process_next(self, timeout: float = 0.5) -> bool:
        """Take one name off the queue and reconcile it; False when there was none."""
        name = self.queue.get(timeout) if timeout > 0 else self.queue.get_nowait()
        if name is None:
            return False
        with self._lock:
            ask = self._asked[name]
        try:
            self.reconcile(name)
            self.queue.forget(name)
        except Exception as err:
            failures = self.queue.failures(name)
            delay = self.queue.add_rate_limited(name)
            self.counters.retries += 1
            level = logging.WARNING if failures == 0 else logging.DEBUG
            log.log(level, "reconciling '%s' failed (%s); retrying in %.1fs", name, _describe(err), delay)
        finally:
            with self._lock:
                self._answered[name] = max(self._answered[name], ask)
                self._reconciled.notify_all()
            self.queue.done(name)
        return True

    def reconcile(self, name: str) -> None:
        """Derive ``name``'s state from the latest observations, publish it, and act on it.

        Idempotent: running it again with nothing new observed publishes the same status. Raises
        when something could not be learnt (the caller retries with backoff) after publishing
        what the known facts allow, which for a transient failure is the previous state.
        """
        if name == CLUSTER_SCOPE:
            self._reconcile_cluster_scope()
            return
        if is_valid_namespace_name(name):
            self._stop_watching_if_left(name)
        read_error = self._read_if_asked(name) if is_valid_namespace_name(name) else ""
        if read_error:
            self._keep_previous(name, f"it could not be read ({read_error}); retrying")
            raise RetryError(read_error)
        error = ""  # what a review could not learn: decided without it, then retried
        now = self._clock.now()
        with self._lock:
            observation = self._observed.get(name)
            access = self._access.get(name)
            review_at = self._review_at.get(name, float("-inf"))
        base = decide(name, self.settings, observation, None)
        needs_access = base.state is State.PENDING or name == self.settings.home_namespace
        if not needs_access:
            with self._lock:  # a namespace selected again later is reviewed afresh
                self._access.pop(name, None)
                self._review_at.pop(name, None)
                self._settle_reviews.pop(name, None)
                self._forbidden_since.pop(name, None)
            access = None
        elif access is None or review_at <= now:
            try:
                access = self._review(name, first=access is None)
            except Exception as err:
                error = _describe(err)
        status = self._decide_and_publish(name, observation, access, error, now)
        with self._lock:
            if status.state is State.FORBIDDEN and not status.confirmed:
                # The confirming review comes exactly one re-check interval after the first refusal.
                since = self._forbidden_since.get(name, now)
                self._review_at[name] = since + self.settings.access_recheck_interval
            next_review = self._review_at.get(name) if needs_access else None
        if next_review is not None and not error:
            self.queue.add_after(name, next_review - self._clock.now())
        if error:
            raise RetryError(error)

    def _stop_watching_if_left(self, name: str) -> None:
        """The selector watch said ``name`` no longer matches: take it out of the watch plan now.

        Unlabelled or deleted, it is not selected any more either way; the read that follows only
        picks the reason (and says whether it still exists). That read is a quorum GET, p50 2.5 ms
        but 15-25 ms at the tail in the bench, which made an unlabelled namespace's watcher stop
        later than a deleted one's. With tasks placed there nothing changes: the namespace keeps
        its state and watcher until the read answers, as before.
        """
        with self._lock:
            left = self._to_read.get(name) is _Read.LEFT
            access = self._access.get(name)
        previous = self.table.get(name)
        if not left or previous is None or previous.state is not State.PERMITTED:
            return
        if self.placement.has_tasks(name):
            return
        # A task placed from here on is counted by _decide_and_publish, which drains then.
        self._decide_and_publish(name, None, access, "", self._clock.now(), quiet=True)

    def _keep_previous(self, name: str, why: str) -> None:
        """Nothing definite was learnt: the published state stands, or ``pending`` if there is none."""
        previous = self.table.get(name)
        if previous is None or previous.state is State.PENDING:
            self._publish(name, NamespaceStatus(name, State.PENDING, why), previous)

    def _read_if_asked(self, name: str) -> str:
        with self._lock:
            why = self._to_read.get(name)
            generation = self._generation[name]
        if why is None:
            return ""
        try:
            fresh = self._source.read(name)
        except Exception as err:
            return _describe(err)
        with self._lock:
            if self._generation[name] != generation:
                return ""  # the watch told us something newer meanwhile; it wins
            del self._to_read[name]
            if fresh is not None:
                self._record_locked(name, fresh)
            elif self.mode is DiscoveryMode.CANDIDATES and name in self.settings.candidate_namespaces:
                self._observed.setdefault(name, Observation(exists=None))
            elif why is _Read.LEFT:
                self._observed.pop(name, None)
        return ""

    def _review(self, name: str, *, first: bool) -> AccessDecision:
        decision = self._reviewer.review(name)
        with self._lock:
            had_access = self._access.get(name)
        warming = self._clock.now() - self._reconnected_at < WARMUP_SECONDS
        if warming and not decision.allowed and had_access is not None and had_access.allowed:
            raise RetryError("access looks gone, but the API server came back moments ago; asking again")
        interval = self._recheck_interval()
        spread = self.settings.recheck_jitter
        # The first re-check is spread over the whole interval so that namespaces discovered
        # together (e.g. at start) are not re-checked together forever after.
        factor = random.uniform(0.5, 1.0) if first else random.uniform(1 - spread, 1 + spread)
        if self.identity == UNKNOWN_IDENTITY:
            self.queue.add(CLUSTER_SCOPE)  # the API server answers again: ask who we are now
        with self._lock:
            self._access[name] = decision
            self._review_at[name] = self._clock.now() + interval * factor
            later = [due for due in self._settle_reviews.pop(name, ()) if due > self._clock.now()]
            if later:
                self._review_at[name] = min(self._review_at[name], later[0])
                self._settle_reviews[name] = later
            if decision.allowed:
                self._forbidden_since.pop(name, None)
            else:
                self._forbidden_since.setdefault(name, self._clock.now())
        return decision

    def _decide_and_publish(
        self,
        name: str,
        observation: Observation | None,
        access: AccessDecision | None,
        error: str,
        now: float,
        *,
        quiet: bool = False,
    ) -> NamespaceStatus:
        previous = self.table.get(name)
        usable = decide(name, self.settings, observation, access, previous=previous, unknown=error)
        if previous is not None and previous.state is State.PERMITTED and usable.state is not State.PERMITTED:
            # No new task may start here from now on, and only then are the tasks counted: a task
            # placed before this put is counted, one placed after it is refused.
            self.table.put(replace(previous, state=State.DRAINING, reason="being re-decided"))
        tasks = self.placement.count(name)
        status = decide(
            name, self.settings, observation, access, previous=previous, tasks=tasks, unknown=error
        )
        if status.state is State.FORBIDDEN:
            with self._lock:
                since = self._forbidden_since.get(name, now)
            status = replace(status, confirmed=now - since >= self.settings.access_recheck_interval)
        self._publish(name, status, previous, quiet=quiet)
        return status

    def _reconcile_cluster_scope(self) -> None:
        self._resolve_identity()
        now = self._clock.now()
        with self._lock:
            refused, self._cluster_refused = self._cluster_refused, False
        interval = self._recheck_interval()
        if refused:
            self._cluster_wide = False
            self._cluster_probe_at = now + interval
        elif now >= self._cluster_probe_at:
            allowed = self._reviewer.may_watch_pods_everywhere()
            if allowed != self._cluster_wide:
                log.info(
                    "%s %s list and watch pods in every namespace: %s",
                    self.identity,
                    "may" if allowed else "may not",
                    "one cluster-wide pod watch serves all namespaces"
                    if allowed
                    else "one watch per namespace",
                )
            self._cluster_wide = allowed
            self._cluster_probe_at = now + interval * random.uniform(0.9, 1.1)
        self.queue.add_after(CLUSTER_SCOPE, self._cluster_probe_at - now)
        self._publish_plan()
        if self.identity == UNKNOWN_IDENTITY:
            raise RetryError("the API server has not said who the scheduler is yet")

    def _resolve_identity(self) -> None:
        """Ask who we are until the API server says; then re-review what was decided meanwhile,
        so every reason names the real identity."""
        if self.identity != UNKNOWN_IDENTITY:
            return
        identity = self._identify()
        if not identity:
            return
        self.identity = self._reviewer.identity = identity
        with self._lock:
            reviewed = list(self._access)
            for name in reviewed:
                self._review_at[name] = float("-inf")
        for name in reviewed:
            self.queue.add(name)

    # publishing --------------------------------------------------------------------------------

    def _publish(
        self, name: str, status: NamespaceStatus, previous: NamespaceStatus | None, *, quiet: bool = False
    ) -> None:
        """``quiet``: a first decision that a read is about to refine; the refined one is logged."""
        with self._publish_lock:
            replaced = self.table.put(status)
            if previous is None or (previous.state, previous.reason) != (status.state, status.reason):
                level = logging.WARNING if status.state in _WARN_STATES else logging.INFO
                level = logging.DEBUG if quiet else level
                log.log(level, "%s", status.message)
            if status.state is not State.PENDING:
                with self._lock:
                    event_at = self._event_at.pop(name, None)
                if (
                    event_at is not None
                    and status.state is State.PERMITTED
                    and not (previous and previous.watched)
                ):
                    self.discovery_latencies.append(self._clock.now() - event_at)
            # Building the plan reads every row: only when this row's watched flag changed. Every
            # task placed or finished re-decides its namespace, and a full read there was
            # O(namespaces) per task on the review workers, beside the scheduler loop.
            if self._plan_behind or replaced is None or replaced.watched != status.watched:
                self._publish_plan_locked()

    def _publish_plan(self) -> None:
        with self._publish_lock:
            self._publish_plan_locked()

    def _publish_plan_locked(self) -> None:
        if self._supervisor.stopped.is_set():
            return  # a reconcile finishing after stop() must not start watchers again
        plan = WatchPlan(self.table.watched(), self._cluster_wide)
        if plan != self._plan:
            self._plan_behind = True
            self._on_change(plan)  # raises to the worker, which retries; _plan stays old until then
            self._plan = plan
        self._plan_behind = False

    # the namespace source loop -----------------------------------------------------------------

    def _source_step(self) -> None:
        stopped = self._supervisor.stopped
        if self.mode is DiscoveryMode.CANDIDATES:
            stopped.wait(max(0.0, self._next_list_probe - self._clock.now()))
            if stopped.is_set():
                return
        try:
            self._source.sync_once()
        except ListForbiddenError as err:
            if self._source.listed or not self._give_up_listing(str(err)):
                self._source_failed = True
                raise
        except Exception:
            self._source_failed = True
            raise

    def _give_up_listing(self, why: str) -> bool:
        """After a bounded time of 403s on the first list, use the candidate namespaces."""
        now = self._clock.now()
        self._next_list_probe = now + self.settings.access_recheck_interval
        if self.mode is DiscoveryMode.CANDIDATES:
            return True
        if self._list_forbidden_since is None:
            self._list_forbidden_since = now
        if now - self._list_forbidden_since < self.settings.initial_sync_timeout / 3:
            return False
        candidates = self.settings.candidate_namespaces
        log.warning(
            "scheduler identity %s may not list namespaces cluster-wide (%s); using [%s] "
            "candidate_namespaces %s instead, each still access-reviewed, and trying to list again "
            "every %.0fs",
            self.identity,
            why,
            SECTION,
            ", ".join(candidates) or "(none configured: only the home namespace will be used)",
            self.settings.access_recheck_interval,
        )
        with self._lock:
            self.mode = DiscoveryMode.CANDIDATES
            for name in candidates:
                self._ask_read_locked(name, _Read.LOOK, review=True)
        for name in candidates:
            self.queue.add(name)
        self._listed.set()
        return True

    def _wait_idle(self, timeout: float) -> bool:
        stopped = self._supervisor.stopped
        deadline = self._clock.now() + timeout
        while self.queue.busy():
            if self._clock.now() >= deadline or stopped.wait(0.02):
                return False
        return True


_WARN_STATES = frozenset({State.FORBIDDEN, State.ABSENT, State.TERMINATING, State.EXCLUDED})


class RetryError(Exception):
    """Something about a namespace could not be learnt now; the queue retries it with backoff."""


def _describe(err: BaseException) -> str:
    if isinstance(err, client.ApiException):
        return f"{err.status} {err.reason}"
    return f"{type(err).__name__}: {err}"[:200]
