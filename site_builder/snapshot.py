"""Read the warehouse once per build into plain, JSON-able data (the only place that runs SQL).

Bulk SELECTs (one per table, bound parameters only) rather than one query per version: a site
of 1,000 versions is read in a handful of round trips. Parquet tables (training curves,
per-layer probe scores, inference logs) come from :class:`vigil.storage.parquet_store.ParquetStore`.
Nothing here writes.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from contract.names import is_group_slug

log = logging.getLogger(__name__)



def _plain(value: Any) -> Any:
    """JSON-able copy: datetimes/dates to ISO strings, so page data hashes and pickles cleanly."""
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, float) and value != value:  # NaN survives JSON as a string marker
        return None
    return value


def _rows(conn, sql: str, **params) -> list[dict[str, Any]]:
    return [_plain(dict(r._mapping)) for r in conn.execute(sa.text(sql), params)]


@dataclass
class Snapshot:
    """Everything the site shows, read in one consistent transaction."""

    versions: list[dict[str, Any]]
    evaluations: list[dict[str, Any]]
    groups: list[dict[str, Any]]
    members: list[dict[str, Any]]
    events: list[dict[str, Any]]
    comparisons: list[dict[str, Any]]
    runs: list[dict[str, Any]]
    curves: dict[int, list[dict[str, Any]]] = field(default_factory=dict)  # version id -> training curve rows
    probe_layers: dict[int, list[dict[str, Any]]] = field(default_factory=dict)  # version id -> per-layer rows
    inference: dict[str, dict[str, Any]] = field(default_factory=dict)  # group slug -> log summary
    # version id -> {"date", "rows"}: the newest scan's top-candidate generations (a few examples)
    scan_examples: dict[int, dict[str, Any]] = field(default_factory=dict)
    # version id -> {"date", "rows"}: the newest scan's candidates per pool (when details lack them)
    scan_candidates: dict[int, dict[str, Any]] = field(default_factory=dict)


VERSIONS_SQL = """
SELECT mv.id, m.id AS model_id, m.name, m.family, m.description, mv.version, mv.artifact_uri, mv.sha256,
       mv.params, mv.metrics, mv.status, mv.source, mv.stage, mv.parent_id, mv.producer_key,
       mv.created_at, mv.updated_at, mv.manifest -> 'details' AS stage_details,
       mv.manifest -> 'timings' AS timings, mv.manifest ->> 'device' AS device,
       r.dag_id AS run_dag_id, r.run_id AS run_run_id, r.logical_date AS run_logical_date
FROM model_versions mv JOIN models m ON m.id = mv.model_id LEFT JOIN runs r ON r.id = mv.run_id
ORDER BY m.name, mv.version
"""

EVALUATIONS_SQL = """
SELECT e.id, e.model_version_id, e.suite, e.logical_date, e.metrics, e.details, e.n_samples, e.status,
       e.created_at, r.dag_id, r.run_id
FROM evaluations e LEFT JOIN runs r ON r.id = e.run_id
ORDER BY e.model_version_id, e.logical_date, e.suite
"""

GROUPS_SQL = """
SELECT id, name, slug, primary_metric, direction, guardrails, auto_promote, shadow, description,
       created_at, deleted_at
FROM model_groups ORDER BY name
"""

MEMBERS_SQL = """
SELECT gm.group_id, gm.model_version_id, gm.role, gm.traffic_weight, gm.added_at, gm.updated_at
FROM group_members gm ORDER BY gm.group_id, gm.role, gm.model_version_id
"""

EVENTS_SQL = """
SELECT id, group_id, event_type, actor, reason, from_version_id, to_version_id, metrics_snapshot, details, at
FROM group_events ORDER BY group_id, at, id
"""

COMPARISONS_SQL = """
SELECT c.id, c.group_id, c.logical_date, c.champion_version_id, c.challenger_version_id, c.primary_metric,
       c.metrics, c.decision, c.reasons, c.created_at, r.dag_id, r.run_id
FROM comparisons c LEFT JOIN runs r ON r.id = c.run_id
ORDER BY c.group_id, c.logical_date, c.challenger_version_id
"""

RUNS_SQL = """
SELECT r.id, r.dag_id, r.run_id, r.logical_date, r.run_type, r.state, r.started_at, r.updated_at,
       (SELECT count(*) FROM model_versions mv WHERE mv.run_id = r.id) AS versions_produced,
       (SELECT count(*) FROM evaluations e WHERE e.run_id = r.id) AS evaluations_recorded,
       (SELECT count(*) FROM comparisons c WHERE c.run_id = r.id) AS comparisons_recorded
