"""The request type and the vectors R gets are generated from the declared columns; bad rows name the field."""

from __future__ import annotations

import pandas as pd
import pytest
from pydantic import ValidationError

from refarch.rmodel.columns import Columns, InputError, parse_columns
from refarch.rmodel.settings import FactorColumn, IntegerColumn, NumberColumn

ROW = {
    "carat": 0.23,
    "cut": "Ideal",
    "color": "E",
    "clarity": "SI2",
    "depth": 61.5,
    "table": 55,
    "x": 3.95,
    "y": 3.98,
    "z": 2.43,
}


@pytest.fixture(scope="module")
def columns(rmodel_settings) -> Columns:
    return Columns(rmodel_settings.inputs)


def _first_error(model, data) -> tuple[tuple, str]:
    with pytest.raises(ValidationError) as caught:
        model.model_validate_json(__import__("json").dumps(data), strict=True)
    first = caught.value.errors()[0]
    return first["loc"], first["type"]


def test_a_diamond_is_a_valid_row_and_factor_values_become_level_codes(columns):
    row = columns.model.model_validate(ROW)
    vectors = columns.from_models([row, columns.model.model_validate({**ROW, "cut": "Fair", "clarity": "IF"})])
    assert vectors["cut"] == [5, 1]  # Ideal is the 5th of Fair..Ideal, Fair the 1st
    assert vectors["clarity"] == [2, 8]  # SI2 is 2nd of I1..IF, IF the 8th
    assert vectors["carat"] == [0.23, 0.23] and vectors["table"] == [55.0, 55.0]
    assert list(vectors) == [c.name for c in columns.specs]  # the model's column order


@pytest.mark.parametrize(
    ("change", "loc", "kind"),
    [
        ({"cut": "Perfect"}, ("cut",), "literal_error"),
        ({"carat": 9.0}, ("carat",), "less_than_equal"),
        ({"depth": 10}, ("depth",), "greater_than_equal"),
        ({"carat": "big"}, ("carat",), "float_type"),
        ({"colour": "E"}, ("colour",), "extra_forbidden"),
        ({"z": None}, ("z",), "float_type"),
    ],
)
def test_bad_values_name_their_field(columns, change, loc, kind):
    assert _first_error(columns.model, {**ROW, **change}) == (loc, kind)


def test_a_missing_column_names_it(columns):
    row = dict(ROW)
    del row["clarity"]
    assert _first_error(columns.model, row) == (("clarity",), "missing")


def test_r_names_that_are_not_python_names_travel_as_aliases():
    specs = [
        NumberColumn(name="price.per", type="number", min=0, max=1, help="a dotted R name"),
        FactorColumn(name="class", type="factor", levels=["a", "b"], ordered=False, help="a Python keyword"),
        IntegerColumn(name="model_config", type="integer", min=1, max=3, help="a pydantic attribute"),
    ]
    columns = Columns(specs)
    row = columns.model.model_validate({"price.per": 0.5, "class": "b", "model_config": 2})
    assert columns.from_models([row]) == {"price.per": [0.5], "class": [2], "model_config": [2]}
    schema = columns.model.model_json_schema()
    assert set(schema["properties"]) == {"price.per", "class", "model_config"}
    assert schema["properties"]["class"]["enum"] == ["a", "b"]
    with pytest.raises(ValidationError):
        columns.model.model_validate({"price.per": 0.5, "class": "b", "model_config": 2.5}, strict=True)


def test_a_frame_is_checked_column_by_column(columns):
    frame = pd.DataFrame([ROW, {**ROW, "cut": "Good", "x": 0.0}])
    vectors = columns.from_frame(frame)
    assert vectors["cut"] == [5, 2] and vectors["x"] == [3.95, 0.0]
    with pytest.raises(InputError, match=r"column cut, row 1: 'Perfect' is not one of Fair, Good"):
        columns.from_frame(frame.assign(cut=["Ideal", "Perfect"]))
    with pytest.raises(InputError, match=r"column y, row 0: .* is not a number in \[0.0, 60.0\]"):
        columns.from_frame(frame.assign(y=[61.0, 1.0]))
    with pytest.raises(InputError, match=r"column depth, row 1"):
        columns.from_frame(frame.assign(depth=[61.0, None]))
    with pytest.raises(InputError, match=r"missing column.*clarity"):
        columns.from_frame(frame.drop(columns="clarity"))
    with pytest.raises(InputError, match=r"unknown column.*price"):
        columns.from_frame(frame.assign(price=1))
    counts = Columns([IntegerColumn(name="n", type="integer", min=0, max=5, help="")])
    assert counts.from_frame(pd.DataFrame({"n": [1, 5]})) == {"n": [1, 5]}
    with pytest.raises(InputError, match="column n, row 0"):
        counts.from_frame(pd.DataFrame({"n": [1.5]}))


def test_dicts_and_one_dict_are_rows_too(columns):
    vectors, n = columns.from_any(ROW)
    assert n == 1 and vectors["cut"] == [5]
    vectors, n = columns.from_any([ROW, {**ROW, "color": "J"}])
    assert n == 2 and vectors["color"] == [2, 7]
    with pytest.raises(InputError, match=r"row 1: cut: Input should be"):
        columns.from_any([ROW, {**ROW, "cut": "perfect"}])


def test_declarations_round_trip_and_the_example_row_is_valid(columns):
    assert parse_columns([c.model_dump() for c in columns.specs]) == columns.specs
    columns.model.model_validate(columns.example())
