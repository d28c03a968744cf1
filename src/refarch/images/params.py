"""The image notebooks' parameters, one declaration per notebook (read by the notebooks and the job check).

Parameters declared with `setting=` take their default from conf/images.yml and, when a value is
given, override that setting for the run; the job file leaves them empty (= the conf value).
"""

from __future__ import annotations

import datetime as dt

from refarch.images.settings import Settings
from refarch.runtime import Param, notebooks

notebook = notebooks("images", Settings)

PROMOTE = Param("promote", True, help="move the alias champion to the new model version")

REGISTER = notebook(
    "01_register",
    [
        Param(
            "weights_path",
            "",
            help="file (on Databricks /Volumes/...) of torchvision's published ImageNet weights for the configured "
            "depth and weights, e.g. resnet152-f82ba261.pth, checked against the published checksum; empty: with "
            "pretrained, the cached copy under paths.weights_cache, else a download from torchvision's URL "
            "(checked); without pretrained, random weights",
        ),
        Param(
            "pretrained",
            setting="model.pretrained",
            help="true: torchvision's ImageNet weights (a given weights_path wins); false: random weights",
        ),
        Param("depth", setting="model.depth", help="ResNet depth: 18, 34, 50, 101 or 152"),
        Param(
            "weights",
            setting="model.weights",
            help="torchvision's weights of that depth: IMAGENET1K_V2 (50, 101, 152) or IMAGENET1K_V1 (every depth); "
            "they fix the preprocessing, the labels, the file and its checksum",
        ),
        PROMOTE,
    ],
    start_spark=False,
    help="build the ResNet with its ImageNet weights, register it as `image_classifier@champion`, ask it once",
)

SCORE = notebook(
    "02_score",
    [
        Param(
            "images_path",
            "",
            help="folder of image files to score, subfolders included (on Databricks a /Volumes/... path or an "
            "abfss://<container>@<account>.dfs.core.windows.net/... URL of an external location); empty: pictures "
            "generated from conf/images.yml `generator` under paths.generated",
        ),
        Param(
            "scoring_date",
            None,
            type=dt.date,
            help="the date partition this run writes (a re-run of a date replaces it), YYYY-MM-DD; empty: the day "
            "the task runs (UTC)",
        ),
    ],
    help="score every file of a folder with `image_classifier@champion`; predictions and quarantine by date",
)

FINETUNE = notebook(
    "03_finetune",
    [
        Param(
            "labelled_path",
            "",
            help="folder (on Databricks /Volumes/...) with one subfolder of images per class, named by the class; "
            "empty: pictures generated from conf/images.yml `finetune.generator`",
        ),
        Param("epochs", setting="finetune.epochs", help="training epochs of the new last layer"),
        PROMOTE,
    ],
    start_spark=False,
    help="train a new last layer on labelled images, register it as `<finetune.model_name>@champion` if it wins",
)