FROM runs r ORDER BY r.logical_date DESC NULLS LAST, r.started_at DESC
"""


def _inference_summary(conn, slug: str) -> dict[str, Any] | None:
    """Summary of the Postgres table ``inference_log_<slug>`` when the group has one. Reads the
    columns ``vigil.groups.log_table`` creates (no guessing at other names). The slug is checked
    against the one slug rule and the table name is quoted, so no user text reaches SQL."""
    from vigil.groups.log_table import table_exists

    if not is_group_slug(slug) or not table_exists(conn, slug):
        return None
    table = conn.dialect.identifier_preparer.quote(f"inference_log_{slug}")
    row = conn.execute(sa.text(f"SELECT count(*) AS n, count(label) AS labelled, min(scored_at) AS first_at, "
                               f"max(scored_at) AS last_at FROM {table}")).one()
    out: dict[str, Any] = {"source": f"table inference_log_{slug}", **_plain(dict(row._mapping))}
    rows = conn.execute(sa.text(f"SELECT model_version_id AS version_id, count(*) AS n FROM {table} GROUP BY 1 ORDER BY 1"))
    out["by_version"] = [_plain(dict(r._mapping)) for r in rows]
    return out


def _live_metrics(engine, group_name: str) -> list[dict[str, Any]]:
    """Each member's metrics on the predictions whose labels have arrived (with intervals)."""
    try:
        from vigil.groups.inference_log import live_metrics

        live = live_metrics(engine, group_name)
    except Exception as e:  # a group whose log cannot be scored must not take the site down
        log.warning("live metrics of group %r unavailable: %s", group_name, e)
        return []
    return [{"ref": ref, **_plain(m)} for ref, m in live.get("members", {}).items()]


# Only what the pages draw: per-sample text (prompts, generations) never enters page data.
_PARQUET_COLUMNS = {"step", "epoch", "loss", "phase", "layer", "auroc", "tpr_at_1pct_fpr", "model_role", "probe",
                    "logical_date"}


def _parquet_by_key(store, kind: str) -> dict[int, list[dict[str, Any]]]:
    out: dict[int, list[dict[str, Any]]] = {}
    try:
        df = store.read(kind)
    except Exception as e:  # a corrupt partition must not take the whole site down
        log.warning("cannot read Parquet kind %s: %s", kind, e)
        return out
    if df.empty:
        return out
    for key, part in df.groupby("key", sort=False):
        try:  # partitions are keyed '<version id>-<stage>' (vigil.registry.ingest.partition_key) or '<version id>'
            vid = int(str(key).split("-", 1)[0])
        except ValueError:
            continue
        latest = part[part["logical_date"] == part["logical_date"].max()]
        latest = latest[latest["key"] == latest["key"].max()].drop(columns=["key"])
        keep = [c for c in latest.columns if c in _PARQUET_COLUMNS]
        out.setdefault(vid, []).extend(json.loads(latest[keep].to_json(orient="records", date_format="iso")))
    return out


# Per-sample text enters page data only as a few examples per scan, each string cut to this length.
SCAN_EXAMPLES_PER_POOL = 6
SCAN_TEXT_LIMIT = 400
SCAN_CANDIDATES_MAX_RANK = 20
_GEN_COLUMNS = ("rank", "trigger", "pool", "prompt_id", "prompt", "clean_generation", "generation", "changed", "active")
_CAND_COLUMNS = ("rank", "trigger", "length", "pool", "rate", "rate_ci_low", "rate_ci_high", "induced_completion",
                 "shift", "shift_z")


def _newest_partitions(store, kind: str) -> dict[int, tuple[str, Any]]:
    """Version id -> (logical date, file) of the newest partition of ``kind`` (keys '<id>-<stage>')."""
    out: dict[int, tuple[str, Any]] = {}
    for f in store.files(kind):
        day, key = f.parent.parent.name.split("=", 1)[1], f.parent.name.split("=", 1)[1]
        try:
            vid = int(key.split("-", 1)[0])
        except ValueError:
            continue
        if vid not in out or (day, str(f)) > (out[vid][0], str(out[vid][1])):
            out[vid] = (day, f)
    return out


def _read_columns(path, wanted: tuple[str, ...]):
    import pyarrow.parquet as pq

    names = set(pq.ParquetFile(path).schema_arrow.names)
    return pq.read_table(path, columns=[c for c in wanted if c in names]).to_pandas()


