"""`refarch doctor` against a fake workspace (conftest.py): the table, the fixes and the exit code."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import pytest

from refarch.cli import main
from refarch.jobs.bundle import load_bundle
from refarch.workspace.doctor import securable_type, similar

from .conftest import ALICE, SP, FakeWorkspace, healthy

EMAIL = "ops@example.com"  # staging and prod also require notification_email


@dataclass
class Result:
    code: int
    out: str
    err: str
    rows: dict[tuple[str, str], tuple[str, str, str]]  # (check, subject) -> (status, detail, fix)

    def row(self, check: str, subject: str) -> tuple[str, str, str]:
        assert (check, subject) in self.rows, f"no row {check!r} / {subject!r} in\n{self.out}"
        return self.rows[check, subject]

    def statuses(self) -> dict[tuple[str, str], str]:
        return {k: v[0] for k, v in self.rows.items()}


def parse_table(out: str) -> dict[tuple[str, str], tuple[str, str, str]]:
    """Rows by (check, subject), columns cut at the header's offsets; `fix:` lines join their row."""
    lines = out.splitlines()
    head = next(i for i, line in enumerate(lines) if line.startswith("CHECK "))
    cuts = [lines[head].index(c) for c in ("SUBJECT", "STATUS", "DETAIL")]
    rows: dict[tuple[str, str], tuple[str, str, str]] = {}
    key: tuple[str, str] | None = None
    for line in lines[head + 1 :]:
        if not line.strip():
            break
        if line.startswith(" "):
            assert key is not None
            status, detail, fix = rows[key]
            rows[key] = (status, detail, (fix + "\n" + line.strip().removeprefix("fix: ").strip()).strip())
            continue
        key = (line[: cuts[0]].strip(), line[cuts[0] : cuts[1]].strip())
        rows[key] = (line[cuts[1] : cuts[2]].strip(), line[cuts[2] :].strip(), "")
    return rows


@pytest.fixture()
def staging() -> dict[str, Any]:
    """The staging variables as the bundle resolves them (names come from databricks.yml)."""
    return load_bundle(target="staging", variables={"deployer_sp": SP, "notification_email": EMAIL}).variables


@pytest.fixture()
def workspace(staging: dict[str, Any], start_workspace) -> FakeWorkspace:
    """A healthy workspace for staging, CI authenticated as the service principal."""
    return start_workspace(healthy(staging, me=SP, display="refarch-ci", deployer=SP, runner=SP))


@pytest.fixture()
def doctor(capsys: pytest.CaptureFixture[str]):
    def run(*args: str, target: str = "staging", deployer: str | None = SP) -> Result:
        argv = ["doctor", "--target", target, *args]
        if deployer:
            argv += ["--var", f"deployer_sp={deployer}", "--var", f"notification_email={EMAIL}"]
        code = main(argv)
        out, err = capsys.readouterr()
        assert "Traceback" not in out + err
        return Result(code, out, err, parse_table(out) if "CHECK " in out else {})

    return run


def test_healthy_workspace_passes_every_check(workspace: FakeWorkspace, staging: dict[str, Any], doctor) -> None:
    res = doctor()
    catalog, scope = staging["catalog"], staging["secret_scope"]
    credential, location = staging["storage_credential"], staging["landing_location"]
    group = staging["data_scientists"]
    assert res.code == 0, res.out
    assert res.statuses() == {
        ("authentication", f"{SP} (refarch-ci)"): "OK",
        ("catalog", catalog): "OK",
        ("catalog privileges", f"{SP} on {catalog}"): "OK",
        ("group", group): "OK",
        ("group privileges", f"{group} on {catalog}"): "OK",
        ("secret scope", scope): "OK",
        ("secret", f"{scope}/redis-host"): "OK",
        ("secret", f"{scope}/redis-password"): "OK",
        ("secret ACL", f"{SP} on {scope}"): "OK",
        ("service credential", credential): "OK",
        ("credential access", f"{SP} on {credential}"): "OK",
        ("external location", location): "OK",
        ("location access", f"{SP} on {location}"): "OK",
        ("runtime", staging["spark_version"]): "OK",
    }
    assert res.out.rstrip().endswith("0 FAIL, 0 WARN, 14 OK")
    assert "target staging on http://127.0.0.1:" in res.out.splitlines()[0]
    assert workspace.unknown == []  # only the endpoints the fake answers, shaped after the reference
    # the SCIM list ended on an empty page (startIndex past the end), as the SDK's pagination needs
    assert workspace.requests.count("GET /api/2.0/preview/scim/v2/Groups") == 2


