"""A run's request, typed per pipeline from its signature: checked before it starts, documented.

`POST /runs` takes `{"pipeline_name": ..., "parameters": {...}}`. Each registered
pipeline gets a model of its own, whose `parameters` follow the pipeline's
signature and type hints (`seconds: float` accepts "0.5" and refuses "soon";
`Annotated[float, Field(ge=0, le=60)]` bounds it; names it does not take are
refused unless it takes `**kwargs`), so a bad request
is a 422 before any run starts and the OpenAPI document shows every pipeline's
parameters. A name that is not registered falls to a model of its own, which
the router answers with 404.
"""

from __future__ import annotations

import functools
import inspect
import math
import re
import typing
from collections.abc import Callable, Iterable, Mapping
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, create_model

__all__ = [
    "UnknownPipelineRun",
    "call_arguments",
    "parameters_model",
    "readable_errors",
    "run_request_type",
]

_UNKNOWN = "__unknown_pipeline__"


class UnknownPipelineRun(BaseModel):
    """A request naming a pipeline that is not registered: the router answers 404."""

    pipeline_name: str
    parameters: dict[str, Any] = Field(default_factory=dict)


def parameters_model(name: str, pipeline: Callable[..., Any]) -> type[BaseModel]:
    """The pipeline's keyword parameters as a model; one that accepts anything if unreadable.

    A pipeline may also declare its model: a pydantic model class as its
    `parameters_model` attribute, whose fields are then its keyword arguments.
    """
    func = pipeline.func if isinstance(pipeline, functools.partial) else pipeline
    declared = getattr(pipeline, "parameters_model", None) or getattr(
        func, "parameters_model", None
    )
    if isinstance(declared, type) and issubclass(declared, BaseModel):
        return declared
    fields: dict[str, Any] = {}
    extra: Literal["allow", "forbid"] = "forbid"
    try:
        signature = inspect.signature(pipeline)
        hints = typing.get_type_hints(func, include_extras=True)  # Annotated[..., Field()]
    except (TypeError, ValueError, NameError):
        signature, hints, extra = None, {}, "allow"
    for parameter in signature.parameters.values() if signature else ():
        if parameter.kind is parameter.VAR_KEYWORD:
            extra = "allow"
        elif parameter.kind in (parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY):
            default = ... if parameter.default is parameter.empty else parameter.default
            fields[parameter.name] = (hints.get(parameter.name, Any), default)
    model: type[BaseModel] = create_model(
        f"{_identifier(name)}Parameters", __config__=ConfigDict(extra=extra), **fields
    )
    return model


def run_request_type(pipelines: Mapping[str, Callable[..., Any]]) -> Any:
    """The body of `POST /runs`: one model per pipeline, chosen by `pipeline_name`."""
    names = list(pipelines)
    members: list[Any] = []
    for name, pipeline in pipelines.items():
        parameters = parameters_model(name, pipeline)
        literal: Any = Literal[name]
        model = create_model(
            f"{_identifier(name)}Run",
            pipeline_name=(literal, ...),
            parameters=(parameters, Field(default={}, validate_default=True)),
        )
        members.append(Annotated[model, Tag(name)])
    known: list[Any] = names
    unknown = create_model(
        "UnknownPipelineRun",
        __base__=UnknownPipelineRun,
        pipeline_name=(str, Field(json_schema_extra={"not": {"enum": known}} if names else None)),
    )
    members.append(Annotated[unknown, Tag(_UNKNOWN)])

    def pick(value: Any) -> str:
        name = value.get("pipeline_name") if isinstance(value, dict) else None
        return name if isinstance(name, str) and name in pipelines else _UNKNOWN

    return Annotated[Union[tuple(members)], Discriminator(pick)]  # noqa: UP007


def call_arguments(parameters: BaseModel | Mapping[str, Any]) -> dict[str, Any]:
    """The keyword arguments to call the pipeline with: what was given, the rest its defaults."""
    if not isinstance(parameters, BaseModel):
        return dict(parameters)
    given = {field: getattr(parameters, field) for field in parameters.model_fields_set}
    return {**given, **(parameters.model_extra or {})}


_NOT_AN_OBJECT = frozenset({"model_attributes_type", "model_type", "dict_type"})
"""What pydantic says of a body that is not a JSON object (a string, a list, raw bytes)."""


def readable_errors(errors: Iterable[Mapping[str, Any]], json_sent: bool) -> list[dict[str, Any]]:
    """A 422's errors in the user's terms: a body that is not a JSON object is told how to send
    it, the internal tag of unknown pipelines leaves `loc`, and an input JSON cannot carry
    (NaN, Infinity: Python's JSON reads them, but the answer may not hold them) is quoted."""
    readable = []
    for error in errors:
        item = {**error, "loc": [part for part in error.get("loc", ()) if part != _UNKNOWN]}
        if item["loc"] == ["body"] and error.get("type") in _NOT_AN_OBJECT:
            item["type"] = "json_object"
            item["msg"] = (
                'the body must be a JSON object: {"pipeline_name": "...", "parameters": {...}}'
                if json_sent
                else "send the body as JSON, with Content-Type: application/json"
            )
        if "input" in item:
            item["input"] = _json_safe(item["input"])
        readable.append(item)
    return readable


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, Mapping):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(item) for item in value]
    return value


def _identifier(name: str) -> str:
    return "".join(part.capitalize() for part in re.split(r"[^0-9A-Za-z]+", name)) or "Pipeline"
