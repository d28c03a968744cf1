"""The FAQ notebooks' parameters, one declaration per notebook (read by the notebooks and the job check).

Parameters declared with `setting=` take their default from conf/faq.yml and, when a value is
given, override that setting for the run; the job file leaves them empty (= the conf value).
"""

from __future__ import annotations

from refarch.faq.settings import DATASETS, Settings
from refarch.runtime import Param, notebooks

notebook = notebooks("faq", Settings)

DATASET = Param(
    "dataset",
    "generated",
    choices=DATASETS,
    help="generated: question families generated from conf/faq.yml `generator`; "
    "stackoverflow: the Azure reference's three Stack Overflow files",
)

_FALLBACK = "empty: the cached copy in the target's datasets folder (a volume on Databricks), else a download"

PREPARE = notebook(
    "01_prepare",
    [
        DATASET,
        Param(
            "questions_path",
            "",
            help="dataset=stackoverflow: file path (on Databricks /Volumes/...) of your orig-q.tsv.gz, the original "
            f"questions, gzipped TSV without header: Id, AnswerId, Text0 (HTML), CreationDate; {_FALLBACK}",
        ),
        Param(
            "duplicates_path",
            "",
            help="dataset=stackoverflow: file path (on Databricks /Volumes/...) of your dup-q.tsv.gz, the duplicate "
            "questions, gzipped TSV without header: Id, AnswerId (of their original), Text0 (HTML), CreationDate; "
            f"{_FALLBACK}",
        ),
        Param(
            "answers_path",
            "",
            help="dataset=stackoverflow: file path (on Databricks /Volumes/...) of your ans.tsv.gz, the answers, "
            f"gzipped TSV without header: Id, Text0 (HTML); {_FALLBACK}",
        ),
        Param("min_text", setting="min_text", help="minimum length of a cleaned question, in characters"),
        Param("min_dupes", setting="min_dupes", help="minimum number of duplicates an original must keep"),
        Param("n_families", setting="generator.n_families", help="dataset=generated: number of question families"),
        Param("seed", setting="generator.seed", help="dataset=generated: seed of the question generator"),
    ],
    help="raw questions (generated or the reference's files) -> quarantine, prepared originals and duplicates",
)

TRAIN = notebook(
    "02_train",
    [
        DATASET,
        Param("parallel_trials", True, help="run the hyperparameter trials as Spark tasks (false: one by one)"),
        Param("promote", True, help="move the alias champion to the new model version"),
    ],
    help="split, hyperparameter trials, refit, test metrics, register `faq@champion`",
)

ASK = notebook(
    "03_ask",
    [
        Param(
            "question",
            "How do I sort an array of numbers in JavaScript? sort() puts 10 before 9.",
            help="a question typed by a user",
        ),
        Param("top_n", setting="top_n", help="how many originals to return"),
    ],
    start_spark=False,
    help="ask `faq@champion` one question, as `refarch serve` would",
)
