"""From the three raw files to the ranker's inputs: originals and their duplicates, cleaned and filtered.

Follows the reference's preparation step by step (so its 182 originals / 8,260 duplicates
can be reproduced on the real files) and records how many rows each step removed, so
nothing disappears without a count.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from refarch.datasets.stackoverflow import RawFaqData
from refarch.faq.settings import Cleaning
from refarch.faq.text import clean_text, clean_text_reference

log = logging.getLogger(__name__)

CLEANERS: dict[str, Callable[[str | None], str]] = {"strict": clean_text, "reference": clean_text_reference}


@dataclass
class PreparedFaq:
    """originals: id, answer_id, text, created; duplicates: id, answer_id, original_id, text, created."""

    originals: pd.DataFrame
    duplicates: pd.DataFrame
    steps: pd.DataFrame  # step, table, before, after, removed

    def pairs(self) -> pd.DataFrame:
        """Each kept duplicate beside its original: id, text, original_id, original_text."""
        originals = self.originals[["id", "text"]].rename(columns={"id": "original_id", "text": "original_text"})
        return self.duplicates.merge(originals, on="original_id")[["id", "text", "original_id", "original_text"]]


class _Steps:
    def __init__(self) -> None:
        self.rows: list[dict[str, object]] = []

    def record(self, step: str, table: str, before: pd.DataFrame, after: pd.DataFrame) -> pd.DataFrame:
        self.rows.append(
            {
                "step": step,
                "table": table,
                "before": len(before),
                "after": len(after),
                "removed": len(before) - len(after),
            }
        )
        return after

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows, columns=["step", "table", "before", "after", "removed"])


def prepare_faq(raw: RawFaqData, *, min_text: int, min_dupes: int, cleaning: Cleaning) -> PreparedFaq:
    """Clean, de-duplicate, link and filter; each step's removals are counted in `steps`.

    `min_text` is the minimum cleaned length of a question, `min_dupes` the minimum number of
    duplicates an original keeps (conf/faq.yml, overridden by the job parameters of those names).
    """
    if cleaning not in CLEANERS:
        raise ValueError(f"cleaning must be one of {sorted(CLEANERS)}, not '{cleaning}'")
    clean = CLEANERS[cleaning]
    steps = _Steps()
    q = raw.questions.assign(Text=raw.questions["Text0"].map(clean))
    d = raw.duplicates.assign(Text=raw.duplicates["Text0"].map(clean))
    a = raw.answers.assign(Text=raw.answers["Text0"].map(clean))

    q = steps.record("no text left after cleaning", "questions", q, q[q.Text.str.len() > 0])
    a = steps.record("no text left after cleaning", "answers", a, a[a.Text.str.len() > 0])
    d = steps.record("no text left after cleaning", "duplicates", d, d[d.Text.str.len() > 0])
    d = steps.record("duplicate is itself an original", "duplicates", d, d[~d.Id.isin(q.Id)])
    q = steps.record("repeated id", "questions", q, q[~q.Id.duplicated(keep="first")])
    d = steps.record("repeated id", "duplicates", d, d[~d.Id.duplicated(keep="first")])
    q = steps.record(
        "original without answer or duplicates", "questions", q, q[q.AnswerId.isin(a.Id) & q.AnswerId.isin(d.AnswerId)]
    )
    a = steps.record("answer to no kept original", "answers", a, a[a.Id.isin(q.AnswerId)])
    d = steps.record("duplicate of no kept original", "duplicates", d, d[d.AnswerId.isin(q.AnswerId)])
    q = steps.record(f"text shorter than {min_text}", "questions", q, q[q.Text.str.len() >= min_text])
    d = steps.record(f"text shorter than {min_text}", "duplicates", d, d[d.Text.str.len() >= min_text])
    q = steps.record("original without duplicates", "questions", q, q[q.AnswerId.isin(d.AnswerId)])
    d = steps.record("duplicate of a filtered-out original", "duplicates", d, d[d.AnswerId.isin(q.AnswerId)])
    counts = d.groupby("AnswerId")["AnswerId"].count()
    enough = counts.index[counts >= min_dupes]
    q = steps.record(f"fewer than {min_dupes} duplicates", "questions", q, q[q.AnswerId.isin(enough)])
    d = steps.record(f"fewer than {min_dupes} duplicates", "duplicates", d, d[d.AnswerId.isin(enough)])
    # the answer id is the class label: two originals sharing one would be indistinguishable
    q = steps.record("answer id shared with an earlier original", "questions", q, q[~q.AnswerId.duplicated()])

    originals = pd.DataFrame(
        {
            "id": q.Id.astype("int64"),
            "answer_id": q.AnswerId.astype("int64"),
            "text": q.Text,
            "created": q.CreationDate,
        }
    ).reset_index(drop=True)
    dupes = pd.DataFrame(
        {"id": d.Id.astype("int64"), "answer_id": d.AnswerId.astype("int64"), "text": d.Text, "created": d.CreationDate}
    )
    dupes = dupes.merge(originals[["answer_id", "id"]].rename(columns={"id": "original_id"}), on="answer_id")
    dupes = dupes[["id", "answer_id", "original_id", "text", "created"]].reset_index(drop=True)
    log.info(
        "prepared %d originals and %d duplicates (min_text=%d, min_dupes=%d)",
        len(originals),
        len(dupes),
        min_text,
        min_dupes,
    )
    return PreparedFaq(originals=originals, duplicates=dupes, steps=steps.frame())
