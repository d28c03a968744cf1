"""The FAQ job's parameters: declared with help, conf values through `setting=`, the user's own files."""

from __future__ import annotations

import gzip
import math
from pathlib import Path

import pytest
import yaml

from refarch.datasets.stackoverflow import RawFaqData
from refarch.faq import params, steps
from refarch.faq.prepare import prepare_faq
from refarch.faq.settings import Settings
from refarch.faq.tuning import grid
from refarch.runtime.config import load_config
from refarch.runtime.notebook import LocalRunContext, bootstrap, local_run

from .conftest import generate

REPO = Path(__file__).resolve().parents[2]
DECLARED = {p.name: p for nb in (params.PREPARE, params.TRAIN, params.ASK) for p in nb.params}


def _job_parameters() -> dict[str, str]:
    job = yaml.safe_load((REPO / "jobs" / "faq.job.yml").read_text())["resources"]["jobs"]["faq"]
    return {p["name"]: p["default"] for p in job["parameters"]}


def test_every_job_parameter_is_declared_with_help_and_settings_default_to_conf():
    job = _job_parameters()
    assert {"questions_path", "duplicates_path", "answers_path"} <= set(job)
    for name, default in job.items():
        assert name in DECLARED, f"job parameter {name} is declared by no faq notebook"
        assert DECLARED[name].help, f"{name}: no help"
        if DECLARED[name].setting is not None:
            assert default == "", f"{name} overrides {DECLARED[name].setting}: its job default must be '' (= conf)"
    assert {n: p.setting for n, p in DECLARED.items() if p.setting} == {
        "min_text": "min_text",
        "min_dupes": "min_dupes",
        "n_families": "generator.n_families",
        "seed": "generator.seed",
        "top_n": "top_n",
    }


def test_setting_parameters_take_the_conf_value_unless_given():
    conf = yaml.safe_load((REPO / "conf" / "faq.yml").read_text())
    with local_run(LocalRunContext(parameters={"min_text": "", "n_families": "14", "min_dupes": "5"})):
        ctx = bootstrap(params.PREPARE, start_spark=False)
    assert ctx.params.min_text == ctx.settings.min_text == conf["min_text"]
    assert ctx.params.min_dupes == ctx.settings.min_dupes == 5
    assert ctx.settings.generator.n_families == 14
    assert ctx.settings.generator.seed == conf["generator"]["seed"]


def test_a_value_the_settings_refuse_names_the_parameter():
    with local_run(LocalRunContext(parameters={"n_families": "1"})), pytest.raises(ValueError, match="'n_families'"):
        bootstrap(params.PREPARE, start_spark=False)


@pytest.mark.parametrize("target", ["local", "dev", "staging", "prod"])
def test_the_grid_of_every_target_is_a_list_of_trials(target):
    settings = load_config("faq", target, root=REPO).settings(Settings)
    trials = grid(settings.grid.model_dump())
    sizes = [len(v) for v in settings.grid.model_dump().values()]
    assert len(trials) == math.prod(sizes)
    if target == "local":  # conf/faq.yml targets.local: C 10 or 30, character n-grams on
        assert [(t.C, t.char_ngrams, t.word_ngrams) for t in trials] == [(10.0, True, 2), (30.0, True, 2)]


def _tsv_gz(path: Path, frame) -> str:
    with gzip.open(path, "wt", encoding="utf8") as fh:
        frame.to_csv(fh, sep="\t", header=False, index=False)
    return str(path)


def test_the_prepare_step_reads_the_users_own_files(tables, config, faq_settings, tmp_path):
    raw = generate(n_families=6, min_duplicates=5, max_duplicates=6, seed=8)
    settings = faq_settings(
        min_text=60, min_dupes=4, tables__originals="t_so_originals", tables__duplicates="t_so_duplicates"
    )
    result = steps.prepare(
        tables,
        settings,
        config,
        dataset="stackoverflow",
        questions_path=_tsv_gz(tmp_path / "q.tsv.gz", raw.questions),
        duplicates_path=_tsv_gz(tmp_path / "d.tsv.gz", raw.duplicates),
        answers_path=_tsv_gz(tmp_path / "a.tsv.gz", raw.answers),
    )
    expected = prepare_faq(
        RawFaqData(raw.questions, raw.duplicates, raw.answers), min_text=60, min_dupes=4, cleaning="reference"
    )
    assert result.raw.counts() == raw.counts()  # every row of the three files read back
    assert len(expected.originals) >= 3
    written = tables.read("t_so_originals").toPandas().sort_values("id")
    assert written["id"].tolist() == sorted(expected.originals["id"])
    assert tables.read("t_so_duplicates").count() == len(expected.duplicates)
