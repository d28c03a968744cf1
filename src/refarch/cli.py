"""The `refarch` command: run jobs locally, validate the bundle, check a workspace, serve a model."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence


def _job_run(args: argparse.Namespace) -> int:
    from refarch.jobs.runner import parse_params, run_job

    result = run_job(args.job, params=parse_params(args.param), target=args.target)
    sys.stdout.write(result.summary() + "\n")
    return 0 if result.ok else 1


def _job_list(args: argparse.Namespace) -> int:
    from refarch.jobs.bundle import load_bundle
    from refarch.jobs.check import describe_job_parameters

    bundle = load_bundle(target=args.target)
    for name, job in bundle.jobs.items():
        tasks = ", ".join(t["task_key"] for t in job.spec.get("tasks", []))
        sys.stdout.write(f"{name}\t{job.file.name}\t{tasks}\n")
        if args.params:
            rows = [
                (p.name, p.kind, p.default or '""', p.help)
                for p in describe_job_parameters(job, bundle.root, bundle.target)
            ]
            header = ("parameter", "type", "default", "help")
            widths = [max(len(r[i]) for r in [header, *rows]) for i in range(3)]
            for row in [header, *rows]:
                cells = [c.ljust(w) for c, w in zip(row[:3], widths, strict=True)]
                sys.stdout.write("  " + "  ".join([*cells, row[3]]).rstrip() + "\n")
    return 0


def _job_check(args: argparse.Namespace) -> int:
    from refarch.jobs.bundle import load_bundle
    from refarch.jobs.check import check_job_parameters
    from refarch.jobs.runner import dynamic_references, job_parameters, parse_params, resolve_dynamic

    bundle = load_bundle(target=args.target, strict=False)
    job = bundle.job(args.job)
    values = job_parameters(job.spec, parse_params(args.param))
    values = resolve_dynamic(values, dynamic_references(job, values, "check"))
    check_job_parameters(job, values, bundle.root, bundle.target)
    sys.stdout.write(f"job {job.key}: every parameter is valid for target {bundle.target}\n")
    return 0


def _bundle_validate(args: argparse.Namespace) -> int:
    from refarch.jobs.validate import validate_bundle

    problems = validate_bundle(args.root)
    for p in problems:
        sys.stderr.write(f"{p}\n")
    if problems:
        sys.stderr.write(f"bundle validate: {len(problems)} problem(s)\n")
        return 1
    sys.stdout.write("bundle validate: OK\n")
    return 0


def _doctor(args: argparse.Namespace) -> int:
    from refarch.jobs.runner import parse_params
    from refarch.workspace.doctor import run_doctor

    return run_doctor(args.target, parse_params(args.var, "--var"), timeout=args.timeout)


def _needs_serving_extra(missing: str | None) -> int:
    sys.stderr.write(f"refarch serve needs the serving extra ({missing} is missing): pip install 'refarch[serving]'\n")
    return 2


def _serve(args: argparse.Namespace) -> int:
    from refarch.serving.cli import run

    return run(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="refarch", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    job = sub.add_parser("job", help="run bundle jobs on this machine").add_subparsers(dest="action", required=True)
    run = job.add_parser("run", help="run jobs/<job>.job.yml locally")
    run.add_argument("job", help="job name (resources.jobs key) or file stem")
    run.add_argument("--param", action="append", default=[], metavar="NAME=VALUE", help="job parameter")
    run.add_argument("--target", default=None, help="bundle target (default $REFARCH_TARGET or local)")
    run.set_defaults(func=_job_run)
    ls = job.add_parser("list", help="list the bundle's jobs and their tasks")
    ls.add_argument("--target", default=None)
    ls.add_argument("--params", action="store_true", help="also each job parameter: type, default and help")
    ls.set_defaults(func=_job_list)
    check = job.add_parser("check", help="check a job's parameters against every notebook's declaration")
    check.add_argument("job", help="job name (resources.jobs key) or file stem")
    check.add_argument("--param", action="append", default=[], metavar="NAME=VALUE", help="job parameter")
    check.add_argument("--target", default=None, help="bundle target (default $REFARCH_TARGET or local)")
    check.set_defaults(func=_job_check)

    bundle = sub.add_parser("bundle", help="bundle checks").add_subparsers(dest="action", required=True)
    val = bundle.add_parser("validate", help="check databricks.yml and jobs/*.job.yml offline")
    val.add_argument("--root", default=None, help="bundle root (default: found from the working directory)")
    val.set_defaults(func=_bundle_validate)

    doctor = sub.add_parser("doctor", help="check a Databricks workspace before `databricks bundle deploy`")
    doctor.add_argument("--target", "-t", required=True, help="bundle target to check (dev, staging, prod)")
    doctor.add_argument("--var", action="append", default=[], metavar="NAME=VALUE", help="bundle variable")
    doctor.add_argument("--timeout", type=float, default=60.0, help="seconds to keep retrying a call (default 60)")
    doctor.set_defaults(func=_doctor)

    serve = sub.add_parser("serve", help="serve an MLflow pyfunc model over HTTP")
    try:
        from refarch.serving.cli import add_arguments
    except ImportError as err:  # the `serving` extra is not installed (a job cluster): the rest still works
        missing = err.name
        serve.set_defaults(func=lambda _: _needs_serving_extra(missing), takes_anything=True)
    else:
        add_arguments(serve)
        serve.set_defaults(func=_serve)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown and not getattr(args, "takes_anything", False):
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError, KeyError) as err:
        sys.stderr.write(f"refarch: {err}\n")
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
