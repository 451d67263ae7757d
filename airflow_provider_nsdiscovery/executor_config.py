"""What is wrong with a task's ``executor_config``, said the same way at parse time and at launch.

Upstream answers a malformed ``executor_config`` with one line, "Invalid executor_config passed",
or crashes later while merging the override into the pod template; neither says what was found or
how to write it instead. :func:`executor_config_problem` names the part that is wrong and prints
the fix as code the DAG author can paste, built from their own values where it can be. The
cluster policy calls it when the DAG is parsed and the executor before it builds a pod, so a
mistake reads the same wherever it is caught.

It refuses only what cannot launch as written: what upstream's ``PodGenerator.from_obj`` refuses,
what upstream's pod merge crashes on, and a namespace that cannot be a namespace name. What
upstream runs (an empty ``pod_override``, keys it does not read) passes, so no working DAG breaks.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from os import PathLike
from typing import Any

from kubernetes.client import models as k8s

from airflow_provider_nsdiscovery.config import DiscoverySettings
from airflow_provider_nsdiscovery.discovery.decide import decide
from airflow_provider_nsdiscovery.discovery.status import is_valid_namespace_name

_LEGACY_KEY = "KubernetesExecutor"
_OVERRIDE = "executor_config['pod_override']"
_IMPORT = "from kubernetes.client import models as k8s"
_EXAMPLE_POD = k8s.V1Pod(metadata=k8s.V1ObjectMeta(namespace="team-a"))
_EXAMPLE_CONTAINERS = [k8s.V1Container(name="base")]
# A pod_override of a class Airflow cannot serialize reaches the executor as the text of its repr.
_OBJECT_TEXT = re.compile(r"<(?P<module>[\w.]+)\.(?P<name>V1\w+) object at 0x[0-9a-fA-F]+>")
_TEMPLATE_SUFFIXES = (".yaml", ".yml", ".json")
# decide() judges a name's syntax before it looks at any setting, so defaults give the same
# invalid-name reason and fix the executor gives for a built pod.
_SETTINGS = DiscoverySettings()

# Airflow 1 executor_config["KubernetesExecutor"] keys: (part of the pod, its field, its type).
_LEGACY_FIELDS = {
    "namespace": ("metadata", "namespace", "str"),
    "labels": ("metadata", "labels", "dict(str, str)"),
    "annotations": ("metadata", "annotations", "dict(str, str)"),
    "image": ("container", "image", "str"),
    "image_pull_policy": ("container", "image_pull_policy", "str"),
    "volume_mounts": ("container", "volume_mounts", "list[V1VolumeMount]"),
    "node_selectors": ("spec", "node_selector", "dict(str, str)"),
    "service_account_name": ("spec", "service_account_name", "str"),
    "affinity": ("spec", "affinity", "V1Affinity"),
    "tolerations": ("spec", "tolerations", "list[V1Toleration]"),
    "security_context": ("spec", "security_context", "V1PodSecurityContext"),
    "volumes": ("spec", "volumes", "list[V1Volume]"),
}
_LEGACY_RESOURCES = {
    "request_cpu": ("requests", "cpu"),
    "request_memory": ("requests", "memory"),
    "request_ephemeral_storage": ("requests", "ephemeral-storage"),
    "limit_cpu": ("limits", "cpu"),
    "limit_memory": ("limits", "memory"),
    "limit_ephemeral_storage": ("limits", "ephemeral-storage"),
    "limit_gpu": ("limits", "nvidia.com/gpu"),
}


def executor_config_problem(executor_config: object) -> str | None:
    """Why ``executor_config`` cannot launch a pod as written, with the code to write instead; or None.

    An unset or empty namespace is fine: the pod template's namespace applies, as it does when
    upstream merges the override into the template. It never raises: it gates launches, and an
    object that cannot even be inspected is as unlaunchable as upstream finds it.
    """
    try:
        return _problem(executor_config)
    except Exception as err:
        return (
            f"executor_config could not be read ({type(err).__name__}: {err}); "
            f"write {_with_override(_EXAMPLE_POD)}"
        )


def _problem(executor_config: object) -> str | None:
    if executor_config is None:
        return None
    if not isinstance(executor_config, Mapping):
        return _not_a_dict(executor_config)
    legacy = executor_config.get(_LEGACY_KEY)
    pod_override = executor_config.get("pod_override")
    if legacy and pod_override:  # upstream's own test: both truthy
        return _both(legacy, {key: value for key, value in executor_config.items() if key != _LEGACY_KEY})
    if legacy:
        return _legacy(legacy)
    template = executor_config.get("pod_template_file")
    if template is not None and not isinstance(template, str | PathLike):
        return _bad_template_file(template)
    if not pod_override:  # upstream ignores a falsy override; so do we
        return None
    if not isinstance(pod_override, k8s.V1Pod):
        return _not_a_pod(pod_override)
    return _pod_problem(pod_override)


def _not_a_dict(value: object) -> str:
    found = f"executor_config is {_described(value)}, not a dict"
    if isinstance(value, k8s.V1Pod):
        return f"{found}; put the pod under 'pod_override': write {_with_override(value)}"
    if isinstance(value, list | tuple) and len(value) == 1 and isinstance(value[0], k8s.V1Pod):
        return f"{found}; a task has one pod, under 'pod_override': write {_with_override(value[0])}"
    if isinstance(value, str):
        return f"{found}; write {_from_text(value)}"
    return f"{found}; write {_with_override(_EXAMPLE_POD)}"


def _both(legacy: object, rest: Mapping[Any, Any]) -> str:
    pod, by_hand = _from_legacy(legacy)
    text = (
        f"executor_config has both {_LEGACY_KEY!r} (the Airflow 1 form) and 'pod_override', and only "
        f"'pod_override' can be used: delete {_LEGACY_KEY!r}"
    )
    if pod != k8s.V1Pod():
        text += f" and move its settings into pod_override; as a pod they are {_code(pod)}"
    text += _by_hand(by_hand)
    then = _problem(rest)
    return f"{text}; then: {then}" if then else text


def _by_hand(keys: list[str]) -> str:
    if not keys:
        return ""
    return f" (no V1Pod field matches {', '.join(keys)}: drop or translate by hand)"


def _legacy(legacy: object) -> str:
    where = f"executor_config[{_LEGACY_KEY!r}]"
    if isinstance(legacy, k8s.V1Pod):
        return (
            f"{where} is a V1Pod, but pods are read only from 'pod_override': write {_with_override(legacy)}"
        )
    if not isinstance(legacy, Mapping):
        return (
            f"{where} is {_described(legacy)}; the KubernetesExecutor reads neither that key nor the "
            f"Airflow 1 settings it held: write {_with_override(_EXAMPLE_POD)}"
        )
    pod, by_hand = _from_legacy(legacy)
    found = f"{where} is the Airflow 1 form, which the KubernetesExecutor no longer reads"
    if pod == k8s.V1Pod():
        return f"{found}: delete it{_by_hand(by_hand)}"
    return f"{found}: write {_with_override(pod)}{_by_hand(by_hand)}"


def _bad_template_file(template: object) -> str:
    found = f"executor_config['pod_template_file'] is {_described(template)}, not a file path"
    if isinstance(template, k8s.V1Pod):
        return f"{found}; a V1Pod goes under 'pod_override': write {_with_override(template)}"
    return f"{found}; write executor_config={{'pod_template_file': '/path/to/pod_template.yaml'}}"


def _not_a_pod(value: object) -> str:
    found = f"{_OVERRIDE} is {_described(value)}, not a kubernetes.client.models.V1Pod"
    if isinstance(value, Mapping):
        try:
            return f"{found}; write {_with_override(_as_model(value, 'V1Pod'))}"
        except _Unconvertible as err:
            return f"{found} ({err}); build a V1Pod, e.g. {_with_override(_EXAMPLE_POD)}"
    if isinstance(value, str):
        text = _OBJECT_TEXT.fullmatch(value)
        if text is None:
            return f"{found}; write {_from_text(value)}"
        return (
            f"{_OVERRIDE} is the text of a {text['name']} from {text['module']} (Airflow keeps only "
            f"kubernetes.client models as objects), not a kubernetes.client.models.V1Pod; build it "
            f"with `{_IMPORT}`, e.g. {_with_override(_EXAMPLE_POD)}"
        )
    if isinstance(value, k8s.V1ObjectMeta):
        return f"{found}; wrap it: write {_with_override(k8s.V1Pod(metadata=value))}"
    if isinstance(value, k8s.V1PodSpec):
        return f"{found}; wrap it: write {_with_override(k8s.V1Pod(spec=value))}"
    if isinstance(value, k8s.V1Container):
        pod = k8s.V1Pod(spec=k8s.V1PodSpec(containers=[value]))
        return f"{found}; wrap it: write {_with_override(pod)}"
    if isinstance(value, list | tuple) and len(value) == 1 and isinstance(value[0], k8s.V1Pod):
        return f"{found}; a task has one pod: write {_with_override(value[0])}"
    if type(value).__name__.startswith("V1") and not _is_model(value):
        return f"{found}; build it with `{_IMPORT}`: write {_with_override(_foreign_pod(value))}"
    return f"{found}; write {_with_override(_EXAMPLE_POD)}"


def _pod_problem(pod: k8s.V1Pod) -> str | None:
    """The parts of a V1Pod that upstream's merge with the pod template cannot handle."""
    metadata, spec = pod.metadata, pod.spec
    if metadata is not None and not isinstance(metadata, k8s.V1ObjectMeta):
        why, fix = _converted(metadata, "V1ObjectMeta", _EXAMPLE_POD.metadata)
        return (
            f"{_OVERRIDE}.metadata is {_described(metadata)}, not a V1ObjectMeta{why}; write metadata={fix}"
        )
    for field in ("labels", "annotations"):
        value = getattr(metadata, field, None)
        if value is not None and not isinstance(value, Mapping):
            return (
                f"{_OVERRIDE}.metadata.{field} is {_described(value)}, not a dict; "
                f"write {field}={_code(_as_dict(value))}"
            )
    if spec is not None and not isinstance(spec, k8s.V1PodSpec):
        why, fix = _converted(spec, "V1PodSpec", k8s.V1PodSpec(containers=_EXAMPLE_CONTAINERS))
        return f"{_OVERRIDE}.spec is {_described(spec)}, not a V1PodSpec{why}; write spec={fix}"
    containers = spec.containers if spec is not None else []
    if not isinstance(containers, list | tuple):
        listed = [containers] if isinstance(containers, k8s.V1Container) else _EXAMPLE_CONTAINERS
        return (
            f"{_OVERRIDE}.spec.containers is {_described(containers)}, not a list; "
            f"write containers={_code(listed)}"
        )
    for index, container in enumerate(containers):
        if not isinstance(container, k8s.V1Container):
            why, fix = _converted(container, "V1Container", _EXAMPLE_CONTAINERS[0])
            return (
                f"{_OVERRIDE}.spec.containers[{index}] is {_described(container)}, not a V1Container{why}; "
                f"write {fix}"
            )
    return _namespace_problem(getattr(metadata, "namespace", None))


