"""Declared parameters: table names, settings they override, declarations read without running."""

import datetime as dt
import json
import sys
import textwrap
import types
from pathlib import Path

import pytest

from refarch.jobs.notebook_exec import declaration_of
from refarch.runtime import Strict
from refarch.runtime.config import ConfigError
from refarch.runtime.notebook import LocalRunContext, bootstrap, local_run
from refarch.runtime.params import Notebook, Param, ParameterError, TableNameError, TableParam, notebooks


class Als(Strict):
    search: str
    ranks: list[int]
    reg: float


class DemoSettings(Strict):
    model_name: str
    als: Als


@pytest.fixture
def demo_root(tmp_path, monkeypatch, refarch_home):
    conf = tmp_path / "conf"
    conf.mkdir()
    (tmp_path / "databricks.yml").write_text("bundle: {name: demo}\n")
    (conf / "local.yml").write_text(
        "platform: local\npaths: {datasets: '{home}/d', checkpoints: '{home}/c', scratch: '{home}/t'}\n"
        "mlflow: {tracking_uri: 'sqlite:///{home}/m.db', registry_uri: 'sqlite:///{home}/m.db',"
        " experiment_prefix: ''}\n"
    )
    (conf / "demo.yml").write_text(
        "model_name: demo\nals:\n  search: full\n  ranks: [16, 32]\n  reg: 0.1\n"
        "targets:\n  local:\n    als:\n      search: quick\n"
    )
    monkeypatch.setenv("REFARCH_ROOT", str(tmp_path))
    return tmp_path


notebook = notebooks("demo", DemoSettings)
TRAIN = notebook(
    "03_train",
    [
        Param("search", setting="als.search", choices=["quick", "full"], help="grid size"),
        Param("ranks", setting="als.ranks"),
        Param("reg", setting="als.reg", min=0.0),
        TableParam("train_table", "ratings_train"),
        TableParam("users_table", optional=True),
        Param("k", 10, min=1),
    ],
    start_spark=False,
)


def _boot(given: dict[str, str]):
    with local_run(LocalRunContext(parameters=given)):
        return bootstrap(TRAIN, experiment=None)


def test_setting_defaults_come_from_the_targets_conf(demo_root):
    ctx = _boot({})
    assert ctx.params.search == "quick"  # conf/demo.yml targets.local overrides the file's `full`
    assert ctx.params.ranks == [16, 32]
    assert ctx.settings.als == Als(search="quick", ranks=[16, 32], reg=0.1)
    assert ctx.params.users_table == ""


def test_a_given_value_overrides_the_setting(demo_root):
    ctx = _boot({"search": "full", "ranks": "8,64", "reg": "0.5"})
    assert ctx.settings.als == Als(search="full", ranks=[8, 64], reg=0.5)
    assert ctx.settings.model_name == "demo"


@pytest.mark.parametrize(
    ("given", "error", "message"),
    [
        ({"search": "huge"}, ParameterError, "parameter 'search': 'huge' is not one of quick, full"),
        ({"reg": "-1"}, ParameterError, "parameter 'reg': -1.0 is below the minimum 0.0"),
        ({"ranks": "8,x"}, ParameterError, "parameter 'ranks': 'x' is not a valid int"),
        ({"train_table": "a.b.c.d"}, TableNameError, "parameter 'train_table': 'a.b.c.d' is not a table name"),
        ({"users_table": "x; drop"}, TableNameError, "parameter 'users_table'"),
    ],
)
def test_bad_values_name_the_parameter(demo_root, given, error, message):
    with pytest.raises(error, match=message):
        _boot(given)


def test_table_param_accepts_every_qualified_form():
    p = TableParam("t", "x")
    assert [p.parse(v) for v in ("a", "s.a", "c.s.a", "")] == ["a", "s.a", "c.s.a", "x"]
    assert TableParam("u", optional=True).parse("") == ""
    with pytest.raises(ParameterError, match="parameter 't' is required"):
        TableParam("t").parse("")


def test_unknown_setting_is_a_config_error(demo_root):
    broken = Notebook("demo", "x", (Param("depth", setting="als.depth"),), DemoSettings, start_spark=False)
    with pytest.raises(ConfigError, match=r"setting 'als\.depth' is not in the pipeline's conf"):
        bootstrap(broken)


def test_a_missing_settings_key_names_file_and_key(demo_root):
    (demo_root / "conf" / "demo.yml").write_text("als: {search: full, ranks: [1], reg: 0.1}\n")
    with pytest.raises(ConfigError, match=r"conf/demo.yml \(target local\): model_name: Field required"):
        bootstrap(Notebook("demo", "x", (), DemoSettings, start_spark=False))


def test_a_declaration_is_read_without_running_the_notebook(tmp_path: Path, monkeypatch):
    module = types.ModuleType("demo_params")
    module.TRAIN = TRAIN
    monkeypatch.setitem(sys.modules, "demo_params", module)
    source = textwrap.dedent(
        """
        from demo_params import TRAIN
        from refarch.runtime import bootstrap
        ctx = bootstrap(TRAIN)
        raise SystemExit("never reached")
        """
    )
    nb = {
        "cells": [
            {"cell_type": "markdown", "metadata": {}, "source": "# t"},
            {"cell_type": "code", "metadata": {}, "source": source, "outputs": [], "execution_count": None},
        ],
        "metadata": {},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    path = tmp_path / "03_train.ipynb"
    path.write_text(json.dumps(nb))
    assert declaration_of(path) is TRAIN


def test_duplicate_names_are_refused():
    with pytest.raises(ValueError, match="declares k twice"):
        Notebook("demo", "x", (Param("k", 1), Param("k", 2)))


def test_dates_parse_from_widgets():
    assert Param("d", dt.date(2015, 1, 1)).parse("2016-02-29") == dt.date(2016, 2, 29)
