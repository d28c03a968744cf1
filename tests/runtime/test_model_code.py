"""Registered models carry refarch's code and pinned requirements, so they load where refarch is not installed."""

import textwrap
from pathlib import Path

import mlflow

from refarch.runtime.tracking import model_code_paths, pinned_requirements


def test_code_paths_copy_the_package_without_caches_or_the_schema():
    (folder,) = model_code_paths()
    copy = Path(folder)
    assert copy.name == "refarch" and (copy / "runtime" / "tracking.py").is_file()
    assert not list(copy.rglob("__pycache__")) and not (copy / "jobs" / "schema").exists()


def test_requirements_are_pinned_to_the_training_environment():
    import sklearn

    pins = pinned_requirements("scikit-learn")
    assert pins == [f"mlflow=={mlflow.__version__}", f"scikit-learn=={sklearn.__version__}"]


def test_a_model_whose_class_lives_in_refarch_predicts_without_refarch(tmp_path, python_without_refarch):
    """The pyfunc class is pickled from refarch; the copy under the model's code/ folder resolves it."""
    from refarch.runtime.params import Param

    class Doubler(mlflow.pyfunc.PythonModel):
        def predict(self, context, model_input, params=None):
            checked = Param("x", 0, min=0).parse(str(int(model_input["x"].iloc[0])))
            return [2 * checked]

    Doubler.__module__ = "refarch.runtime.params"  # a class that lives inside refarch
    import refarch.runtime.params as module

    module.Doubler = Doubler
    try:
        path = tmp_path / "model"
        mlflow.pyfunc.save_model(
            str(path), python_model=Doubler(), code_paths=model_code_paths(), pip_requirements=pinned_requirements()
        )
    finally:
        del module.Doubler
    script = textwrap.dedent(
        f"""
        import mlflow, pandas as pd
        model = mlflow.pyfunc.load_model({str(path)!r})
        print(model.predict(pd.DataFrame({{"x": [21]}})))
        """
    )
    line = python_without_refarch.last_line(script, cwd=tmp_path)
    assert line.endswith("[42]")
