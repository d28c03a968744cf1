"""deploy/aks/gpu: manifests valid in strict mode, a GPU per pod on the GPU pool, pieces that agree with the app."""

from __future__ import annotations

import re

import pytest
import yaml
from aks import K8S_VERSION, AksFolder

FOLDER = AksFolder("gpu")
GPU = FOLDER.path
manifests, by_kind, container, serve_args = FOLDER.manifests, FOLDER.by_kind, FOLDER.container, FOLDER.serve_args


@pytest.mark.parametrize(("name", "doc"), manifests(), ids=lambda v: v if isinstance(v, str) else v["kind"])
def test_manifest_is_valid_in_strict_mode(name, doc):
    import kubernetes_validate

    kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_strict_validation_catches_a_misspelt_toleration():
    import kubernetes_validate
    from kubernetes_validate.utils import ValidationError

    doc = by_kind("Deployment")
    doc["spec"]["template"]["spec"]["toleration"] = doc["spec"]["template"]["spec"].pop("tolerations")
    with pytest.raises(ValidationError):
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_one_gpu_per_pod_on_the_gpu_pool():
    spec = by_kind("Deployment")["spec"]["template"]["spec"]
    resources = container()["resources"]
    assert str(resources["limits"]["nvidia.com/gpu"]) == "1"
    assert str(resources["requests"].get("nvidia.com/gpu", resources["limits"]["nvidia.com/gpu"])) == "1"
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(resources[kind])
    assert spec["nodeSelector"]["kubernetes.azure.com/accelerator"] == "nvidia"
    taints = {(t["key"], t.get("value"), t["effect"]) for t in spec["tolerations"]}
    assert ("sku", "gpu", "NoSchedule") in taints  # the taint AKS documents for GPU pools
    assert serve_args().workers == 1  # one process owns the GPU


def test_the_app_batches_and_accepts_an_image_at_its_size_limit():
    from refarch.images.model import MAX_BASE64_CHARS

    args = serve_args()
    assert (args.model, args.host, args.port) == ("/opt/refarch/model", "0.0.0.0", 8080)
    assert args.max_batch > 1 and 0 < args.max_wait_ms <= 20
    assert args.max_body_bytes >= MAX_BASE64_CHARS + 1024  # one image at the limit, base64, in its JSON
    ingress = by_kind("Ingress")["metadata"]["annotations"]["nginx.ingress.kubernetes.io/proxy-body-size"]
    assert int(ingress.removesuffix("m")) * 2**20 >= args.max_body_bytes
    cmd = yaml.safe_load(re.search(r"^CMD (\[.*\])$", (GPU / "Dockerfile").read_text(), re.M).group(1))
    assert cmd == container()["args"]  # `docker run` alone serves as the cluster does


def test_probes_secret_and_security():
    from refarch.serving.app import ROUTES

    c = container()
    assert c["readinessProbe"]["httpGet"]["path"] == "/ready" and c["livenessProbe"]["httpGet"]["path"] == "/health"
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert c[probe]["httpGet"]["path"] in ROUTES
    startup = c["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 120  # loading a ResNet-152 onto the GPU
    spec = by_kind("Deployment")["spec"]["template"]["spec"]
    secret = by_kind("Secret")
    env = {e["name"]: e.get("value") for e in c["env"]}
    mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
    volumes = {v["name"]: v for v in spec["volumes"]}
    (item,) = volumes["secrets"]["secret"]["items"]
    assert volumes["secrets"]["secret"]["secretName"] == secret["metadata"]["name"]
    assert item["key"] in secret["stringData"] and env["REFARCH_API_KEY_FILE"] == f"{mounts['secrets']}/{item['path']}"
    assert c["securityContext"]["readOnlyRootFilesystem"] is True and spec["securityContext"]["runAsNonRoot"] is True
    assert env["PROMETHEUS_MULTIPROC_DIR"].startswith(mounts["tmp"])


def test_service_hpa_pdb_and_ingress_point_at_the_deployment():
    deployment = by_kind("Deployment")
    name, labels = deployment["metadata"]["name"], deployment["spec"]["template"]["metadata"]["labels"]
    service = by_kind("Service")
    assert service["spec"]["selector"].items() <= labels.items()
    assert {p["targetPort"] for p in service["spec"]["ports"]} <= {p["name"] for p in container()["ports"]}
    hpa = by_kind("HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": name}
    assert hpa["spec"]["minReplicas"] >= 2
    assert by_kind("PodDisruptionBudget")["spec"]["selector"]["matchLabels"].items() <= labels.items()
    ingress = by_kind("Ingress")
    backends = {p["backend"]["service"]["name"] for r in ingress["spec"]["rules"] for p in r["http"]["paths"]}
    assert backends == {service["metadata"]["name"]}
    paths = {p["path"] for r in ingress["spec"]["rules"] for p in r["http"]["paths"]}
    assert "/invocations" in paths and "/metrics" not in paths


def test_the_image_runs_as_the_pods_user_and_installs_the_models_pins():
    text = (GPU / "Dockerfile").read_text()
    port = container()["ports"][0]["containerPort"]
    assert re.search(rf"^EXPOSE {port}$", text, re.M)
    user = re.findall(r"^USER (\S+)$", text, re.M)
    assert user and user[-1].split(":")[0] == str(
        by_kind("Deployment")["spec"]["template"]["spec"]["securityContext"]["runAsUser"]
    )
    assert "-c /opt/refarch/model/requirements.txt" in text  # torch at the version the model was logged with
    assert re.search(r"^FROM \S+ AS wheel$", text, re.M)
    ignored = (GPU / "Dockerfile.dockerignore").read_text()
    model_dir = re.search(r"^ARG MODEL_DIR=(\S+)$", text, re.M).group(1)
    assert f"!{model_dir}/" in ignored.splitlines()
