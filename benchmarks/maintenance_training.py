"""Time the local maintenance jobs and print the held-out quality of the trained model.

    .venv/bin/python benchmarks/maintenance_training.py [--machines 100] [--home /tmp/bench]

Runs `maintenance_training` (ingest -> features -> train) and `maintenance_scoring` on the
local target in a throw-away state folder, then prints seconds per task and the pooled
failure precision and recall on the held-out months (target: both >= 0.85, job < 240 s).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--machines", default="", help="generated machines (default: generator.machines in conf)")
    parser.add_argument("--home", default=None, help="state folder (default: a new temporary one)")
    parser.add_argument("--skip-scoring", action="store_true")
    args = parser.parse_args()
    os.environ["REFARCH_HOME"] = args.home or tempfile.mkdtemp(prefix="refarch-bench-")
    os.environ.setdefault("REFARCH_TARGET", "local")
    logging.basicConfig(level=logging.WARNING)

    import mlflow

    from refarch.jobs.runner import run_job
    from refarch.maintenance.settings import Settings
    from refarch.maintenance.steps import model_name
    from refarch.runtime.config import load_config

    config = load_config("maintenance")
    settings = config.settings(Settings, {"generator.machines": int(args.machines)} if args.machines else {})
    began = time.perf_counter()
    training = run_job("maintenance_training", {"machines": args.machines})
    lines = [f"state folder: {os.environ['REFARCH_HOME']}", f"machines: {settings.generator.machines}"]
    lines += [f"training task {t.task_key}: {t.status} in {t.seconds:.1f} s" for t in training.tasks]
    lines.append(f"training job: {time.perf_counter() - began:.1f} s")
    if not training.ok:
        print("\n".join([*lines, training.summary()]))  # a benchmark prints its figures
        return 1
    client = mlflow.MlflowClient()
    champion = client.get_model_version_by_alias(model_name(config, settings), "champion")
    metrics = client.get_run(champion.run_id).data.metrics
    for key in ("failure_precision", "failure_recall", "failure_f1", "accuracy"):
        lines.append(f"held-out {key}: {metrics[key]:.4f}")
    for comp in ("comp1", "comp2", "comp3", "comp4"):
        lines.append(
            f"held-out {comp}: precision {metrics[f'precision_{comp}']:.3f} recall {metrics[f'recall_{comp}']:.3f}"
        )
    if not args.skip_scoring:
        began = time.perf_counter()
        scoring = run_job("maintenance_scoring")
        lines += [f"scoring task {t.task_key}: {t.status} in {t.seconds:.1f} s" for t in scoring.tasks]
        lines.append(f"scoring job: {time.perf_counter() - began:.1f} s")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
