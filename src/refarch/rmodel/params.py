"""The R model notebooks' parameters, one declaration per notebook (read by the notebooks and the job check).

Parameters declared with `setting=` take their default from conf/rmodel.yml and, when a value is
given, override that setting for the run; the job file leaves them empty (= the conf value).
`02_train` is an R notebook: it reads `spec` and `data_path` with `dbutils.widgets.get`, and this
declaration is what the job check (and tests/test_notebooks.py) hold those widgets to.
"""

from __future__ import annotations

from refarch.rmodel.settings import Settings
from refarch.runtime import Param, notebooks

notebook = notebooks("rmodel", Settings)

DATA_PATH = Param(
    "data_path",
    "",
    help="a CSV file of your own (on Databricks /Volumes/...) with a header row holding the input columns "
    "and the target declared in conf/rmodel.yml (factor values spelled as their levels); "
    "empty: ggplot2's diamonds (53,940 rows)",
)

SPEC = Param(
    "spec",
    help="path of the train spec JSON the prepare task wrote (in the job: its task value `spec`, "
    "passed as a base parameter)",
)

PREPARE = notebook(
    "01_prepare",
    [
        DATA_PATH,
        Param("num_trees", setting="ranger.num_trees", help="trees of the random forest"),
        Param("mtry", setting="ranger.mtry", help="inputs tried at each split"),
        Param("min_node_size", setting="ranger.min_node_size", help="fewest rows in a leaf"),
        Param("test_share", setting="split.test_share", help="share of the rows held out for evaluation"),
        Param("seed", setting="split.seed", help="seed of the held-out draw and of ranger"),
    ],
    start_spark=False,
    help="a run folder and its train spec (paths, columns, split, ranger arguments) for the R notebook",
)

TRAIN = notebook(
    "02_train",
    [SPEC, DATA_PATH],
    start_spark=False,
    language="r",
    help="R: read the data, hold out the test rows, fit ranger, saveRDS the model",
)

EVALUATE = notebook(
    "03_evaluate",
    [
        SPEC,
        Param("promote", True, help="move the alias champion to the new version when it beats the champion"),
    ],
    start_spark=False,
    help="RMSE, MAE and R² on the held-out rows, log to MLflow, register `rmodel@champion` if it wins",
)