def _namespace_problem(namespace: object) -> str | None:
    if namespace is None or namespace == "":
        return None
    if not isinstance(namespace, str):
        single = isinstance(namespace, list | tuple) and len(namespace) == 1
        wanted = str(namespace[0] if single else namespace)  # type: ignore[index]
        return (
            f"{_OVERRIDE}.metadata.namespace is {_described(namespace)}, not a str; "
            f"write metadata={_code(k8s.V1ObjectMeta(namespace=wanted))}"
        )
    if not is_valid_namespace_name(namespace):
        return decide(namespace, _SETTINGS, None, None).message
    return None


# building the fix ------------------------------------------------------------------------------


class _Unconvertible(ValueError):
    """Data that does not fit the kubernetes model it was meant to be."""


def _with_override(pod: object) -> str:
    return f"executor_config={{'pod_override': {_code(pod)}}}"


def _from_text(text: str) -> str:
    """The executor_config a string most likely meant: a template file, a namespace, or neither."""
    if text.endswith(_TEMPLATE_SUFFIXES):
        return f"executor_config={{'pod_template_file': {text!r}}}"
    if is_valid_namespace_name(text):
        return _with_override(k8s.V1Pod(metadata=k8s.V1ObjectMeta(namespace=text)))
    return _with_override(_EXAMPLE_POD)


