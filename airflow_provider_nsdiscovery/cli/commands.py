"""``airflow kubernetes-namespaces list|check``: the scheduler's namespace decisions, on demand.

Each command builds a :class:`NamespaceDiscovery` from the same configuration the executor reads
(``[kubernetes_namespace_discovery]`` and ``[kubernetes_executor]``), lets it finish its initial
sync, reads the state table and stops it. No scheduler and no metadata database are needed, so
it works from an operator's machine with a kubeconfig as well as inside the scheduler pod.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Callable, Iterator
from http import HTTPStatus
from typing import NoReturn

from airflow.cli.simple_table import AirflowConsole
from airflow.configuration import conf
from airflow.providers.cncf.kubernetes.kube_client import _get_executor_kube_client
from airflow.utils import cli as cli_utils
from airflow.utils.providers_configuration_loader import providers_configuration_loaded
from kubernetes import client
from kubernetes.config import ConfigException
from urllib3.exceptions import HTTPError

from airflow_provider_nsdiscovery.cli.format import (
    TABLE_OUTPUTS,
    Row,
    check_report,
    namespace_rows,
    report_followup,
    report_properties,
    source_summary,
    structured_text,
)
from airflow_provider_nsdiscovery.config import SettingsError
from airflow_provider_nsdiscovery.discovery.access import AccessReviewer, username
from airflow_provider_nsdiscovery.discovery.controller import NamespaceDiscovery
from airflow_provider_nsdiscovery.discovery.status import NamespaceStatus, State
from airflow_provider_nsdiscovery.discovery.wiring import connect
from airflow_provider_nsdiscovery.executors.settings import settings_from_conf

EXIT_NOT_USABLE = 1
EXIT_CANNOT_TELL = 2
"""Distinct from "not usable", so a script can tell a refusal from a broken kubeconfig."""

_Command = Callable[[argparse.Namespace], None]


def _airflow_command(func: _Command) -> _Command:
    """Airflow's own command decorators, as its commands stack them.

    ``action_cli`` without its database check (there may be no database here; the action log
    entry is skipped quietly then); logs and warnings hidden unless ``-v``, so json and yaml
    output stay parseable.
    """
    quiet = cli_utils.suppress_logs_and_warning(providers_configuration_loaded(func))
    logged: _Command = cli_utils.action_cli(check_db=False)(quiet)  # type: ignore[no-untyped-call]
    return logged


def _fail(message: str) -> NoReturn:
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(EXIT_CANNOT_TELL)


def _api_client() -> client.ApiClient:
    try:
        return _get_executor_kube_client().api_client
    except (ConfigException, OSError, ValueError) as err:
        _fail(
            "cannot build a Kubernetes client from [kubernetes_executor] in_cluster / config_file / "
            f"cluster_context (outside a pod, set in_cluster = False and point config_file at a "
            f"kubeconfig): {err}"
        )


def _who_am_i(api_client: client.ApiClient, impersonate: str | None) -> str | None:
    """Our own identity check, before discovery starts.

    Discovery keeps retrying an API server that refuses or cannot be reached, and would then
    report only the home namespace after its sync timeout, which reads like an answer. Failing
    here turns bad credentials into an error instead.
    """
    host = api_client.configuration.host
    try:
        return username(api_client)
    except client.ApiException as err:
        if err.status == HTTPStatus.NOT_FOUND:
            return None  # API server older than 1.28: discovery asks again and says "scheduler"
        if err.status == HTTPStatus.FORBIDDEN and impersonate:
            _fail(f"{host} does not let these credentials impersonate '{impersonate}': {err.reason}")
        _fail(f"{host} refused the credentials: {err.status} {err.reason}")
    except HTTPError as err:
        _fail(f"cannot reach the Kubernetes API server at {host}: {err}")


@contextlib.contextmanager
def _discovery(impersonate: str | None) -> Iterator[tuple[NamespaceDiscovery, client.ApiClient]]:
    home = str(conf.get("kubernetes_executor", "namespace"))
    try:
        settings = settings_from_conf(conf, home_namespace=home)
    except SettingsError as err:
        _fail(str(err))
    api_client = _api_client()
    if impersonate:
        api_client.set_default_header("Impersonate-User", impersonate)
    discovery = connect(settings, api_client, identity=_who_am_i(api_client, impersonate), watch_access=False)
    try:
        discovery.start()
        yield discovery, api_client
    finally:
        discovery.stop()
        api_client.close()


def _missing_permissions(
    discovery: NamespaceDiscovery, api_client: client.ApiClient, status: NamespaceStatus
) -> tuple[str, ...]:
    """The verbs to grant, which the status only carries as prose.

    Two namespaces discovery does not review are reviewed here: one that is not selected, since
    the operator about to label it wants to know whether that alone will be enough; and the home
    namespace, which is always used, so missing rights there only show as failing launches.
    """
    home = status.name == discovery.settings.home_namespace
    if status.state not in (State.FORBIDDEN, State.NOT_SELECTED) and not home:
        return ()
    reviewer = AccessReviewer(api_client, discovery.identity)
    return reviewer.review(status.name).missing


def _print_rows(rows: list[Row], output: str) -> None:
    """Tables through Airflow's console, like its other commands; json and yaml not, as it would
    print every value as text."""
    if output in TABLE_OUTPUTS:
        AirflowConsole().print_as(data=rows, output=output)
    else:
        print(structured_text(rows, output))


@_airflow_command
def list_namespaces(args: argparse.Namespace) -> None:
    """The state table as the scheduler would build it now, so operators need not read its logs."""
    with _discovery(args.impersonate) as (discovery, _):
        statuses = list(discovery.table.snapshot().values())
        summary = source_summary(discovery.identity, discovery.mode, discovery.settings)
    print(summary, file=sys.stderr)
    rows = namespace_rows(statuses, with_fix=args.output not in TABLE_OUTPUTS)
    _print_rows(rows, args.output)


@_airflow_command
def check_namespace(args: argparse.Namespace) -> None:
    """One namespace's verdict with its fix; the exit status makes it usable in scripts and CI."""
    with _discovery(args.impersonate) as (discovery, api_client):
        try:
            status = discovery.check(args.namespace)
            missing = _missing_permissions(discovery, api_client, status)
        except (client.ApiException, HTTPError) as err:
            _fail(f"checking namespace '{args.namespace}' failed: {err}")
        summary = source_summary(discovery.identity, discovery.mode, discovery.settings)
        report = check_report(status, identity=discovery.identity, missing=missing)
    print(summary, file=sys.stderr)
    if args.output in TABLE_OUTPUTS:
        _print_rows(report_properties(report), args.output)
        followup = report_followup(report)
        if followup:
            print(followup)
    else:
        _print_rows([report], args.output)
    if not report["usable"]:
        raise SystemExit(EXIT_NOT_USABLE)
