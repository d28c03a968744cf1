"""`refarch doctor`: check a Databricks workspace against what the bundle of a target takes for granted.

Run by CI before `databricks bundle deploy`, authenticated as the deploying service principal
(the standard databricks-sdk environment: DATABRICKS_HOST plus DATABRICKS_TOKEN, DATABRICKS_CLIENT_ID
and _SECRET, or ARM_*). Every check is independent: an error in one (a missing catalog, a 500, a
privilege it may not read) is that check's FAIL row, never a traceback, and the others still run.
Only a failed authentication stops the rest, since every further call would fail the same way.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any

from refarch.jobs.bundle import LOCAL_TARGET, Bundle, BundleError, load_bundle, resolve
from refarch.workspace import fixes
from refarch.workspace.report import Row, Status, exit_code, render

log = logging.getLogger(__name__)

# The keys the recommender's publish task reads from the scope (`{{secrets/<scope>/<key>}}`).
REDIS_SECRET_KEYS = ("redis-host", "redis-password")

UNKNOWN_USER = "unknown@example.com"  # ${workspace.current_user.*} before anyone authenticated

SECRET_READ = ("READ", "WRITE", "MANAGE")  # secret ACLs: each level includes the ones before it


@dataclass(frozen=True)
class Plan:
    """What the doctor checks, resolved from the bundle for one target and the authenticated user."""

    target: str
    catalog: str
    groups: tuple[str, ...]  # group_name entries of the top-level `permissions`
    secret_scope: str
    service_credential: str
    landing_location: str
    storage_account: str
    spark_version: str
    deployer: str  # var.deployer_sp: who deploys (and, in dev, the current user)
    run_as: str | None  # the target's run_as identity; None = jobs run as whoever deploys


def load_target(target: str, variables: dict[str, str]) -> Bundle:
    """The bundle for a Databricks target; BundleError (a usage error) for `local` or a bad target."""
    if target == LOCAL_TARGET:
        raise BundleError("doctor checks a Databricks workspace: 'local' is refarch's own target, never deployed")
    return load_bundle(target=target, variables=variables)


def plan_for(bundle: Bundle, user_name: str) -> Plan:
    """Resolve the variables the checks need, with `${workspace.current_user.*}` the authenticated user."""
    bundle = bundle.as_user(user_name)  # variables such as deployer_sp may name the current user
    context: dict[str, Any] = {
        "bundle": {"name": (bundle.config.get("bundle") or {}).get("name", "bundle"), "target": bundle.target},
        "workspace": bundle.workspace,
        "var": bundle.variables,
    }

    def value(name: str) -> str:
        if name not in bundle.variables:
            raise BundleError(f"databricks.yml declares no variable '{name}' (the doctor needs it)")
        return str(bundle.variables[name])

    permissions = resolve(bundle.config.get("permissions") or [], context, "permissions")
    groups = tuple(p["group_name"] for p in permissions if isinstance(p, dict) and p.get("group_name"))
    tconf = (bundle.config.get("targets") or {}).get(bundle.target) or {}
    run_as = resolve(tconf.get("run_as") or {}, context, f"targets.{bundle.target}.run_as")
    identity = run_as.get("service_principal_name") or run_as.get("user_name")
    return Plan(
        target=bundle.target,
        catalog=value("catalog"),
        groups=groups,
        secret_scope=value("secret_scope"),
        service_credential=value("storage_credential"),
        landing_location=value("landing_location"),
        storage_account=value("storage_account"),
        spark_version=value("spark_version"),
        deployer=value("deployer_sp"),
        run_as=str(identity) if identity else None,
    )


def describe(err: BaseException, debug: bool = False) -> str:
    """One line: the API's error code and message, or the exception's own text.

    The SDK appends its configuration to auth errors (". Config: host=..., auth_type=..."): kept where
    it helps (`debug`, the authentication row), cut elsewhere. A SCIM error without `scimType`
    comes out of the SDK as "None <detail>".
    """
    code = getattr(err, "error_code", None)
    text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    if not debug:
        text = text.split(". Config: ", 1)[0]
    if code and str(code).startswith("SCIM_"):
        text = text.removeprefix("None ")
    return f"{code}: {text}" if code and code not in text else text


def securable_type(kind: str, sdk_version: str | None = None) -> Any:
    """`catalog`, `credential`, `external_location` as the installed SDK takes them in `grants.*`.

    databricks-sdk 0.56 changed the argument from a `catalog.SecurableType` (whose `.value` went into
    the path) to a plain string; the runtime ships 0.49, so both are accepted here.
    """
    if sdk_version is None:
        from databricks.sdk.version import __version__ as sdk_version
    release = tuple(int(n) for n in re.findall(r"\d+", sdk_version)[:2])
    if release >= (0, 56):
        return kind
    from databricks.sdk.service.catalog import SecurableType

    return SecurableType[kind.upper()]


def is_not_found(err: BaseException) -> bool:
    from databricks.sdk.errors import NotFound

    return isinstance(err, NotFound)


def is_denied(err: BaseException) -> bool:
    from databricks.sdk.errors import PermissionDenied

    return isinstance(err, PermissionDenied)


@dataclass
class Doctor:
    """The checks, run against one workspace client; lookups shared by several checks are cached."""

    w: Any  # databricks.sdk.WorkspaceClient
    plan: Plan
    me: Any  # databricks.sdk.service.iam.User of the authenticated principal
    _cache: dict[tuple[str, str], Any] = field(default_factory=dict)

    # -- who -----------------------------------------------------------------------------------

    @property
    def me_name(self) -> str:
        return str(self.me.user_name)

    @property
    def runner(self) -> str:
        """The identity the jobs run as: the target's run_as, else whoever deploys (dev: you)."""
        return self.plan.run_as or self.me_name

    def principals(self, principal: str) -> list[str]:
        """The principal, plus its groups when it is the authenticated one (SCIM Me lists them).

        Unity Catalog lists effective privileges per grantee: what a group holds is not listed
        under its members, so privileges obtained through a group are found through the group.
        """
        names = [principal]
        if principal.casefold() == self.me_name.casefold():
            names += [g.display for g in (self.me.groups or []) if g.display]
        return names

    # -- cached lookups ------------------------------------------------------------------------

    def _cached(self, key: tuple[str, str], fetch: Callable[[], Any]) -> Any:
        if key not in self._cache:
            try:
                self._cache[key] = fetch()
            except Exception as err:  # remembered, so each check that needs it reports it
                self._cache[key] = err
        hit = self._cache[key]
        if isinstance(hit, Exception):
            raise hit
        return hit

    def catalog(self) -> Any:
        return self._cached(("catalog", self.plan.catalog), lambda: self.w.catalogs.get(self.plan.catalog))

    def credential(self) -> Any:
        name = self.plan.service_credential
        return self._cached(("credential", name), lambda: self.w.credentials.get_credential(name))

    def location(self) -> Any:
        name = self.plan.landing_location
        return self._cached(("location", name), lambda: self.w.external_locations.get(name))

    def scope(self) -> Any | None:
        def find() -> Any | None:
            return next((s for s in self.w.secrets.list_scopes() if s.name == self.plan.secret_scope), None)

        return self._cached(("scope", self.plan.secret_scope), find)

    def secret_keys(self) -> set[str]:
        scope = self.plan.secret_scope
        return self._cached(("keys", scope), lambda: {s.key for s in self.w.secrets.list_secrets(scope)})

    def effective(self, securable: str, name: str, principal: str) -> set[str]:
        """Privileges of one grantee on a securable, inherited ones (catalog, metastore) included."""
        held: set[str] = set()
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"principal": principal}
            if token:
                kwargs["page_token"] = token
            page = self.w.grants.get_effective(securable_type(securable), name, **kwargs)
            for assignment in page.privilege_assignments or []:
                if (assignment.principal or "").casefold() != principal.casefold():
                    continue
                held |= {p.privilege.value for p in assignment.privileges or [] if p.privilege is not None}
            token = getattr(page, "next_page_token", None)
            if not token:
                return held

    def missing_privileges(self, securable: str, name: str, principal: str, needed: tuple[str, ...]) -> list[str]:
        """What `principal` lacks of `needed` (ALL_PRIVILEGES covers all), through itself or its groups."""
        held: set[str] = set()
        for grantee in self.principals(principal):
            try:
                held |= self.effective(securable, name, grantee)
            except Exception as err:
                if grantee == principal:
                    raise
                log.debug("effective privileges of group %s on %s %s: %s", grantee, securable, name, err)
            if "ALL_PRIVILEGES" in held or set(needed) <= held:
                return []
        return [p for p in needed if p not in held]

    def owns(self, owner: str | None, principal: str) -> bool:
        return bool(owner) and owner.casefold() in {p.casefold() for p in self.principals(principal)}

    # -- the checks ----------------------------------------------------------------------------

    def checks(self) -> list[Callable[[], Iterator[Row]]]:
        return [
            self.check_run_as,
            self.check_catalog,
            self.check_catalog_privileges,
            self.check_groups,
            self.check_secrets,
            self.check_service_credential,
            self.check_external_location,
            self.check_runtime,
        ]

    def check_run_as(self) -> Iterator[Row]:
        who = f"{self.me_name} ({self.me.display_name})" if self.me.display_name else self.me_name
        run_as = self.plan.run_as
        if run_as and run_as.casefold() != self.me_name.casefold():
            yield Row(
                "authentication",
                who,
                Status.WARN,
                f"authenticated, but the jobs of {self.plan.target} run as {run_as}: CI must deploy as it",
                fixes.run_as_mismatch(self.me_name, run_as),
            )
        else:
            note = f"the run-as principal of {self.plan.target}" if run_as else "deploys and runs the jobs"
            yield Row("authentication", who, Status.OK, note)

    def check_catalog(self) -> Iterator[Row]:
        name = self.plan.catalog
        try:
            info = self.catalog()
        except Exception as err:
            if is_not_found(err):
                yield Row("catalog", name, Status.FAIL, "does not exist", fixes.create_catalog(name))
            elif is_denied(err):
                yield Row(
                    "catalog",
                    name,
                    Status.FAIL,
                    f"{self.me_name} may not see it: {describe(err)}",
                    fixes.grant(["USE_CATALOG"], "CATALOG", name, self.me_name),
                )
            else:
                yield Row("catalog", name, Status.FAIL, describe(err))
            return
        yield Row("catalog", name, Status.OK, f"exists, owner {info.owner}")

    def check_catalog_privileges(self) -> Iterator[Row]:
        name, deployer = self.plan.catalog, self.plan.deployer
        check, subject = "catalog privileges", f"{deployer} on {name}"
        needed = ("USE_CATALOG", "CREATE_SCHEMA")
        try:
            info = self.catalog()
        except Exception as err:
            why = "the catalog does not exist" if is_not_found(err) else describe(err)
            yield Row(
                check, subject, Status.FAIL, f"not checked: {why}", fixes.grant(list(needed), "CATALOG", name, deployer)
            )
            return
        if self.owns(info.owner, deployer):
            yield Row(check, subject, Status.OK, f"owns the catalog ({info.owner})")
            return
        try:
            missing = self.missing_privileges("catalog", name, deployer, needed)
        except Exception as err:
            yield Row(check, subject, Status.FAIL, f"cannot read its privileges: {describe(err)}")
            return
        if missing:
            detail = f"lacks {', '.join(missing)} (creates the schema {self.plan.target} deploys)"
            yield Row(check, subject, Status.FAIL, detail, fixes.grant(missing, "CATALOG", name, deployer))
        else:
            yield Row(check, subject, Status.OK, "USE_CATALOG and CREATE_SCHEMA (or ALL_PRIVILEGES)")

    def check_groups(self) -> Iterator[Row]:
        for group in self.plan.groups:
            yield from self._check_group(group)

    def _check_group(self, group: str) -> Iterator[Row]:
        try:
            found = list(self.w.groups.list(filter=f'displayName eq "{group}"', attributes="id,displayName,meta"))
        except Exception as err:
            yield Row("group", group, Status.FAIL, describe(err))
            return
        match = next((g for g in found if g.display_name == group), None)
        if match is None:
            yield Row("group", group, Status.FAIL, "no such group in the workspace", fixes.create_group(group))
            return
        kind = getattr(match.meta, "resource_type", None) if match.meta else None
        if kind == "WorkspaceGroup":
            yield Row("group", group, Status.WARN, "exists, but workspace-local", fixes.migrate_group(group))
        else:
            yield Row("group", group, Status.OK, "exists (named in the bundle's permissions)")
        check, subject = "group privileges", f"{group} on {self.plan.catalog}"
        fix = fixes.grant(["USE_CATALOG"], "CATALOG", self.plan.catalog, group)
        try:
            self.catalog()
        except Exception as err:
            why = "the catalog does not exist" if is_not_found(err) else describe(err)
            yield Row(check, subject, Status.WARN, f"not checked: {why}", fix)
            return
        try:
            missing = self.missing_privileges("catalog", self.plan.catalog, group, ("USE_CATALOG",))
        except Exception as err:
            yield Row(check, subject, Status.WARN, f"cannot read its privileges: {describe(err)}")
            return
        if missing:
            detail = "lacks USE_CATALOG: its members cannot see the schema, tables or models"
            yield Row(check, subject, Status.WARN, detail, fix)
        else:
            yield Row(check, subject, Status.OK, "USE_CATALOG")

    def check_secrets(self) -> Iterator[Row]:
        scope_name = self.plan.secret_scope
        try:
            scope = self.scope()
        except Exception as err:
            yield Row("secret scope", scope_name, Status.FAIL, f"cannot list scopes: {describe(err)}")
            return
        if scope is None:
            yield Row("secret scope", scope_name, Status.FAIL, "does not exist", fixes.create_scope(scope_name))
            for key in REDIS_SECRET_KEYS:
                yield Row("secret", f"{scope_name}/{key}", Status.FAIL, "no scope", fixes.put_secret(scope_name, key))
            yield Row(
                "secret ACL",
                f"{self.runner} on {scope_name}",
                Status.FAIL,
                "no scope",
                fixes.put_acl(scope_name, self.runner),
            )
            return
        backend = scope.backend_type.value if scope.backend_type else "DATABRICKS"
        vault = scope.keyvault_metadata.dns_name if scope.keyvault_metadata else None
        yield Row("secret scope", scope_name, Status.OK, f"exists ({backend})")
        try:
            keys: set[str] | None = self.secret_keys()
            listing_error = None
        except Exception as err:
            keys, listing_error = None, err
        for key in REDIS_SECRET_KEYS:
            subject = f"{scope_name}/{key}"
            if keys is None:
                detail = f"cannot list the keys as {self.me_name}: {describe(listing_error)}"
                fix = fixes.put_acl(scope_name, self.me_name) if is_denied(listing_error) else ""
                yield Row("secret", subject, Status.FAIL, detail, fix)
            elif key in keys:
                yield Row("secret", subject, Status.OK, "set")
            else:
                yield Row("secret", subject, Status.FAIL, "missing", fixes.put_secret(scope_name, key, vault))
        yield self._secret_acl(scope_name, keys is not None)

    def _secret_acl(self, scope: str, listed: bool) -> Row:
        """READ for the run-as principal: listing the keys as that principal proves it; else ask the ACL."""
        check, subject, fix = "secret ACL", f"{self.runner} on {scope}", fixes.put_acl(scope, self.runner)
        if self.runner.casefold() == self.me_name.casefold():
            if listed:
                return Row(check, subject, Status.OK, "may read (listed the keys as this principal)")
            return Row(check, subject, Status.FAIL, "may not read the scope", fix)
        try:
            acl = self.w.secrets.get_acl(scope, self.runner)
        except Exception as err:
            if is_not_found(err):
                return Row(check, subject, Status.FAIL, "no ACL for the run-as principal", fix)
            if is_denied(err):
                detail = f"cannot read the scope's ACLs (they need MANAGE): run the doctor as {self.runner}"
                return Row(check, subject, Status.WARN, detail, fix)
            return Row(check, subject, Status.FAIL, describe(err))
        level = acl.permission.value if acl.permission else ""
        if level in SECRET_READ:
            return Row(check, subject, Status.OK, level)
        return Row(check, subject, Status.FAIL, f"permission {level or 'none'}", fix)

    def check_service_credential(self) -> Iterator[Row]:
        name = self.plan.service_credential
        try:
            info = self.credential()
        except Exception as err:
            if is_not_found(err):
                yield Row(
                    "service credential", name, Status.FAIL, "does not exist", fixes.create_service_credential(name)
                )
            else:
                yield Row("service credential", name, Status.FAIL, describe(err))
            yield Row("credential access", f"{self.runner} on {name}", Status.FAIL, "not checked: no credential")
            return
        purpose = info.purpose.value if info.purpose else "unknown"
        if purpose != "SERVICE":
            detail = f"purpose {purpose}: the jobs need a service credential (purpose SERVICE)"
            yield Row("service credential", name, Status.FAIL, detail, fixes.create_service_credential(name))
        else:
            yield Row("service credential", name, Status.OK, "exists, purpose SERVICE")
        yield self._privilege_row(
            "credential access",
            "credential",
            name,
            info.owner,
            "ACCESS",
            fixes.grant(["ACCESS"], "SERVICE CREDENTIAL", name, self.runner),
        )

    def check_external_location(self) -> Iterator[Row]:
        name = self.plan.landing_location
        try:
            info = self.location()
        except Exception as err:
            if is_not_found(err):
                fix = fixes.create_external_location(name, self.plan.storage_account)
                yield Row("external location", name, Status.FAIL, "does not exist", fix)
            else:
                yield Row("external location", name, Status.FAIL, describe(err))
            yield Row("location access", f"{self.runner} on {name}", Status.FAIL, "not checked: no location")
            return
        yield Row("external location", name, Status.OK, f"exists, {info.url}")
        fix = fixes.grant(["READ_FILES"], "EXTERNAL LOCATION", name, self.runner)
        yield self._privilege_row("location access", "external_location", name, info.owner, "READ_FILES", fix)

    def _privilege_row(self, check: str, securable: str, name: str, owner: str | None, needed: str, fix: str) -> Row:
        subject = f"{self.runner} on {name}"
        if self.owns(owner, self.runner):
            return Row(check, subject, Status.OK, f"owns it ({owner})")
        try:
            missing = self.missing_privileges(securable, name, self.runner, (needed,))
        except Exception as err:
            return Row(check, subject, Status.FAIL, f"cannot read its privileges: {describe(err)}", fix)
        if missing:
            return Row(check, subject, Status.FAIL, f"lacks {needed}", fix)
        return Row(check, subject, Status.OK, needed)

    def check_runtime(self) -> Iterator[Row]:
        wanted = self.plan.spark_version
        try:
            versions = self.w.clusters.spark_versions().versions or []
        except Exception as err:
            yield Row("runtime", wanted, Status.FAIL, describe(err))
            return
        names = {v.key: v.name for v in versions if v.key}
        if wanted in names:
            yield Row("runtime", wanted, Status.OK, f"offered: {names[wanted]}")
            return
        yield Row(
            "runtime",
            wanted,
            Status.FAIL,
            "not offered by this workspace",
            fixes.choose_runtime(wanted, similar(wanted, names)),
        )


