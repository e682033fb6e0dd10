"""Optional mapper for keys the rules table does not know (off by default).

It asks an OpenAI-compatible ``/v1/chat/completions`` endpoint, configured as the Airflow
connection ``vigil_llm_mapper`` (host = base URL, password = API key, extra ``{"model": ...}``;
or the environment variable ``AIRFLOW_CONN_VIGIL_LLM_MAPPER``), where each unknown key belongs.

What is sent: only the unknown keys' paths and the *type* of their values, never the values nor
the rest of the document. What comes back is a suggestion, not data: it is validated against a
strict reply schema (every key must be one we sent, every target a valid record field), the
values are then taken from the document by Vigil and pass through the same unit rules, and the
whole record is validated again by ``ImportedRecord``. A reply that fails any of this refuses
the import. The API key never appears in an error message or a log line.
"""

from __future__ import annotations

import json
import logging
import os
import re
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Annotated, Any
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from vigil.importer.errors import ImportRefused
from vigil.importer.mapping import Mapper
from vigil.importer.schema import TEXT_FIELDS, schema_errors

log = logging.getLogger(__name__)

CONN_ID = "vigil_llm_mapper"
ENV_CONN = "AIRFLOW_CONN_VIGIL_LLM_MAPPER"
MAX_KEYS = 200
TIMEOUT_S = 60
FIELD_TARGETS = tuple(f for f in TEXT_FIELDS if f != "name")
_TARGET = rf"^(ignore|metrics\.[a-z0-9][a-z0-9_]{{0,99}}|params\.[A-Za-z0-9_.\-]{{1,200}}|{'|'.join(FIELD_TARGETS)})$"

SYSTEM_PROMPT = f"""You map metadata keys of machine-learning models onto a fixed schema.
You receive JSON {{"keys": [{{"key": "...", "value_type": "number|text|list|mapping|boolean"}}]}}.
For each key answer where its value belongs:
- "metrics.<snake_case_name>" for an evaluation result (a number),
- "params.<snake_case_name>" for a hyperparameter or training setting,
- one of {", ".join(FIELD_TARGETS)} for descriptive text,
- "ignore" when it is none of these.
Reply with JSON only: {{"mappings": [{{"key": "<key exactly as given>", "target": "<target>"}}]}}."""


class _Mapping(BaseModel):
    model_config = ConfigDict(extra="forbid")
    key: Annotated[str, StringConstraints(min_length=1, max_length=1000)]
    target: Annotated[str, StringConstraints(pattern=_TARGET)]


class _Reply(BaseModel):
    model_config = ConfigDict(extra="forbid")
    mappings: list[_Mapping] = Field(max_length=MAX_KEYS)


@dataclass
class MapperConnection:
    url: str               # full chat-completions URL (no credentials)
    model: str
    api_key: str = field(default="", repr=False)
    timeout: float = TIMEOUT_S

    def redact(self, text: str) -> str:
        return text.replace(self.api_key, "***") if self.api_key else text


def _chat_url(host: str, schema: str | None, port: int | None) -> str:
    base = host.strip()
    if "://" not in base:
        scheme = schema if schema in ("http", "https") else "https"
        base = f"{scheme}://{base}" + (f":{port}" if port else "")
    parts = urlsplit(base)
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    path = parts.path.rstrip("/")
    if not path.endswith("/chat/completions"):
        path = (path if path.endswith("/v1") else path + "/v1") + "/chat/completions"
    return urlunsplit((parts.scheme, netloc, path, "", ""))


def get_connection() -> MapperConnection:
    """The ``vigil_llm_mapper`` connection, read when the mapper runs (never at import time)."""
    conn = None
    try:
        from airflow.sdk import BaseHook

        conn = BaseHook.get_connection(CONN_ID)
    except Exception:  # not defined, or no Airflow context: fall back to the environment variable
        conn = None
    if conn is not None:
        host, password, schema, port = conn.host or "", conn.password or "", conn.schema, conn.port
        extra = conn.extra_dejson or {}
    elif os.environ.get(ENV_CONN):
        raw = os.environ[ENV_CONN]
        try:
            spec = json.loads(raw)
        except ValueError:
            spec = None
        if isinstance(spec, dict):
            host, password = spec.get("host") or "", spec.get("password") or ""
            schema, port = spec.get("schema"), spec.get("port")
            extra = spec.get("extra") or {}
            if isinstance(extra, str):
                extra = json.loads(extra or "{}")
        else:
            u = urlsplit(raw)
            host, password, schema, port = u.hostname or "", u.password or "", None, u.port
            extra = dict(x.split("=", 1) for x in u.query.split("&") if "=" in x)
    else:
        raise ImportRefused(
            f"the LLM mapper is on but connection {CONN_ID!r} is not configured: add an Airflow connection "
            f"(host = base URL like https://api.example.com/v1, password = API key, extra {{\"model\": \"...\"}}) or "
            f"set {ENV_CONN}"
        )
    if not host:
        raise ImportRefused(f"connection {CONN_ID!r} has no host: set it to the endpoint's base URL")
    model = str(extra.get("model") or "")
    if not model:
        raise ImportRefused(f"connection {CONN_ID!r} has no model: set extra {{\"model\": \"<model name>\"}}")
    timeout = float(extra.get("timeout", TIMEOUT_S))
    return MapperConnection(url=_chat_url(host, schema, port), model=model, api_key=password, timeout=timeout)