def _from_legacy(legacy: object) -> tuple[k8s.V1Pod, list[str]]:
    """The V1Pod an Airflow 1 settings dict described, and the keys left to translate by hand."""
    if not isinstance(legacy, Mapping):
        return k8s.V1Pod(), []
    parts: dict[str, dict[str, Any]] = {"metadata": {}, "container": {}, "spec": {}}
    resources: dict[str, dict[str, Any]] = {}
    by_hand: list[str] = []
    settings = dict(legacy)
    nested = settings.pop("resources", None)
    if isinstance(nested, Mapping):
        for group in ("requests", "limits"):
            if isinstance(nested.get(group), Mapping):
                resources.setdefault(group, {}).update(nested[group])
        settings.update((key, value) for key, value in nested.items() if key in _LEGACY_RESOURCES)
        by_hand += [
            f"resources[{k!r}]" for k in nested if k not in (*_LEGACY_RESOURCES, "requests", "limits")
        ]
    elif nested is not None:
        by_hand.append("'resources'")
    for key, value in settings.items():
        if key in _LEGACY_RESOURCES:
            group, name = _LEGACY_RESOURCES[key]
            resources.setdefault(group, {})[name] = value
        elif key in _LEGACY_FIELDS:
            part, field, type_name = _LEGACY_FIELDS[key]
            try:
                parts[part][field] = _as_model(value, type_name)
            except _Unconvertible:
                by_hand.append(repr(key))
        else:
            by_hand.append(repr(key))
    if resources:
        parts["container"]["resources"] = k8s.V1ResourceRequirements(**resources)
    spec = None
    if parts["container"] or parts["spec"]:
        containers = [k8s.V1Container(name="base", **parts["container"])]
        spec = k8s.V1PodSpec(containers=containers, **parts["spec"])
    metadata = k8s.V1ObjectMeta(**parts["metadata"]) if parts["metadata"] else None
    return k8s.V1Pod(metadata=metadata, spec=spec), by_hand


