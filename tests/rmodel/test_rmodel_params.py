"""The job-level check covers the R notebook too; the train spec reaches it as a task value."""

from __future__ import annotations

import pytest

from refarch.jobs.bundle import load_bundle
from refarch.jobs.check import JobParameterError, check_job_parameters, describe_job_parameters, main
from refarch.jobs.runner import job_parameters
from refarch.rmodel import params

from .conftest import REPO


@pytest.fixture(scope="module")
def rmodel_job():
    bundle = load_bundle(REPO, "local")
    return bundle, bundle.job("rmodel")


def test_the_r_notebook_is_declared_with_its_file():
    assert params.TRAIN.language == "r" and params.TRAIN.path == "notebooks/rmodel/02_train.r"
    assert (REPO / params.TRAIN.path).is_file()
    assert [p.name for p in params.TRAIN.params] == ["spec", "data_path"]


def test_defaults_pass_although_the_spec_is_known_only_while_the_job_runs(rmodel_job, config):
    bundle, job = rmodel_job
    check_job_parameters(job, job_parameters(job.spec, {}), bundle.root, "local")  # no error: spec is deferred
    assert main(["--job=rmodel"]) == 0  # the first task on Databricks: no {{...}} resolved there either


def test_a_bad_value_is_named_with_the_tasks_that_take_it(rmodel_job, config):
    bundle, job = rmodel_job
    with pytest.raises(JobParameterError) as caught:
        check_job_parameters(job, job_parameters(job.spec, {"num_trees": "0", "promote": "maybe"}), bundle.root)
    message = str(caught.value)
    assert "parameter 'num_trees' (ranger.num_trees): Input should be greater than or equal to 1" in message
    assert "task prepare: notebooks/rmodel/01_prepare.ipynb" in message
    assert "parameter 'promote': 'maybe' is not a valid bool (task evaluate" in message


def test_job_list_shows_the_conf_defaults(rmodel_job, config):
    bundle, job = rmodel_job
    shown = {p.name: p for p in describe_job_parameters(job, bundle.root, "local")}
    assert shown["num_trees"].default == "(conf ranger.num_trees: 25)" and shown["num_trees"].kind == "int"
    assert shown["data_path"].tasks == ["prepare", "train"]  # the R notebook reads it too
    assert "ggplot2's diamonds" in shown["data_path"].help
