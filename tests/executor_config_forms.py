"""The malformed executor_config forms people really write, each with the exact refusal.

One table for every test of the answer: the unit tests of ``executor_config_problem``, the
parse-time cluster policy, and the executor at launch time. Sources: apache/airflow#31988, #10290
(the Airflow 1 ``KubernetesExecutor`` dict), #26101 (a serialized pod), #67643 (an Airflow 1 key
next to a broken override), and pod overrides that are not a ``kubernetes.client`` ``V1Pod``.
Rows are shared: a test that wants to change one must copy it first.
"""

from __future__ import annotations

from typing import Any

import kubernetes_asyncio.client.models as other_client
import pytest
from kubernetes.client import models as k8s

FROM_OBJ = "from_obj"  # upstream refuses it: "Invalid executor_config passed"
POD_MERGE = "pod merge"  # upstream accepts it, then crashes merging it into the pod template
BUILDS = "builds"  # upstream builds a pod from it; the API server or our namespace check refuses it


def pod(namespace: object = None, **metadata: Any) -> k8s.V1Pod:
    return k8s.V1Pod(metadata=k8s.V1ObjectMeta(namespace=namespace, **metadata))


def _spec(containers: Any) -> k8s.V1Pod:
    return k8s.V1Pod(spec=k8s.V1PodSpec(containers=containers))


TEAM_A = "executor_config={'pod_override': k8s.V1Pod(metadata=k8s.V1ObjectMeta(namespace='team-a'))}"
_NOT_A_POD = "not a kubernetes.client.models.V1Pod"
_OVERRIDE = "executor_config['pod_override']"
_LEGACY = (
    "executor_config['KubernetesExecutor'] is the Airflow 1 form, "
    "which the KubernetesExecutor no longer reads"
)
BOTH = (
    "executor_config has both 'KubernetesExecutor' (the Airflow 1 form) and 'pod_override', and only "
    "'pod_override' can be used: delete 'KubernetesExecutor'"
)
_IMPORT = "build it with `from kubernetes.client import models as k8s`"