def similar(wanted: str, offered: dict[str, str]) -> list[str]:
    """Offered keys of the same flavour (`-cpu-ml-scala2.13`), LTS first, newest first."""
    flavour = wanted.split("-", 1)[1] if "-" in wanted else ""

    def order(key: str) -> tuple[bool, list[int]]:
        return ("LTS" in offered[key], [int(n) for n in re.findall(r"\d+", key.split("-", 1)[0])])

    keys = [k for k in offered if flavour and k.endswith("-" + flavour)]
    return sorted(keys, key=order, reverse=True)[:5]


def not_checked(plan: Plan) -> list[Row]:
    """What could not be checked without an authenticated session: every other check."""
    subjects = [
        ("catalog", plan.catalog),
        ("catalog privileges", plan.catalog),
        *(("group", g) for g in plan.groups),
        ("secret scope", plan.secret_scope),
        ("service credential", plan.service_credential),
        ("external location", plan.landing_location),
        ("runtime", plan.spark_version),
    ]
    return [Row(check, subject, Status.FAIL, "not checked: not authenticated") for check, subject in subjects]


def workspace_client(timeout: float) -> Any:
    """A client from the standard environment; retries (429, 503, connection) capped at `timeout` s."""
    from databricks.sdk import WorkspaceClient
    from databricks.sdk.core import Config

    return WorkspaceClient(config=Config(retry_timeout_seconds=int(max(timeout, 1)), http_timeout_seconds=timeout))