def _foreign_pod(value: object) -> object:
    """A V1Pod of another client (kubernetes_asyncio, a vendored copy) rebuilt as ours, if it can be."""
    to_dict = getattr(value, "to_dict", None)
    try:
        return _as_model(to_dict(), "V1Pod") if callable(to_dict) else _EXAMPLE_POD
    except (_Unconvertible, TypeError):
        return _EXAMPLE_POD


def _converted(value: object, type_name: str, example: object) -> tuple[str, str]:
    """The code for ``value`` as ``type_name``, or for ``example`` with why ``value`` did not fit."""
    try:
        return "", _code(_as_model(value, type_name))
    except _Unconvertible as err:
        return f" ({err})", _code(example)


def _as_dict(value: object) -> dict[Any, Any]:
    """Labels written as pairs become the dict they meant; anything else, an example."""
    try:
        pairs: dict[Any, Any] = dict(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return {"team": "a"}
    return pairs


def _as_model(data: object, type_name: str) -> Any:
    """``data`` as the kubernetes type ``type_name`` (e.g. ``list[V1Container]``), dicts converted.

    Dict keys may be the Python field names or the API's camelCase names, as in a manifest.
    """
    if data is None:
        return None
    if type_name.startswith("list["):
        if not isinstance(data, list | tuple):
            raise _Unconvertible(f"{_code(data)} is not a list")
        return [_as_model(item, type_name[5:-1]) for item in data]
    if type_name.startswith("dict"):
        if not isinstance(data, Mapping):
            raise _Unconvertible(f"{_code(data)} is not a dict")
        item_type = type_name[type_name.index(",") + 1 : -1].strip()
        return {key: _as_model(item, item_type) for key, item in data.items()}
    model = getattr(k8s, type_name, None)
    if not isinstance(model, type) or isinstance(data, model):
        return data
    if not isinstance(data, Mapping):
        raise _Unconvertible(f"{_code(data)} is not a {type_name}")
    types: dict[str, str] = model.openapi_types  # type: ignore[attr-defined]
    json_names = {json: name for name, json in model.attribute_map.items()}  # type: ignore[attr-defined]
    fields = {}
    for key, item in data.items():
        name = key if key in types else json_names.get(key)
        if name is None:
            raise _Unconvertible(f"a {type_name} has no field {key!r}")
        if item is not None:
            fields[name] = _as_model(item, types[name])
    try:
        return model(**fields)
    except (TypeError, ValueError) as err:
        raise _Unconvertible(f"not a valid {type_name}: {err}") from None


def _is_model(value: object) -> bool:
    return getattr(k8s, type(value).__name__, None) is type(value)


def _code(value: object) -> str:
    """Python source that rebuilds ``value`` with ``k8s`` models, to paste into a DAG."""
    if _is_model(value):
        types: dict[str, str] = type(value).openapi_types  # type: ignore[attr-defined]
        fields = (
            f"{name}={_code(getattr(value, name))}" for name in types if getattr(value, name) is not None
        )
        return f"k8s.{type(value).__name__}({', '.join(fields)})"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{_code(key)}: {_code(item)}" for key, item in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_code(item) for item in value) + "]"
    if isinstance(value, tuple):
        return "(" + ", ".join(_code(item) for item in value) + ("," if len(value) == 1 else "") + ")"
    return repr(value)


def _described(value: object) -> str:
    """'a list ([...])': the type and a short look at the value, for saying what was found."""
    name = type(value).__name__
    article = "an" if name[:1].lower() in "aeiou" else "a"
    if not _is_model(value) and name.startswith("V1"):  # another client's model: its repr is a page
        return f"{article} {name} from {type(value).__module__}"
    shown = _code(value) if _is_model(value) or isinstance(value, Mapping | list | tuple) else repr(value)
    shown = " ".join(shown.split())
    if len(shown) > 60:
        shown = shown[:57] + "..."
    return f"{article} {name} ({shown})"
