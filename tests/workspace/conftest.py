"""A fake Databricks workspace: a stdlib HTTP server answering the REST endpoints `refarch doctor` calls.

Shapes follow the API reference: JSON bodies with the documented fields, errors as
`{"error_code": ..., "message": ...}` and SCIM errors in SCIM shape. The state is plain data that each
test edits before running the doctor; every request is recorded, and unknown endpoints answer 404
ENDPOINT_NOT_FOUND and are listed in `unknown` so a test can assert the doctor called nothing else.
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

SP = "5e0c1d2a-7b8f-4c3d-9e6a-1f2b3c4d5e6f"  # application id of the deploying service principal
ALICE = "alice@example.com"
TOKEN = "dapi-test-token"
SECRET_LEVELS = ("READ", "WRITE", "MANAGE")

SCIM_ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
SCIM_LIST = "urn:ietf:params:scim:api:messages:2.0:ListResponse"


def error(code: str, message: str) -> dict[str, Any]:
    return {"error_code": code, "message": message}


def scim_error(status: int, detail: str, scim_type: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"schemas": [SCIM_ERROR], "detail": detail, "status": str(status)}
    if scim_type:
        body["scimType"] = scim_type
    return body


@dataclass
class FakeWorkspace:
    """The workspace's state. `grants[(securable_type, name)][principal]` lists direct privileges;
    grants on ("metastore", "") are inherited by every catalog, as in Unity Catalog."""

    me: dict[str, Any]
    catalogs: dict[str, dict[str, Any]] = field(default_factory=dict)
    grants: dict[tuple[str, str], dict[str, list[str]]] = field(default_factory=dict)
    groups: list[dict[str, Any]] = field(default_factory=list)
    scopes: dict[str, dict[str, Any]] = field(default_factory=dict)
    credentials: dict[str, dict[str, Any]] = field(default_factory=dict)
    locations: dict[str, dict[str, Any]] = field(default_factory=dict)
    spark_versions: list[dict[str, str]] = field(default_factory=list)
    token: str = TOKEN
    effective_page_size: int = 0  # > 0: effective permissions come in pages of this many privileges
    forced: dict[str, tuple[int, dict[str, Any]]] = field(default_factory=dict)  # path -> (status, body)
    requests: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)

    # -- helpers for tests -----------------------------------------------------------------------

    def me_names(self) -> set[str]:
        return {self.me["userName"], *(g["display"] for g in self.me.get("groups", []))}

    def secret_level(self, scope: str) -> int:
        """The caller's strongest ACL level on a scope (-1 = none), through itself or its groups."""
        acls = self.scopes[scope].get("acls", {})
        levels = [SECRET_LEVELS.index(acls[p]) for p in self.me_names() if p in acls]
        return max(levels, default=-1)

    # -- the API -------------------------------------------------------------------------------

    def answer(self, method: str, path: str, query: dict[str, str], auth: str | None) -> tuple[int, Any]:
        self.requests.append(f"{method} {path}")
        if path == "/.well-known/databricks-config":  # SDK host-metadata probe: not a workspace API here
            return 404, error("NOT_FOUND", "Not Found")
        if auth != f"Bearer {self.token}":
            return 401, error("UNAUTHENTICATED", "Credential was not sent or was of an unsupported type for this API.")
        if path in self.forced:
            return self.forced[path]
        if method != "GET":
            return self._unknown(method, path)
        routes = [
            (r"/api/2\.0/preview/scim/v2/Me", self.get_me),
            (r"/api/2\.0/preview/scim/v2/Groups", self.list_groups),
            (r"/api/2\.1/unity-catalog/catalogs/(?P<name>[^/]+)", self.get_catalog),
            (r"/api/2\.1/unity-catalog/effective-permissions/(?P<kind>[^/]+)/(?P<name>[^/]+)", self.get_effective),
            (r"/api/2\.1/unity-catalog/credentials/(?P<name>[^/]+)", self.get_credential),
            (r"/api/2\.1/unity-catalog/external-locations/(?P<name>[^/]+)", self.get_location),
            (r"/api/2\.0/secrets/scopes/list", self.list_scopes),
            (r"/api/2\.0/secrets/list", self.list_secrets),
            (r"/api/2\.0/secrets/acls/get", self.get_acl),
            (r"/api/2\.1/clusters/spark-versions", self.list_spark_versions),
        ]
        for pattern, handler in routes:
            m = re.fullmatch(pattern, path)
            if m:
                return handler(query, **{k: unquote(v) for k, v in m.groupdict().items()})
        return self._unknown(method, path)

    def _unknown(self, method: str, path: str) -> tuple[int, Any]:
        self.unknown.append(f"{method} {path}")
        return 404, error("ENDPOINT_NOT_FOUND", f"No API found for '{method} {path}'")

    def get_me(self, query: dict[str, str]) -> tuple[int, Any]:
        return 200, {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "active": True, **self.me}

    def list_groups(self, query: dict[str, str]) -> tuple[int, Any]:
        wanted = query.get("filter", "")
        m = re.fullmatch(r'displayName eq "(.*)"', wanted)
        if wanted and not m:
            return 400, scim_error(400, f"Unsupported filter: {wanted}", "invalidFilter")
        found = [g for g in self.groups if not m or g["displayName"] == m.group(1)]
        start, count = int(query.get("startIndex", "1")), int(query.get("count", "10000"))
        page = found[start - 1 : start - 1 + count]  # past the end: an empty page, which ends the SDK's loop
        return 200, {
            "schemas": [SCIM_LIST],
            "totalResults": len(found),
            "startIndex": start,
            "itemsPerPage": len(page),
            "Resources": page,
        }

    def get_catalog(self, query: dict[str, str], name: str) -> tuple[int, Any]:
        if name not in self.catalogs:
            return 404, error("CATALOG_DOES_NOT_EXIST", f"Catalog '{name}' does not exist.")
        return 200, {
            "name": name,
            "full_name": name,
            "catalog_type": "MANAGED_CATALOG",
            "metastore_id": "11111111-2222-3333-4444-555555555555",
            "securable_type": "CATALOG",
            **self.catalogs[name],
        }

    def get_effective(self, query: dict[str, str], kind: str, name: str) -> tuple[int, Any]:
        kind = kind.lower()  # the reference writes `catalog`; SDKs before 0.56 sent `CATALOG`
        known = {"catalog": self.catalogs, "credential": self.credentials, "external_location": self.locations}
        if kind not in known:
            return 400, error("INVALID_PARAMETER_VALUE", f"Unsupported securable type {kind}")
        if name not in known[kind]:
            code = {"catalog": "CATALOG_DOES_NOT_EXIST", "external_location": "EXTERNAL_LOCATION_DOES_NOT_EXIST"}
            return 404, error(code.get(kind, "RESOURCE_DOES_NOT_EXIST"), f"{kind} '{name}' does not exist.")
        held: dict[str, list[dict[str, str]]] = {}
        for principal, privileges in self.grants.get((kind, name), {}).items():
            held.setdefault(principal, []).extend({"privilege": p} for p in privileges)
        if kind == "catalog":
            for principal, privileges in self.grants.get(("metastore", ""), {}).items():
                inherited = {"inherited_from_type": "METASTORE", "inherited_from_name": "metastore"}
                held.setdefault(principal, []).extend({"privilege": p, **inherited} for p in privileges)
        wanted = query.get("principal")
        flat = [(p, x) for p, privileges in held.items() if wanted is None or p == wanted for x in privileges]
        start, size = int(query.get("page_token") or 0), self.effective_page_size or len(flat) or 1
        page: dict[str, list[dict[str, str]]] = {}
        for p, x in flat[start : start + size]:
            page.setdefault(p, []).append(x)
        body: dict[str, Any] = {"privilege_assignments": [{"principal": p, "privileges": x} for p, x in page.items()]}
        if start + size < len(flat):
            body["next_page_token"] = str(start + size)
        return 200, body

    def get_credential(self, query: dict[str, str], name: str) -> tuple[int, Any]:
        if name not in self.credentials:
            return 404, error("RESOURCE_DOES_NOT_EXIST", f"Credential '{name}' does not exist.")
        return 200, {"name": name, "full_name": name, "read_only": False, **self.credentials[name]}

    def get_location(self, query: dict[str, str], name: str) -> tuple[int, Any]:
        if name not in self.locations:
            return 404, error("EXTERNAL_LOCATION_DOES_NOT_EXIST", f"External Location '{name}' does not exist.")
        return 200, {"name": name, "read_only": False, **self.locations[name]}

    def list_scopes(self, query: dict[str, str]) -> tuple[int, Any]:
        scopes = [
            {"name": n, **{k: v for k, v in s.items() if k not in ("keys", "acls")}} for n, s in self.scopes.items()
        ]
        return 200, ({"scopes": scopes} if scopes else {})  # no scopes: an empty object, as documented

    def list_secrets(self, query: dict[str, str]) -> tuple[int, Any]:
        scope = query.get("scope", "")
        if scope not in self.scopes:
            return 404, error("RESOURCE_DOES_NOT_EXIST", f"Scope {scope} does not exist!")
        if self.secret_level(scope) < SECRET_LEVELS.index("READ"):
            return 403, error(
                "PERMISSION_DENIED", f"User {self.me['userName']} does not have READ permission on scope {scope}"
            )
        keys = [{"key": k, "last_updated_timestamp": 1767225600000} for k in self.scopes[scope].get("keys", [])]
        return 200, ({"secrets": keys} if keys else {})

    def get_acl(self, query: dict[str, str]) -> tuple[int, Any]:
        scope, principal = query.get("scope", ""), query.get("principal", "")
        if scope not in self.scopes:
            return 404, error("RESOURCE_DOES_NOT_EXIST", f"Scope {scope} does not exist!")
        if self.secret_level(scope) < SECRET_LEVELS.index("MANAGE"):
            return 403, error(
                "PERMISSION_DENIED", f"User {self.me['userName']} does not have MANAGE permission on scope {scope}"
            )
        acls = self.scopes[scope].get("acls", {})
        if principal not in acls:
            return 404, error(
                "RESOURCE_DOES_NOT_EXIST", f"Failed to get secret acl for principal {principal} and scope {scope}."
            )
        return 200, {"principal": principal, "permission": acls[principal]}

    def list_spark_versions(self, query: dict[str, str]) -> tuple[int, Any]:
        return 200, {"versions": self.spark_versions}