def _value_type(v: Any) -> str:
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, dict):
        return "mapping"
    if isinstance(v, list):
        return "list"
    return "text"


def _post(conn: MapperConnection, body: dict[str, Any]) -> dict[str, Any]:
    req = urllib.request.Request(conn.url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json", "Accept": "application/json"})
    if conn.api_key:
        req.add_header("Authorization", f"Bearer {conn.api_key}")
    try:
        with urllib.request.urlopen(req, timeout=conn.timeout) as resp:
            raw = resp.read(2_000_000)
    except urllib.error.HTTPError as e:
        detail = conn.redact(e.read(300).decode("utf-8", "replace")) if e.fp else ""
        raise ImportRefused(f"LLM mapper at {conn.url} answered HTTP {e.code} {conn.redact(str(e.reason))}"
                            + (f": {detail}" if detail else "") + "; nothing written") from None
    except (urllib.error.URLError, TimeoutError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise ImportRefused(f"cannot reach the LLM mapper at {conn.url} ({conn.redact(str(reason))}); check connection "
                            f"{CONN_ID!r}; nothing written") from None
    try:
        return json.loads(raw)
    except ValueError:
        raise ImportRefused(f"LLM mapper at {conn.url} did not answer JSON; nothing written") from None


def _content(reply: dict[str, Any]) -> str:
    try:
        content = reply["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        raise ImportRefused("LLM mapper reply is not a chat completion (no choices[0].message.content); "
                            "nothing written") from None
    if not isinstance(content, str):
        raise ImportRefused("LLM mapper reply content is not text; nothing written")
    fenced = re.fullmatch(r"\s*```(?:json)?\s*(.*?)\s*```\s*", content, flags=re.S)
    return fenced.group(1) if fenced else content


def suggest(unknown: dict[str, tuple[str, str, Any]], conn: MapperConnection) -> list[_Mapping]:
    """Ask the endpoint; returns mappings that passed the reply schema (refuses otherwise)."""
    keys = list(unknown)[:MAX_KEYS]
    payload = {"keys": [{"key": k, "value_type": _value_type(unknown[k][2])} for k in keys]}
    body = {"model": conn.model, "temperature": 0, "response_format": {"type": "json_object"},
            "messages": [{"role": "system", "content": SYSTEM_PROMPT},
                         {"role": "user", "content": json.dumps(payload)}]}
    log.info("LLM mapper: asking %s (model %s) about %d unknown keys", conn.url, conn.model, len(keys))
    text = _content(_post(conn, body))
    try:
        reply = _Reply.model_validate_json(text)
    except ValidationError as e:
        raise ImportRefused(f"LLM mapper output rejected by validation ({conn.redact(schema_errors(e))[:500]}); "
                            "nothing written") from None
    sent = set(keys)
    for m in reply.mappings:
        if m.key not in sent:
            raise ImportRefused(f"LLM mapper output rejected by validation: it mapped key {m.key[:200]!r}, which was "
                                "not asked about; nothing written")
    return reply.mappings


def apply(mapper: Mapper, conn: MapperConnection | None = None) -> dict[str, Any]:
    """Map ``mapper.unknown`` with the endpoint's suggestions, through the same rules."""
    if not mapper.unknown:
        return {"asked": 0, "accepted": 0}
    conn = conn or get_connection()
    asked = min(len(mapper.unknown), MAX_KEYS)
    suggestions = suggest(mapper.unknown, conn)
    via = f"llm:{conn.model}"
    accepted = 0
    for s in suggestions:
        if s.target == "ignore":
            continue
        origin, path, value = mapper.unknown[s.key]
        mapper.set_origin(origin)
        try:
            if s.target.startswith("metrics."):
                if isinstance(value, (dict, list)):
                    raise ImportRefused(f"it mapped {s.key!r} to {s.target} but that value is a {_value_type(value)}")
                mapper.put_metric(s.target.removeprefix("metrics."), value, path, via)
            elif s.target.startswith("params."):
                mapper.put(s.target, value, path, via)
            else:
                if isinstance(value, bool) or not isinstance(value, (str, int, float)):
                    raise ImportRefused(f"it mapped {s.key!r} to {s.target} but that value is a {_value_type(value)}")
                mapper.put(s.target, str(value).strip(), path, via)
        except ImportRefused as e:
            raise ImportRefused(f"LLM mapper output rejected by validation: {e}; nothing written") from None
        mapper.ignored = [i for i in mapper.ignored if i["source"] != s.key]
        accepted += 1
    for s in suggestions:
        if s.target != "ignore":
            mapper.unknown.pop(s.key, None)
    return {"asked": asked, "model": conn.model, "url": conn.url, "accepted": accepted}
