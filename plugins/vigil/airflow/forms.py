"""Airflow trigger-form Params generated from the stages' own pydantic specs.

One source of truth: the type, range, enum, default and help text a user sees in the form are
the ones the stage validates with, so the form refuses what the stage would refuse.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import Param

_KEYWORDS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "minLength", "maxLength", "pattern", "enum")


def _schema_of(spec_cls: type, field: str) -> dict[str, Any]:
    schema = spec_cls.model_json_schema()
    prop = dict(schema["properties"][field])
    if "$ref" in prop:  # enums become $defs references
        prop.update(schema["$defs"][prop.pop("$ref").split("/")[-1]])
    if "anyOf" in prop:  # Optional[X]: X or null
        types, merged = [], {}
        for alt in prop.pop("anyOf"):
            if "$ref" in alt:
                alt = schema["$defs"][alt["$ref"].split("/")[-1]]
            if alt.get("type"):
                types.append(alt["type"])
            merged.update({k: v for k, v in alt.items() if k in _KEYWORDS})
        prop.update(merged)
        prop["type"] = types if len(types) > 1 else (types[0] if types else "string")
    if "const" in prop:
        prop["enum"] = [prop.pop("const")]
    return prop


def param(spec_cls: type, field: str, *, default: Any = ..., title: str | None = None,
          description: str | None = None, section: str | None = None, **schema: Any) -> Param:
    """A Param for ``spec_cls.field``; keyword arguments override the generated schema."""
    prop = _schema_of(spec_cls, field)
    if default is ...:
        # A pydantic default_factory leaves no default in the schema: an empty container is the
        # form's equivalent, and None would fail the field's own type at trigger time.
        kind = schema.get("type", prop.get("type"))
        empty = {"object": {}, "array": []}.get(kind) if isinstance(kind, str) else None
        default = prop.get("default", empty)
    kwargs = {k: prop[k] for k in _KEYWORDS if k in prop}
    if "type" in prop:
        kwargs["type"] = prop["type"]
        if kwargs["type"] == "integer" and isinstance(default, float):
            default = int(default)
    if "enum" in kwargs and isinstance(kwargs.get("type"), list):
        kwargs["enum"] = [*kwargs["enum"], None]
    kwargs.update(schema)
    if section:
        kwargs["section"] = section
    return Param(
        default,
        title=title or prop.get("title") or field.replace("_", " ").capitalize(),
        description=description or prop.get("description", ""),
        **kwargs,
    )
