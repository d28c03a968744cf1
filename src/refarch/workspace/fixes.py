"""The exact fix for each gap: SQL for Unity Catalog, `databricks` CLI commands for secrets and
credentials, console steps for what has neither. Names are quoted as the SQL parser wants them.
"""

from __future__ import annotations

AUTH_ENV = (
    "set DATABRICKS_HOST and one way to authenticate: DATABRICKS_TOKEN, or "
    "DATABRICKS_CLIENT_ID + DATABRICKS_CLIENT_SECRET (OAuth M2M of the service principal), or "
    "ARM_CLIENT_ID + ARM_CLIENT_SECRET + ARM_TENANT_ID (Microsoft Entra service principal)"
)


def quote(name: str) -> str:
    """A SQL identifier in backticks (names with dashes, application ids, group names with spaces)."""
    return "`" + name.replace("`", "``") + "`"


def sql_privilege(privilege: str) -> str:
    """`USE_CATALOG` (API spelling) -> `USE CATALOG` (SQL spelling)."""
    return privilege.replace("_", " ")


def grant(privileges: list[str], securable: str, name: str, principal: str) -> str:
    """`GRANT USE CATALOG, CREATE SCHEMA ON CATALOG `c` TO `p`;` (securable in SQL words)."""
    return (
        f"GRANT {', '.join(sql_privilege(p) for p in privileges)} ON {securable} {quote(name)} TO {quote(principal)};"
    )


def create_catalog(name: str) -> str:
    return (
        f"CREATE CATALOG IF NOT EXISTS {quote(name)};\n"
        "(as a metastore admin or a principal with CREATE CATALOG on the metastore; add "
        "MANAGED LOCATION 'abfss://<container>@<account>.dfs.core.windows.net/<path>' "
        "when the metastore has no storage root)"
    )


def run_as_mismatch(me: str, run_as: str) -> str:
    return (
        f"deploy from CI authenticated as the service principal {run_as} "
        f"(DATABRICKS_CLIENT_ID={run_as} with an OAuth secret of it); a person deploying instead needs "
        f"the Service principal: User role on it (Settings > Identity and access > Service principals > "
        f"{run_as} > Permissions > grant {me})"
    )


def create_group(group: str) -> str:
    return (
        f"Account console > User management > Groups > Add group {group!r} (an account group: Unity Catalog "
        f"cannot grant to workspace-local groups), then in the workspace Settings > Identity and access > "
        f"Groups > Add group > {group!r}"
    )


def migrate_group(group: str) -> str:
    return (
        f"{group!r} is a workspace-local group: Unity Catalog grants to it fail. Create an account group "
        f"(Account console > User management > Groups), add the members, add it to the workspace, "
        f"and delete or rename the local group"
    )


def create_scope(scope: str) -> str:
    return f"databricks secrets create-scope {scope}"


def put_secret(scope: str, key: str, keyvault_dns: str | None = None) -> str:
    """Databricks-backed scopes take the value from the CLI (prompted); Key Vault-backed ones from Azure."""
    if keyvault_dns:
        vault = keyvault_dns.split("//", 1)[-1].split(".", 1)[0]
        return f"az keyvault secret set --vault-name {vault} --name {key} --value '<value>'"
    return f"databricks secrets put-secret {scope} {key}   (prompts for the value)"


def put_acl(scope: str, principal: str) -> str:
    return f"databricks secrets put-acl {scope} {principal} READ   (as a principal with MANAGE on the scope)"


def create_service_credential(name: str) -> str:
    return (
        f"databricks credentials create-credential {name} --purpose SERVICE --json "
        '\'{"azure_managed_identity": {"access_connector_id": "/subscriptions/<subscription>/resourceGroups/'
        "<group>/providers/Microsoft.Databricks/accessConnectors/<connector>\"}}'\n"
        "(as an account admin or a principal with CREATE SERVICE CREDENTIAL; the connector's managed identity "
        "needs Storage Blob Data Contributor on the storage account)"
    )


def create_external_location(name: str, storage_account: str) -> str:
    return (
        f"CREATE EXTERNAL LOCATION IF NOT EXISTS {quote(name)} "
        f"URL 'abfss://<container>@{storage_account}.dfs.core.windows.net/<landing prefix>' "
        "WITH (STORAGE CREDENTIAL `<storage credential>`);\n"
        "(as a principal with CREATE EXTERNAL LOCATION on the metastore and on the storage credential)"
    )


def choose_runtime(wanted: str, offered: list[str]) -> str:
    flavour = wanted.split("-", 1)[1] if "-" in wanted else wanted
    listed = ", ".join(offered) if offered else "none"
    return (
        f"pass --var spark_version=<key> (or set BUNDLE_VAR_spark_version) to a runtime this workspace offers, "
        f"once the wheel's requirements fit what it ships; offered -{flavour} runtimes: {listed}"
    )
