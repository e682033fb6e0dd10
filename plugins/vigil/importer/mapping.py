"""The engine that applies ``rules.RULES`` to parsed metadata documents.

It walks each document once, looks every key up in the table, and records for each value where
it came from (``mapped``), why it was dropped (``ignored``) or that no rule knew it (``unknown``,
what the optional LLM mapper is asked about). A metric value that is not a number, or a fraction
outside 0..1, refuses the whole import: a silently dropped or guessed number would end up in
reports and comparisons.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import Any

from pydantic import ValidationError

from contract import jsonsafe
from vigil.importer.errors import ImportRefused
from vigil.importer.rules import (
    GENERIC_FLAVORS,
    KEY_RULES,
    NAME_KEYS,
    VALUE_KEYS,
    Rule,
    ignore_rule,
    normalize_key,
    resolve_metric,
    resolve_param,
)
from vigil.importer.schema import TEXT_FIELDS, ImportedRecord, schema_errors

# The record fields reported as missing when no source provided them.
REPORTED_FIELDS = ("name", "description", "framework", "task", "license", "datasets", "metrics", "params")
_BOOKKEEPING = ignore_rule("_").why  # type: ignore[union-attr]
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")


def _join(path: str, key: Any) -> str:
    return f"{path}.{key}" if path else str(key)


def _scalar(v: Any) -> bool:
    return v is None or isinstance(v, (str, int, float, bool, date))


def _jsonable(v: Any) -> Any:
    """YAML gives dates and the like: store them as ISO strings so the record is JSON; a non-finite
    number keeps its text ("nan"), which is what the document said."""
    return jsonsafe.to_json(v, nonfinite="text")


def coerce_text_value(v: str) -> Any:
    """Tools that store every param as text (MLflow): '5' -> 5, '0.1' -> 0.1, 'true' -> True."""
    s = v.strip()
    if _NUMBER.match(s):
        return int(s) if re.fullmatch(r"[+-]?\d+", s) else float(s)
    low = s.lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("none", "null"):
        return None
    return v


def _first_key(d: dict, candidates: tuple[str, ...]) -> Any:
    by_norm = {normalize_key(k): k for k in d}
    for c in candidates:
        if c in by_norm:
            return by_norm[c]
    return None


def _fmt(v: float) -> str:
    return f"{v:g}"


@dataclass
class MappingResult:
    record: ImportedRecord
    mapped: list[dict[str, Any]]
    ignored: list[dict[str, Any]]
    missing: list[str]
    notes: list[str]
    unknown: dict[str, tuple[str, str, Any]]

    def report(self) -> dict[str, Any]:
        return {"record": self.record.model_dump(mode="json", exclude_none=True), "mapped": self.mapped,
                "ignored": self.ignored, "missing": self.missing, "notes": self.notes}


@dataclass
class Mapper:
    """Accumulates what one or more documents say; the first source of a target wins."""

    values: dict[str, Any] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)
    mapped: list[dict[str, Any]] = field(default_factory=list)
    ignored: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    unknown: dict[str, tuple[str, str, Any]] = field(default_factory=dict)  # shown key -> (origin, path, value)
    _percent_bases: set[str] = field(default_factory=set)
    _origin: str = ""

    # ------------------------------------------------------------------ entry points
    def map_document(self, data: Any, origin: str, section: str | None = None) -> None:
        """Map one parsed document. ``section`` = 'metrics'/'params' when the file IS that section."""
        self._origin = origin
        if isinstance(data, dict):
            self._walk(data, "", default_section=section)
        elif section == "metrics" and isinstance(data, list):
            self._metrics(data, "", [])
        else:
            kind = "a list" if isinstance(data, list) else type(data).__name__
            raise ImportRefused(f"{origin}: the top level is {kind}; expected a mapping of keys to values "
                                "(e.g. {\"name\": ..., \"metrics\": {...}})")

    def set_origin(self, origin: str) -> None:
        """The document (or model file) that the next ``put`` calls read from, shown in the report."""
        self._origin = origin

    def put_metric(self, name: str, raw: Any, source: str, via: str) -> None:
        """A metric from outside the rules (the LLM mapper): same name resolution and unit checks."""
        self._metric([name], raw, source, via=via)

    def put(self, target: str, value: Any, source: str, rule: str, note: str | None = None) -> bool:
        src = f"{self._origin}:{source}" if self._origin else source
        if target in ("tags", "datasets"):
            items = self.values.setdefault(target, [])
            items.extend(x for x in value if x not in items)
            self.mapped.append(self._entry(target, src, rule, note))
            return True
        if target in self.values:
            self.ignored.append({"source": src, "reason": f"duplicate: {target} already mapped from {self.sources[target]}"})
            return False
        self.values[target] = value
        self.sources[target] = src
        self.mapped.append(self._entry(target, src, rule, note))
        return True

    def ignore(self, source: str, reason: str) -> None:
        self.ignored.append({"source": f"{self._origin}:{source}" if self._origin else source, "reason": reason})

    def refuse(self, source: str, message: str) -> None:
        raise ImportRefused(f"{self._origin}: {source} {message}" if self._origin else f"{source} {message}")

    @staticmethod
    def _entry(target: str, source: str, rule: str, note: str | None) -> dict[str, Any]:
        e = {"target": target, "source": source, "rule": rule or "section"}
        if note:
            e["note"] = note
        return e

    # ------------------------------------------------------------------ documents
    def _walk(self, d: dict, path: str, default_section: str | None = None) -> None:
        """Map a mapping key by key. ``default_section``: the file is a metrics/params file, so
        keys no rule claims belong to that section (known fields like ``name`` still map)."""
        for raw_key, value in d.items():
            p = _join(path, raw_key)
            key = normalize_key(raw_key)
            if str(raw_key).startswith("_"):
                self.ignore(p, _BOOKKEEPING)
                continue
            if default_section == "params" and isinstance(value, dict) and "value" in value \
                    and set(value) <= {"value", "desc", "description"}:
                self._params({raw_key: value}, path)  # W&B config entry {desc, value}
                continue
            if any(self._apply(rule, value, p) for rule in KEY_RULES.get(key, [])):
                continue
            rule = ignore_rule(str(raw_key))
            if rule is not None:
                self.ignore(p, rule.why)
                continue
            if self._dotted(raw_key, value, p):
                continue
            if _scalar(value) and value is not None and not isinstance(value, bool):
                metric = resolve_metric([str(raw_key)])
                if metric.rule:
                    self._metric([str(raw_key)], value, p)
                    continue
                name, prule = resolve_param(str(raw_key))
                if prule:
                    self.put(f"params.{name}", _jsonable(value), p, prule)
                    continue
            if value is None or value == "" or value == [] or value == {}:
                self.ignore(p, "empty value")
                continue
            if default_section == "params":
                self._params({raw_key: value}, path)
                continue
            if default_section == "metrics":
                numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
                if numeric or (isinstance(value, str) and _NUMBER.match(value.strip().removesuffix("%").strip())):
                    self._metric([str(raw_key)], value, p)
                    continue
                if isinstance(value, (dict, list)):
                    self._metrics({raw_key: value}, path, [])
                    continue
                self.ignore(p, "text in a metrics file under a name that is not a metric")
                continue
            self.ignore(p, "unknown key: no rule maps it")
            self.unknown[f"{self._origin}:{p}"] = (self._origin, p, value)

    def _dotted(self, raw_key: Any, value: Any, p: str) -> bool:
        """'metrics.accuracy' / 'params/max_depth' (MLflow search exports, W&B summaries)."""
        parts = re.split(r"[./]", str(raw_key), maxsplit=1)
        if len(parts) != 2 or not parts[1]:
            return False
        for rule in KEY_RULES.get(normalize_key(parts[0]), []):
            if rule.kind == "section" and rule.target in ("metrics", "params"):
                if rule.target == "metrics":
                    self._metrics({parts[1]: value}, "", [], key_paths={parts[1]: p})
                else:
                    name, prule = resolve_param(parts[1])
                    self.put(f"params.{name}", _jsonable(value), p, prule or rule.id)
                return True
        return False

    def _apply(self, rule: Rule, value: Any, p: str) -> bool:
        """Apply one key rule if the value has the shape it expects; False lets the next rule try."""
        if rule.kind == "section":
            if not isinstance(value, (dict, list)) and not (rule.target == "tags" and isinstance(value, str)):
                return False
            {"metrics": lambda: self._metrics(value, p, []), "params": lambda: self._params(value, p),
             "tags": lambda: self._tags(value, p)}[rule.target]()
            return True
        if rule.kind == "wrapper":
            if not isinstance(value, dict):
                return False
            self._walk(value, p)
            return True
        if rule.kind == "model_index":
            if not isinstance(value, list):
                return False
            self._model_index(value, p)
            return True
        # fields
        if rule.shape == "text":
            note = None
            if isinstance(value, list) and value and all(isinstance(x, str) and x.strip() for x in value):
                value, note = value[0], (f"the first of {len(value)} values" if len(value) > 1 else None)
            if isinstance(value, bool) or not isinstance(value, (str, int, float)) or str(value).strip() == "":
                return False
            self.put(rule.target, str(value).strip(), p, rule.id, note)
            return True
        if rule.shape == "list":
            if isinstance(value, str) and value.strip():
                self.put(rule.target, [value.strip()], p, rule.id)
                return True
            if isinstance(value, list) and value and all(isinstance(x, (str, int, float)) for x in value):
                self.put(rule.target, [str(x).strip() for x in value if str(x).strip()], p, rule.id)
                return True
            return False
        if rule.shape == "keys":
            if not isinstance(value, dict):
                return False
            names = [str(k) for k in value if str(k) not in GENERIC_FLAVORS]
            if not names:
                return False
            self.put(rule.target, names[0], p, rule.id, note=f"from the keys {sorted(map(str, value))}")
            return True
        if rule.shape == "time":
            if isinstance(value, bool):
                return False
            if isinstance(value, (int, float)) and value > 0:
                seconds = value / 1000 if value > 1e11 else value  # MLflow stores milliseconds
                iso = datetime.fromtimestamp(seconds, tz=timezone.utc).isoformat()
                self.put(rule.target, iso, p, rule.id, note=f"epoch {_fmt(value)} -> {iso}")
                return True
            if isinstance(value, (datetime, date)):
                self.put(rule.target, value.isoformat(), p, rule.id)
                return True
            if isinstance(value, str) and value.strip():
                self.put(rule.target, value.strip(), p, rule.id)
                return True
            return False
        return False

    # ------------------------------------------------------------------ sections
    def _metrics(self, value: Any, p: str, segments: list[str], key_paths: dict[str, str] | None = None) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                kp = (key_paths or {}).get(k) or _join(p, k)
                rule = ignore_rule(str(k))
                if rule is not None:
                    self.ignore(kp, rule.why)
                    continue
                if isinstance(v, dict):
                    if "_type" in v:
                        self.ignore(kp, f"a W&B {v.get('_type')} object, not a number")
                        continue
                    vk = _first_key(v, VALUE_KEYS)
                    if vk is not None and _scalar(v[vk]):
                        self._wrapped_metric(segments + [str(k)], v, vk, kp)
                    else:
                        self._metrics(v, kp, segments + [str(k)])
                elif isinstance(v, list):
                    if v and all(isinstance(x, dict) for x in v):
                        self._metrics(v, kp, segments + [str(k)])
                    else:
                        self.ignore(kp, "a list of values (a curve or per-class scores), not one metric value")
                else:
                    self._metric(segments + [str(k)], v, kp)
        elif isinstance(value, list):
            for i, item in enumerate(value):
                ip = f"{p}[{i}]"
                if not isinstance(item, dict):
                    self.ignore(ip, "a list entry without a metric name")
                    continue
                mk = _first_key(item, ("metrics",))
                if mk is not None and isinstance(item[mk], (dict, list)):
                    self._metrics(item[mk], _join(ip, mk), segments)
                    continue
                nk = _first_key(item, NAME_KEYS)
                vk = _first_key(item, VALUE_KEYS)
                if nk is None or vk is None or not isinstance(item[nk], str):
                    self.ignore(ip, "a list entry without both a metric name and a value")
                    continue
                self._metric(segments + [item[nk]], item[vk], _join(ip, vk))
        else:
            self._metric(segments, value, p)

    def _wrapped_metric(self, segments: list[str], d: dict, vk: str, kp: str) -> None:
        """``{"value": 0.94, "ci_low": 0.92, "unit": "percent", "desc": "..."}``."""
        unit_key = _first_key(d, ("unit", "units"))
        unit = normalize_key(d[unit_key]) if unit_key is not None and isinstance(d[unit_key], str) else ""
        forced = {"percent": "percent", "pct": "percent", "fraction": "fraction"}.get(unit, "")
        self._metric(segments, d[vk], _join(kp, vk), forced_unit=forced)
        for sk, sv in d.items():
            if sk in (vk, unit_key):
                continue
            sp = _join(kp, sk)
            if isinstance(sv, (int, float)) and not isinstance(sv, bool):
                self._metric(segments + [str(sk)], sv, sp, forced_unit=forced)
            else:
                self.ignore(sp, "text next to a metric value")

    def _metric(self, segments: list[str], raw: Any, p: str, forced_unit: str = "", via: str | None = None) -> None:
        m = resolve_metric(segments)
        if not m.name:
            self.ignore(p, "a metric without a usable name")
            return
        if raw is None:
            self.ignore(p, "null value")
            return
        unit = forced_unit or m.unit
        how = "the key says percent" if m.unit == "percent" else "marked as a percent"
        if isinstance(raw, bool) or not isinstance(raw, (int, float, str)):
            self.refuse(p, f"= {raw!r} is not a number: give metric '{m.name}' as a number (0.93 or \"93%\")")
        if isinstance(raw, str):
            s = raw.strip()
            if s.endswith("%"):
                unit, how, s = "percent", "written with %", s[:-1].strip()
            if not _NUMBER.match(s):
                self.refuse(p, f"= {raw!r} is not a number: give metric '{m.name}' as a number (0.93 or \"93%\")")
            v = float(s)
        else:
            v = float(raw)
        if not math.isfinite(v):
            self.refuse(p, f"= {raw!r} is not a finite number: give metric '{m.name}' a real value or remove it")
        note = None
        if unit == "percent":
            if not 0 <= v <= 100:
                self.refuse(p, f"= {raw!r} is a percent outside 0..100; fix the value")
            v = round(v / 100, 12)
            note = f"{raw} read as a percent ({how}) -> {_fmt(v)}"
            self._percent_bases.add(m.base or m.name)
        elif unit == "fraction" and not 0 <= v <= 1:
            self.refuse(p, f"= {raw!r}: the key says it is a fraction, which must lie within 0..1; "
                           "give the fraction (0.935) or name it as a percent (e.g. accuracy_pct)")
        elif m.scale == "fraction":
            if v < 0:
                self.refuse(p, f"= {raw!r}: '{m.name}' is a fraction and cannot be negative")
            if v > 1:
                if v > 100:
                    self.refuse(p, f"= {raw!r}: '{m.name}' is a fraction (0..1) or a percent (0..100); "
                                   f"{raw!r} is neither")
                v = round(v / 100, 12)
                note = f"{raw} > 1 for a fraction metric: read as a percent -> {_fmt(v)}"
                self._percent_bases.add(m.base or m.name)
        elif m.scale == "spread" and m.base in self._percent_bases:
            v = round(v / 100, 12)
            note = f"{raw} scaled like {m.base} (a percent) -> {_fmt(v)}"
        self.put(f"metrics.{m.name}", v, p, via or m.rule or "metrics section", note)

    def _params(self, value: Any, p: str) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                kp = _join(p, k)
                rule = ignore_rule(str(k))
                if rule is not None:
                    self.ignore(kp, rule.why)
                    continue
                note = None
                if isinstance(v, dict) and "value" in v and set(v) <= {"value", "desc", "description"}:
                    v, note = v["value"], "unwrapped {value, desc} (W&B config)"
                name, rule = resolve_param(str(k))
                if not name:
                    self.ignore(kp, "a parameter without a usable name")
                    continue
                self.put(f"params.{name}", _jsonable(v), kp, rule or "params section", note)
        elif isinstance(value, list):
            for i, item in enumerate(value):
                ip = f"{p}[{i}]"
                nk = _first_key(item, ("key", "name", "param")) if isinstance(item, dict) else None
                if nk is None or "value" not in item or not isinstance(item[nk], str):
                    self.ignore(ip, "a list entry without a parameter name and a value")
                    continue
                v = item["value"]
                note = None
                if isinstance(v, str):
                    coerced = coerce_text_value(v)
                    if coerced is not v:
                        v, note = coerced, f"text {item['value']!r} read as {coerced!r}"
                name, rule = resolve_param(item[nk])
                self.put(f"params.{name}", _jsonable(v), _join(ip, "value"), rule or "params section", note)
        else:
            self.ignore(p, "params must be a mapping or a list of {key, value}")

    def _tags(self, value: Any, p: str) -> None:
        tags: list[str] = []
        if isinstance(value, str):
            tags = [t.strip() for t in value.split(",") if t.strip()]
        elif isinstance(value, dict):
            for k, v in value.items():
                if ignore_rule(str(k)) is not None:
                    self.ignore(_join(p, k), ignore_rule(str(k)).why)  # type: ignore[union-attr]
                    continue
                tags.append(f"{k}={v}")
        else:
            for i, item in enumerate(value):
                if isinstance(item, dict) and "key" in item and "value" in item:
                    if ignore_rule(str(item["key"])) is not None:
                        self.ignore(f"{p}[{i}]", ignore_rule(str(item["key"])).why)  # type: ignore[union-attr]
                        continue
                    tags.append(f"{item['key']}={item['value']}")
                elif _scalar(item) and item is not None:
                    tags.append(str(item))
                else:
                    self.ignore(f"{p}[{i}]", "a tag that is not text")
        tags = [t for t in tags if t]
        if tags:
            self.put("tags", tags, p, "section:tags")

    def _model_index(self, value: list, p: str) -> None:
        """Hugging Face card: ``model-index: [{name, results: [{task, dataset, metrics: [...]}]}]``."""
        for i, entry in enumerate(value):
            ep = f"{p}[{i}]"
            if not isinstance(entry, dict):
                self.ignore(ep, "a model-index entry that is not a mapping")
                continue
            if isinstance(entry.get("name"), str):
                self.put("name", entry["name"].strip(), _join(ep, "name"), "model_index:name")
            for j, res in enumerate(entry.get("results") or []):
                rp = f"{ep}.results[{j}]"
                if not isinstance(res, dict):
                    self.ignore(rp, "a result that is not a mapping")
                    continue
                task = res.get("task") if isinstance(res.get("task"), dict) else {}
                if isinstance(task.get("type"), str) and "task" not in self.values:
                    self.put("task", task["type"], _join(rp, "task.type"), "model_index:task")
                ds = res.get("dataset") if isinstance(res.get("dataset"), dict) else {}
                ds_name = ds.get("name") or ds.get("type")
                if isinstance(ds.get("type") or ds_name, str):
                    self.put("datasets", [str(ds.get("type") or ds_name)], _join(rp, "dataset"), "model_index:dataset")
                for k, item in enumerate(res.get("metrics") or []):
                    mp = f"{rp}.metrics[{k}]"
                    nk = _first_key(item, NAME_KEYS) if isinstance(item, dict) else None
                    if nk is None or "value" not in item:
                        self.ignore(mp, "a model-index metric without a type and a value")
                        continue
                    segments = [str(item[nk])]
                    if f"metrics.{resolve_metric(segments).name}" in self.values and ds_name:
                        segments = [str(ds_name), str(item[nk])]  # a second dataset: keep both numbers
                    self._metric(segments, item["value"], _join(mp, "value"))

    # ------------------------------------------------------------------ result
    def result(self, origin: str = "metadata") -> MappingResult:
        data: dict[str, Any] = {"metrics": {}, "params": {}}
        for target, v in self.values.items():
            if target.startswith("metrics."):
                data["metrics"][target.removeprefix("metrics.")] = v
            elif target.startswith("params."):
                data["params"][target.removeprefix("params.")] = v
            elif target in TEXT_FIELDS:
                data[target] = v[:20_000] if isinstance(v, str) else v
            else:
                data[target] = v
        try:
            record = ImportedRecord.model_validate(data)
        except ValidationError as e:
            raise ImportRefused(f"{origin}: the mapped metadata fails Vigil's schema: {schema_errors(e)}") from None
        missing = [f for f in REPORTED_FIELDS if not getattr(record, f)]
        return MappingResult(record=record, mapped=self.mapped, ignored=self.ignored, missing=missing,
                             notes=self.notes, unknown=self.unknown)


def map_documents(docs: list[tuple[Any, str, str | None]]) -> MappingResult:
    """Map ``[(data, origin, section)]`` in order (earlier documents win) into one result."""
    m = Mapper()
    for data, origin, section in docs:
        m.map_document(data, origin, section)
    return m.result(docs[0][1] if docs else "metadata")
