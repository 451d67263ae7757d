"""Every malformed executor_config gets a precise answer: what was found, and the code to write.

The forms and their messages live in ``tests/executor_config_forms.py``; here each message is
checked, each form is shown to be one upstream cannot launch either, and each fix is carried out
to show that it launches.
"""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest
from airflow.providers.cncf.kubernetes.pod_generator import PodGenerator
from hypothesis import given, settings
from hypothesis import strategies as st
from kubernetes.client import models as k8s

from airflow_provider_nsdiscovery.executor_config import executor_config_problem
from tests.executor_config_forms import BOTH, BUILDS, FROM_OBJ, LAUNCHABLE, MALFORMED, POD_MERGE, TEAM_A, pod


def upstream_outcome(executor_config: Any) -> str:
    """Where upstream's own code fails on ``executor_config``, if it does before the API server."""
    try:
        pod_override = PodGenerator.from_obj(executor_config)
    except Exception:
        return FROM_OBJ
    base = pod("airflow", labels={"a": "b"}, annotations={"c": "d"})
    base.spec = k8s.V1PodSpec(containers=[k8s.V1Container(name="base", image="worker:1")])
    try:
        PodGenerator.construct_pod(
            dag_id="dag",
            task_id="task",
            pod_id="pod",
            try_number=1,
            kube_image="worker:1",
            date=None,
            args=["airflow", "tasks", "run"],
            pod_override_object=pod_override,
            base_worker_pod=base,
            namespace="airflow",
            scheduler_job_id="1",
            run_id="run",
        )
    except Exception:
        return POD_MERGE
    return BUILDS


@pytest.mark.parametrize(("executor_config", "message", "upstream"), MALFORMED)
def test_malformed_executor_config_gets_what_was_found_and_the_code_to_write(
    executor_config: Any, message: str, upstream: str
) -> None:
    assert executor_config_problem(executor_config) == message


@pytest.mark.parametrize(("executor_config", "message", "upstream"), MALFORMED)
def test_each_malformed_form_is_one_upstream_cannot_launch_either(
    executor_config: Any, message: str, upstream: str
) -> None:
    assert upstream_outcome(executor_config) == upstream


@pytest.mark.parametrize("executor_config", LAUNCHABLE)
def test_what_upstream_launches_is_not_refused(executor_config: Any) -> None:
    assert executor_config_problem(executor_config) is None
    assert upstream_outcome(executor_config) == BUILDS


def apply_fix(executor_config: Any, message: str) -> Any:
    """A copy of ``executor_config`` after doing what ``message`` says, by evaluating its code."""
    executor_config = copy.deepcopy(executor_config)  # the table is shared: never change its rows
    scope = {"k8s": k8s}
    if snippet := re.search(r"(?:write|e\.g\.) executor_config=(.*)", message):
        return eval(_balanced(snippet[1]), scope)
    if ": delete it" in message:
        return {key: value for key, value in executor_config.items() if key != "KubernetesExecutor"}
    pod = executor_config["pod_override"]
    if suggested := re.search(r"a valid name, e\.g\. '([^']+)'", message):
        pod.metadata.namespace = suggested[1]
    elif fixed := re.search(r"spec\.containers\[(\d+)\] .*; write (k8s\.V1Container\(.*\))$", message):
        pod.spec.containers[int(fixed[1])] = eval(fixed[2], scope)
    else:
        field, code = re.findall(r"; write (\w+)=(.*)$", message)[0]
        owner = {"labels": pod.metadata, "containers": pod.spec}.get(field, pod)
        setattr(owner, field, eval(code, scope))
    return executor_config


def _balanced(text: str) -> str:
    """The leading ``{...}`` of ``text``: the snippet, without any note after it."""
    depth, quote = 0, ""
    for index, char in enumerate(text):
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char in "{[(":
            depth += 1
        elif char in "}])":
            depth -= 1
            if depth == 0:
                return text[: index + 1]
    raise AssertionError(f"no balanced snippet in {text!r}")


@pytest.mark.parametrize(("executor_config", "message", "upstream"), MALFORMED)
def test_doing_what_the_message_says_gives_a_launchable_config(
    executor_config: Any, message: str, upstream: str
) -> None:
    if message.startswith(BOTH):
        pytest.skip("two steps: delete the Airflow 1 key, then follow the next message")
    fixed = apply_fix(executor_config, message)
    assert executor_config_problem(fixed) is None
    assert upstream_outcome(fixed) == BUILDS


def test_an_executor_config_that_cannot_even_be_inspected_is_refused_not_raised() -> None:
    class Unreadable(dict[str, Any]):
        def get(self, key: str, default: Any = None) -> Any:
            raise RuntimeError("broken mapping")

    assert executor_config_problem(Unreadable()) == (
        f"executor_config could not be read (RuntimeError: broken mapping); write {TEAM_A}"
    )


_values = st.recursive(
    st.sampled_from(
        [None, "", "team-a", "Team_A", "/t/pod.yaml", 0, 5, True, pod("team-a"), pod(), k8s.V1ObjectMeta()]
    ),
    lambda inner: (
        st.lists(inner, max_size=2)
        | st.dictionaries(st.sampled_from(["pod_override", "KubernetesExecutor", "namespace", "x"]), inner)
    ),
    max_leaves=6,
)


@settings(database=None, deadline=None)
@given(executor_config=_values)
def test_everything_upstream_refuses_is_refused_with_a_message(executor_config: Any) -> None:
    if upstream_outcome(executor_config) != BUILDS:
        assert executor_config_problem(executor_config) is not None
