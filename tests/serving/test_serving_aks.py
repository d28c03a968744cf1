"""deploy/aks: every manifest valid in strict mode, and the pieces agree with each other and the app."""

from __future__ import annotations

import re

import pytest
import yaml
from aks import K8S_VERSION, AksFolder

FOLDER = AksFolder()
AKS = FOLDER.path
manifests, by_kind = FOLDER.manifests, FOLDER.by_kind


@pytest.mark.parametrize(("name", "doc"), manifests(), ids=lambda v: v if isinstance(v, str) else v["kind"])
def test_manifest_is_valid_in_strict_mode(name, doc):
    import kubernetes_validate

    kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_strict_validation_catches_a_typo():
    import kubernetes_validate
    from kubernetes_validate.utils import ValidationError

    doc = by_kind("Deployment")
    doc["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = doc["spec"]["template"]["spec"]["containers"][
        0
    ].pop("readinessProbe")
    with pytest.raises(ValidationError):
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_all_kinds_are_there():
    kinds = {d["kind"] for _, d in manifests()}
    assert {"Deployment", "Service", "HorizontalPodAutoscaler", "Ingress", "Secret"} <= kinds


def test_deployment_probes_resources_and_secrets():
    from refarch.serving.app import ROUTES

    deployment = by_kind("Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert container[probe]["httpGet"]["path"] in ROUTES
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(container["resources"][kind])
    secret = by_kind("Secret")
    secret_keys = set(secret["stringData"])
    refs = [e["valueFrom"]["secretKeyRef"] for e in container["env"] if "valueFrom" in e]
    assert refs and all(r["name"] == secret["metadata"]["name"] and r["key"] in secret_keys for r in refs)
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["REFARCH_STORE_PASSWORD_ENV"] in env  # the password variable is really set
    mounted = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    mount_path = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    key_file = env["REFARCH_API_KEY_FILE"]
    (item,) = mounted["secrets"]["secret"]["items"]
    assert key_file == f"{mount_path['secrets']}/{item['path']}" and item["key"] in secret_keys
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert env["PROMETHEUS_MULTIPROC_DIR"].startswith(mount_path["tmp"])  # writable


def test_service_hpa_and_ingress_point_at_the_deployment():
    deployment = by_kind("Deployment")
    name = deployment["metadata"]["name"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    port_names = {p["name"] for p in container["ports"]}
    service = by_kind("Service")
    assert service["spec"]["selector"].items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
    assert {p["targetPort"] for p in service["spec"]["ports"]} <= port_names
    hpa = by_kind("HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": name}
    assert hpa["spec"]["minReplicas"] >= 2
    ingress = by_kind("Ingress")
    assert ingress["spec"]["tls"][0]["hosts"] == [r["host"] for r in ingress["spec"]["rules"]]
    backends = {p["backend"]["service"]["name"] for r in ingress["spec"]["rules"] for p in r["http"]["paths"]}
    assert backends == {service["metadata"]["name"]}
    paths = {p["path"] for r in ingress["spec"]["rules"] for p in r["http"]["paths"]}
    assert "/invocations" in paths and "/metrics" not in paths


def test_dockerfile_runs_refarch_serve_as_non_root_on_the_container_port():
    text = (AKS / "Dockerfile").read_text()
    deployment = by_kind("Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    port = container["ports"][0]["containerPort"]
    assert re.search(rf"^EXPOSE {port}$", text, re.M)
    entry = re.search(r"^ENTRYPOINT (\[.*\])$", text, re.M)
    assert entry and yaml.safe_load(entry.group(1))[:2] == ["refarch", "serve"]
    assert f'"--port", "{port}"' in entry.group(1) and '"0.0.0.0"' in entry.group(1)
    user = re.findall(r"^USER (\S+)$", text, re.M)
    assert user and user[-1].split(":")[0] == str(
        deployment["spec"]["template"]["spec"]["securityContext"]["runAsUser"]
    )
    assert re.search(r"^FROM \S+ AS wheel$", text, re.M)  # the wheel is built from src in the image build


def test_cli_accepts_the_deployment_arguments():
    args = FOLDER.serve_args()
    assert (args.model, args.host, args.port, args.workers) == ("/opt/refarch/model", "0.0.0.0", 8080, 2)


def _deployed_settings():
    """The ServeSettings the Deployment runs with: the image's entrypoint plus the container's args."""
    from refarch.serving.cli import settings_from_args

    return settings_from_args(FOLDER.serve_args())


def _nginx_size(value: str) -> int:
    units = {"k": 1024, "m": 1024**2, "g": 1024**3}
    return int(value[:-1]) * units[value[-1].lower()] if value[-1].lower() in units else int(value)


# ingress-nginx defaults the Ingress does not override (controller-wide settings)
NGINX_HEADER_BYTES = 1024 + 4 * 8192  # client_header_buffer_size + large_client_header_buffers
NGINX_UPSTREAM_KEEPALIVE_S = 60  # upstream-keepalive-timeout


def test_ingress_limits_match_the_app():
    settings = _deployed_settings()
    notes = by_kind("Ingress")["metadata"]["annotations"]
    nginx = {k.removeprefix("nginx.ingress.kubernetes.io/"): v for k, v in notes.items() if k.startswith("nginx.")}
    # the same body cap, and whole bodies buffered at the ingress: a slow body never reaches a worker
    assert _nginx_size(nginx["proxy-body-size"]) == settings.max_body_bytes
    assert _nginx_size(nginx["client-body-buffer-size"]) == settings.max_body_bytes
    assert nginx["proxy-request-buffering"] == "on"
    assert int(nginx["proxy-send-timeout"]) <= settings.limits.body_timeout_s
    # NGINX waits for an answer longer than a store call may take, and connects quickly
    assert settings.store.timeout_ms / 1000 < int(nginx["proxy-read-timeout"]) <= 10
    assert int(nginx["proxy-connect-timeout"]) <= 5
    # one client address cannot hold more connections than a worker accepts
    assert int(nginx["limit-connections"]) <= settings.limits.max_connections
    # what NGINX forwards fits the app's header cap; NGINX, not the app, closes idle pooled connections
    assert settings.limits.max_header_bytes > NGINX_HEADER_BYTES
    assert settings.limits.keep_alive_s > NGINX_UPSTREAM_KEEPALIVE_S


def test_probes_fit_the_app_timeouts():
    """/health never waits on the store and /ready within the store timeout: both well inside the probe timeouts."""
    settings = _deployed_settings()
    (container,) = by_kind("Deployment")["spec"]["template"]["spec"]["containers"]
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["timeoutSeconds"] >= 10 * settings.store.timeout_ms / 1000


def test_the_documented_entra_id_arguments_start_jwt_auth():
    """The README's Deployment arguments for Entra ID parse into complete, usable token settings."""
    from refarch.serving.cli import _check

    block = re.search(r"```yaml\n(\s*args:.*?)```", (AKS / "README.md").read_text(), re.S)
    assert block, "the Entra ID args block is gone from deploy/aks/README.md"
    documented = yaml.safe_load(block.group(1))["args"]
    settings = _check(FOLDER.serve_args(documented))
    assert settings.auth == "jwt" and settings.jwt.problems() == []
    assert settings.jwt.issuer == "https://login.microsoftonline.com/<tenant-id>/v2.0"
    assert settings.jwt.jwks_url == "https://login.microsoftonline.com/<tenant-id>/discovery/v2.0/keys"
    assert (settings.jwt.scope, settings.jwt.role) == ("Recommendations.Read", "Recommendations.Read.All")