def test_catalog_missing_fails_with_create_catalog_and_other_checks_still_run(workspace, staging, doctor) -> None:
    catalog = staging["catalog"]
    del workspace.catalogs[catalog]
    res = doctor()
    assert res.code == 1
    status, detail, fix = res.row("catalog", catalog)
    assert (status, detail) == ("FAIL", "does not exist")
    assert fix.startswith(f"CREATE CATALOG IF NOT EXISTS `{catalog}`;")
    status, detail, fix = res.row("catalog privileges", f"{SP} on {catalog}")
    assert (status, detail) == ("FAIL", "not checked: the catalog does not exist")
    assert fix == f"GRANT USE CATALOG, CREATE SCHEMA ON CATALOG `{catalog}` TO `{SP}`;"
    status, detail, _ = res.row("group privileges", f"{staging['data_scientists']} on {catalog}")
    assert (status, detail) == ("WARN", "not checked: the catalog does not exist")
    # independent checks: the secrets, the credential and the runtime are still checked
    assert res.row("secret scope", staging["secret_scope"])[0] == "OK"
    assert res.row("service credential", staging["storage_credential"])[0] == "OK"
    assert res.row("runtime", staging["spark_version"])[0] == "OK"


@pytest.mark.parametrize(
    ("granted", "missing"),
    [
        (["CREATE_SCHEMA"], "USE_CATALOG"),
        (["USE_CATALOG"], "CREATE_SCHEMA"),
        (["USE_SCHEMA"], "USE_CATALOG, CREATE_SCHEMA"),
    ],
)
def test_each_missing_catalog_privilege_fails_with_its_grant(workspace, staging, doctor, granted, missing) -> None:
    catalog = staging["catalog"]
    workspace.grants["catalog", catalog][SP] = granted
    res = doctor()
    assert res.code == 1
    status, detail, fix = res.row("catalog privileges", f"{SP} on {catalog}")
    assert status == "FAIL"
    assert detail.startswith(f"lacks {missing}")
    assert fix == f"GRANT {missing.replace('_', ' ')} ON CATALOG `{catalog}` TO `{SP}`;"


@pytest.mark.parametrize(
    "setup",
    ["all_privileges", "inherited_from_metastore", "through_a_group", "owner", "over_two_pages"],
)
def test_catalog_privileges_held_otherwise_pass(workspace, staging, doctor, setup) -> None:
    catalog = staging["catalog"]
    del workspace.grants["catalog", catalog][SP]
    if setup == "all_privileges":
        workspace.grants["catalog", catalog][SP] = ["ALL_PRIVILEGES"]
    elif setup == "inherited_from_metastore":
        workspace.grants["metastore", ""] = {SP: ["USE_CATALOG", "CREATE_SCHEMA"]}
    elif setup == "through_a_group":  # "deployers" is one of the groups SCIM Me lists for the principal
        workspace.grants["catalog", catalog]["deployers"] = ["USE_CATALOG", "CREATE_SCHEMA"]
    elif setup == "owner":
        workspace.catalogs[catalog]["owner"] = SP
    else:  # one privilege per page: the second comes only with next_page_token
        workspace.grants["catalog", catalog][SP] = ["USE_CATALOG", "CREATE_SCHEMA"]
        workspace.effective_page_size = 1
    res = doctor()
    assert res.code == 0, res.out
    assert res.row("catalog privileges", f"{SP} on {catalog}")[0] == "OK"


def test_group_missing_fails_with_console_steps(workspace, staging, doctor) -> None:
    group = staging["data_scientists"]
    workspace.groups = [g for g in workspace.groups if g["displayName"] != group]
    res = doctor()
    assert res.code == 1
    status, detail, fix = res.row("group", group)
    assert (status, detail) == ("FAIL", "no such group in the workspace")
    assert f"Account console > User management > Groups > Add group '{group}'" in fix
    assert ("group privileges", f"{group} on {staging['catalog']}") not in res.rows


