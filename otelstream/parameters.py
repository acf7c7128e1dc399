"""A pipeline's parameters, checked against its signature before any run starts."""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError, create_model

__all__ = ["ParameterChecker", "ValidationError"]


class ParameterChecker:
    """Validates (and coerces) a run's `parameters` as the pipeline's signature declares them.

    Type hints are honoured (`seconds: float` accepts "0.5" and refuses "soon");
    parameters the signature does not name are refused unless it takes `**kwargs`.
    A signature that cannot be read is not checked.
    """

    def __init__(self, name: str, pipeline: Callable[..., Any]) -> None:
        self.model = _model_of(name, pipeline)

    def __call__(self, parameters: dict[str, Any]) -> dict[str, Any]:
        """The parameters to call the pipeline with; raises pydantic's ValidationError."""
        if self.model is None:
            return parameters
        checked = self.model.model_validate(parameters)
        values = {field: getattr(checked, field) for field in checked.model_fields_set}
        return {**values, **(checked.model_extra or {})}


def _model_of(name: str, pipeline: Callable[..., Any]) -> type[BaseModel] | None:
    try:
        signature = inspect.signature(pipeline)
        func = pipeline.func if isinstance(pipeline, functools.partial) else pipeline
        hints = typing.get_type_hints(func)
    except (TypeError, ValueError, NameError):
        return None
    fields: dict[str, Any] = {}
    extra: Literal["allow", "forbid"] = "forbid"
    for parameter in signature.parameters.values():
        if parameter.kind is parameter.VAR_KEYWORD:
            extra = "allow"
        elif parameter.kind in (parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY):
            default = ... if parameter.default is parameter.empty else parameter.default
            fields[parameter.name] = (hints.get(parameter.name, Any), default)
        elif parameter.kind is parameter.POSITIONAL_ONLY and parameter.default is parameter.empty:
            return None  # cannot be passed by keyword: leave it to the call to fail
    model: type[BaseModel] = create_model(
        f"{name}_parameters", __config__=ConfigDict(extra=extra), **fields
    )
    return model
