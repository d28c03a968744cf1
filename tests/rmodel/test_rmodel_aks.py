"""deploy/aks/rmodel: every manifest valid in strict mode, the pieces agree, the R package helper works."""

from __future__ import annotations

import re
import subprocess

import pytest
from aks import K8S_VERSION, AksFolder

FOLDER = AksFolder("rmodel")
AKS = FOLDER.path
manifests, by_kind, container, entrypoint = FOLDER.manifests, FOLDER.by_kind, FOLDER.container, FOLDER.entrypoint


@pytest.mark.parametrize(("name", "doc"), manifests(), ids=lambda v: v if isinstance(v, str) else v["kind"])
def test_manifest_is_valid_in_strict_mode(name, doc):
    import kubernetes_validate

    kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_all_kinds_are_there_and_named_apart_from_the_python_api():
    kinds = {d["kind"]: d["metadata"]["name"] for _, d in manifests()}
    assert set(kinds) == {
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "Ingress",
        "Secret",
        "PodDisruptionBudget",
    }
    assert set(kinds.values()) == {"refarch-rmodel"}


def test_probes_secret_and_a_writable_tmp_for_r():
    from refarch.serving.app import ROUTES

    c = container()
    assert c["readinessProbe"]["httpGet"]["path"] == "/ready" and c["livenessProbe"]["httpGet"]["path"] == "/health"
    assert all(c[p]["httpGet"]["path"] in ROUTES for p in ("readinessProbe", "livenessProbe", "startupProbe"))
    secret = by_kind("Secret")
    pod = by_kind("Deployment")["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
    env = {e["name"]: e.get("value") for e in c["env"]}
    (item,) = volumes["secrets"]["secret"]["items"]
    assert volumes["secrets"]["secret"]["secretName"] == secret["metadata"]["name"]
    assert item["key"] in secret["stringData"] and env["REFARCH_API_KEY_FILE"] == f"{mounts['secrets']}/{item['path']}"
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert "emptyDir" in volumes["tmp"]
    for variable in ("TMPDIR", "PROMETHEUS_MULTIPROC_DIR"):
        assert env[variable].startswith(mounts["tmp"])  # R and the metrics write there
    assert pod["securityContext"]["runAsUser"] == 10001 and pod["securityContext"]["runAsNonRoot"] is True


def test_one_worker_per_cpu_of_the_limit():
    c = container()
    args = FOLDER.serve_args()
    assert (args.model, args.host, args.port) == ("/opt/refarch/model", "0.0.0.0", c["ports"][0]["containerPort"])
    assert args.workers == int(c["resources"]["limits"]["cpu"]) == int(c["resources"]["requests"]["cpu"])


def test_service_hpa_pdb_and_ingress_point_at_the_deployment():
    deployment = by_kind("Deployment")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    service = by_kind("Service")
    assert service["spec"]["selector"].items() <= labels.items()
    assert {p["targetPort"] for p in service["spec"]["ports"]} <= {p["name"] for p in container()["ports"]}
    hpa = by_kind("HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "refarch-rmodel"}
    assert by_kind("PodDisruptionBudget")["spec"]["selector"]["matchLabels"].items() <= labels.items()
    ingress = by_kind("Ingress")
    paths = {p["path"] for r in ingress["spec"]["rules"] for p in r["http"]["paths"]}
    backends = {p["backend"]["service"]["name"] for r in ingress["spec"]["rules"] for p in r["http"]["paths"]}
    assert "/invocations" in paths and "/metrics" not in paths and backends == {"refarch-rmodel"}


def test_the_dockerfile_installs_r_the_model_packages_and_the_rmodel_extra():
    text = (AKS / "Dockerfile").read_text()
    assert entrypoint()[:2] == ["refarch", "serve"]
    assert re.search(rf"^EXPOSE {container()['ports'][0]['containerPort']}$", text, re.M)
    assert re.findall(r"^USER (\S+)$", text, re.M)[-1] == "10001:10001"
    assert re.search(r"^FROM \S+ AS wheel$", text, re.M)
    assert "r-base-core" in text and "$(r-packages debian /opt/refarch/model/artifacts/r_packages.txt)" in text
    assert "r-packages check /opt/refarch/model/artifacts/r_packages.txt" in text
    assert "[serving,rmodel]" in text
    ignore = (AKS / "Dockerfile.dockerignore").read_text().splitlines()
    copied = re.findall(r"^COPY (?:--\S+ )*(\S+) ", text, re.M)
    for source in copied:
        if not source.startswith("$") and source not in (".", "/wheels"):
            assert f"!{source.rstrip('/')}" in {line.rstrip("/") for line in ignore}, f"{source} is not sent"


def test_the_package_helper_maps_to_debian_and_checks_versions(tmp_path, tiny_ranger):
    helper = AKS / "r-packages.sh"
    listing = tmp_path / "r_packages.txt"
    listing.write_text(f"ranger=={tiny_ranger['ranger']}\ndata.table==1.14.8\n\n")
    debian = subprocess.run(["sh", str(helper), "debian", str(listing)], capture_output=True, text=True, check=True)
    assert debian.stdout.split() == ["r-cran-ranger", "r-cran-data.table"]
    listing.write_text(f"ranger=={tiny_ranger['ranger']}\n")
    assert subprocess.run(["sh", str(helper), "check", str(listing)], capture_output=True).returncode == 0
    listing.write_text("ranger==0.0.1\n")
    wrong = subprocess.run(["sh", str(helper), "check", str(listing)], capture_output=True, text=True)
    assert wrong.returncode == 1
    assert f"ranger: the model was fitted with 0.0.1, this image has {tiny_ranger['ranger']}" in wrong.stderr