def test_group_without_use_catalog_warns_but_passes(workspace, staging, doctor) -> None:
    group, catalog = staging["data_scientists"], staging["catalog"]
    del workspace.grants["catalog", catalog][group]
    res = doctor()
    assert res.code == 0  # deploys and runs; only the group cannot see the schema
    status, detail, fix = res.row("group privileges", f"{group} on {catalog}")
    assert status == "WARN"
    assert "cannot see the schema" in detail
    assert fix == f"GRANT USE CATALOG ON CATALOG `{catalog}` TO `{group}`;"


def test_workspace_local_group_warns(workspace, staging, doctor) -> None:
    group = staging["data_scientists"]
    next(g for g in workspace.groups if g["displayName"] == group)["meta"] = {"resourceType": "WorkspaceGroup"}
    res = doctor()
    assert res.code == 0
    status, detail, fix = res.row("group", group)
    assert (status, detail) == ("WARN", "exists, but workspace-local")
    assert "Unity Catalog grants to it fail" in fix


def test_scope_missing_fails_with_create_scope_and_put_secret(workspace, staging, doctor) -> None:
    scope = staging["secret_scope"]
    del workspace.scopes[scope]
    res = doctor()
    assert res.code == 1
    assert res.row("secret scope", scope) == ("FAIL", "does not exist", f"databricks secrets create-scope {scope}")
    for key in ("redis-host", "redis-password"):
        status, _, fix = res.row("secret", f"{scope}/{key}")
        assert status == "FAIL"
        assert fix.startswith(f"databricks secrets put-secret {scope} {key}")
    assert res.row("secret ACL", f"{SP} on {scope}")[2].startswith(f"databricks secrets put-acl {scope} {SP} READ")


@pytest.mark.parametrize("key", ["redis-host", "redis-password"])
def test_each_missing_key_fails_with_put_secret(workspace, staging, doctor, key) -> None:
    scope = staging["secret_scope"]
    workspace.scopes[scope]["keys"].remove(key)
    res = doctor()
    assert res.code == 1
    status, detail, fix = res.row("secret", f"{scope}/{key}")
    assert (status, detail) == ("FAIL", "missing")
    assert fix == f"databricks secrets put-secret {scope} {key}   (prompts for the value)"
    other = "redis-password" if key == "redis-host" else "redis-host"
    assert res.row("secret", f"{scope}/{other}")[0] == "OK"


def test_key_missing_in_key_vault_scope_is_set_in_the_vault(workspace, staging, doctor) -> None:
    scope = staging["secret_scope"]
    workspace.scopes[scope].update(
        backend_type="AZURE_KEYVAULT",
        keyvault_metadata={
            "resource_id": "/subscriptions/0/vaults/refarch-kv",
            "dns_name": "https://refarch-kv.vault.azure.net/",
        },
        keys=["redis-host"],
    )
    res = doctor()
    assert res.row("secret scope", scope)[:2] == ("OK", "exists (AZURE_KEYVAULT)")
    assert res.row("secret", f"{scope}/redis-password")[2] == (
        "az keyvault secret set --vault-name refarch-kv --name redis-password --value '<value>'"
    )


def test_run_as_principal_without_read_fails_with_put_acl(workspace, staging, doctor) -> None:
    scope = staging["secret_scope"]
    del workspace.scopes[scope]["acls"][SP]
    res = doctor()
    assert res.code == 1
    status, detail, fix = res.row("secret", f"{scope}/redis-host")
    assert status == "FAIL"
    assert detail.startswith(f"cannot list the keys as {SP}: PERMISSION_DENIED")
    status, detail, fix = res.row("secret ACL", f"{SP} on {scope}")
    assert (status, detail) == ("FAIL", "may not read the scope")
    assert fix == f"databricks secrets put-acl {scope} {SP} READ   (as a principal with MANAGE on the scope)"


@pytest.fixture()
def as_alice(staging: dict[str, Any], start_workspace) -> FakeWorkspace:
    """A person with MANAGE on the scope runs the doctor for staging, whose jobs run as the SP."""
    fake = healthy(staging, me=ALICE, display="Alice", deployer=SP, runner=SP)
    fake.scopes[staging["secret_scope"]]["acls"][ALICE] = "MANAGE"
    return start_workspace(fake)


