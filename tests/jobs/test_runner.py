import re

import pytest

from refarch.cli import main
from refarch.jobs.check import JobParameterError
from refarch.jobs.runner import JobError, parse_params, run_job
from refarch.runtime.params import ParameterError


def test_job_runs_in_dependency_order_with_parameters(demo_bundle, spark, tables):
    result = run_job("demo", params={"rows": "10"}, root=demo_bundle)
    assert result.ok, result.summary()
    assert [t.task_key for t in result.tasks] == ["make", "flaky", "total", "listing"]
    by_key = {t.task_key: t for t in result.tasks}
    assert by_key["flaky"].attempts == 2  # first attempt fails, the retry succeeds
    assert by_key["total"].exit_value == str(2 * sum(range(10)))  # 90, through %run's helper
    assert tables.read("demo_total").first().total == 90
    assert "total" in result.summary() and "SUCCESS" in result.summary()


def test_default_job_parameters_are_used(demo_bundle, tables):
    assert run_job("demo", root=demo_bundle).ok
    assert tables.read("demo_numbers").count() == 5


def test_failing_task_is_named_and_stops_dependents(demo_bundle):
    result = run_job("broken", root=demo_bundle)
    assert not result.ok
    status = {t.task_key: (t.status, t.attempts) for t in result.tasks}
    assert status == {"fine": ("SUCCESS", 1), "boom": ("FAILED", 2), "after": ("SKIPPED", 0)}
    assert "boom.ipynb cell 2: ValueError: the input is rotten" in result.failed[0].error
    assert "task 'boom' failed" in result.summary()


def test_cli_exits_non_zero_naming_the_task(demo_bundle, capsys):
    assert main(["job", "run", "broken"]) == 1
    assert "task 'boom' failed: boom.ipynb cell 2: ValueError: the input is rotten" in capsys.readouterr().out
    assert main(["job", "run", "demo", "--param", "rows=2"]) == 0


def test_bad_parameter_fails_before_any_task(demo_bundle, refarch_home):
    with pytest.raises(ParameterError, match="unknown job parameter"):
        run_job("demo", params={"rowz": "1"}, root=demo_bundle)
    marker = demo_bundle / "notebooks" / "flaky.marker"
    with pytest.raises(JobParameterError) as caught:
        run_job("demo", params={"rows": "zero"}, root=demo_bundle)
    message = str(caught.value)
    # one line for the value, naming every task and notebook that declares the parameter
    assert "parameter 'rows': 'zero' is not a valid int" in message
    assert "task make: notebooks/make.ipynb; task total: notebooks/total.ipynb" in message
    assert not marker.exists(), "no task may run before the parameters are checked"
    assert main(["job", "run", "demo", "--param", "rows"]) == 2


def test_a_base_parameter_is_checked_too(demo_bundle):
    job = (demo_bundle / "jobs" / "demo.job.yml").read_text().replace("table: demo_numbers", "table: 'no good'", 1)
    (demo_bundle / "jobs" / "demo.job.yml").write_text(job)
    with pytest.raises(JobParameterError, match=r"parameter 'table'.*\(task make: notebooks/make.ipynb\)"):
        run_job("demo", root=demo_bundle)


def test_job_check_and_list_params_commands(demo_bundle, capsys):
    assert main(["job", "check", "demo", "--param", "rows=0"]) == 2
    assert "parameter 'rows': 0 is below the minimum 1" in capsys.readouterr().err
    assert main(["job", "check", "demo", "--param", "rows=4"]) == 0
    assert main(["job", "list", "--params"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^  rows\s+int\s+5\s*$", out, re.M), out


def test_unknown_job_is_named(demo_bundle):
    with pytest.raises(ValueError, match=r"no job 'nope'.*broken, demo"):
        run_job("nope", root=demo_bundle)


def test_parse_params():
    assert parse_params(["a=1", "b=x=y", "c="]) == {"a": "1", "b": "x=y", "c": ""}
    with pytest.raises(JobError):
        parse_params(["novalue"])


def test_the_check_task_entry_point_reads_pushed_down_parameters(demo_bundle, capsys, monkeypatch):
    """On Databricks the first task gets the job's parameters as --name=value (named_parameters pushdown)."""
    from refarch.jobs.check import main as check_main

    monkeypatch.setenv("REFARCH_TARGET", "local")
    assert check_main(["--job=demo", "--rows=7"]) == 0
    assert check_main(["--job=demo", "--rows=-1"]) == 2
    err = capsys.readouterr().err
    assert "parameter 'rows': -1 is below the minimum 1" in err and "task make: notebooks/make.ipynb" in err
    assert check_main(["--job=demo", "--rowz=1"]) == 2
    assert check_main(["rows=1"]) == 2
