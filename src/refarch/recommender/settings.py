"""The settings of conf/recommender.yml (after its `targets:` block is merged for the target).

Every value lives once, in conf/recommender.yml; these models say what each key may hold and
have no defaults. Job parameters that override a setting for one run are declared in
`refarch.recommender.params` with `setting=`.
"""

from __future__ import annotations

from typing import Literal, get_args

from pydantic import Field, model_validator

from refarch.recommender.weighting import Weighting
from refarch.runtime import Strict

Dataset = Literal["generated", "movielens-100k", "movielens-1m", "movielens-10m", "movielens-20m", "csv", "table"]
SOURCES: tuple[str, ...] = get_args(Dataset)
SplitMethod = Literal["random", "chronological", "stratified"]
SPLIT_METHODS: tuple[str, ...] = get_args(SplitMethod)
AlsMode = Literal["implicit", "explicit"]
ALS_MODES: tuple[str, ...] = get_args(AlsMode)
SearchSize = Literal["quick", "full", "adaptive"]
SEARCH_SIZES: tuple[str, ...] = get_args(SearchSize)
Confidence = Literal["rating", "binary"]
RankingMetric = Literal["ndcg", "precision", "recall", "map", "hit_rate"]

MODEL_NAME = r"^[A-Za-z_]\w*$"


class GeneratorSettings(Strict):
    """`ingest.generator`: the size and shape of generated interactions (see InteractionSpec)."""

    n_users: int = Field(ge=1)
    items_per_user: float = Field(gt=0)  # items = round(items_per_user * n_users), at least 50
    mean_per_user: float = Field(gt=0)
    min_per_user: int = Field(ge=1)
    seed: int


class CsvSettings(Strict):
    """`ingest.csv`: the columns of an interactions file or table of your own."""

    separator: str = Field(min_length=1)
    header: bool
    user: str
    item: str
    rating: str | None  # None: every row weighs 1
    timestamp: str | None  # None: 0


class IngestSettings(Strict):
    """`ingest`: where interactions come from and which rows are good."""

    dataset: Dataset
    dataset_cache: str
    max_bad_share: float = Field(ge=0, le=1)
    rating_min: float
    rating_max: float
    generator: GeneratorSettings
    csv: CsvSettings


class SplitSettings(Strict):
    """`split`: train/test split of `ratings`."""

    method: SplitMethod
    ratio: float = Field(gt=0, lt=1)
    seed: int
    by: Literal["user_id", "item_id"]


class QuickGrid(Strict):
    """`als.quick`: the grid of `search: quick` (laptops, CI); null keeps the full search's value."""

    max_iter: int | None = Field(ge=1, le=100)
    ranks: list[int] | None = Field(min_length=1)
    reg_params: list[float] | None = Field(min_length=1)
    alphas: list[float] | None = Field(min_length=1)
    weightings: list[Weighting] | None = Field(min_length=1)


class Range(Strict):
    """A closed interval [low, high] of a searched parameter."""

    low: float = Field(ge=0)
    high: float = Field(ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> Range:
        if self.low > self.high:
            raise ValueError(f"low ({self.low}) is above high ({self.high})")
        return self


class AdaptiveSearch(Strict):
    """`als.adaptive`: the space Optuna's TPE sampler searches when `search` is adaptive."""

    trials: int = Field(ge=1, le=10_000)
    ranks: list[int] = Field(min_length=1)
    reg_param: Range  # sampled log-uniformly
    alpha: Range  # sampled log-uniformly
    max_iter: Range  # an integer, uniformly
    weightings: list[Weighting] = Field(min_length=1)

    @model_validator(mode="after")
    def _positive(self) -> AdaptiveSearch:
        for name in ("reg_param", "alpha", "max_iter"):
            if getattr(self, name).low <= 0:
                raise ValueError(f"{name}.low must be above 0 (sampled on a log scale or as iterations)")
        return self


class Bm25Settings(Strict):
    """`als.bm25`: the constants of the bm25 weighting (see refarch.recommender.weighting)."""

    k1: float = Field(gt=0)
    b: float = Field(ge=0, le=1)


class AlsSettings(Strict):
    """`als`: the ALS search, run on a validation split of the training data, and how to choose."""

    search: SearchSize
    parallel_trials: int = Field(ge=1, le=64)
    quick: QuickGrid
    adaptive: AdaptiveSearch
    mode: AlsMode
    confidence: Confidence
    bm25: Bm25Settings
    max_iter: int = Field(ge=1, le=100)
    ranks: list[int] = Field(min_length=1)
    reg_params: list[float] = Field(min_length=1)
    alphas: list[float] = Field(min_length=1)
    weightings: list[Weighting] = Field(min_length=1)
    metric: RankingMetric
    k: int = Field(ge=1, le=1000)
    validation_ratio: float = Field(gt=0, lt=1)
    blocks: int | None = Field(ge=1)  # ALS user and item blocks; None: Spark's default
    checkpoint_dir: str = Field(min_length=1)  # where ALS cuts its lineage every 10 iterations
    seed: int

    @property
    def implicit(self) -> bool:
        return self.mode == "implicit"


class RatingModelSettings(Strict):
    """`evaluate.rating_model`: the explicit ALS fitted for RMSE/MAE/R² (implicit scores are not ratings)."""

    enabled: bool
    reg_param: float = Field(ge=0)
    max_iter: int = Field(ge=1, le=100)


class EvaluateSettings(Strict):
    """`evaluate`: the k values of the test metrics, the rating model, and the weighting comparison."""

    ks: list[int] = Field(min_length=1)
    rating_model: RatingModelSettings
    by_weighting: bool  # refit the best validation trial of each weighting searched, and score it on test


class TopKSettings(Strict):
    """`topk`: the served lists."""

    k: int = Field(ge=1, le=1000)
    popular_n: int = Field(ge=1)


class PublishSettings(Strict):
    """`publish`: the pyfunc `refarch serve` loads, `models:/<model_name>@<alias>`."""

    model_name: str = Field(pattern=MODEL_NAME)
    alias: str = Field(pattern=r"^[A-Za-z_][\w-]*$")


class Settings(Strict):
    """The whole of conf/recommender.yml."""

    model_name: str = Field(pattern=MODEL_NAME)  # the ALS model train registers
    ingest: IngestSettings
    split: SplitSettings
    als: AlsSettings
    evaluate: EvaluateSettings
    topk: TopKSettings
    publish: PublishSettings