def test_a_person_checking_staging_is_warned_that_ci_must_deploy_as_the_sp(as_alice, doctor) -> None:
    res = doctor()
    assert res.code == 0
    status, detail, fix = res.row("authentication", f"{ALICE} (Alice)")
    assert status == "WARN"
    assert detail == f"authenticated, but the jobs of staging run as {SP}: CI must deploy as it"
    assert f"DATABRICKS_CLIENT_ID={SP}" in fix
    assert "Service principal: User" in fix


@pytest.mark.parametrize(("acl", "status"), [(None, "FAIL"), ("READ", "OK"), ("WRITE", "OK"), ("MANAGE", "OK")])
def test_secret_acl_of_another_principal_is_read_from_the_acl(as_alice, staging, doctor, acl, status) -> None:
    scope = staging["secret_scope"]
    acls = as_alice.scopes[scope]["acls"]
    acls.pop(SP)
    if acl:
        acls[SP] = acl
    res = doctor()
    row = res.row("secret ACL", f"{SP} on {scope}")
    assert row[0] == status
    if acl is None:
        assert row[1:] == (
            "no ACL for the run-as principal",
            f"databricks secrets put-acl {scope} {SP} READ   (as a principal with MANAGE on the scope)",
        )
    assert "GET /api/2.0/secrets/acls/get" in as_alice.requests


def test_secret_acl_unreadable_without_manage_warns(as_alice, staging, doctor) -> None:
    scope = staging["secret_scope"]
    as_alice.scopes[scope]["acls"][ALICE] = "READ"
    res = doctor()
    status, detail, _ = res.row("secret ACL", f"{SP} on {scope}")
    assert status == "WARN"
    assert detail == f"cannot read the scope's ACLs (they need MANAGE): run the doctor as {SP}"


def test_service_credential_missing_fails_with_create_credential(workspace, staging, doctor) -> None:
    name = staging["storage_credential"]
    del workspace.credentials[name]
    res = doctor()
    assert res.code == 1
    status, detail, fix = res.row("service credential", name)
    assert (status, detail) == ("FAIL", "does not exist")
    assert fix.startswith(f"databricks credentials create-credential {name} --purpose SERVICE --json")
    assert res.row("credential access", f"{SP} on {name}")[:2] == ("FAIL", "not checked: no credential")


def test_storage_credential_instead_of_service_credential_fails(workspace, staging, doctor) -> None:
    name = staging["storage_credential"]
    workspace.credentials[name]["purpose"] = "STORAGE"
    res = doctor()
    assert res.code == 1
    status, detail, fix = res.row("service credential", name)
    assert status == "FAIL"
    assert detail == "purpose STORAGE: the jobs need a service credential (purpose SERVICE)"
    assert "--purpose SERVICE" in fix


def test_no_access_on_the_credential_fails_with_grant_access(workspace, staging, doctor) -> None:
    name = staging["storage_credential"]
    workspace.grants["credential", name] = {}
    res = doctor()
    assert res.code == 1
    assert res.row("credential access", f"{SP} on {name}") == (
        "FAIL",
        "lacks ACCESS",
        f"GRANT ACCESS ON SERVICE CREDENTIAL `{name}` TO `{SP}`;",
    )


def test_external_location_missing_fails_with_create_location(workspace, staging, doctor) -> None:
    name = staging["landing_location"]
    del workspace.locations[name]
    res = doctor()
    assert res.code == 1
    status, detail, fix = res.row("external location", name)
    assert (status, detail) == ("FAIL", "does not exist")
    assert fix.startswith(
        f"CREATE EXTERNAL LOCATION IF NOT EXISTS `{name}` "
        f"URL 'abfss://<container>@{staging['storage_account']}.dfs.core.windows.net/<landing prefix>'"
    )
    assert res.row("location access", f"{SP} on {name}")[0] == "FAIL"


def test_no_read_files_on_the_location_fails_with_grant(workspace, staging, doctor) -> None:
    name = staging["landing_location"]
    workspace.grants["external_location", name] = {SP: ["WRITE_FILES"]}
    res = doctor()
    assert res.code == 1
    assert res.row("location access", f"{SP} on {name}") == (
        "FAIL",
        "lacks READ_FILES",
        f"GRANT READ FILES ON EXTERNAL LOCATION `{name}` TO `{SP}`;",
    )


