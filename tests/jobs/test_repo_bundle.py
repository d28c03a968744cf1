"""The repository's own bundle, resolved per target as the CLI would."""

import pytest

from refarch.jobs.bundle import BundleError, load_bundle

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
