"""Typed settings for namespace discovery, independent of where they were read from.

The Airflow adapter fills these from ``[kubernetes_namespace_discovery]``; tests, the CLI and the
benchmarks build them directly. Everything is validated here once, so a bad value stops the
scheduler at start with a message that names the option instead of failing later in a thread.

Each option is declared once, as a field of :class:`DiscoverySettings` made by :func:`option`:
the settings reader, ``get_provider_info`` and the README's reference are all derived from
:data:`OPTIONS`, so adding an option touches this file only.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields
from types import MappingProxyType
from typing import Any, TypeVar

from airflow_provider_nsdiscovery.discovery.selector import LabelSelector, parse_selector

SECTION = "kubernetes_namespace_discovery"


class SettingsError(ValueError):
    """An option value that cannot work; the message names the option and the fix."""


def split_list(value: str) -> tuple[str, ...]:
    """Comma-separated option values, blanks dropped, order kept, duplicates removed."""
    return tuple(dict.fromkeys(item.strip() for item in value.split(",") if item.strip()))


OptionValue = int | float | str | tuple[str, ...]
V = TypeVar("V", int, float, str, tuple[str, ...])


class Kind(enum.Enum):
    """The type of an option, which decides how its configuration text is read and written.

    Airflow's config schema knows no list type, so a list is declared to Airflow as a string and
    written comma-separated; the members keep that mapping in one place.
    """

    INTEGER = "integer"
    FLOAT = "float"
    STRING = "string"
    LIST = "list"

    @property
    def airflow_type(self) -> str:
        return "string" if self is Kind.LIST else self.value

    @property
    def noun(self) -> str:
        return "an integer" if self is Kind.INTEGER else f"a {self.value}"

    @property
    def python_type(self) -> type:
        return {Kind.INTEGER: int, Kind.FLOAT: float, Kind.STRING: str, Kind.LIST: tuple}[self]

    def parse(self, raw: str) -> OptionValue:
        """The value ``raw`` stands for; ValueError when it is not one (only numbers can fail)."""
        if self is Kind.INTEGER:
            return int(raw)
        if self is Kind.FLOAT:
            return float(raw)
        if self is Kind.LIST:
            return split_list(raw)
        return raw

    def text(self, value: OptionValue) -> str:
        """``value`` as configuration text, so that :meth:`parse` gives it back."""
        return ",".join(value) if isinstance(value, tuple) else str(value)


@dataclass(frozen=True)
class Option:
    """Everything said about one option: what Airflow, the reader and the docs are derived from."""

    name: str
    kind: Kind
    default: OptionValue
    description: str
    example: str | None = None

    def __post_init__(self) -> None:
        # A default of the wrong type would be written to Airflow as text the reader cannot
        # parse back; refusing it at import makes a mistaken declaration fail every test.
        if type(self.default) is not self.kind.python_type:
            raise TypeError(f"option {self.name}: default {self.default!r} is not {self.kind.noun}")

    @property
    def default_text(self) -> str:
        return self.kind.text(self.default)

    def parse(self, raw: str) -> OptionValue:
        """``raw`` read as this option's type; a SettingsError naming the option and the type."""
        try:
            return self.kind.parse(raw)
        except ValueError:
            raise SettingsError(f"[{SECTION}] {self.name} must be {self.kind.noun}, got {raw!r}") from None


_OPTION = "nsdiscovery.option"


@dataclass(frozen=True)
class _Declared:
    kind: Kind
    description: str
    example: str | None


def option(kind: Kind, default: V, description: str, *, example: str | None = None) -> V:
    """A settings field that is also a configuration option (name and default are the field's)."""
    declared = _Declared(kind, " ".join(description.split()), example)
    return field(default=default, metadata={_OPTION: declared})


@dataclass(frozen=True)
class DiscoverySettings:
    """What to discover and how often to re-check it.

    ``home_namespace`` is the executor's own ``[kubernetes_executor] namespace``: it is always used,
    as it is without this provider, and never needs a label, so it is no option of this section.
    """

    home_namespace: str = "default"
    label_selector: str = option(
        Kind.STRING,
        "airflow-enabled=true",
        """Kubernetes label selector choosing the namespaces tasks may run in, e.g.
        ``airflow-enabled=true,team in (a,b)``. Selected namespaces are still access-reviewed.
        An invalid selector stops the scheduler at start.""",
    )
    candidate_namespaces: tuple[str, ...] = option(
        Kind.LIST,
        (),
        """Comma-separated namespaces to use when the scheduler may not list/watch namespaces
        cluster-wide. Each is still access-reviewed. Ignored while the namespace watch works.""",
    )
    exclude_namespaces: tuple[str, ...] = option(
        Kind.LIST,
        ("kube-system", "kube-public", "kube-node-lease"),
        "Comma-separated namespaces never used, labelled or not.",
    )
    access_recheck_interval: float = option(
        Kind.FLOAT,
        60.0,
        """Seconds between access re-reviews of a namespace (spread with jitter). A revoked
        RoleBinding is noticed within this time; a 403 seen at run time is acted on at once.""",
    )
    access_backstop_interval: float = option(
        Kind.FLOAT,
        1800.0,
        """Seconds between access re-reviews of a namespace while RBAC changes are watched
        (deploy/rbac-watch.yaml applied): changes are then acted on as they happen, and this only
        catches what no watch shows (webhook authorizers, group membership). Never shorter than
        access_recheck_interval.""",
    )
    recheck_jitter: float = option(
        Kind.FLOAT,
        0.1,
        "Fraction by which each re-check is moved at random, so reviews do not come in bursts.",
    )
    review_concurrency: int = option(
        Kind.INTEGER,
        8,
        "Access reviews in flight at once (bounds the load on the API server at start).",
    )
    initial_sync_timeout: float = option(
        Kind.FLOAT,
        30.0,
        """Seconds the scheduler waits at start for the first full discovery, so that task
        adoption after a restart sees every namespace.""",
    )
    selector: LabelSelector = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "selector", parse_selector(self.label_selector))
        except ValueError as err:
            raise SettingsError(f"[{SECTION}] label_selector: {err}") from None
        if self.access_recheck_interval <= 0:
            raise SettingsError(
                f"[{SECTION}] access_recheck_interval must be a positive number of seconds, "
                f"got {self.access_recheck_interval}"
            )
        if not 0 <= self.recheck_jitter < 1:
            raise SettingsError(f"[{SECTION}] recheck_jitter must be in [0, 1), got {self.recheck_jitter}")
        if self.review_concurrency < 1:
            raise SettingsError(
                f"[{SECTION}] review_concurrency must be at least 1, got {self.review_concurrency}"
            )
        if self.initial_sync_timeout < 0:
            raise SettingsError(f"[{SECTION}] initial_sync_timeout must be >= 0 seconds")


def declared_options(settings: type[Any]) -> Mapping[str, Option]:
    """The options declared by ``settings``' fields; taking the class lets a test extend it."""
    declared = {}
    for f in fields(settings):
        if _OPTION in f.metadata and f.default is not MISSING:
            meta: _Declared = f.metadata[_OPTION]
            declared[f.name] = Option(f.name, meta.kind, f.default, meta.description, meta.example)
    return MappingProxyType(declared)


OPTIONS: Mapping[str, Option] = declared_options(DiscoverySettings)
"""The options of ``[kubernetes_namespace_discovery]`` by name, in declaration order."""
