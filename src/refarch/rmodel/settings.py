"""The R model pipeline's settings: the root model of the whole `conf/rmodel.yml` (after its `targets:` block).

No field has a default: each value lives once, in conf/rmodel.yml; job parameters declared with
`setting=` (refarch.rmodel.params) override some of them for one run. The input columns declared
here are the served model's contract: the request type is generated from them, and the R notebook
builds its factors from the same levels, so training and serving cannot disagree on a level's code.
Only pydantic is imported here.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from refarch.runtime import Strict

# An R column name a request can carry: letters, digits, `.` and `_`, not starting with a digit.
ColumnName = Annotated[str, Field(pattern=r"^[A-Za-z.][A-Za-z0-9._]*$", max_length=64)]
PredictArg = int | float | bool | str


class NumberColumn(Strict):
    """A double column (R `numeric`); requests outside [min, max] are rejected before R runs."""

    name: ColumnName
    type: Literal["number"]
    min: float
    max: float
    help: str

    @model_validator(mode="after")
    def _range(self) -> NumberColumn:
        if self.min > self.max:
            raise ValueError(f"column {self.name}: min {self.min} is above max {self.max}")
        return self


class IntegerColumn(Strict):
    """An integer column (R `integer`)."""

    name: ColumnName
    type: Literal["integer"]
    min: int
    max: int
    help: str

    @model_validator(mode="after")
    def _range(self) -> IntegerColumn:
        if self.min > self.max:
            raise ValueError(f"column {self.name}: min {self.min} is above max {self.max}")
        return self


class FactorColumn(Strict):
    """An R factor: the levels in their R order (an ordered factor's order is its meaning)."""

    name: ColumnName
    type: Literal["factor"]
    levels: list[Annotated[str, Field(min_length=1)]] = Field(min_length=1)
    ordered: bool
    help: str

    @model_validator(mode="after")
    def _unique(self) -> FactorColumn:
        if len(set(self.levels)) != len(self.levels):
            raise ValueError(f"column {self.name}: a level is listed twice")
        return self


Column = Annotated[NumberColumn | IntegerColumn | FactorColumn, Field(discriminator="type")]


class Split(Strict):
    """The held-out share the evaluate task measures on (drawn in R with `set.seed(seed)`)."""

    test_share: float = Field(gt=0, lt=1)
    seed: int = Field(ge=0)


class Ranger(Strict):
    """`ranger()` arguments of the R notebook."""

    num_trees: int = Field(ge=1, le=5_000)
    mtry: int = Field(ge=1)
    min_node_size: int = Field(ge=1)
    num_threads: int = Field(ge=0)  # ranger's own convention: 0 = every core


class Serving(Strict):
    """How the served model calls R."""

    # extra arguments of R's predict(model, newdata, ...): one thread per call, since
    # every worker process is already one R
    predict_args: dict[str, PredictArg]
    # rows of concurrent requests one R call may score together (requests waiting for R are combined)
    max_combined_rows: int = Field(ge=1, le=100_000)


class Settings(Strict):
    """conf/rmodel.yml."""

    model_name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    runs: str = Field(min_length=1)  # folder of the training runs: one sub-folder (model.rds, held-out rows) each
    inputs: list[Column] = Field(min_length=1)
    target: ColumnName
    r_packages: list[Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9.]*$")]] = Field(min_length=1)
    split: Split
    ranger: Ranger
    serving: Serving

    @model_validator(mode="after")
    def _columns(self) -> Settings:
        names = [c.name for c in self.inputs]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"inputs: {', '.join(twice)} declared twice")
        if self.target in names:
            raise ValueError(f"target {self.target} is also an input")
        if self.ranger.mtry > len(names):
            raise ValueError(f"ranger.mtry {self.ranger.mtry} is above the number of inputs ({len(names)})")
        return self

    def column(self, name: str) -> NumberColumn | IntegerColumn | FactorColumn:
        return next(c for c in self.inputs if c.name == name)
