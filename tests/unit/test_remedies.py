"""remedies.rbac_fix: the kubectl commands a refusal's fix gives must be safe to paste as they are."""

from __future__ import annotations

from airflow_provider_nsdiscovery.discovery import remedies
from tests.unit.discovery_fakes import APPLY, SA_FLAG, grant_command
from tests.unit.discovery_fakes import IDENTITY as SA


def test_rbac_fix_for_only_pod_logs_missing_grants_only_get_pods_log() -> None:
    fix = remedies.rbac_fix("team-b", SA, ("get pods/log",))
    assert fix == grant_command("airflow-task-pods-pods-log-get", "get", "pods/log", SA_FLAG)


def test_rbac_fix_without_missing_permissions_named_grants_every_required_permission() -> None:
    fix = remedies.rbac_fix("team-b", SA)
    assert fix == " && ".join(
        (
            grant_command(
                "airflow-task-pods-pods-create-get-list-watch-patch-delete",
                "create,get,list,watch,patch,delete",
                "pods",
                SA_FLAG,
            ),
            grant_command("airflow-task-pods-pods-log-get", "get", "pods/log", SA_FLAG),
        )
    )


def test_rbac_fix_names_each_role_after_what_it_grants_so_it_never_replaces_another_roles_rules() -> None:
    """kubectl apply replaces a Role's rules: a Role named after its content is safe to apply."""
    some = remedies.rbac_fix("team-b", SA, ("delete pods",))
    more = remedies.rbac_fix("team-b", SA, ("delete pods", "create pods"))
    assert "create role airflow-task-pods-pods-delete --verb=delete " in some
    assert "create role airflow-task-pods-pods-delete-create --verb=delete,create " in more


def test_rbac_fix_adds_the_identity_to_an_existing_binding_instead_of_replacing_its_subjects() -> None:
    fix = remedies.rbac_fix("team-b", SA, ("get pods/log",))
    assert "|| kubectl -n team-b set subject rolebinding airflow-task-pods-pods-log-get " in fix
    assert "rolebinding" not in fix.split("|| ")[0].split(APPLY)[0]  # the binding is never applied
