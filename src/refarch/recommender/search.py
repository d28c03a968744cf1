"""The ALS search: trials fitted on one part of the training data and scored on the rest (validation).

Two strategies, both chosen by `als.metric` at `als.k` on the validation split, never on test:
- a grid (`search: quick | full`): every combination of rank, regParam, alpha and weighting;
- adaptive (`search: adaptive`): Optuna's TPE sampler over the ranges of `als.adaptive`, each
  trial proposed from the results of those before it.
Trials run `als.parallel_trials` at a time, each in a driver thread that submits its own Spark
jobs: one ALS fit already uses the whole cluster, and concurrent fits fill the gaps between its
many short stages. Each weighting is computed once and shared by the trials that use it.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

import pandas as pd

from refarch.recommender.als import AlsParams, fit_prepared, prepare
from refarch.recommender.evaluate import ranking_metrics
from refarch.recommender.settings import AlsSettings
from refarch.recommender.topk import top_k_for_model

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

log = logging.getLogger(__name__)

OnTrial = Callable[[AlsParams, dict[str, float]], None]


def effective_search(conf: AlsSettings) -> AlsSettings:
    """The search to run: `conf` with the quick grid's non-null values applied when `search` is quick."""
    if conf.search != "quick":
        return conf
    return conf.model_copy(update={k: v for k, v in conf.quick.model_dump().items() if v is not None})


def grid(conf: AlsSettings) -> list[AlsParams]:
    """Every combination of rank, regParam, alpha and weighting (the last two in implicit mode only)."""
    alphas = conf.alphas if conf.implicit else [0.0]
    weightings = conf.weightings if conf.implicit else conf.weightings[:1]  # unused in explicit mode
    return [
        AlsParams.from_settings(conf, rank=r, reg_param=reg, alpha=a, max_iter=conf.max_iter, weighting=w)
        for r, reg, a, w in itertools.product(conf.ranks, conf.reg_params, alphas, weightings)
    ]


@dataclass
class SearchResult:
    """Every configuration tried with its validation metrics; `best` is the highest `metric`."""

    metric: str
    k: int
    strategy: str = "grid"
    trials: list[tuple[AlsParams, dict[str, float]]] = field(default_factory=list)

    @property
    def best(self) -> tuple[AlsParams, dict[str, float]]:
        if not self.trials:
            raise ValueError("no configuration was tried")
        return max(self.trials, key=lambda t: t[1][self.metric])

    def best_by_weighting(self) -> dict[str, tuple[AlsParams, dict[str, float]]]:
        """The best validation trial of each weighting tried."""
        out: dict[str, tuple[AlsParams, dict[str, float]]] = {}
        for params, metrics in self.trials:
            if params.weighting not in out or metrics[self.metric] > out[params.weighting][1][self.metric]:
                out[params.weighting] = (params, metrics)
        return out

    def table(self) -> pd.DataFrame:
        rows = [{**asdict(p), **m} for p, m in self.trials]
        return pd.DataFrame(rows).sort_values(self.metric, ascending=False, ignore_index=True)


class Validation:
    """The fit part and validation split, with each weighting of the fit part computed once (thread-safe)."""

    def __init__(self, fit_part: DataFrame, validation: DataFrame, k: int) -> None:
        self.fit_part, self.validation, self.k = fit_part, validation, k
        self._prepared: dict[tuple, DataFrame] = {}
        self._lock = threading.Lock()

    def prepared(self, params: AlsParams) -> DataFrame:
        from pyspark import StorageLevel

        key = (params.implicit, params.confidence, params.weighting, params.bm25_k1, params.bm25_b)
        with self._lock:
            if key not in self._prepared:
                self._prepared[key] = prepare(self.fit_part, params).persist(StorageLevel.MEMORY_AND_DISK)
            return self._prepared[key]

    def score(self, params: AlsParams) -> dict[str, float]:
        """Fit on the fit part, rank the validation users' unseen items, and score against validation."""
        started = time.perf_counter()
        model = fit_prepared(self.prepared(params), params)
        ranked = top_k_for_model(model, self.k, seen=self.fit_part, users=self.validation)
        row = ranking_metrics(ranked, self.validation, [self.k], users="test").loc[self.k].to_dict()
        row["fit_seconds"] = time.perf_counter() - started
        return row

    def close(self) -> None:
        for df in self._prepared.values():
            df.unpersist()
        self._prepared.clear()


def search(
    fit_part: DataFrame,
    validation: DataFrame,
    conf: AlsSettings,
    on_trial: OnTrial | None = None,
) -> SearchResult:
    """Run the search `conf.search` names (see `effective_search` for quick) and return every trial."""
    data = Validation(fit_part, validation, conf.k)
    try:
        if conf.search == "adaptive":
            return adaptive_search(data, conf, on_trial)
        return grid_search(data, grid(effective_search(conf)), conf.metric, conf.parallel_trials, on_trial)
    finally:
        data.close()


def grid_search(
    data: Validation,
    configurations: Sequence[AlsParams],
    metric: str,
    parallel: int,
    on_trial: OnTrial | None = None,
) -> SearchResult:
    """Score every configuration, `parallel` at a time; trials are listed in grid order."""
    result = SearchResult(metric=metric, k=data.k, strategy="grid")
    lock = threading.Lock()

    def run(params: AlsParams) -> dict[str, float]:
        row = data.score(params)
        log.info("trial %s: %s@%d = %.4f", params.label, metric, data.k, row[metric])
        if on_trial is not None:
            with lock:
                on_trial(params, row)
        return row

    with ThreadPoolExecutor(max_workers=max(1, parallel), thread_name_prefix="als-trial") as pool:
        rows = list(pool.map(run, configurations))
    result.trials = list(zip(configurations, rows, strict=True))
    return result


def adaptive_search(data: Validation, conf: AlsSettings, on_trial: OnTrial | None = None) -> SearchResult:
    """Optuna's TPE sampler over `conf.adaptive`, `conf.parallel_trials` trials at a time.

    With more than one trial at a time, which trials are proposed depends on the order in which
    they finish: the seed makes the first (random) trials repeatable, not the whole study.
    """
    import optuna  # imported here: only the adaptive search needs it, and it is slow to import

    space = conf.adaptive
    result = SearchResult(metric=conf.metric, k=data.k, strategy="adaptive")
    lock = threading.Lock()
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    def objective(trial: optuna.Trial) -> float:
        chosen = {
            "rank": trial.suggest_categorical("rank", space.ranks),
            "reg_param": trial.suggest_float("reg_param", space.reg_param.low, space.reg_param.high, log=True),
            "max_iter": trial.suggest_int("max_iter", int(space.max_iter.low), int(space.max_iter.high)),
        }
        if conf.implicit:
            chosen["alpha"] = trial.suggest_float("alpha", space.alpha.low, space.alpha.high, log=True)
            chosen["weighting"] = trial.suggest_categorical("weighting", space.weightings)
        else:
            chosen |= {"alpha": 0.0, "weighting": space.weightings[0]}
        params = AlsParams.from_settings(conf, **chosen)
        row = data.score(params)
        log.info("trial %d %s: %s@%d = %.4f", trial.number, params.label, conf.metric, data.k, row[conf.metric])
        with lock:
            result.trials.append((params, row))
            if on_trial is not None:
                on_trial(params, row)
        return row[conf.metric]

    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=conf.seed))
    study.optimize(objective, n_trials=space.trials, n_jobs=max(1, conf.parallel_trials))
    return result
