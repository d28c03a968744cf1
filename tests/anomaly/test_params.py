"""The anomaly notebooks' parameters: each a job parameter with help; those with a setting override conf."""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path

import pytest

from refarch.anomaly import params, steps
from refarch.anomaly.settings import LandSettings
from refarch.datasets.download import DownloadError
from refarch.jobs.bundle import load_bundle
from refarch.jobs.notebook_exec import declaration_of
from refarch.runtime.notebook import LocalRunContext, bootstrap, local_run
from refarch.runtime.params import ParameterError

REPO = Path(__file__).resolve().parents[2]


def _boot(notebook, given: dict[str, str]):
    with local_run(LocalRunContext(parameters=given)):
        return bootstrap(notebook, start_spark=False)


@pytest.mark.parametrize("job", ["anomaly_training", "anomaly_scoring"])
def test_every_notebook_parameter_is_a_job_parameter_with_help(job: str):
    spec = load_bundle(target="local").jobs[job].spec
    job_params = {p["name"] for p in spec["parameters"]}
    declared = {}
    for task in spec["tasks"]:
        if "notebook_task" not in task:  # check_parameters: the wheel's entry point
            continue
        path = (REPO / "jobs" / task["notebook_task"]["notebook_path"]).resolve()
        for p in declaration_of(path).params:
            declared[p.name] = p
    assert set(declared) == job_params
    assert [name for name, p in declared.items() if not p.help] == []


def test_the_readings_source_says_what_it_takes():
    source = params.LAND.param("source")
    assert source.setting == "land.source"
    for words in ("generated", "none", "path", "http(s) URL", "TS, Device, Sensor (or Tag), Value"):
        assert words in source.help


def test_empty_values_are_the_conf_and_given_values_override_it(refarch_home):
    ctx = _boot(params.LAND, {"source": "", "devices": "", "hours": "", "seed": ""})
    g = ctx.settings.generator
    assert (ctx.settings.land.source, ctx.settings.land.sha256) == ("generated", None)
    assert (g.devices, g.sensors, g.seed, g.hours) == (10, 5, 42, 24)

    ctx = _boot(params.LAND, {"source": "/data/mine.csv", "sha256": "ab" * 32, "devices": "3", "hours": "2"})
    g = ctx.settings.generator
    assert ctx.settings.land == LandSettings(source="/data/mine.csv", sha256="ab" * 32)
    assert (g.devices, g.sensors, g.hours, g.step_seconds) == (3, 5, 2, 5)

    ctx = _boot(params.TRAIN, {"interval_seconds": "300", "algorithm": "iforest", "train_hours": "6"})
    s = ctx.settings
    assert (s.intervals.seconds, s.model.algorithm, s.windows.train_hours) == (300, "iforest", 6)


@pytest.mark.parametrize(
    ("notebook", "given", "message"),
    [
        (params.LAND, {"devices": "0"}, r"parameter 'devices' \(generator.devices\): .*greater than or equal to 1"),
        (params.LAND, {"sha256": "abc"}, r"parameter 'sha256' \(land.sha256\): String should match pattern"),
        (params.LAND, {"hours": "many"}, r"parameter 'hours': 'many' is not a valid int"),
        (params.TRAIN, {"interval_seconds": "7"}, r"parameter 'interval_seconds' .*must divide an hour"),
        (params.TRAIN, {"algorithm": "knn"}, r"parameter 'algorithm': 'knn' is not one of ocsvm, iforest"),
        (params.SCORE, {"window_hours": "0"}, r"parameter 'window_hours' \(windows.score_hours\)"),
    ],
)
def test_a_bad_value_names_its_parameter(refarch_home, notebook, given, message):
    with pytest.raises(ParameterError, match=message):
        _boot(notebook, given)


def test_a_users_readings_file_is_landed_and_its_checksum_checked(conf_settings, tables, config, azurite, tmp_path):
    path = tmp_path / "my readings.csv"
    path.write_text("Timestamp,Device,Tag,Value\n" + "".join(f"2026-01-01 00:00:0{i},D1,T1,{i}\n" for i in range(5)))
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    prefix = f"t{uuid.uuid4().hex[:8]}/raw"  # apart from the blobs the job tests ingest

    def with_source(sha256: str | None):
        return conf_settings.model_copy(
            update={
                "land": LandSettings(source=str(path), sha256=sha256),
                "blob": conf_settings.blob.model_copy(update={"raw_prefix": prefix}),
            }
        )

    landed = steps.land(tables, with_source(digest), config, start=None)
    assert (landed.readings, landed.blobs) == (5, [f"{prefix}/upload/my_readings.csv/part-00000.csv"])
    assert landed.labels.empty
    with pytest.raises(DownloadError, match="does not match the expected " + "0" * 64):
        steps.land(tables, with_source("0" * 64), config, start=None)


def test_land_with_source_none_touches_nothing(settings, tables, config):
    """prod's hourly scoring runs with source=none: its first task must not need Blob storage at all."""
    from refarch.runtime.config import BlobConf

    unreachable = config.model_copy(
        update={"target": config.target.model_copy(update={"blob": BlobConf(kind="account")})}
    )  # any Blob call would raise: no account URL
    none = settings.model_copy(update={"land": LandSettings(source="none", sha256=None)})
    landed = steps.land(tables, none, unreachable, start=None)
    assert (landed.readings, landed.blobs, len(landed.labels)) == (0, [], 0)
    assert not tables.exists(none.tables.labels)
