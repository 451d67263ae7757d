"""Kubernetes label selectors, parsed and evaluated on our side.

The API server already filters the namespace watch by the selector; we parse it ourselves as well so
that a typo stops the scheduler at start (instead of an endless 400 from the watch), and so that a
namespace that is *not* selected can be told exactly which requirement it fails and how to fix it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

_NAME = r"([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)"
_VALUE_RE = re.compile(rf"^({_NAME})?$")
_NAME_RE = re.compile(rf"^{_NAME}$")
_DNS_SUBDOMAIN_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_REQUIREMENT_RE = re.compile(
    r"""^\s*(?:
        (?P<not>!)\s*(?P<nkey>[^\s!=<>,()]+)
      | (?P<key>[^\s!=<>,()]+)\s*
        (?:
            (?P<op>==|=|!=|>|<)\s*(?P<value>[^\s!=<>,()]*)
          | \s(?P<setop>in|notin)\s*\((?P<values>[^()]*)\)
        )?
    )\s*$""",
    re.VERBOSE,
)


class SelectorError(ValueError):
    """A label selector that Kubernetes would reject; the message quotes it and says what is wrong."""


@dataclass(frozen=True)
class Requirement:
    """One comma-separated clause of a selector, e.g. ``team in (a,b)``."""

    key: str
    operator: str  # one of: =, !=, in, notin, exists, !, >, <
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        value = labels.get(self.key)
        if self.operator in ("=", "in"):
            return present and value in self.values
        if self.operator in ("!=", "notin"):
            return not present or value not in self.values
        if self.operator == "exists":
            return present
        if self.operator == "!":
            return not present
        if not present or value is None or not _is_int(value):
            return False
        bound = int(self.values[0])
        return int(value) > bound if self.operator == ">" else int(value) < bound

    def __str__(self) -> str:
        if self.operator == "exists":
            return self.key
        if self.operator == "!":
            return f"!{self.key}"
        if self.operator in ("in", "notin"):
            return f"{self.key} {self.operator} ({','.join(self.values)})"
        return f"{self.key}{self.operator}{self.values[0]}"

    def explain(self, namespace: str, labels: Mapping[str, str]) -> tuple[str, str]:
        """Why ``labels`` fail this requirement, and the kubectl command that would satisfy it."""
        value = labels.get(self.key)
        label = f"kubectl label namespace {namespace}"
        if self.operator in ("=", "in", "exists", ">", "<"):
            wanted = self.values[0] if self.values else "<value>"
            if self.operator == ">":
                wanted = str(int(self.values[0]) + 1)
            elif self.operator == "<":
                wanted = str(int(self.values[0]) - 1)
            fix = f"{label} {self.key}={wanted}" + (" --overwrite" if value is not None else "")
            if value is None:
                what = f"label {self.key}={self.values[0]}" if self.operator == "=" else f"label {self.key}"
                return f"it lacks {what}", fix
            return f"its label {self.key}={value} does not satisfy '{self}'", fix
        return f"its label {self.key}={value} is excluded by '{self}'", f"{label} {self.key}-"


@dataclass(frozen=True)
class LabelSelector:
    """A parsed selector: every requirement must hold (Kubernetes ANDs the clauses)."""

    text: str
    requirements: tuple[Requirement, ...]

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(r.matches(labels) for r in self.requirements)

    def first_failure(self, labels: Mapping[str, str]) -> Requirement | None:
        return next((r for r in self.requirements if not r.matches(labels)), None)


def parse_selector(text: str) -> LabelSelector:
    """Parse ``text`` with the grammar the API server uses, or raise :class:`SelectorError` quoting it."""
    if not text.strip():
        raise SelectorError(
            f"label selector {text!r} is empty: it would select every namespace in the cluster; "
            "set [kubernetes_namespace_discovery] label_selector, e.g. 'airflow-enabled=true'"
        )
    return LabelSelector(text, tuple(_parse_requirement(text, clause) for clause in _split(text)))


def _split(text: str) -> list[str]:
    clauses, depth, start = [], 0, 0
    for i, char in enumerate(text):
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "," and depth == 0:
            clauses.append(text[start:i])
            start = i + 1
    clauses.append(text[start:])
    return clauses


def _parse_requirement(text: str, clause: str) -> Requirement:
    match = _REQUIREMENT_RE.fullmatch(clause)
    if match is None:
        raise SelectorError(f"invalid label selector {text!r}: cannot parse {clause.strip()!r}")
    if match["not"]:
        return Requirement(_check_key(text, match["nkey"]), "!")
    key = _check_key(text, match["key"])
    if match["setop"]:
        values = tuple(v.strip() for v in match["values"].split(","))
        for value in values:
            _check_value(text, key, value)
        return Requirement(key, match["setop"], values)
    if match["op"] is None:
        return Requirement(key, "exists")
    operator = "=" if match["op"] == "==" else match["op"]
    value = match["value"]
    _check_value(text, key, value)
    if operator in (">", "<") and not _is_int(value):
        raise SelectorError(
            f"invalid label selector {text!r}: '{key}{operator}' needs a non-negative 64-bit integer"
        )
    return Requirement(key, operator, (value,))


def _check_key(text: str, key: str) -> str:
    prefix, _, name = key.rpartition("/")
    if "/" in key and (not prefix or len(prefix) > 253 or not _DNS_SUBDOMAIN_RE.fullmatch(prefix)):
        raise SelectorError(f"invalid label selector {text!r}: key prefix {prefix!r} is not a DNS subdomain")
    if not _NAME_RE.fullmatch(name):
        raise SelectorError(
            f"invalid label selector {text!r}: key {key!r} must be 1-63 characters of letters, digits, "
            "'-', '_' or '.', starting and ending with a letter or digit"
        )
    return key


def _check_value(text: str, key: str, value: str) -> None:
    if not _VALUE_RE.fullmatch(value):
        raise SelectorError(
            f"invalid label selector {text!r}: value {value!r} for {key!r} must be at most 63 characters "
            "of letters, digits, '-', '_' or '.', starting and ending with a letter or digit"
        )


def _is_int(value: str) -> bool:
    """What the API server accepts after ``>``/``<``: a label value that parses as an int64."""
    return re.fullmatch(r"[0-9]+", value) is not None and int(value) < 2**63
