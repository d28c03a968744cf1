"""The R pyfunc: R's predictions through MLflow, its R packages listed, loadable without refarch installed."""

from __future__ import annotations

import textwrap
from pathlib import Path

import mlflow
import pytest

from refarch.rmodel.model import RModel, save_r_model
from refarch.serving.workers import cpu_count, default_workers


def test_the_logged_model_predicts_what_r_predicts(tiny_model, tiny_ranger):
    model = mlflow.pyfunc.load_model(tiny_model["uri"])
    test = tiny_ranger["test"]
    inputs = [c for c in test.columns if c not in ("price", "expected")]
    assert model.predict(test[inputs]) == pytest.approx(test["expected"].tolist(), rel=1e-12)
    python_model = model.unwrap_python_model()
    assert isinstance(python_model, RModel) and python_model.predict_in_threadpool is True
    assert set(python_model.input_model.model_json_schema()["properties"]) == set(inputs)
    with pytest.raises(Exception, match=r"column cut, row 2: 'Perfect'"):
        model.predict(test[inputs].head(3).assign(cut=["Ideal", "Good", "Perfect"]))


def test_the_model_lists_its_r_packages_and_says_it_embeds_r(tiny_model, tiny_ranger):
    local = Path(mlflow.artifacts.download_artifacts(tiny_model["uri"]))
    assert (local / "artifacts" / "r_packages.txt").read_text() == f"ranger=={tiny_ranger['ranger']}\n"
    info = mlflow.models.get_model_info(tiny_model["uri"])
    assert info.metadata == {
        "refarch_runtime": "r",
        "refarch_serve_workers": "per_core",
        "r_packages": {"ranger": tiny_ranger["ranger"]},
    }
    requirements = (local / "requirements.txt").read_text()
    assert "rpy2==" in requirements and "pydantic==" in requirements
    assert (local / "code" / "refarch" / "rmodel" / "embedded_r.py").is_file()


def test_one_worker_per_core_for_r_models_only(tiny_model, tracking):
    assert default_workers(tiny_model["registered"]) == cpu_count()

    class Plain(mlflow.pyfunc.PythonModel):
        def predict(self, context, model_input: list[str], params=None) -> list[str]:
            return model_input

    with mlflow.start_run():
        plain = mlflow.pyfunc.log_model(name="plain", python_model=Plain(), pip_requirements=["mlflow"]).model_uri
    assert default_workers(plain) == 1
    assert default_workers("models:/no_such_model@champion") == 1


def test_the_model_predicts_in_a_python_without_refarch(tmp_path, tiny_ranger, rmodel_settings, python_without_refarch):
    s = rmodel_settings
    path = save_r_model(
        tmp_path / "model",
        tiny_ranger["rds"],
        s.inputs,
        r_packages={"ranger": tiny_ranger["ranger"]},
        predict_args=s.serving.predict_args,
        max_combined_rows=s.serving.max_combined_rows,
        example=tiny_ranger["test"],
    )
    rows = tiny_ranger["test"].head(3)
    script = textwrap.dedent(
        f"""
        import json, mlflow, pandas as pd
        model = mlflow.pyfunc.load_model({str(path)!r})
        rows = pd.DataFrame({rows.drop(columns=["price", "expected"]).to_dict(orient="list")!r})
        print(json.dumps(list(model.predict(rows))))
        """
    )
    line = python_without_refarch.last_line(script, cwd=tmp_path)
    import json

    assert json.loads(line) == pytest.approx(rows["expected"].tolist(), rel=1e-12)