MALFORMED = [
    pytest.param(
        [pod("team-a")],
        "executor_config is a list ([k8s.V1Pod(metadata=k8s.V1ObjectMeta(namespace='team-a'))]), not a "
        f"dict; a task has one pod, under 'pod_override': write {TEAM_A}",
        FROM_OBJ,
        id="executor_config is a list",
    ),
    pytest.param(
        "team-a",
        f"executor_config is a str ('team-a'), not a dict; write {TEAM_A}",
        FROM_OBJ,
        id="executor_config is a namespace name",
    ),
    pytest.param(
        "/templates/team-a.yaml",
        "executor_config is a str ('/templates/team-a.yaml'), not a dict; "
        "write executor_config={'pod_template_file': '/templates/team-a.yaml'}",
        FROM_OBJ,
        id="executor_config is a template file name",
    ),
    pytest.param(
        pod("team-a"),
        "executor_config is a V1Pod (k8s.V1Pod(metadata=k8s.V1ObjectMeta(namespace='team-a'))), not a dict; "
        f"put the pod under 'pod_override': write {TEAM_A}",
        FROM_OBJ,
        id="executor_config is a bare V1Pod",
    ),
    pytest.param(
        {"KubernetesExecutor": {"namespace": "othernamespace", "request_cpu": "0.5", "request_memory": "1G"}},
        f"{_LEGACY}: write executor_config={{'pod_override': k8s.V1Pod(metadata=k8s.V1ObjectMeta("
        "namespace='othernamespace'), spec=k8s.V1PodSpec(containers=[k8s.V1Container(name='base', "
        "resources=k8s.V1ResourceRequirements(requests={'cpu': '0.5', 'memory': '1G'}))]))}",
        FROM_OBJ,
        id="Airflow 1 dict (apache/airflow#31988)",
    ),
    pytest.param(
        {"KubernetesExecutor": {"image": "etl:2", "limit_gpu": 1, "git_sync": True}},
        f"{_LEGACY}: write executor_config={{'pod_override': k8s.V1Pod(spec=k8s.V1PodSpec(containers=["
        "k8s.V1Container(image='etl:2', name='base', resources=k8s.V1ResourceRequirements(limits="
        "{'nvidia.com/gpu': 1}))]))} (no V1Pod field matches 'git_sync': drop or translate by hand)",
        FROM_OBJ,
        id="Airflow 1 dict with a key no pod field matches",
    ),
    pytest.param(
        {"KubernetesExecutor": {"config_file": "/some/path/kubeconfig.yaml"}},
        f"{_LEGACY}: delete it (no V1Pod field matches 'config_file': drop or translate by hand)",
        FROM_OBJ,
        id="Airflow 1 dict with nothing to translate (apache/airflow#67643)",
    ),
    pytest.param(
        {"KubernetesExecutor": pod("team-a")},
        "executor_config['KubernetesExecutor'] is a V1Pod, but pods are read only from 'pod_override': "
        f"write {TEAM_A}",
        FROM_OBJ,
        id="V1Pod under the Airflow 1 key",
    ),
    pytest.param(
        {"KubernetesExecutor": {"namespace": "team-b"}, "pod_override": pod("team-a")},
        f"{BOTH} and move its settings into pod_override; as a pod they are "
        "k8s.V1Pod(metadata=k8s.V1ObjectMeta(namespace='team-b'))",
        FROM_OBJ,
        id="Airflow 1 dict and pod_override together",
    ),
    pytest.param(
        {"KubernetesExecutor": {"config_file": "/kube"}, "pod_override": "something else"},
        f"{BOTH} (no V1Pod field matches 'config_file': drop or translate by hand); then: {_OVERRIDE} is "
        f"a str ('something else'), {_NOT_A_POD}; write {TEAM_A}",
        FROM_OBJ,
        id="Airflow 1 dict and a bad pod_override together",
    ),
    pytest.param(
        {
            "pod_override": {
                "metadata": {"namespace": "team-a"},
                "spec": {"serviceAccountName": "etl", "containers": [{"name": "base", "image": "etl:2"}]},
            }
        },
        f"{_OVERRIDE} is a dict ({{'metadata': {{'namespace': 'team-a'}}, 'spec': {{'serviceAc...), "
        f"{_NOT_A_POD}; write executor_config={{'pod_override': k8s.V1Pod(metadata=k8s.V1ObjectMeta("
        "namespace='team-a'), spec=k8s.V1PodSpec(containers=[k8s.V1Container(image='etl:2', name='base')], "
        "service_account_name='etl'))}",
        FROM_OBJ,
        id="pod_override is a manifest dict",
    ),
    pytest.param(
        {"pod_override": {"Encoding.VAR": {"metadata": {}}, "Encoding.TYPE": "k8s.V1Pod"}},
        f"{_OVERRIDE} is a dict ({{'Encoding.VAR': {{'metadata': {{}}}}, 'Encoding.TYPE': 'k8s....), "
        f"{_NOT_A_POD} (a V1Pod has no field 'Encoding.VAR'); build a V1Pod, e.g. {TEAM_A}",
        FROM_OBJ,
        id="pod_override is a serialized pod (apache/airflow#26101)",
    ),
    pytest.param(
        {"pod_override": "team-a"},
        f"{_OVERRIDE} is a str ('team-a'), {_NOT_A_POD}; write {TEAM_A}",
        FROM_OBJ,
        id="pod_override is a namespace name",
    ),
    pytest.param(
        {"pod_override": other_client.V1Pod(metadata=other_client.V1ObjectMeta(namespace="team-z"))},
        f"{_OVERRIDE} is a V1Pod from kubernetes_asyncio.client.models.v1_pod, {_NOT_A_POD}; {_IMPORT}: "
        "write executor_config={'pod_override': k8s.V1Pod(metadata=k8s.V1ObjectMeta(namespace='team-z'))}",
        FROM_OBJ,
        id="pod_override is a V1Pod of another client",
    ),
    pytest.param(
        {"pod_override": "<kubernetes_asyncio.client.models.v1_pod.V1Pod object at 0x7f1893ffc890>"},
        f"{_OVERRIDE} is the text of a V1Pod from kubernetes_asyncio.client.models.v1_pod (Airflow keeps "
        f"only kubernetes.client models as objects), {_NOT_A_POD}; {_IMPORT}, e.g. {TEAM_A}",
        FROM_OBJ,
        id="pod_override is what Airflow stored for a V1Pod of another client",
    ),
    pytest.param(
        {"pod_override": k8s.V1ObjectMeta(namespace="team-a")},
        f"{_OVERRIDE} is a V1ObjectMeta (k8s.V1ObjectMeta(namespace='team-a')), {_NOT_A_POD}; wrap it: "
        f"write {TEAM_A}",
        FROM_OBJ,
        id="pod_override is a V1ObjectMeta",
    ),
    pytest.param(
        {"pod_override": k8s.V1Container(name="base", image="etl:2")},
        f"{_OVERRIDE} is a V1Container (k8s.V1Container(image='etl:2', name='base')), {_NOT_A_POD}; wrap "
        "it: write executor_config={'pod_override': k8s.V1Pod(spec=k8s.V1PodSpec(containers=["
        "k8s.V1Container(image='etl:2', name='base')]))}",
        FROM_OBJ,
        id="pod_override is a V1Container",
    ),
    pytest.param(
        {"pod_override": [pod("team-a")]},
        f"{_OVERRIDE} is a list ([k8s.V1Pod(metadata=k8s.V1ObjectMeta(namespace='team-a'))]), "
        f"{_NOT_A_POD}; a task has one pod: write {TEAM_A}",
        FROM_OBJ,
        id="pod_override is a list of one V1Pod",
    ),
    pytest.param(
        {"pod_override": k8s.V1Pod(metadata={"namespace": "team-a", "generateName": "etl-"})},
        f"{_OVERRIDE}.metadata is a dict ({{'namespace': 'team-a', 'generateName': 'etl-'}}), not a "
        "V1ObjectMeta; write metadata=k8s.V1ObjectMeta(generate_name='etl-', namespace='team-a')",
        POD_MERGE,
        id="metadata is a dict",
    ),
    pytest.param(
        {"pod_override": k8s.V1Pod(metadata={"nmespace": "team-a"})},
        f"{_OVERRIDE}.metadata is a dict ({{'nmespace': 'team-a'}}), not a V1ObjectMeta (a V1ObjectMeta "
        "has no field 'nmespace'); write metadata=k8s.V1ObjectMeta(namespace='team-a')",
        POD_MERGE,
        id="metadata is a dict with a misspelt field",
    ),
    pytest.param(
        {"pod_override": pod(labels=[("team", "a")])},
        f"{_OVERRIDE}.metadata.labels is a list ([('team', 'a')]), not a dict; write labels={{'team': 'a'}}",
        POD_MERGE,
        id="labels are pairs",
    ),
    pytest.param(
        {"pod_override": k8s.V1Pod(spec={"containers": [{"name": "base", "image": "etl:2"}]})},
        f"{_OVERRIDE}.spec is a dict ({{'containers': [{{'name': 'base', 'image': 'etl:2'}}]}}), not a "
        "V1PodSpec; write spec=k8s.V1PodSpec(containers=[k8s.V1Container(image='etl:2', name='base')])",
        POD_MERGE,
        id="spec is a dict",
    ),
    pytest.param(
        {"pod_override": _spec(k8s.V1Container(name="base"))},
        f"{_OVERRIDE}.spec.containers is a V1Container (k8s.V1Container(name='base')), not a list; "
        "write containers=[k8s.V1Container(name='base')]",
        POD_MERGE,
        id="containers is one V1Container",
    ),
    pytest.param(
        {"pod_override": _spec([{"name": "base", "image": "etl:2"}])},
        f"{_OVERRIDE}.spec.containers[0] is a dict ({{'name': 'base', 'image': 'etl:2'}}), not a "
        "V1Container; write k8s.V1Container(image='etl:2', name='base')",
        POD_MERGE,
        id="a container is a dict",
    ),
    pytest.param(
        {"pod_override": pod(42)},
        f"{_OVERRIDE}.metadata.namespace is an int (42), not a str; "
        "write metadata=k8s.V1ObjectMeta(namespace='42')",
        BUILDS,
        id="namespace is an int",
    ),
    pytest.param(
        {"pod_override": pod(["team-a"])},
        f"{_OVERRIDE}.metadata.namespace is a list (['team-a']), not a str; "
        "write metadata=k8s.V1ObjectMeta(namespace='team-a')",
        BUILDS,
        id="namespace is a list",
    ),
    pytest.param(
        {"pod_override": pod("Team_A")},
        "namespace 'Team_A' is not a valid namespace name: a namespace must be a DNS-1123 label: 1-63 "
        "lowercase letters, digits or '-', starting and ending with a letter or digit (set "
        "metadata.namespace in the task's executor_config pod_override to a valid name, e.g. 'team-a')",
        BUILDS,
        id="namespace is not a valid name",
    ),
    pytest.param(
        {"pod_template_file": 5},
        "executor_config['pod_template_file'] is an int (5), not a file path; "
        "write executor_config={'pod_template_file': '/path/to/pod_template.yaml'}",
        BUILDS,  # upstream then calls os.path.exists(5) and open(5): it reads file descriptor 5
        id="pod_template_file is not a path",
    ),
]

LAUNCHABLE = [
    pytest.param(None, id="no executor_config"),
    pytest.param({}, id="empty"),
    pytest.param({"pod_override": None}, id="no override"),
    pytest.param({"pod_override": {}}, id="empty override dict, which upstream ignores"),
    pytest.param({"KubernetesExecutor": {}}, id="empty Airflow 1 dict, which upstream ignores"),
    pytest.param({"pod_override": k8s.V1Pod()}, id="empty V1Pod"),
    pytest.param({"pod_override": pod(None)}, id="no namespace"),
    pytest.param({"pod_override": pod("")}, id="empty namespace: the template's applies"),
    pytest.param({"pod_override": pod("team-a")}, id="team namespace"),
    pytest.param({"pod_override": pod("kube-system")}, id="valid name: excluded or not is decided later"),
    pytest.param({"pod_override": _spec((k8s.V1Container(name="base"),))}, id="containers as a tuple"),
    pytest.param({"pod_template_file": "/templates/team-a.yaml"}, id="template file"),
    pytest.param({"pod_override": pod("team-a"), "other_key": 1}, id="keys the executor does not read"),
]
