"""The notebook steps and declarations: where raw files come from, settings a parameter overrides."""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict

import pandas as pd
import pytest

from refarch.datasets import maintenance as pdm
from refarch.maintenance import params, steps
from refarch.maintenance.settings import Settings
from refarch.runtime.config import ConfigError, load_config
from refarch.runtime.notebook import LocalRunContext, bootstrap, local_run
from refarch.runtime.params import ParameterError

from .conftest import SPEC

START, END = dt.date(2015, 1, 1), dt.date(2015, 1, 3)


@pytest.fixture(scope="module")
def maintenance(refarch_home):
    return load_config("maintenance")


def test_generated_files_follow_the_settings_and_are_made_once(maintenance):
    settings = maintenance.settings(Settings, {"generator.machines": 2})
    files = steps.raw_files(maintenance, settings, dataset="generated", source_dir="", start=START, end=END)
    assert {k: p.name for k, p in files.items()} == {k: f"PdM_{k}.csv" for k in pdm.KINDS}
    assert (
        files["machines"].parent
        == maintenance.home / "datasets" / "maintenance" / "generated-2m-2015-01-01-2015-01-03-s42"
    )
    assert pd.read_csv(files["machines"])["machineID"].tolist() == [1, 2]
    assert len(pd.read_csv(files["telemetry"])) == 2 * 2 * 24
    made = files["telemetry"].stat().st_mtime_ns
    again = steps.raw_files(maintenance, settings, dataset="generated", source_dir="", start=START, end=END)
    assert again == files and files["telemetry"].stat().st_mtime_ns == made
    with pytest.raises(ParameterError, match="parameter 'source_dir' only applies to the public datasets"):
        steps.raw_files(maintenance, settings, dataset="generated", source_dir="/data", start=START, end=END)


def test_a_users_folder_is_read_in_place_and_a_wrong_one_names_source_dir(maintenance, tmp_path):
    settings = maintenance.settings(Settings)
    folder = tmp_path / "mine"
    pdm.write_csv(pdm.generate(1, START, END, seed=1), folder)
    files = steps.raw_files(maintenance, settings, dataset="pdm100", source_dir=str(folder), start=START, end=END)
    assert files == {k: folder / f"PdM_{k}.csv" for k in pdm.KINDS}
    (folder / "PdM_maint.csv").unlink()
    with pytest.raises(ParameterError, match=r"parameter 'source_dir': .*no maint file \(looked for PdM_maint.csv"):
        steps.raw_files(maintenance, settings, dataset="pdm100", source_dir=str(folder), start=START, end=END)
    with pytest.raises(ParameterError, match=r"parameter 'source_dir': .*nowhere is not a folder"):
        steps.raw_files(
            maintenance, settings, dataset="pdm100", source_dir=str(tmp_path / "nowhere"), start=START, end=END
        )


def _boot(notebook, given: dict[str, str]):
    with local_run(LocalRunContext(parameters=given)):
        return bootstrap(notebook, start_spark=False)


def test_machines_and_table_prefix_default_to_the_conf_and_override_it(maintenance):
    conf = maintenance.settings(Settings)
    ctx = _boot(params.INGEST, {})
    assert (ctx.params.machines, ctx.params.table_prefix) == (conf.generator.machines, conf.table_prefix)
    assert ctx.settings == conf
    ctx = _boot(
        params.INGEST, {"dataset": "pdm100", "source_dir": "/data/pdm", "machines": "7", "table_prefix": "plant.pdm"}
    )
    assert (ctx.settings.generator.machines, ctx.settings.table_prefix) == (7, "plant.pdm")
    assert (ctx.params.dataset, ctx.params.source_dir) == ("pdm100", "/data/pdm")
    assert ctx.settings.features == conf.features


@pytest.mark.parametrize(
    ("notebook", "given", "message"),
    [
        (
            params.INGEST,
            {"machines": "0"},
            "parameter 'machines' (generator.machines): Input should be greater than or equal to 1",
        ),
        (params.INGEST, {"dataset": "pdm42"}, "parameter 'dataset': 'pdm42' is not one of generated, pdm100, pdm1000"),
        (
            params.FEATURES,
            {"table_prefix": "my pdm"},
            "parameter 'table_prefix' (table_prefix): String should match pattern",
        ),
        (
            params.SCORE,
            {"output_table": "scores; drop"},
            "parameter 'output_table': 'scores; drop' is not a table name",
        ),
        (params.EXPLORE_MODEL, {"alias": "champion!"}, "parameter 'alias': 'champion!' does not match"),
    ],
)
def test_bad_values_name_the_parameter(notebook, given, message):
    with pytest.raises(ParameterError) as err:
        _boot(notebook, given)
    assert message in str(err.value)


def test_windows_that_do_not_fit_the_step_fail_when_the_conf_loads(maintenance):
    with pytest.raises(ConfigError, match=r"conf/maintenance.yml.*features: .*short_hours \(4\) must be a multiple"):
        maintenance.settings(Settings, {"features.short_hours": 4})


def test_feature_profile_shows_every_label_and_the_conf_windows(spark, tables, maintenance, features_df):
    tables.write(features_df, "t_profile_features")
    settings = maintenance.settings(Settings, {f"features.{k}": v for k, v in asdict(SPEC).items()})
    profile = steps.feature_profile(tables, settings, table="t_profile_features")
    total = features_df.groupBy("label").count().toPandas().set_index("label")["count"]
    assert profile.by_label.loc["rows"].to_dict() == total.to_dict()
    assert profile.by_label.loc["volt_mean_3h", "comp2"] == pytest.approx(250.0)  # 170 + 40 * class index
    assert (profile.sample["label"] != "none").sum() == (features_df.where("label != 'none'").count())
    hours = settings.features.long_hours
    assert profile.columns[:4] == [
        f"volt_mean_{hours}h",
        f"rotate_mean_{hours}h",
        f"pressure_mean_{hours}h",
        f"vibration_mean_{hours}h",
    ]
    assert all(c in profile.sample.columns for c in profile.columns)
