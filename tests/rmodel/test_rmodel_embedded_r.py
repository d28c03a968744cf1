"""One embedded R per process: R's own predictions, requests combined while R is busy, failures kept apart."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from refarch.rmodel.columns import Columns
from refarch.rmodel.embedded_r import RError, RPredictor, embedded_r
from refarch.rmodel.settings import FactorColumn, NumberColumn

from .conftest import rscript


@pytest.fixture(scope="module")
def ranger_predictor(tiny_ranger, rmodel_settings) -> tuple[RPredictor, Columns]:
    columns = Columns(rmodel_settings.inputs)
    predictor = RPredictor(
        str(tiny_ranger["rds"]),
        kinds=columns.kinds,
        factors=columns.factors,
        packages=["ranger"],
        predict_args={"num.threads": 1},
        max_rows=1000,
    )
    return predictor, columns


def _picky(picky_rds, max_rows: int = 1000) -> tuple[RPredictor, Columns]:
    columns = Columns([NumberColumn(name="x", type="number", min=-10, max=100, help="")])
    predictor = RPredictor(
        str(picky_rds), kinds=columns.kinds, factors={}, packages=[], predict_args={}, max_rows=max_rows
    )
    return predictor, columns


def test_the_same_predictions_as_r_itself(ranger_predictor, tiny_ranger):
    predictor, columns = ranger_predictor
    test = tiny_ranger["test"]
    got = predictor.predict(columns.from_frame(test[columns.names]), len(test))
    assert got == pytest.approx(test["expected"].tolist(), rel=1e-12)
    assert predictor.package_versions == {"ranger": tiny_ranger["ranger"]}
    assert predictor.predict({name: [] for name in columns.names}, 0) == []


def test_any_r_model_with_a_predict_method(tmp_path):
    """A linear model (stats::predict.lm) on an ordered factor and a number, against R's own predict."""
    out = rscript(
        f"""
        d <- as.data.frame(ggplot2::diamonds)
        m <- lm(price ~ carat + cut, data = d)
        saveRDS(m, "{tmp_path}/lm.rds")
        p <- predict(m, data.frame(carat = c(0.5, 2), cut = factor(c("Fair", "Ideal"), levels = levels(d$cut),
            ordered = TRUE)))
        cat(sprintf("%.17g", p), sep = "\\n")
        """
    )
    expected = [float(v) for v in out.split()]
    columns = Columns(
        [
            NumberColumn(name="carat", type="number", min=0, max=6, help=""),
            FactorColumn(
                name="cut",
                type="factor",
                levels=["Fair", "Good", "Very Good", "Premium", "Ideal"],
                ordered=True,
                help="",
            ),
        ]
    )
    predictor = RPredictor(
        str(tmp_path / "lm.rds"),
        kinds=columns.kinds,
        factors=columns.factors,
        packages=[],
        predict_args={},
        max_rows=10,
    )
    rows = [{"carat": 0.5, "cut": "Fair"}, {"carat": 2, "cut": "Ideal"}]
    assert predictor.predict(columns.from_records(rows), 2) == pytest.approx(expected, rel=1e-12)


def _occupy_r(seconds: float) -> threading.Thread:
    """Keep the R thread busy, so that requests queue up behind it."""
    r = embedded_r()
    started = threading.Event()

    def busy() -> None:
        def run() -> None:
            started.set()
            r.ri.baseenv["Sys.sleep"](r.ri.FloatSexpVector([seconds]))

        r.call(run)

    thread = threading.Thread(target=busy)
    thread.start()
    assert started.wait(30)
    return thread


def test_requests_waiting_for_r_are_combined_into_one_call(picky_rds, embedded_picky):
    predictor, _ = _picky(picky_rds)
    busy = _occupy_r(1.0)
    with ThreadPoolExecutor(40) as pool:
        futures = [pool.submit(predictor.predict, {"x": [float(i), float(i) + 0.5]}, 2) for i in range(40)]
        results = [f.result(timeout=60) for f in futures]
    busy.join()
    assert results == [[2.0 * i, 2.0 * i + 1.0] for i in range(40)]  # each request gets its own rows back
    assert predictor.calls < 10, f"{predictor.calls} R calls for 40 requests waiting together"


def test_a_combined_call_that_fails_is_retried_one_by_one(picky_rds, embedded_picky):
    predictor, _ = _picky(picky_rds)
    busy = _occupy_r(1.0)
    with ThreadPoolExecutor(8) as pool:
        good = [pool.submit(predictor.predict, {"x": [float(i)]}, 1) for i in range(6)]
        bad = pool.submit(predictor.predict, {"x": [-3.0]}, 1)
        assert [f.result(timeout=60) for f in good] == [[2.0 * i] for i in range(6)]
        with pytest.raises(RError, match="negative x: -3"):
            bad.result(timeout=60)
    busy.join()
    assert predictor.calls >= 8  # one combined call that failed, then each request alone


def test_combined_calls_stop_at_max_rows(picky_rds, embedded_picky):
    predictor, _ = _picky(picky_rds, max_rows=4)
    busy = _occupy_r(1.0)
    with ThreadPoolExecutor(10) as pool:
        futures = [pool.submit(predictor.predict, {"x": [1.0, 2.0]}, 2) for _ in range(10)]
        assert all(f.result(timeout=60) == [2.0, 4.0] for f in futures)
    busy.join()
    assert predictor.calls >= 5  # 20 rows, at most 4 a call


def test_an_r_error_is_a_python_error_and_r_keeps_serving(picky_rds, embedded_picky):
    predictor, _ = _picky(picky_rds)
    with pytest.raises(RError, match="negative x"):
        predictor.predict({"x": [-1.0]}, 1)
    assert predictor.predict({"x": [4.0]}, 1) == [8.0]
    start = time.monotonic()
    with pytest.raises(RError, match=r"could not find|cannot open"):
        RPredictor("/no/such/model.rds", kinds={"x": "number"}, factors={}, packages=[], predict_args={}, max_rows=1)
    assert time.monotonic() - start < 30


def test_starting_r_leaves_the_library_path_of_later_programs_alone(tmp_path):
    """rpy2 prepends R's library folders to $LD_LIBRARY_PATH: a later Python would load the system's libpython."""
    import os
    import subprocess
    import sys

    embedded_r()
    assert "/usr/lib/R/lib" not in os.environ.get("LD_LIBRARY_PATH", "")
    child = subprocess.run([sys.executable, "-c", "import ssl; print('ok')"], capture_output=True, text=True)
    assert child.stdout.strip() == "ok", child.stderr[-2000:]