def diagnose(bundle: Bundle, timeout: float = 60.0) -> tuple[list[Row], str]:
    """All rows for a target, and a one-line description of where and as whom they were checked."""
    host = os.environ.get("DATABRICKS_HOST") or "(no DATABRICKS_HOST)"
    try:
        w = workspace_client(timeout)
        host = w.config.host or host
        me = w.current_user.me()
    except Exception as err:  # no host, no credentials, 401, unreachable host
        rows = [
            Row(
                "authentication", host, Status.FAIL, f"cannot authenticate: {describe(err, debug=True)}", fixes.AUTH_ENV
            )
        ]
        return rows + not_checked(plan_for(bundle, UNKNOWN_USER)), f"target {bundle.target} on {host}"
    plan = plan_for(bundle, str(me.user_name))
    doctor = Doctor(w, plan, me)
    rows: list[Row] = []
    for check in doctor.checks():
        try:
            rows.extend(check())
        except Exception as err:  # an answer no check expected: still a row, never a traceback
            log.debug("check %s failed", check.__name__, exc_info=True)
            rows.append(Row(check.__name__.removeprefix("check_").replace("_", " "), "-", Status.FAIL, describe(err)))
    where = f"target {plan.target} on {host} as {me.user_name}; jobs run as {doctor.runner}"
    return rows, where


def run_doctor(target: str, variables: dict[str, str], timeout: float = 60.0, out: IO[str] | None = None) -> int:
    """Print the table; 0 when nothing FAILs, 1 otherwise. BundleError (a usage error) propagates."""
    out = out or sys.stdout
    bundle = load_target(target, variables)
    plan_for(bundle, UNKNOWN_USER)  # every variable the checks need resolves, before any network call
    rows, where = diagnose(bundle, timeout)
    out.write(f"refarch doctor: {where}\n\n")
    out.write(render(rows))
    return exit_code(rows)