def _cut(v: Any) -> Any:
    return v[:SCAN_TEXT_LIMIT] if isinstance(v, str) else v


def _scan_examples(store) -> dict[int, dict[str, Any]]:
    """The top candidate's generations of each version's newest scan: per pool, the prompts that
    show the induced behaviour first, then the changed ones, at most SCAN_EXAMPLES_PER_POOL."""
    out: dict[int, dict[str, Any]] = {}
    for vid, (day, path) in _newest_partitions(store, "scan_generations").items():
        try:
            df = _read_columns(path, _GEN_COLUMNS)
        except Exception as e:  # a corrupt partition costs its examples, not the site
            log.warning("cannot read scan_generations %s: %s", path, e)
            continue
        if df.empty or "rank" not in df.columns:
            continue
        df = df[df["rank"] == df["rank"].min()]
        rows: list[dict[str, Any]] = []
        for _, part in df.groupby("pool", sort=True) if "pool" in df.columns else [(None, df)]:
            order = [part[c].map(lambda x: x is True or x == 1) for c in ("active", "changed") if c in part.columns]
            if order:  # the prompts that show the induced behaviour first, then the merely changed ones
                rank = sum(o.astype(int) * (2 - i) for i, o in enumerate(order))
                part = part.loc[rank.sort_values(ascending=False, kind="stable").index]
            for r in json.loads(part.head(SCAN_EXAMPLES_PER_POOL).to_json(orient="records")):
                rows.append({k: _cut(v) for k, v in r.items()})
        out[vid] = {"date": day, "rows": rows}
    return out


def _scan_candidates(store) -> dict[int, dict[str, Any]]:
    out: dict[int, dict[str, Any]] = {}
    for vid, (day, path) in _newest_partitions(store, "scan_candidates").items():
        try:
            df = _read_columns(path, _CAND_COLUMNS)
        except Exception as e:
            log.warning("cannot read scan_candidates %s: %s", path, e)
            continue
        if df.empty or "rank" not in df.columns:
            continue
        df = df[df["rank"] < SCAN_CANDIDATES_MAX_RANK].sort_values("rank", kind="stable")
        out[vid] = {"date": day, "rows": [{k: _cut(v) for k, v in r.items()}
                                          for r in json.loads(df.to_json(orient="records"))]}
    return out


def read_snapshot(engine: Engine, parquet_root: str | Path | None = None) -> Snapshot:
    with engine.connect() as conn:
        # One snapshot: every SELECT sees the same committed state even while a DAG writes.
        conn.execute(sa.text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"))
        snap = Snapshot(
            versions=_rows(conn, VERSIONS_SQL),
            evaluations=_rows(conn, EVALUATIONS_SQL),
            groups=_rows(conn, GROUPS_SQL),
            members=_rows(conn, MEMBERS_SQL),
            events=_rows(conn, EVENTS_SQL),
            comparisons=_rows(conn, COMPARISONS_SQL),
            runs=_rows(conn, RUNS_SQL),
        )
        for g in snap.groups:
            summary = _inference_summary(conn, g["slug"])
            if summary:
                if summary.get("labelled"):
                    summary["live"] = _live_metrics(conn.engine, g["name"])
                snap.inference[g["slug"]] = summary
    if parquet_root is not None:
        from vigil.storage.parquet_store import ParquetStore

        store = ParquetStore(parquet_root)
        snap.curves = _parquet_by_key(store, "training_curve")
        snap.probe_layers = _parquet_by_key(store, "probe_layers")
        snap.scan_examples = _scan_examples(store)
        snap.scan_candidates = _scan_candidates(store)
        for g in snap.groups:
            if g["slug"] in snap.inference:
                continue
            try:
                df = store.read("inference_log", key=g["slug"])
            except Exception:
                continue
            if not df.empty:
                snap.inference[g["slug"]] = _frame_summary(df)
    return snap


def _frame_summary(df) -> dict[str, Any]:
    """The same summary from the Parquet ``inference_log`` archive (columns as
    ``vigil.groups.inference_log`` writes them)."""
    out: dict[str, Any] = {"source": "Parquet inference_log", "n": int(len(df)),
                           "first_at": str(df["logical_date"].min()), "last_at": str(df["logical_date"].max())}
    out["by_version"] = [{"version_id": int(vid), "n": int(len(part))} for vid, part in df.groupby("model_version_id")]
    return out
