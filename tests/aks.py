"""A `deploy/aks` folder as its tests read it: the manifests, one of each kind, the container, and
the `refarch serve` arguments the image's entrypoint and the Deployment's args add up to."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import yaml

K8S_VERSION = "1.31.0"  # an AKS-supported minor; the schemas ship with kubernetes-validate
DEPLOY = Path(__file__).resolve().parents[1] / "deploy" / "aks"


class AksFolder:
    """`deploy/aks` (the Python API) or one of its variants (`gpu`, `rmodel`)."""

    def __init__(self, variant: str = "") -> None:
        self.path = DEPLOY / variant if variant else DEPLOY

    def manifests(self) -> list[tuple[str, dict]]:
        return [(p.name, d) for p in sorted(self.path.glob("*.yaml")) for d in yaml.safe_load_all(p.read_text()) if d]

    def by_kind(self, kind: str) -> dict:
        (doc,) = [d for _, d in self.manifests() if d["kind"] == kind]
        return doc

    def container(self) -> dict:
        (found,) = self.by_kind("Deployment")["spec"]["template"]["spec"]["containers"]
        return found

    def entrypoint(self) -> list[str]:
        found = re.search(r"^ENTRYPOINT (\[.*\])$", (self.path / "Dockerfile").read_text(), re.M)
        assert found, "no ENTRYPOINT in exec form"
        return yaml.safe_load(found.group(1))

    def serve_args(self, args: list[str] | None = None) -> argparse.Namespace:
        """`refarch serve`'s parsed arguments: the entrypoint's, then `args` (default: the Deployment's)."""
        from refarch.serving.cli import add_arguments

        entry = self.entrypoint()
        assert entry[:2] == ["refarch", "serve"]
        parser = argparse.ArgumentParser()
        add_arguments(parser)
        return parser.parse_args(entry[2:] + (self.container()["args"] if args is None else args))
