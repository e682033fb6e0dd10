"""The record every import maps onto (pydantic): the rules' output and the LLM mapper's output
both pass through this one schema before anything is written."""

from __future__ import annotations

import math
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, JsonValue, StringConstraints, field_validator

from vigil.importer.rules import is_fraction_metric

MetricName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_]{0,99}$")]
ParamName = Annotated[str, StringConstraints(min_length=1, max_length=200)]
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=20_000)]

TEXT_FIELDS = ("name", "description", "framework", "task", "license", "base_model", "author", "version_label",
               "source_uri", "created")


class ImportedRecord(BaseModel):
    """What Vigil keeps about an imported model, whatever the source called it."""

    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)] | None = None
    description: Text | None = None
    framework: Text | None = None
    task: Text | None = None
    license: Text | None = None
    base_model: Text | None = None
    author: Text | None = None
    version_label: Text | None = None
    source_uri: Text | None = None
    created: Text | None = None
    datasets: list[Text] = Field(default_factory=list)
    tags: list[Text] = Field(default_factory=list)
    metrics: dict[MetricName, float] = Field(default_factory=dict)
    params: dict[ParamName, JsonValue] = Field(default_factory=dict)

    @field_validator("metrics", mode="before")
    @classmethod
    def _numbers_only(cls, value: Any) -> Any:
        if isinstance(value, dict):
            for k, v in value.items():
                if isinstance(v, bool) or not isinstance(v, (int, float)):
                    raise ValueError(f"metrics.{k} = {v!r} is not a number")
        return value

    @field_validator("metrics")
    @classmethod
    def _finite_and_in_range(cls, value: dict[str, float]) -> dict[str, float]:
        for k, v in value.items():
            if not math.isfinite(v):
                raise ValueError(f"metrics.{k} = {v} is not a finite number")
            if is_fraction_metric(k) and not 0.0 <= v <= 1.0:
                raise ValueError(f"metrics.{k} = {v} is a fraction and must lie within 0..1")
        return value


def schema_errors(exc: Exception) -> str:
    """A pydantic ValidationError as one line per problem: 'field: message'."""
    errors = getattr(exc, "errors", None)
    if not callable(errors):
        return str(exc)
    parts = []
    for e in errors():
        loc = ".".join(str(p) for p in e.get("loc", ()))
        msg = e.get("msg", "").removeprefix("Value error, ")
        parts.append(f"{loc}: {msg}" if loc else msg)
    return "; ".join(parts)
