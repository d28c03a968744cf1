"""Bad rows are kept aside with a reason, counted, and fail a job only past a set share."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

    from refarch.runtime.tables import Tables

log = logging.getLogger(__name__)


class TooManyBadRows(RuntimeError):
    """The share of quarantined rows is above the configured limit."""


@dataclass(frozen=True)
class QualityReport:
    source: str
    good: int
    bad: int

    @property
    def bad_share(self) -> float:
        total = self.good + self.bad
        return self.bad / total if total else 0.0


def split_by_rules(df: DataFrame, rules: Mapping[str, Column]) -> tuple[DataFrame, DataFrame]:
    """Split rows into (good, bad); `rules` maps a reason to a condition true for bad rows.

    The first matching rule gives the reason; a condition that evaluates to null counts
    as not matching, so each rule must say what is bad explicitly (e.g. `isNull()`).
    """
    from pyspark.sql import functions as F

    reason = F.coalesce(*[F.when(F.coalesce(cond, F.lit(False)), F.lit(name)) for name, cond in rules.items()])
    tagged = df.withColumn("_refarch_reason", reason)
    good = tagged.filter(F.col("_refarch_reason").isNull()).drop("_refarch_reason")
    bad = tagged.filter(F.col("_refarch_reason").isNotNull()).withColumnRenamed("_refarch_reason", "reason")
    return good, bad


def quarantine(
    tables: Tables,
    bad: DataFrame,
    table: str,
    source: str,
    good_count: int,
    max_bad_share: float = 0.05,
) -> QualityReport:
    """Write bad rows (as strings, with reason and source) to `table`, log counts, enforce the limit."""
    from pyspark.sql import functions as F

    bad = bad.select(
        *[F.col(c).cast("string").alias(c) for c in bad.columns if c != "reason"],
        F.col("reason"),
        F.lit(source).alias("source"),
        F.current_timestamp().alias("quarantined_at"),
    ).cache()
    n_bad = bad.count()
    tables.write(bad, table)
    bad.unpersist()
    report = QualityReport(source=source, good=good_count, bad=n_bad)
    log.info("%s: %d good rows, %d quarantined in %s", source, good_count, n_bad, table)
    if report.bad_share > max_bad_share:
        raise TooManyBadRows(
            f"{source}: {n_bad} of {good_count + n_bad} rows ({report.bad_share:.1%}) are malformed, "
            f"above the limit of {max_bad_share:.1%}; see table '{table}'"
        )
    return report