def healthy(bundle_vars: dict[str, Any], me: str, display: str, deployer: str, runner: str) -> FakeWorkspace:
    """A workspace set up as docs/DEPLOYING.md says, for the names of one target."""
    catalog, scope = bundle_vars["catalog"], bundle_vars["secret_scope"]
    credential, location = bundle_vars["storage_credential"], bundle_vars["landing_location"]
    group = bundle_vars["data_scientists"]
    return FakeWorkspace(
        me={
            "id": "4242",
            "userName": me,
            "displayName": display,
            "groups": [{"display": "deployers", "value": "77", "$ref": "Groups/77", "type": "direct"}],
        },
        catalogs={catalog: {"owner": "metastore-admins"}},
        grants={
            ("catalog", catalog): {deployer: ["USE_CATALOG", "CREATE_SCHEMA"], group: ["USE_CATALOG"]},
            ("credential", credential): {runner: ["ACCESS"]},
            ("external_location", location): {runner: ["READ_FILES"]},
        },
        groups=[
            {"id": "88", "displayName": group, "meta": {"resourceType": "Group"}},
            {"id": "77", "displayName": "deployers", "meta": {"resourceType": "Group"}},
        ],
        scopes={
            scope: {
                "backend_type": "DATABRICKS",
                "keys": ["redis-host", "redis-password"],
                "acls": {"admins": "MANAGE", runner: "READ"},
            }
        },
        credentials={
            credential: {
                "purpose": "SERVICE",
                "owner": "metastore-admins",
                "azure_managed_identity": {
                    "access_connector_id": "/subscriptions/0000/resourceGroups/rg/providers/"
                    "Microsoft.Databricks/accessConnectors/refarch",
                    "credential_id": "cred-1",
                },
            }
        },
        locations={
            location: {
                "url": f"abfss://readings@{bundle_vars['storage_account']}.dfs.core.windows.net/raw",
                "credential_name": "refarch-adls",
                "owner": "metastore-admins",
            }
        },
        spark_versions=[
            {"key": "16.4.x-cpu-ml-scala2.12", "name": "16.4 LTS ML (includes Apache Spark 3.5.2, Scala 2.12)"},
            {"key": "17.3.x-cpu-ml-scala2.13", "name": "17.3 LTS ML (includes Apache Spark 4.0.0, Scala 2.13)"},
            {"key": "17.3.x-scala2.13", "name": "17.3 LTS (includes Apache Spark 4.0.0, Scala 2.13)"},
            {"key": "18.0.x-cpu-ml-scala2.13", "name": "18.0 ML (includes Apache Spark 4.1.0, Scala 2.13)"},
        ],
    )


