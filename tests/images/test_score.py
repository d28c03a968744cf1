"""Batch scoring on Spark: every file scored or quarantined with its reason, by date; a re-run replaces its date."""

from __future__ import annotations

import base64
import datetime as dt
import shutil

import mlflow
import pandas as pd
import pytest

from refarch.images import steps
from refarch.images.generate import generate_images
from refarch.images.register import build_network, register_network
from refarch.images.score import classify_batches
from refarch.runtime.quality import TooManyBadRows

D1, D2 = dt.date(2026, 3, 1), dt.date(2026, 3, 2)


@pytest.fixture(scope="module")
def champion(images_settings, config, mlflow_tracking):
    settings = images_settings(model_name="images_score_test")
    network = build_network(settings, weights_path="")
    return register_network(network, settings, config, model_name=settings.model_name, promote=True)


@pytest.fixture()
def settings(images_settings, tmp_path, champion):
    name = tmp_path.name.replace("-", "_").lower()[-20:]
    return images_settings(
        model_name="images_score_test",
        tables__predictions=f"preds_{name}",
        tables__quarantine=f"quar_{name}",
        paths__staging=str(tmp_path / "staging"),
        scoring__batch_size=3,
        scoring__max_bad_share=0.5,
    )


def _by_date(tables, table, date):
    frame = tables.read(table).toPandas()
    return frame[frame["scoring_date"] == date]


@pytest.mark.slow
def test_every_file_is_scored_or_quarantined_and_a_rerun_replaces_only_its_date(
    spark, tables, config, settings, champion, tmp_path
):
    folder = tmp_path / "images"
    written = generate_images(folder, n_images=8, bad_files=3, seed=1)
    first = steps.score(tables, settings, config, images_path=str(folder), scoring_date=D1)
    assert (first.files, first.scored, first.quarantined) == (11, 8, 3)
    assert first.model.version == champion.version

    predictions = _by_date(tables, settings.tables.predictions, D1)
    assert len(predictions) == 8 and set(predictions["model_version"]) == {champion.version}
    model = mlflow.pyfunc.load_model(champion.uri)
    for row in predictions.itertuples():
        data = (folder / row.path.split(str(folder) + "/", 1)[1]).read_bytes()
        (expected,) = model.predict([{"image": base64.b64encode(data).decode(), "k": 5}])
        assert [c["index"] for c in row.top_k] == [c.index for c in expected.classes]
        assert (row.label, row.class_index) == (expected.classes[0].label, expected.classes[0].index)
        assert row.probability == pytest.approx(expected.classes[0].probability, rel=1e-5)

    quarantined = _by_date(tables, settings.tables.quarantine, D1)
    reasons = dict(zip(quarantined["path"].str.rsplit("/", n=1).str[-1], quarantined["reason"], strict=True))
    assert reasons == {"empty.jpg": "empty_file", "notes.txt": "not_an_image", "truncated.jpg": "corrupt_image"}
    assert set(quarantined["source"]) == {str(folder)}

    steps.score(tables, settings, config, images_path=str(folder), scoring_date=D2)
    for path in written[:3]:
        path.unlink()
    shutil.rmtree(folder / "bad")
    again = steps.score(tables, settings, config, images_path=str(folder), scoring_date=D1)
    assert (again.files, again.scored, again.quarantined) == (5, 5, 0)
    assert len(_by_date(tables, settings.tables.predictions, D1)) == 5
    assert len(_by_date(tables, settings.tables.quarantine, D1)) == 0  # the first run's bad files are gone too
    assert len(_by_date(tables, settings.tables.predictions, D2)) == 8  # the other date is untouched
    assert len(_by_date(tables, settings.tables.quarantine, D2)) == 3


@pytest.mark.slow
def test_too_many_bad_files_fail_the_run_after_quarantining_them(
    spark, tables, config, settings, images_settings, tmp_path
):
    strict = images_settings(**{**_overrides(settings), "scoring__max_bad_share": 0.1})
    folder = tmp_path / "mostly-bad"
    generate_images(folder, n_images=4, bad_files=3, seed=2)
    with pytest.raises(TooManyBadRows, match="3 of 7 files"):
        steps.score(tables, strict, config, images_path=str(folder), scoring_date=D1)
    assert len(_by_date(tables, strict.tables.quarantine, D1)) == 3
    assert not tables.exists(strict.tables.predictions)


def _overrides(settings) -> dict:
    return {
        "model_name": settings.model_name,
        "tables__predictions": settings.tables.predictions,
        "tables__quarantine": settings.tables.quarantine,
        "paths__staging": settings.paths.staging,
    }


def test_the_scoring_function_loads_the_model_once_per_worker(model_dir, monkeypatch):
    from refarch.images import score

    loads = []
    real = mlflow.pyfunc.load_model
    monkeypatch.setattr(mlflow.pyfunc, "load_model", lambda path: loads.append(path) or real(path))
    monkeypatch.setattr(score, "_LOADED", {})
    from .conftest import jpeg

    frame = pd.DataFrame(
        {
            "path": [f"file:/x/{i}.jpg" for i in range(5)],
            "modificationTime": pd.Timestamp("2026-03-01"),
            "length": 1,
            "content": [jpeg(seed=i) for i in range(4)] + [b"nope"],
        }
    )
    run = classify_batches(str(model_dir), top_k=2, batch_size=2, threads=1)
    first = list(run(iter([frame])))
    second = list(run(iter([frame.head(1)])))
    assert loads == [str(model_dir)]  # one load for both tasks
    assert [len(f) for f in first] == [2, 2, 1] and len(second) == 1
    out = pd.concat(first)
    assert out["error_reason"].tolist() == [None] * 4 + ["not_an_image"]
    assert all(len(t) == 2 for t in out["top_k"][:4]) and out["top_k"].iloc[4] is None
