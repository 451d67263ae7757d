"""The ``kubernetes-namespaces`` command group, in Airflow's CLI definition types.

Airflow imports this module for every ``airflow`` invocation (it is listed under ``cli`` in the
provider info), so the commands are loaded lazily: ``airflow dags list`` must not pay for the
Kubernetes client.
"""

from __future__ import annotations

from airflow.cli.cli_config import (
    ARG_OUTPUT,
    ARG_VERBOSE,
    ActionCommand,
    Arg,
    GroupCommand,
    lazy_load_command,
)

from airflow_provider_nsdiscovery.config import SECTION

_COMMANDS = "airflow_provider_nsdiscovery.cli.commands"

# Arg is untyped upstream.
ARG_NAMESPACE = Arg(("namespace",), help="The Kubernetes namespace a task would run in")  # type: ignore[no-untyped-call]
ARG_AS = Arg(  # type: ignore[no-untyped-call]
    ("--as",),
    dest="impersonate",
    default=None,
    metavar="USERNAME",
    help=(
        "Ask as this user, like kubectl --as, e.g. "
        "system:serviceaccount:airflow:airflow-scheduler. Answers are the scheduler's only when "
        "they are asked with its identity; from an admin kubeconfig everything looks permitted. "
        "Needs the impersonate permission."
    ),
)

NAMESPACE_COMMANDS = (
    ActionCommand(
        name="list",
        help="List the namespaces tasks may run in, and why the others may not",
        # Section names without brackets: Airflow's help formatter reads [name] as markup and drops it.
        description=(
            "Runs namespace discovery once with the scheduler's configuration (sections "
            f"{SECTION} and kubernetes_executor) and prints each namespace it knows with its state, "
            "reason, whether a pod watcher would run for it, and when it was last checked. Needs no "
            "running scheduler."
        ),
        func=lazy_load_command(f"{_COMMANDS}.list_namespaces"),
        args=(ARG_OUTPUT, ARG_AS, ARG_VERBOSE),
    ),
    ActionCommand(
        name="check",
        help="Check whether a task could start in NAMESPACE now, and if not, why and how to fix it",
        description=(
            "Exits 0 when a task could start in the namespace now, 1 when it could not (printing "
            "the reason, the fix and, for missing permissions, a Role/RoleBinding to apply), 2 when "
            "the answer could not be found out (configuration or API server problems)."
        ),
        func=lazy_load_command(f"{_COMMANDS}.check_namespace"),
        args=(ARG_NAMESPACE, ARG_OUTPUT, ARG_AS, ARG_VERBOSE),
    ),
)


def get_namespace_discovery_cli_commands() -> list[GroupCommand]:
    return [
        GroupCommand(
            name="kubernetes-namespaces",
            help="Inspect the namespaces DynamicNamespaceKubernetesExecutor discovers",
            subcommands=NAMESPACE_COMMANDS,
        )
    ]
