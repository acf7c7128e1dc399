"""otelstream/_server/parameters.py: a pipeline's signature as the model of its run request, and the
422 errors in the user's terms. Pure functions, tested with pydantic alone (the HTTP side:
test_router.py, test_openapi.py)."""

from __future__ import annotations

import functools
import json
import math
from typing import Annotated, Any

import pytest
from pydantic import BaseModel, Field, TypeAdapter, ValidationError

from otelstream._server.parameters import (
    UnknownPipelineRun,
    call_arguments,
    parameters_model,
    readable_errors,
    run_request_type,
)


def load(rows: int, table: str = "events", *, dry_run: bool = False) -> None:
    """load rows."""


def bounded(seconds: Annotated[float, Field(ge=0, le=60, allow_inf_nan=False)] = 1.0) -> None:
    pass


def anything(**options: Any) -> None:
    pass


class Declared(BaseModel):
    url: str


def declared(url: str) -> None:
    pass


declared.parameters_model = Declared  # type: ignore[attr-defined]


def errors_of(model: type[BaseModel], data: Any) -> list[tuple[tuple[Any, ...], str]]:
    with pytest.raises(ValidationError) as raised:
        model.model_validate(data)
    return [(error["loc"], error["type"]) for error in raised.value.errors()]


def test_a_signature_gives_types_defaults_and_refuses_other_names() -> None:
    model = parameters_model("etl", load)
    assert model.__name__ == "EtlParameters"
    parsed = model.model_validate({"rows": "5", "dry_run": True})
    assert (parsed.rows, parsed.table, parsed.dry_run) == (5, "events", True)  # type: ignore[attr-defined]
    assert errors_of(model, {}) == [(("rows",), "missing")]
    assert errors_of(model, {"rows": 1, "colour": "red"}) == [(("colour",), "extra_forbidden")]


def test_annotated_fields_bound_a_parameter() -> None:
    model = parameters_model("bounded", bounded)
    for value, kind in [
        (math.nan, "finite_number"),
        (math.inf, "finite_number"),
        (-1, "greater_than_equal"),
        (1e6, "less_than_equal"),
    ]:
        assert errors_of(model, {"seconds": value}) == [(("seconds",), kind)]
    assert model.model_validate({"seconds": "0.5"}).seconds == 0.5  # type: ignore[attr-defined]


def test_kwargs_partials_declared_models_and_unreadable_signatures() -> None:
    assert parameters_model("any", anything).model_validate({"x": 1}).model_extra == {"x": 1}
    partial = parameters_model("p", functools.partial(load, table="t"))
    assert partial.model_validate({"rows": 1}).table == "t"  # type: ignore[attr-defined]
    assert parameters_model("d", declared) is Declared
    unreadable = parameters_model("builtin", max)  # no signature: anything goes
    assert unreadable.model_validate({"key": "len"}).model_extra == {"key": "len"}


def test_a_request_is_checked_against_the_pipeline_it_names() -> None:
    adapter = TypeAdapter(run_request_type({"etl": load, "bounded": bounded}))
    request = adapter.validate_python({"pipeline_name": "etl", "parameters": {"rows": 2}})
    assert call_arguments(request.parameters) == {"rows": 2}  # what was given, not defaults
    assert call_arguments(adapter.validate_python({"pipeline_name": "bounded"}).parameters) == {}
    unknown = adapter.validate_python({"pipeline_name": "nope", "parameters": {"a": 1}})
    assert isinstance(unknown, UnknownPipelineRun)  # the router answers 404 for it
    with pytest.raises(ValidationError) as raised:
        adapter.validate_python({"pipeline_name": "etl", "parameters": {"rows": "many"}})
    assert raised.value.errors()[0]["loc"] == ("etl", "parameters", "rows")


def test_call_arguments_of_a_model_that_allows_extras() -> None:
    parsed = parameters_model("any", anything).model_validate({"x": 1, "y": [2]})
    assert call_arguments(parsed) == {"x": 1, "y": [2]}
    assert call_arguments({"plain": "dict"}) == {"plain": "dict"}


def _errors(body: Any, **pipelines: Any) -> list[dict[str, Any]]:
    adapter = TypeAdapter(run_request_type(pipelines or {"etl": load}))
    with pytest.raises(ValidationError) as raised:
        adapter.validate_python(body)
    return [{**error, "loc": ["body", *error["loc"]]} for error in raised.value.errors()]


@pytest.mark.parametrize(
    ("json_sent", "message"),
    [
        (False, "send the body as JSON, with Content-Type: application/json"),
        (True, 'the body must be a JSON object: {"pipeline_name": "...", "parameters": {...}}'),
    ],
)
def test_a_body_that_is_not_an_object_is_told_what_to_send(json_sent: bool, message: str) -> None:
    [error] = readable_errors(_errors('{"pipeline_name": "etl"}'), json_sent)
    assert (error["loc"], error["type"], error["msg"]) == (["body"], "json_object", message)


def test_the_internal_tag_never_reaches_the_user_and_inputs_stay_json() -> None:
    [missing] = readable_errors(_errors({"parameters": {}}), json_sent=True)
    assert missing["loc"] == ["body", "pipeline_name"]
    [nan] = readable_errors(
        _errors({"pipeline_name": "bounded", "parameters": {"seconds": math.nan}}, bounded=bounded),
        json_sent=True,
    )
    assert (nan["loc"], nan["input"]) == (["body", "bounded", "parameters", "seconds"], "nan")
    json.dumps([missing, nan], allow_nan=False)  # what the 422 is made of
