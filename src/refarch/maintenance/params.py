"""The parameters of the maintenance notebooks: one declaration per notebook file.

Each notebook's first cell bootstraps with its object here, and the job check reads the
same objects, so a bad value is refused before the first task of a job starts. Parameters
with `setting=` take their default from conf/maintenance.yml and override it for one run.
"""

from __future__ import annotations

import datetime as dt

from refarch.maintenance.settings import Settings
from refarch.runtime import Param, TableParam, notebooks

notebook = notebooks("maintenance", Settings)

DATASETS = ("generated", "pdm100", "pdm1000")

# Where the five raw tables are: written by 01_ingest, read by 02_features and explore_raw_data.
TABLE_PREFIX = Param(
    "table_prefix",
    setting="table_prefix",
    help="raw tables <prefix>_telemetry, _errors, _maint, _machines, _failures; "
    "the prefix may name a schema (myschema.pdm); empty: conf/maintenance.yml",
)

INGEST = notebook(
    "01_ingest",
    [
        Param(
            "dataset",
            "generated",
            choices=DATASETS,
            help="generated: made-up machines over [start_date, to_date); "
            "pdm100 / pdm1000: the public Azure AI predictive-maintenance files (100 or 1000 machines)",
        ),
        Param(
            "source_dir",
            "",
            help="pdm100/pdm1000 only: a folder holding the five files as published "
            "(PdM_telemetry.csv, PdM_errors.csv, PdM_maint.csv, PdM_machines.csv, PdM_failures.csv; "
            "pdm1000 also telemetry.csv, ...); empty: download them once into the cache",
        ),
        Param("start_date", dt.date(2015, 1, 1), help="generated only: first day of telemetry"),
        Param("to_date", dt.date(2016, 1, 1), help="generated only: the day after the last day of telemetry"),
        Param("machines", setting="generator.machines", help="generated only: how many machines; empty: conf"),
        TABLE_PREFIX,
    ],
    start_spark=False,
)

DAYS = Param(
    "days",
    type=int,
    default=None,
    min=1,
    help="when given, the range is the `days` days before to_date (start_date is then ignored)",
)

FEATURES = notebook(
    "02_features",
    [
        Param("start_date", dt.date(2015, 1, 1), help="first day of feature rows"),
        Param("to_date", dt.date(2016, 1, 1), help="the day after the last day of feature rows"),
        DAYS,
        TableParam("features_table", "maintenance_features", help="where feature rows and labels go (replaced)"),
        TABLE_PREFIX,
    ],
    start_spark=False,
)

TRAIN = notebook(
    "03_train",
    [
        TableParam("features_table", "maintenance_features", help="feature rows with labels, from 02_features"),
        Param("split_date", dt.date(2015, 10, 1), help="train on rows before this day, test on the rows from it on"),
    ],
)

SCORE = notebook(
    "04_score",
    [
        Param("start_date", dt.date(2015, 12, 1), help="first day to score"),
        Param("to_date", dt.date(2016, 1, 1), help="the day after the last day to score"),
        DAYS,
        TableParam("features_table", "maintenance_scoring_features", help="feature rows to score, from 02_features"),
        TableParam("output_table", "maintenance_scores", help="scores by scoring_date; re-scored days are replaced"),
    ],
    start_spark=False,
)

EXPLORE_RAW_DATA = notebook(
    "explore_raw_data",
    [
        Param("machine_id", 1, min=1, help="the machine whose telemetry is plotted"),
        Param("month_start", dt.date(2015, 2, 1), help="first day of the plotted month"),
        TABLE_PREFIX,
    ],
)

EXPLORE_FEATURES = notebook(
    "explore_features",
    [TableParam("features_table", "maintenance_features", help="feature rows with labels, from 02_features")],
)

EXPLORE_MODEL = notebook(
    "explore_model",
    [Param("alias", "champion", pattern=r"[A-Za-z_][\w-]*", help="registry alias of the version to show")],
    start_spark=False,
)

EXPLORE_SCORING = notebook(
    "explore_scoring",
    [
        TableParam("features_table", "maintenance_scoring_features", help="the scored feature rows, with labels"),
        TableParam("output_table", "maintenance_scores", help="scores written by 04_score"),
        Param("machine_id", 1, min=1, help="the machine whose failure probability is plotted"),
    ],
)
