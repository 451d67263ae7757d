"""Namespace discovery: observed namespaces + access reviews -> the state table.

This is the controller half of the provider. Threads feed it observations (the namespace watch,
review results, periodic re-checks, drain polls); each observation re-derives one namespace's
state with :func:`decide`, and whenever the set of namespaces that should be watched changes,
``on_change`` is told the new desired set. Nothing here knows about Airflow.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from kubernetes import client

from airflow_provider_nsdiscovery.config import SECTION, DiscoverySettings
from airflow_provider_nsdiscovery.discovery.access import AccessReviewer, who_am_i
from airflow_provider_nsdiscovery.discovery.source import (
    ListForbiddenError,
    NamespaceWatch,
    read_namespace,
)
from airflow_provider_nsdiscovery.discovery.state import (
    AccessDecision,
    NamespaceStatus,
    Observation,
    State,
    StateTable,
    decide,
    is_valid_namespace_name,
)

log = logging.getLogger(__name__)

_TICK_SECONDS = 0.25


class NamespaceDiscovery:
    """Keeps :attr:`table` current for every namespace the executor may use or still uses.

    ``active_pod_selector`` selects the pods this executor launched and has not finished with; a
    namespace that stops being usable is drained (kept watched) while any such pod remains.
    """

    def __init__(
        self,
        settings: DiscoverySettings,
        api_client: client.ApiClient,
        *,
        active_pod_selector: str,
        on_change: Callable[[frozenset[str]], None] = lambda desired: None,
        identity: str | None = None,
    ) -> None:
        self.settings = settings
        self.counters: Counter[str] = Counter()
        self.table = StateTable()
        self.identity = identity or who_am_i(api_client)
        self.mode = "label-selector"
        self._core = client.CoreV1Api(api_client)
        self._active_pod_selector = active_pod_selector
        self._on_change = on_change
        self._reviewer = AccessReviewer(
            api_client, self.identity, settings.access_recheck_interval, on_request=self._count_request
        )
        self._observed: dict[str, Observation] = {}
        # Last decision per namespace, kept past the cache TTL: a failed re-check must not turn a
        # working namespace into "pending" and stop the watcher of tasks that still run there.
        self._access: dict[str, AccessDecision] = {}
        self._lock = threading.RLock()
        self._publish_lock = threading.Lock()
        self._next_check: dict[str, float] = {}
        self._in_flight: set[str] = set()
        self._pool = ThreadPoolExecutor(settings.review_concurrency, thread_name_prefix="nsd-review")
        self._watch = NamespaceWatch(
            api_client,
            settings.label_selector,
            self._on_snapshot,
            self._on_watch_event,
            self._count_request,
        )
        self._stopped = threading.Event()
        self._listed = threading.Event()
        self._threads: list[threading.Thread] = []
        self._desired: frozenset[str] = frozenset()
        # Watch event -> permitted, per namespace: the latency operators care about.
        self._event_at: dict[str, float] = {}
        # Namespaces where a restarted scheduler adopted running pods: drained even though this
        # discovery never saw them in use, so the adopted tasks keep their watcher.
        self._adopted: set[str] = set()
        self.discovery_latencies: deque[float] = deque(maxlen=1000)
        self.table.put(decide(settings.home_namespace, settings, None, None))

    # lifecycle ---------------------------------------------------------------------------------

    def start(self) -> None:
        """Start discovery and wait (bounded) until every selected namespace has a decision.

        Waiting matters: adoption after a scheduler restart looks for pods only in namespaces
        known at that moment, so starting before the first full review would orphan tasks.
        """
        for name, target in (("nsd-namespace-watch", self._run_source), ("nsd-recheck", self._run_rechecks)):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        deadline = time.monotonic() + self.settings.initial_sync_timeout
        if not self._listed.wait(self.settings.initial_sync_timeout) or not self._wait_reviews(deadline):
            log.warning(
                "namespace discovery did not finish within %.0fs (initial_sync_timeout); "
                "the scheduler starts with what is known and adds the rest as reviews finish",
                self.settings.initial_sync_timeout,
            )
        self._publish()

    def stop(self) -> None:
        self._stopped.set()
        self._watch.stop()
        self._pool.shutdown(wait=False, cancel_futures=True)
        for thread in self._threads:
            thread.join(timeout=5)

    # queries -----------------------------------------------------------------------------------

    def status(self, name: str) -> NamespaceStatus | None:
        return self.table.get(name)

    def watched(self) -> frozenset[str]:
        return frozenset(self.table.watched())

    def check(self, name: str) -> NamespaceStatus:
        """Decide whether a task may start in ``name`` now.

        A permitted namespace is answered from the table. Anything else is looked at again
        before a task is refused, so a namespace labelled a second ago (whose watch event has not
        arrived yet) is accepted rather than rejected as unknown.
        """
        current = self.table.get(name)
        if current is not None and current.state is State.PERMITTED:
            self.counters["validation cache hit"] += 1
            return current
        self.counters["validation cache miss"] += 1
        if not is_valid_namespace_name(name):
            return decide(name, self.settings, None, None)  # not stored: the table holds real names only
        if current is not None and current.state is State.EXCLUDED:
            return current
        return self._look_again(name)

    def invalidate(self, name: str, why: str) -> NamespaceStatus:
        """Forget what is known of ``name`` (e.g. after a 403) and look at it again now.

        The namespace is re-read as well as re-reviewed: a 403 on create also comes from a
        namespace that has just started terminating, before its watch event arrived.
        """
        log.warning("re-checking namespace '%s': %s", name, why)
        self._reviewer.invalidate(name)
        return self._look_again(name)

    def adopt(self, name: str) -> NamespaceStatus:
        """Treat ``name`` as in use: pods of ours were adopted there after a restart."""
        with self._lock:
            self._adopted.add(name)
        return self._look_again(name)

    def _look_again(self, name: str) -> NamespaceStatus:
        observation = read_namespace(self._core, name)
        self._count_request("get namespace")
        with self._lock:
            if observation is not None:
                self._observed[name] = observation
            elif name in self.settings.candidate_namespaces:
                self._observed.setdefault(name, Observation(exists=None))
            # else: we may not read it now; what the namespace watch last said still stands.
        if self._needs_review(name) and self._reviewer.cached(name) is None:
            self._review(name)
        return self._refresh(name)

    # observations ------------------------------------------------------------------------------

    def _on_snapshot(self, selected: dict[str, Observation]) -> None:
        with self._lock:
            vanished = [
                name
                for name, obs in self._observed.items()
                if name not in selected and obs.exists and name not in self.settings.candidate_namespaces
            ]
            self._observed.update(selected)
        for name in vanished:
            self._on_left_selection(name)
        for name in selected:
            self._observe(name)
        self._listed.set()

    def _on_watch_event(self, kind: str, name: str, observation: Observation) -> None:
        if kind == "DELETED":
            self._on_left_selection(name)
            return
        with self._lock:
            self._observed[name] = observation
            self._event_at.setdefault(name, time.monotonic())
        self._observe(name)

    def _on_left_selection(self, name: str) -> None:
        """A selector watch cannot say whether a namespace was deleted or unlabelled: ask."""
        try:
            observation = read_namespace(self._core, name)
            self._count_request("get namespace")
        except client.ApiException as err:
            log.warning("could not read namespace '%s' after it left the selection: %s", name, err)
            observation = None
        self._reviewer.invalidate(name)
        with self._lock:
            self._access.pop(name, None)
            self._next_check.pop(name, None)
            if observation is None:
                self._observed.pop(name, None)
            else:
                self._observed[name] = observation
        self._refresh(name)

    def _observe(self, name: str) -> None:
        if self._needs_review(name) and self._reviewer.cached(name) is None:
            self._submit_review(name)
        self._refresh(name)

    # reviews -----------------------------------------------------------------------------------

    def _needs_review(self, name: str) -> bool:
        """Only namespaces that would otherwise be permitted are worth an access review."""
        with self._lock:
            observation = self._observed.get(name)
        base = decide(name, self.settings, observation, None)
        return base.state is State.PENDING

    def _submit_review(self, name: str) -> None:
        with self._lock:
            if name in self._in_flight or self._stopped.is_set():
                return
            self._in_flight.add(name)
        try:
            self._pool.submit(self._review_and_refresh, name)
        except RuntimeError:  # pool shut down while stopping
            with self._lock:
                self._in_flight.discard(name)

    def _review_and_refresh(self, name: str) -> None:
        try:
            self._review(name)
            self._refresh(name)
        except Exception as err:
            retry = min(10.0, self.settings.access_recheck_interval)
            log.warning("access review of namespace '%s' failed (%r); retrying in %.0fs", name, err, retry)
            with self._lock:
                self._next_check[name] = time.monotonic() + retry
        finally:
            with self._lock:
                self._in_flight.discard(name)

    def _review(self, name: str) -> None:
        decision = self._reviewer.review(name)
        interval = self.settings.access_recheck_interval
        spread = self.settings.recheck_jitter
        with self._lock:
            self._access[name] = decision
            first = name not in self._next_check
            # The first re-check is spread over the whole interval so that namespaces discovered
            # together (e.g. at start) are not re-checked together forever after.
            factor = random.uniform(0.5, 1.0) if first else random.uniform(1 - spread, 1 + spread)
            self._next_check[name] = time.monotonic() + interval * factor

    def _wait_reviews(self, deadline: float) -> bool:
        while time.monotonic() < deadline:
            with self._lock:
                pending = bool(self._in_flight)
            if not pending:
                return True
            time.sleep(0.02)
        return False

    # state -------------------------------------------------------------------------------------

    def _refresh(self, name: str) -> NamespaceStatus:
        """Re-derive the state of ``name`` from what is known now and publish any change."""
        with self._lock:
            observation = self._observed.get(name)
            previous = self.table.get(name)
            access = self._access.get(name)
            if name in self._adopted and (previous is None or not previous.watched):
                previous = NamespaceStatus(name, State.PERMITTED, "pods of ours were adopted here")
        base = decide(name, self.settings, observation, access)
        active = 0
        if previous is not None and previous.watched and base.state not in (State.PERMITTED, State.PENDING):
            active = self._count_active_pods(name)
        status = decide(name, self.settings, observation, access, previous=previous, active_pods=active)
        with self._lock:
            previous = self.table.put(status)
            if status.state is not State.DRAINING:
                self._adopted.discard(name)
            event_at = self._event_at.pop(name, None) if status.state is not State.PENDING else None
        if event_at is not None and status.state is State.PERMITTED and not (previous and previous.watched):
            self.discovery_latencies.append(time.monotonic() - event_at)
        if previous is None or (previous.state, previous.reason) != (status.state, status.reason):
            level = (
                logging.INFO
                if status.state in (State.PERMITTED, State.DRAINING, State.PENDING)
                else logging.WARNING
            )
            log.log(level, "%s", status.message)
        self._publish()
        return status

    def _count_active_pods(self, name: str) -> int:
        try:
            self._count_request("list pods")
            pods = self._core.list_namespaced_pod(
                name,
                label_selector=self._active_pod_selector,
                field_selector="status.phase!=Succeeded,status.phase!=Failed",
            )
        except client.ApiException as err:
            log.warning("cannot list pods in '%s' to drain it (%s); stopping its watcher", name, err.reason)
            return 0
        return len(pods.items)

    def _publish(self) -> None:
        # One publisher at a time, so a slower thread cannot hand on a desired set older than one
        # that was already published.
        with self._publish_lock:
            if self._stopped.is_set():
                return  # a review finishing after stop() must not start watchers again
            desired = self.watched()
            if desired == self._desired:
                return
            self._desired = desired
            try:
                self._on_change(desired)
            except Exception:
                log.exception("reconciling pod watchers for %s failed", sorted(desired))

    # threads -----------------------------------------------------------------------------------

    def _run_source(self) -> None:
        try:
            self._watch.run()
        except ListForbiddenError as err:
            self._use_candidates(str(err))

    def _use_candidates(self, why: str) -> None:
        self.mode = "candidate-namespaces"
        candidates = self.settings.candidate_namespaces
        log.warning(
            "scheduler identity %s may not list namespaces cluster-wide (%s); using [%s] "
            "candidate_namespaces %s instead, each still access-reviewed",
            self.identity,
            why,
            SECTION,
            ", ".join(candidates) or "(none configured: only the home namespace will be used)",
        )
        while not self._stopped.is_set():
            for name in candidates:
                try:
                    self.check(name)
                except client.ApiException as err:
                    log.warning("could not check candidate namespace '%s': %s", name, err.reason)
            self._listed.set()
            self._stopped.wait(self.settings.access_recheck_interval)

    def _run_rechecks(self) -> None:
        """Re-review namespaces as their access decisions age and poll draining ones."""
        next_drain_poll = 0.0
        while not self._stopped.wait(_TICK_SECONDS):
            now = time.monotonic()
            with self._lock:
                due = [name for name, when in self._next_check.items() if when <= now]
                for name in due:
                    del self._next_check[name]
            for name in due:
                if self._needs_review(name):
                    self._submit_review(name)
                else:
                    self._refresh(name)
            if now >= next_drain_poll:
                next_drain_poll = now + self.settings.drain_poll_interval
                for name, status in self.table.snapshot().items():
                    if status.state is State.DRAINING:
                        self._refresh(name)

    def _count_request(self, kind: str) -> None:
        self.counters[f"api: {kind}"] += 1
