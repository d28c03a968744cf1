"""The recommender's parameters: each setting has one source (conf), job parameters override it by name."""

from __future__ import annotations

import pytest

from refarch.jobs.bundle import load_bundle
from refarch.jobs.notebook_exec import declaration_of
from refarch.recommender import params
from refarch.runtime.notebook import LocalRunContext, bootstrap, local_run
from refarch.runtime.params import ParameterError


def _boot(notebook, given):
    with local_run(LocalRunContext(parameters=given)):
        return bootstrap(notebook, start_spark=False)


def _job():
    job = load_bundle(target="local").job("recommender")
    declared = [
        declaration_of((job.folder / t["notebook_task"]["notebook_path"]).resolve())
        for t in job.spec["tasks"]
        if "notebook_task" in t
    ]
    return job.spec, declared


def test_every_job_parameter_is_declared_with_help_and_settings_default_to_the_conf():
    spec, declared = _job()
    for parameter in spec["parameters"]:
        found = [p for nb in declared for p in nb.params if p.name == parameter["name"]]
        assert found, f"job parameter {parameter['name']} is declared by no notebook of the job"
        assert all(p.help for p in found), parameter["name"]
        if any(p.setting for p in found):
            assert parameter["default"] == "", f"{parameter['name']}: the conf holds the default"
    names = {p["name"] for p in spec["parameters"]}
    assert {"dataset", "dataset_path", "n_users", "split_method", "split_ratio", "als_mode", "search", "k"} <= names


def test_k_comes_from_the_conf_and_a_job_value_overrides_it(settings):
    ctx = _boot(params.TOPK, {"k": ""})
    assert ctx.params.k == ctx.settings.topk.k == settings.topk.k == 10
    assert _boot(params.TOPK, {"k": "5"}).settings.topk.k == 5


def test_job_parameters_reach_the_settings():
    ctx = _boot(params.INGEST, {"dataset": "csv", "dataset_path": "/data/clicks.csv", "n_users": "50"})
    assert (ctx.settings.ingest.dataset, ctx.settings.ingest.generator.n_users) == ("csv", 50)
    split = _boot(params.SPLIT, {"split_method": "chronological", "split_ratio": "0.6"}).settings.split
    assert (split.method, split.ratio) == ("chronological", 0.6)
    als = _boot(params.TRAIN, {"als_mode": "explicit", "search": "full"}).settings.als
    assert (als.mode, als.implicit, als.search) == ("explicit", False, "full")
    assert _boot(params.TRAIN, {}).settings.als.search == "quick"  # conf/recommender.yml targets.local
    publish = _boot(params.PUBLISH, {"model_name": "mine", "alias": ""}).settings.publish
    assert (publish.model_name, publish.alias) == ("mine", "champion")


@pytest.mark.parametrize(
    ("notebook", "given", "message"),
    [
        (params.SPLIT, {"split_ratio": "1.5"}, r"parameter 'split_ratio' \(split.ratio\): Input should be less than 1"),
        (params.SPLIT, {"split_method": "by_luck"}, "parameter 'split_method': 'by_luck' is not one of random"),
        (params.TOPK, {"k": "0"}, r"parameter 'k' \(topk.k\): Input should be greater than or equal to 1"),
        (params.INGEST, {"n_users": "0"}, "parameter 'n_users': 0 is below the minimum 1"),
        (params.TOPK, {"users_table": "a;b"}, "parameter 'users_table': 'a;b' is not a table name"),
        (params.PUBLISH, {"model_name": "my model"}, r"parameter 'model_name' \(publish.model_name\)"),
    ],
)
def test_a_bad_value_names_its_parameter(notebook, given, message):
    with pytest.raises(ParameterError, match=message):
        _boot(notebook, given)