def test_runtime_not_offered_fails_and_names_the_offered_ml_runtimes(workspace, staging, doctor) -> None:
    wanted = staging["spark_version"]
    workspace.spark_versions = [v for v in workspace.spark_versions if v["key"] != wanted]
    res = doctor()
    assert res.code == 1
    status, detail, fix = res.row("runtime", wanted)
    assert (status, detail) == ("FAIL", "not offered by this workspace")
    assert "--var spark_version=<key>" in fix
    assert fix.endswith("offered -cpu-ml-scala2.13 runtimes: 18.0.x-cpu-ml-scala2.13")  # same kind only


def test_similar_runtimes_are_of_the_same_kind_lts_first_newest_first() -> None:
    offered = {
        "18.0.x-cpu-ml-scala2.13": "18.0 ML (includes Apache Spark 4.1.0, Scala 2.13)",
        "17.3.x-cpu-ml-scala2.13": "17.3 LTS ML (includes Apache Spark 4.0.0, Scala 2.13)",
        "16.4.x-cpu-ml-scala2.13": "16.4 LTS ML (includes Apache Spark 3.5.2, Scala 2.13)",
        "17.3.x-scala2.13": "17.3 LTS (includes Apache Spark 4.0.0, Scala 2.13)",
        "17.3.x-gpu-ml-scala2.13": "17.3 LTS ML GPU",
    }
    assert similar("17.2.x-cpu-ml-scala2.13", offered) == [
        "17.3.x-cpu-ml-scala2.13",
        "16.4.x-cpu-ml-scala2.13",
        "18.0.x-cpu-ml-scala2.13",
    ]


def test_runtime_given_as_var_is_the_one_checked(workspace, doctor) -> None:
    res = doctor("--var", "spark_version=16.4.x-cpu-ml-scala2.12")
    assert res.row("runtime", "16.4.x-cpu-ml-scala2.12")[0] == "OK"


def test_bad_token_is_a_fail_row_not_a_traceback(workspace, staging, doctor, sdk_env) -> None:
    sdk_env.setenv("DATABRICKS_TOKEN", "dapi-wrong")
    res = doctor()
    assert res.code == 1
    host = res.out.splitlines()[0].split(" on ", 1)[1]
    status, detail, fix = res.row("authentication", host)
    assert status == "FAIL"
    assert detail.startswith("cannot authenticate:")
    assert "Credential was not sent or was of an unsupported type" in detail
    assert fix.startswith("set DATABRICKS_HOST and one way to authenticate: DATABRICKS_TOKEN")
    others = {k: v for k, v in res.rows.items() if k[0] != "authentication"}
    assert {v[:2] for v in others.values()} == {("FAIL", "not checked: not authenticated")}
    assert ("catalog", staging["catalog"]) in others
    # nothing but the identity call was tried with the bad token
    assert [r for r in workspace.requests if "/api/" in r] == ["GET /api/2.0/preview/scim/v2/Me"]


def test_unreachable_host_is_a_fail_row(sdk_env, doctor) -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    sdk_env.setenv("DATABRICKS_HOST", f"http://127.0.0.1:{port}")
    sdk_env.setenv("DATABRICKS_TOKEN", "dapi-x")
    started = time.monotonic()
    res = doctor("--timeout", "1")
    assert time.monotonic() - started < 20
    assert res.code == 1
    status, detail, _ = res.row("authentication", f"http://127.0.0.1:{port}")
    assert status == "FAIL"
    assert detail.startswith("cannot authenticate:")


def test_no_credentials_at_all_is_a_fail_row(sdk_env, doctor) -> None:
    res = doctor()
    assert res.code == 1
    status, detail, _ = res.row("authentication", "(no DATABRICKS_HOST)")
    assert status == "FAIL"
    assert detail.startswith("cannot authenticate:")