def serve(fake: FakeWorkspace) -> tuple[ThreadingHTTPServer, threading.Thread]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self._reply()

        def do_POST(self) -> None:
            self._reply()

        def _reply(self) -> None:
            url = urlsplit(self.path)
            query = {k: v[-1] for k, v in parse_qs(url.query).items()}
            status, body = fake.answer(self.command, url.path, query, self.headers.get("Authorization"))
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:  # quiet test output
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    return server, thread


@pytest.fixture()
def sdk_env(monkeypatch: pytest.MonkeyPatch, tmp_path) -> pytest.MonkeyPatch:
    """Only what a test sets reaches the SDK: no profile file, no other credentials, no BUNDLE_VAR_*."""
    for name in list(os.environ):
        if name.startswith(("DATABRICKS_", "ARM_", "AZURE_", "BUNDLE_VAR_", "GOOGLE_")):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATABRICKS_CONFIG_FILE", str(tmp_path / "no-databrickscfg"))
    monkeypatch.setenv("HOME", str(tmp_path))
    return monkeypatch


@pytest.fixture()
def start_workspace(sdk_env: pytest.MonkeyPatch) -> Iterator[Any]:
    """`start_workspace(fake)` serves it and points DATABRICKS_HOST/TOKEN at it; stopped after the test."""
    servers: list[ThreadingHTTPServer] = []

    def start(fake: FakeWorkspace) -> FakeWorkspace:
        server, _ = serve(fake)
        servers.append(server)
        sdk_env.setenv("DATABRICKS_HOST", f"http://127.0.0.1:{server.server_address[1]}")
        sdk_env.setenv("DATABRICKS_TOKEN", TOKEN)
        return fake

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()
