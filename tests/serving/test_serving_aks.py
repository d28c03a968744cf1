"""deploy/aks: every manifest valid in strict mode, and the pieces agree with each other and the app."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

AKS = Path(__file__).resolve().parents[2] / "deploy" / "aks"
K8S_VERSION = "1.31.0"  # an AKS-supported minor; the schemas ship with kubernetes-validate


def manifests() -> list[tuple[str, dict]]:
    docs = []
    for path in sorted(AKS.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                docs.append((path.name, doc))
    return docs


def by_kind(kind: str) -> dict:
    (doc,) = [d for _, d in manifests() if d["kind"] == kind]
    return doc


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
    import argparse

    from refarch.serving.cli import add_arguments

    deployment = by_kind("Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    entry = yaml.safe_load(re.search(r"^ENTRYPOINT (\[.*\])$", (AKS / "Dockerfile").read_text(), re.M).group(1))
    args = parser.parse_args(entry[2:] + container["args"])
    assert (args.model, args.host, args.port, args.workers) == ("/opt/refarch/model", "0.0.0.0", 8080, 2)
