"""The repository's own bundle, resolved per target as the CLI would."""

from pathlib import Path

import pytest

from refarch.jobs.bundle import BundleError, load_bundle

REPO = Path(__file__).resolve().parents[2]

SP = "6a1f0c1e-0000-4000-8000-00000000beef"
DEPLOY_VARS = {"deployer_sp": SP, "notification_email": "ml-oncall@contoso.com"}


def resolved(target: str):
    """The bundle as CI deploys it: staging and prod by the service principal, dev by a person."""
    if target == "local":
        return load_bundle(target="local")
    user = "jane.doe@contoso.com" if target == "dev" else SP
    return load_bundle(target=target, variables=None if target == "dev" else DEPLOY_VARS, user=user)


MAIN_JOBS = {"recommender", "maintenance_training", "maintenance_scoring", "anomaly_training", "anomaly_scoring", "faq"}


def test_every_main_job_is_in_the_bundle():
    assert set(resolved("local").jobs) >= MAIN_JOBS


@pytest.mark.parametrize(
    ("target", "status"), [("local", "PAUSED"), ("dev", "PAUSED"), ("staging", "PAUSED"), ("prod", "UNPAUSED")]
)
def test_schedules_run_only_in_prod(target, status):
    scheduled = {k: j.spec["schedule"] for k, j in resolved(target).jobs.items() if "schedule" in j.spec}
    assert {"maintenance_scoring", "anomaly_scoring"} <= set(scheduled)
    assert {s["pause_status"] for s in scheduled.values()} == {status}


def test_prod_scores_landed_readings_not_simulated_ones():
    def source(target: str) -> str:
        params = resolved(target).jobs["anomaly_scoring"].spec["parameters"]
        return next(p["default"] for p in params if p["name"] == "source")

    assert (source("local"), source("prod")) == ("generated", "none")


def test_job_clusters_carry_the_target_to_the_notebooks():
    for key, job in resolved("staging").jobs.items():
        for cluster in job.spec.get("job_clusters", []):
            env = cluster["new_cluster"]["spark_env_vars"]
            assert env["REFARCH_TARGET"] == "staging", key
            assert env["REFARCH_CATALOG"] == "refarch_staging", key


def test_unknown_target_is_named():
    with pytest.raises(BundleError, match="no target 'qa'"):
        load_bundle(target="qa")


def _upstream(tasks: dict[str, dict], key: str) -> set[str]:
    seen: set[str] = set()
    todo = [d["task_key"] for d in tasks[key].get("depends_on", []) or []]
    while todo:
        dep = todo.pop()
        if dep not in seen:
            seen.add(dep)
            todo.extend(d["task_key"] for d in tasks[dep].get("depends_on", []) or [])
    return seen


@pytest.mark.parametrize("target", ["dev", "prod"])
def test_every_job_checks_its_parameters_before_any_other_task(target):
    for key, job in resolved(target).jobs.items():
        tasks = {t["task_key"]: t for t in job.spec["tasks"]}
        check = tasks.get("check_parameters")
        assert check is not None, f"{key}: no check_parameters task"
        wheel = check["python_wheel_task"]
        assert (wheel["entry_point"], wheel["named_parameters"]) == ("refarch-check-parameters", {"job": key})
        assert "depends_on" not in check
        for name in tasks.keys() - {"check_parameters"}:
            assert "check_parameters" in _upstream(tasks, name), f"{key}.{name} can start before the check"


def test_job_clusters_read_the_real_schema_and_only_the_recommender_reads_redis_secrets():
    for key, job in resolved("dev").jobs.items():
        for cluster in job.spec.get("job_clusters", []):
            env = cluster["new_cluster"]["spark_env_vars"]
            assert env["REFARCH_SCHEMA"] == "dev_jane_doe_refarch", key
            assert env["REFARCH_USER"] == "jane_doe", key
            secrets = sorted(v for v in env.values() if "{{secrets/" in str(v))
            expected = ["{{secrets/refarch/redis-host}}", "{{secrets/refarch/redis-password}}"]
            assert secrets == (expected if key == "recommender" else []), key


def test_alerts_go_to_a_real_address_per_target():
    assert resolved("dev").variables["notification_email"] == "jane.doe@contoso.com"
    assert resolved("prod").variables["notification_email"] == "ml-oncall@contoso.com"
    with pytest.raises(BundleError, match="notification_email"):
        load_bundle(target="prod", variables={"deployer_sp": SP})


def test_the_daily_scoring_scores_the_day_its_trigger_ends():
    params = {p["name"]: p["default"] for p in resolved("prod").jobs["maintenance_scoring"].spec["parameters"]}
    assert (params["to_date"], params["days"]) == ("{{job.trigger.time.iso_date}}", "1")


def test_the_local_target_is_not_deployable():
    import yaml

    from refarch.jobs.bundle import LOCAL_TARGET

    assert LOCAL_TARGET not in yaml.safe_load((REPO / "databricks.yml").read_text())["targets"]
    assert load_bundle(target="local").workspace["root_path"] == str(REPO)