def test_an_endpoint_failing_fails_only_its_check(workspace, staging, doctor) -> None:
    workspace.forced["/api/2.1/clusters/spark-versions"] = (
        500,
        {"error_code": "INTERNAL_ERROR", "message": "spark-versions is having a bad day"},
    )
    res = doctor()
    assert res.code == 1
    status, detail, _ = res.row("runtime", staging["spark_version"])
    assert status == "FAIL"
    assert detail == "INTERNAL_ERROR: spark-versions is having a bad day"
    assert [k for k, v in res.rows.items() if v[0] != "OK"] == [("runtime", staging["spark_version"])]


def test_scim_error_on_groups_is_a_fail_row(workspace, staging, doctor) -> None:
    workspace.forced["/api/2.0/preview/scim/v2/Groups"] = (
        403,
        {"schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"], "detail": "Missing permissions", "status": "403"},
    )
    res = doctor()
    status, detail, _ = res.row("group", staging["data_scientists"])
    assert (status, detail) == ("FAIL", "SCIM_403: Missing permissions")


def test_dev_checks_the_current_user_who_deploys_and_runs(start_workspace, doctor) -> None:
    dev = load_bundle(target="dev").variables
    fake = start_workspace(healthy(dev, me=ALICE, display="Alice", deployer=ALICE, runner=ALICE))
    res = doctor(target="dev", deployer=None)
    assert res.code == 0, res.out
    assert res.row("authentication", f"{ALICE} (Alice)")[:2] == ("OK", "deploys and runs the jobs")
    assert res.row("catalog privileges", f"{ALICE} on {dev['catalog']}")[0] == "OK"
    assert res.row("credential access", f"{ALICE} on {dev['storage_credential']}")[0] == "OK"
    assert fake.unknown == []


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["doctor", "--target", "nope"], "no target 'nope'"),
        (["doctor", "--target", "local"], "'local' is refarch's own target"),
        (["doctor", "--target", "staging"], "no value for required variable(s) deployer_sp"),
        (["doctor", "--target", "prod", "--var", f"deployer_sp={SP}"], "variable(s) notification_email"),
        (["doctor", "--target", "staging", "--var", "deployer_sp"], "--var 'deployer_sp': expected name=value"),
        (["doctor", "--target", "staging", "--var", "x=1"], "variable 'x' is not declared"),
    ],
)
def test_usage_errors_exit_2_before_any_call(sdk_env, capsys, argv, message) -> None:
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert message in err
    assert out == ""


def test_missing_target_is_an_argparse_usage_error(capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["doctor"])
    assert exc.value.code == 2


BUNDLE = """
bundle:
  name: demo
variables:
  catalog: {default: cat}
  schema: {default: sch}
  spark_version: {default: 17.3.x-cpu-ml-scala2.13}
  deployer_sp: {description: who deploys}
  data_scientists: {default: analysts}
  secret_scope:
    default: scope-${bundle.target}
  storage_credential: {default: cred}
  landing_location: {default: loc}
  storage_account: {default: acct}
permissions:
  - group_name: ${var.data_scientists}
    level: CAN_VIEW
  - user_name: someone@example.com
    level: CAN_VIEW
targets:
  dev:
    mode: development
    variables:
      deployer_sp: ${workspace.current_user.userName}
  prod:
    variables:
      catalog: cat_prod
    run_as:
      user_name: ${var.deployer_sp}
"""


def test_plan_resolves_variables_run_as_and_groups_for_the_authenticated_user(tmp_path, sdk_env) -> None:
    from refarch.workspace.doctor import plan_for

    (tmp_path / "databricks.yml").write_text(BUNDLE)
    dev = plan_for(load_bundle(root=tmp_path, target="dev"), ALICE)
    assert (dev.deployer, dev.run_as, dev.groups, dev.secret_scope) == (ALICE, None, ("analysts",), "scope-dev")
    prod = plan_for(load_bundle(root=tmp_path, target="prod", variables={"deployer_sp": "bob@example.com"}), ALICE)
    assert (prod.catalog, prod.deployer, prod.run_as) == ("cat_prod", "bob@example.com", "bob@example.com")


def test_securable_type_fits_the_installed_sdk() -> None:
    from databricks.sdk.service.catalog import SecurableType

    assert securable_type("external_location", "0.156.0") == "external_location"
    assert securable_type("catalog", "0.56.0") == "catalog"
    assert securable_type("external_location", "0.49.0") is SecurableType.EXTERNAL_LOCATION  # the runtime's SDK
