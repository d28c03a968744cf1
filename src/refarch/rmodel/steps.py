"""One function per Python notebook of the R model job, with its inputs as explicit arguments.

01_prepare and 03_evaluate bootstrap (parameters, settings), call these, and show what they return;
02_train is the R notebook between them, which reads the spec `prepare` writes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from refarch.rmodel.settings import Settings
from refarch.rmodel.spec import TrainSpec, new_spec, read_spec, write_spec

if TYPE_CHECKING:
    from refarch.rmodel.evaluate import Evaluation
    from refarch.runtime.config import Config


@dataclass(frozen=True)
class Prepared:
    spec: TrainSpec
    path: Path  # the spec file: the R notebook's `spec` widget

    def table(self) -> pd.DataFrame:
        """What the R notebook is asked to do, one row per setting."""
        rows = {
            "run folder": self.spec.folder,
            "inputs": ", ".join(c["name"] for c in self.spec.inputs),
            "target": self.spec.target,
            **{f"split.{k}": v for k, v in self.spec.split.model_dump().items()},
            **{f"ranger.{k}": v for k, v in self.spec.ranger.model_dump().items()},
        }
        return pd.DataFrame({"setting": list(rows), "value": [str(v) for v in rows.values()]})


def prepare(settings: Settings, *, data_path: str) -> Prepared:
    """01_prepare: a new run folder under settings.runs with the spec of the R training (data_path is checked)."""
    if data_path and not Path(data_path).is_file():
        raise FileNotFoundError(f"parameter 'data_path': no file at {data_path}")
    spec = new_spec(settings)
    return Prepared(spec, write_spec(spec))


def evaluate(settings: Settings, config: Config, *, spec: str, promote: bool) -> Evaluation:
    """03_evaluate: metrics of the R notebook's model on its held-out rows, registered, champion if it wins."""
    from refarch.rmodel.evaluate import evaluate_and_register

    return evaluate_and_register(read_spec(spec), settings, config, promote=promote)
