import datetime as dt

import pytest

from refarch.runtime.notebook import LocalRunContext, bootstrap, local_run
from refarch.runtime.params import Param, ParameterError

PARAMS = [
    Param("k", 10, min=1, max=100),
    Param("start_date", dt.date(2015, 1, 1)),
    Param("table", "ratings", pattern=r"[A-Za-z_]\w*"),
    Param("mode", "implicit", choices=["implicit", "explicit"]),
    Param("fast", False),
    Param("ratio", 0.75, min=0.0, max=1.0),
]


def test_defaults_are_typed():
    ctx = bootstrap(params=PARAMS, start_spark=False)
    assert ctx.params.k == 10
    assert ctx.params["start_date"] == dt.date(2015, 1, 1)
    assert ctx.params.fast is False
    assert ctx.params.ratio == 0.75


def test_values_from_the_runner_are_parsed():
    given = {"k": "25", "start_date": "2016-02-29", "fast": "true", "mode": "explicit", "ratio": "0.5"}
    with local_run(LocalRunContext(parameters=given)):
        ctx = bootstrap(params=PARAMS, start_spark=False)
    assert (ctx.params.k, ctx.params.start_date, ctx.params.fast) == (25, dt.date(2016, 2, 29), True)
    assert ctx.params.mode == "explicit"


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"k": "ten"}, "parameter 'k': 'ten' is not a valid int"),
        ({"k": "0"}, "parameter 'k': 0 is below the minimum 1"),
        ({"start_date": "2015-13-01"}, "parameter 'start_date': '2015-13-01' is not a valid date"),
        ({"table": "drop table;"}, "parameter 'table'"),
        ({"mode": "both"}, "parameter 'mode': 'both' is not one of implicit, explicit"),
        ({"fast": "maybe"}, "parameter 'fast'"),
    ],
)
def test_bad_values_name_the_parameter(given, message):
    with local_run(LocalRunContext(parameters=given)), pytest.raises(ParameterError, match=message):
        bootstrap(params=PARAMS, start_spark=False)


def test_required_parameter_without_value():
    with pytest.raises(ParameterError, match="parameter 'run_date' is required"):
        bootstrap(params=[Param("run_date", type=dt.date)], start_spark=False)


def test_task_values_are_shared_within_a_run():
    store: dict = {}
    with local_run(LocalRunContext(task_key="train", task_values=store)):
        bootstrap(start_spark=False).set_task_value("model_version", "3")
    with local_run(LocalRunContext(task_key="score", task_values=store)):
        assert bootstrap(start_spark=False).get_task_value("train", "model_version") == "3"
