"""Property: whatever happens to namespaces, RBAC and the API server, the real controller keeps
its promises. Hypothesis drives :class:`NamespaceDiscovery` through its seams with random label,
RBAC, deletion, task and time events, and with the API server failing every call for a while.

Invariants after every step:
- the watch plan handed to the watchers is exactly the table's watched namespaces;
- a namespace where tasks of ours are placed is watched, unless a definite answer (forbidden
  without watch rights, or gone) says it cannot be;
- while the API server fails, no namespace stops being permitted (transient errors decide nothing).
Once the API server answers again and time passes, every selected namespace converges to what
the cluster says (labels, RBAC, existence), whatever happened before; an unselected one does so
at the first look a task's check asks for.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from airflow_provider_nsdiscovery.discovery.decide import decide
from airflow_provider_nsdiscovery.discovery.status import AccessDecision, State
from tests.unit.discovery_fakes import ALL_MISSING, IDENTITY, SELECTOR, FakeNamespace, make_harness

TEAMS = ("team-a", "team-b", "team-c")
RBAC = {"full": (), "no-create": ("create pods",), "none": ALL_MISSING}
_tasks = itertools.count()


class ControllerMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.h = make_harness(access_recheck_interval=60.0)
        for name in TEAMS:
            self.h.cluster.namespaces[name] = FakeNamespace(dict(SELECTOR))
        self.h.discovery.start(threads=False)
        self.h.source.relist()
        self.h.settle()
        self.permitted_before_outage: frozenset[str] = frozenset()

    # the cluster -------------------------------------------------------------------------------

    def _change(self, name: str, change: Callable[[], object]) -> None:
        """Change the cluster and deliver what a selector watch would: events only for namespaces
        selected before or after, and only while the API server answers (a relist catches up)."""
        before = name in self.h.cluster.selected()
        change()
        after = name in self.h.cluster.selected()
        if self.h.cluster.down or not (before or after):
            return
        self.h.source.event("MODIFIED" if after else "DELETED", name)

    @rule(name=st.sampled_from(TEAMS), labelled=st.booleans())
    def set_label(self, name: str, labelled: bool) -> None:
        ns = self.h.cluster.namespaces.get(name)
        if ns is None or ns.terminating:
            return
        self._change(name, lambda: setattr(ns, "labels", dict(SELECTOR) if labelled else {}))

    @rule(name=st.sampled_from(TEAMS), level=st.sampled_from(sorted(RBAC)))
    def set_rbac(self, name: str, level: str) -> None:
        ns = self.h.cluster.namespaces.get(name)
        if ns is not None:
            ns.missing = RBAC[level]

    @rule(name=st.sampled_from(TEAMS))
    def forbidden_seen(self, name: str) -> None:
        self.h.discovery.invalidate(name, "a 403 seen by a pod watch")

    @rule(name=st.sampled_from(TEAMS))
    def delete(self, name: str) -> None:
        ns = self.h.cluster.namespaces.get(name)
        if ns is None:
            return
        if not ns.terminating:
            self._change(name, lambda: setattr(ns, "terminating", True))
        else:
            self._change(name, lambda: self.h.cluster.namespaces.pop(name))

    @rule(name=st.sampled_from(TEAMS))
    def create(self, name: str) -> None:
        if name not in self.h.cluster.namespaces:
            self._change(
                name, lambda: self.h.cluster.namespaces.update({name: FakeNamespace(dict(SELECTOR))})
            )

    # the executor ------------------------------------------------------------------------------

    @rule(name=st.sampled_from(TEAMS))
    def launch(self, name: str) -> None:
        """The scheduler's order: place the task, then check the table; refused tasks leave."""
        key = f"task-{next(_tasks)}"
        self.h.discovery.placement.place(key, name)
        status = self.h.discovery.status(name)
        if status is None or status.state is not State.PERMITTED:
            self.h.discovery.placement.remove(key)

    @rule(data=st.data())
    def finish(self, data: st.DataObject) -> None:
        placed = self.h.discovery.placement.items()
        if placed:
            key, _ = data.draw(st.sampled_from(placed))
            self.h.discovery.placement.remove(key)

    @rule()
    def give_up_lost_tasks(self) -> None:
        """What the executor's heartbeat does with tasks it can no longer follow."""
        for key, name in self.h.discovery.placement.items():
            status = self.h.discovery.status(name)
            if status is not None and status.gives_up_tasks:
                self.h.discovery.placement.remove(key)

    # the API server and time -------------------------------------------------------------------

    @precondition(lambda self: not self.h.cluster.down)
    @rule()
    def outage_starts(self) -> None:
        self.h.settle()
        self.permitted_before_outage = self._permitted()
        self.h.cluster.down = True

    @precondition(lambda self: self.h.cluster.down)
    @rule()
    def outage_ends(self) -> None:
        self.h.cluster.down = False
        self.h.source.relist()

    @rule(seconds=st.sampled_from([0.5, 5.0, 31.0, 61.0]))
    def time_passes(self, seconds: float) -> None:
        self.h.advance(seconds)

    # invariants --------------------------------------------------------------------------------

    def _permitted(self) -> frozenset[str]:
        return frozenset(
            n for n, s in self.h.discovery.table.snapshot().items() if s.state is State.PERMITTED
        )

    @invariant()
    def plan_is_the_watched_namespaces(self) -> None:
        self.h.settle()
        if self.h.plans:
            assert self.h.plans[-1].namespaces == self.h.discovery.watched()

    @invariant()
    def placed_tasks_are_watched_unless_a_definite_answer_says_they_cannot_be(self) -> None:
        for _, name in self.h.discovery.placement.items():
            status = self.h.discovery.status(name)
            assert status is not None
            if not status.watched:
                assert status.state in (State.FORBIDDEN, State.ABSENT), status.message

    @invariant()
    def an_outage_takes_no_permission_away(self) -> None:
        if self.h.cluster.down:
            self.h.settle()
            assert self.permitted_before_outage <= self._permitted()

    def teardown(self) -> None:
        """Convergence: the API server answers, time passes, every state matches the cluster."""
        self.h.cluster.down = False
        self.h.source.relist()
        for _ in range(4):
            self.h.advance(61)
        selected = self.h.cluster.selected()
        for name in TEAMS:
            if name not in selected:
                # Only selected namespaces are followed; for the others, what the scheduler's check
                # does when a task asks: one fresh look.
                self.h.discovery.invalidate(name, "a task asks for it")
                self.h.settle()
            ns = self.h.cluster.namespaces.get(name)
            access = AccessDecision(IDENTITY, ns.missing if ns else ALL_MISSING)
            truth = decide(
                name,
                self.h.discovery.settings,
                self.h.cluster.observe(name),  # each was selected once, so it is followed by GET
                access,
                tasks=self.h.discovery.placement.count(name),
            )
            status = self.h.discovery.status(name)
            assert status is not None
            assert status.state is truth.state, (
                f"{name}: {status.message} but the cluster says {truth.message}"
            )


ControllerMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
test_the_controller_keeps_its_promises_under_any_sequence_of_events = ControllerMachine.TestCase
