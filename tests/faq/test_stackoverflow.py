import gzip
from pathlib import Path

import pandas as pd
import pytest

from refarch.datasets.download import DownloadError
from refarch.datasets.stackoverflow import (
    ANSWERS,
    DUPLICATES,
    QUESTIONS,
    RawFaqData,
    load_stackoverflow,
    read_posts_tsv,
)
from refarch.faq.prepare import prepare_faq

LONG = "<p>how do i sort an array of numbers in javascript without converting them to strings</p>"  # 80 chars clean


def _gz(path: Path, lines: list[str]) -> Path:
    with gzip.open(path, "wt", encoding="utf8") as fh:
        fh.write("\n".join(lines) + "\n")
    return path


def test_urls_are_the_reference_files():
    assert QUESTIONS.url.endswith("/stackoverflow/orig-q.tsv.gz")
    assert DUPLICATES.url.endswith("/stackoverflow/dup-q.tsv.gz")
    assert ANSWERS.url.endswith("/stackoverflow/ans.tsv.gz")


def test_bad_lines_and_bad_values_are_kept_aside_with_reasons(tmp_path):
    path = _gz(
        tmp_path / "q.tsv.gz",
        [
            f"1\t101\t{LONG}\t2015-01-01",
            "2\t102\ttoo\tmany\tfields",
            "abc\t103\t<p>x</p>\t2015-01-01",
            "4\t10x\t<p>x</p>\t2015-01-01",
            "5\t105\t \t2015-01-01",
            "6\t106",
        ],
    )
    good, bad = read_posts_tsv(path, ("Id", "AnswerId", "Text0", "CreationDate"), "questions")
    assert good["Id"].tolist() == ["1"]
    assert good.loc[0, "Text0"] == LONG
    reasons = dict(zip(bad["Id"], bad["reason"], strict=True))
    assert reasons == {
        "2": "5 fields instead of 4",
        "abc": "id is not an integer",
        "4": "answer id is not an integer",
        "5": "text is empty",
        "6": "missing fields",
    }
    assert set(bad["file"]) == {"questions"}


def test_loader_takes_the_users_files_and_the_cache(tmp_path):
    q = _gz(tmp_path / "orig.tsv.gz", [f"1\t101\t{LONG}\t2015-01-01"])
    d = _gz(tmp_path / "dup.tsv.gz", [f"11\t101\t{LONG}\t2016-01-01", f"12\t101\t{LONG}\t2016-02-01"])
    a = _gz(tmp_path / "ans.tsv.gz", ["101\t<p>use a compare function</p>"])
    raw = load_stackoverflow(tmp_path / "cache", questions_path=q, duplicates_path=d, answers_path=a)
    assert raw.counts() == {"questions": 1, "duplicates": 2, "answers": 1, "malformed": 0}

    cache = tmp_path / "cache2"
    cache.mkdir()
    for src, remote in ((q, QUESTIONS), (d, DUPLICATES), (a, ANSWERS)):
        (cache / remote.name).write_bytes(src.read_bytes())
    cached = load_stackoverflow(cache)
    assert cached.duplicates["Id"].tolist() == ["11", "12"]


def test_a_missing_user_file_is_a_clear_error(tmp_path):
    with pytest.raises(DownloadError, match="no such file"):
        load_stackoverflow(tmp_path, questions_path=tmp_path / "nope.tsv.gz")


def _frame(rows, columns=("Id", "AnswerId", "Text0", "CreationDate")):
    return pd.DataFrame(rows, columns=list(columns))


def test_preparation_follows_the_reference_steps_and_counts_every_removal():
    short = "<p>sort?</p>"
    questions = _frame(
        [
            ("1", "101", LONG, "2015"),  # kept: 3 duplicates
            ("1", "101", LONG, "2015"),  # repeated id
            ("2", "102", LONG, "2015"),  # only one duplicate: below min_dupes
            ("3", "103", LONG, "2015"),  # no answer
            ("4", "104", short, "2015"),  # too short
            ("5", "105", "<pre><code>x</code></pre>", "2015"),  # nothing left after cleaning
        ]
    )
    dupes = _frame(
        [
            ("11", "101", LONG, "2016"),
            ("12", "101", LONG.upper(), "2016"),
            ("13", "101", LONG, "2016"),
            ("14", "101", short, "2016"),  # too short
            ("2", "101", LONG, "2016"),  # is itself an original
            ("21", "102", LONG, "2016"),
            ("31", "103", LONG, "2016"),
            ("41", "104", LONG, "2016"),
            ("42", "104", LONG, "2016"),
            ("91", "999", LONG, "2016"),  # points at no original
        ]
    )
    answers = _frame([(a, "<p>answer</p>") for a in ("101", "102", "104", "105")], columns=("Id", "Text0"))
    prepared = prepare_faq(RawFaqData(questions, dupes, answers), min_text=40, min_dupes=2, cleaning="strict")

    assert prepared.originals.to_dict("records") == [{"id": 1, "answer_id": 101, "text": LONG[3:-4], "created": "2015"}]
    assert prepared.duplicates["id"].tolist() == [11, 12, 13]
    assert prepared.duplicates["original_id"].tolist() == [1, 1, 1]
    assert prepared.duplicates.loc[1, "text"] == LONG[3:-4]  # lower-cased
    steps = prepared.steps.set_index(["step", "table"])["removed"]
    assert steps[("no text left after cleaning", "questions")] == 1
    assert steps[("duplicate is itself an original", "duplicates")] == 1
    assert steps[("repeated id", "questions")] == 1
    assert steps[("original without answer or duplicates", "questions")] == 1  # id 3
    assert steps[("text shorter than 40", "questions")] == 1  # id 4
    assert steps[("text shorter than 40", "duplicates")] == 1  # id 14
    assert steps[("fewer than 2 duplicates", "questions")] == 1  # id 2
    # every input row is either kept or counted as removed by exactly one step
    per_table = prepared.steps.groupby("table")["removed"].sum()
    assert per_table["questions"] + len(prepared.originals) == len(questions)
    assert per_table["duplicates"] + len(prepared.duplicates) == len(dupes)


def test_unknown_cleaning_is_refused():
    raw = RawFaqData(_frame([]), _frame([]), _frame([], columns=("Id", "Text0")))
    with pytest.raises(ValueError, match="cleaning must be one of"):
        prepare_faq(raw, min_text=1, min_dupes=1, cleaning="fancy")
