"""The Stack Overflow duplicate-question files of the Azure FAQ-matching reference.

Three gzipped, header-less TSV files: original questions (Id, AnswerId, Text0, CreationDate),
duplicate questions (same columns; a duplicate points at its original through the
original's AnswerId) and answers (Id, Text0). Text0 is the post's HTML (title and body).
Lines with the wrong number of fields and rows with unusable ids or no text are kept
aside with a reason, never dropped silently.
"""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from refarch.datasets.download import RemoteFile, fetch

log = logging.getLogger(__name__)

BASE_URL = "https://bostondata.blob.core.windows.net/stackoverflow/"
# The reference publishes no checksums and the files cannot be fetched from this build
# machine, so they are not pinned (sha256=None) rather than guessed.
QUESTIONS = RemoteFile(BASE_URL + "orig-q.tsv.gz", sha256=None)
DUPLICATES = RemoteFile(BASE_URL + "dup-q.tsv.gz", sha256=None)
ANSWERS = RemoteFile(BASE_URL + "ans.tsv.gz", sha256=None)

POST_COLUMNS = ("Id", "AnswerId", "Text0", "CreationDate")
ANSWER_COLUMNS = ("Id", "Text0")
MALFORMED_COLUMNS = ("file", "Id", "AnswerId", "Text0", "CreationDate", "reason")


@dataclass
class RawFaqData:
    """The three files as string columns, plus the rows that could not be used (with a reason)."""

    questions: pd.DataFrame
    duplicates: pd.DataFrame
    answers: pd.DataFrame
    malformed: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=list(MALFORMED_COLUMNS)))

    def counts(self) -> dict[str, int]:
        return {
            "questions": len(self.questions),
            "duplicates": len(self.duplicates),
            "answers": len(self.answers),
            "malformed": len(self.malformed),
        }


def read_posts_tsv(path: Path | str, columns: tuple[str, ...], source: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Read one header-less TSV(.gz) file as strings; return (rows, malformed rows with reasons)."""
    bad_lines: list[list[str]] = []

    def keep_aside(line: list[str]) -> None:
        bad_lines.append(line)
        return None

    df = pd.read_csv(
        path,
        sep="\t",
        names=list(columns),
        header=None,
        dtype=str,
        keep_default_na=False,
        encoding="utf8",
        quoting=csv.QUOTE_MINIMAL,
        engine="python",
        on_bad_lines=keep_aside,
        compression="infer",
    )
    bad = pd.DataFrame(
        {
            "file": source,
            "Id": [line[0] if line else "" for line in bad_lines],
            "Text0": ["\t".join(line)[:2000] for line in bad_lines],
            "reason": [f"{len(line)} fields instead of {len(columns)}" for line in bad_lines],
        }
    )
    df, bad_values = split_malformed(df, source)
    malformed = pd.concat([bad, bad_values], ignore_index=True).reindex(columns=list(MALFORMED_COLUMNS))
    if len(malformed):
        log.warning("%s: %d malformed rows kept aside", source, len(malformed))
    return df, malformed.fillna("")


def split_malformed(df: pd.DataFrame, source: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(usable rows, malformed rows with a reason): ids must be integers, the text non-empty."""
    reason = pd.Series("", index=df.index)
    reason[df.isna().any(axis=1)] = "missing fields"  # short lines are padded with NaN by pandas
    df = df.fillna("")
    rules = [("Id", "id is not an integer")]
    if "AnswerId" in df:
        rules.append(("AnswerId", "answer id is not an integer"))
    for column, why in rules:
        bad = ~df[column].str.strip().str.fullmatch(r"\d+") & (reason == "")
        reason[bad] = why
    reason[(df["Text0"].str.strip() == "") & (reason == "")] = "text is empty"
    bad_rows = df[reason != ""].assign(file=source, reason=reason[reason != ""])
    bad_rows = bad_rows.reindex(columns=list(MALFORMED_COLUMNS)).fillna("")
    good = df[reason == ""].copy()
    good["Id"] = good["Id"].str.strip()
    if "AnswerId" in good:
        good["AnswerId"] = good["AnswerId"].str.strip()
    return good.reset_index(drop=True), bad_rows


def load_stackoverflow(
    cache_dir: Path,
    questions_path: Path | str | None = None,
    duplicates_path: Path | str | None = None,
    answers_path: Path | str | None = None,
) -> RawFaqData:
    """The reference's three files: the user's copies if given, else the cache, else a download."""
    parts = []
    for remote, given, columns, source in (
        (QUESTIONS, questions_path, POST_COLUMNS, "questions"),
        (DUPLICATES, duplicates_path, POST_COLUMNS, "duplicates"),
        (ANSWERS, answers_path, ANSWER_COLUMNS, "answers"),
    ):
        path = fetch(remote, cache_dir, local_path=given)
        parts.append(read_posts_tsv(path, columns, source))
    (questions, bad_q), (duplicates, bad_d), (answers, bad_a) = parts
    malformed = pd.concat([bad_q, bad_d, bad_a], ignore_index=True)
    raw = RawFaqData(questions, duplicates, answers, malformed)
    log.info("Stack Overflow files read: %s", raw.counts())
    return raw
