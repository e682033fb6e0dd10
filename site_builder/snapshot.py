"""Read the warehouse once per build into plain, JSON-able data (the only place that runs SQL).

Bulk SELECTs (one per table, bound parameters only) rather than one query per version: a site
of 1,000 versions is read in a handful of round trips. Parquet tables (training curves,
per-layer probe scores, inference logs) come from :class:`vigil.storage.parquet_store.ParquetStore`.
Nothing here writes.

Every evaluation and comparison row is read (the trend charts plot every night), but the large JSON
a page never shows stays in the database: of a succeeded nightly evaluation older than the newest
one of its version and suite, ``details`` holds only ``seconds``; of a comparison older than its
group's newest comparison day, ``metrics`` and ``reasons`` are None. bench/warehouse_read.py
measures the read at 1,000 versions and 100,000 evaluations; tests/site/test_snapshot_read.py
checks that the pages planned from it equal those planned from the full rows.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pickle
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pydantic_core
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


# PostgreSQL types whose Python values are already plain: bool, int8, int2, int4, text, json,
# varchar, numeric, jsonb (JSON holds no dates and no NaN). Other columns go through _plain.
_PLAIN_OIDS = frozenset({16, 20, 21, 23, 25, 114, 1043, 1700, 3802})


def _rows(conn, sql: str, **params) -> list[dict[str, Any]]:
    """Rows as dicts, columns made JSON-able. Only the columns whose type can hold a date or a NaN
    are walked: walking 100,000 evaluations' metrics cost more than reading them."""
    result = conn.execute(sa.text(sql), params)
    keys = list(result.keys())
    description = result.cursor.description if result.cursor is not None else None
    types = [getattr(d, "type_code", None) for d in description] if description else [None] * len(keys)
    walk = [k for k, t in zip(keys, types, strict=True) if t not in _PLAIN_OIDS]
    out = []
    for values in result.all():
        row = dict(zip(keys, values, strict=True))
        for k in walk:
            row[k] = _plain(row[k])
        out.append(row)
    return out


def _loads(data: bytes) -> Any:
    """JSON text -> Python: pydantic_core's parser (a dependency through pydantic), the same values
    as ``json.loads`` at 2.5 times its speed; ``json.loads`` for anything it refuses."""
    try:
        return pydantic_core.from_json(data)
    except ValueError:
        return json.loads(data)


@contextmanager
def _fast_json(conn) -> Iterator[None]:
    """Decode this connection's JSON columns with :func:`_loads` while the snapshot is read (most
    of the read is decoding evaluation metrics), then put psycopg's own loaders back: the
    connection returns to the pool as it came."""
    raw = getattr(conn.connection, "driver_connection", None)
    try:
        import psycopg
        from psycopg.pq import Format
        from psycopg.types.json import set_json_loads
    except ImportError:  # another driver: its own JSON decoding
        yield
        return
    if not isinstance(raw, psycopg.Connection):
        yield
        return
    adapters = raw.adapters
    saved = [(info.oid, adapters.get_loader(info.oid, fmt)) for info in (adapters.types["json"], adapters.types["jsonb"])
             for fmt in (Format.TEXT, Format.BINARY)]
    set_json_loads(_loads, raw)
    try:
        yield
    finally:
        for oid, loader in saved:
            if loader is not None:
                adapters.register_loader(oid, loader)


@dataclass
class Snapshot:
    """Everything the site shows, read in one consistent transaction. Of an older nightly
    evaluation ``details`` holds only ``seconds``, and an older comparison's ``metrics`` and
    ``reasons`` are None: no page shows them (see EVALUATIONS_SQL and COMPARISONS_SQL)."""

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
    # sweeps (migration 0004): each sweep, and each of its cells with its state and version ids
    sweeps: list[dict[str, Any]] = field(default_factory=list)
    sweep_cells: list[dict[str, Any]] = field(default_factory=list)
    # field name -> a digest that changes whenever the field's content may have (read with a cache
    # dir only: table markers, Parquet file stats); a field without one is taken as changed
    digests: dict[str, str] = field(default_factory=dict)


VERSIONS_SQL = """
SELECT mv.id, m.id AS model_id, m.name, m.family, m.description, mv.version, mv.artifact_uri, mv.sha256,
       mv.params, mv.metrics, mv.status, mv.source, mv.stage, mv.parent_id, mv.producer_key,
       mv.created_at, mv.updated_at, mv.manifest -> 'details' AS stage_details,
       mv.manifest -> 'timings' AS timings, mv.manifest ->> 'device' AS device,
       r.dag_id AS run_dag_id, r.run_id AS run_run_id, r.logical_date AS run_logical_date
FROM model_versions mv JOIN models m ON m.id = mv.model_id LEFT JOIN runs r ON r.id = mv.run_id
ORDER BY m.name, mv.version
"""

# The suites the nightly_evaluation DAG records every night for every version (the stages of
# vigil.lifecycle.specs.NIGHTLY_STAGES; the pages' NIGHTLY_SUITES): they are most of the rows.
NIGHTLY_SUITES = ("evaluate", "evaluate-sklearn")
# Their details, and those of the nightly analyses (suite ``analyze``: the pages show a version's
# newest only), are what the read trims on older rows.
TRIMMED_SUITES = (*NIGHTLY_SUITES, "analyze")

# Every evaluation, with its metrics (the trend charts plot each night's). ``details`` (per-layer
# probe scores, ROC points, SHAP, threshold checks: several KB a row) whole only where a page shows
# it: for a nightly suite, of the newest succeeded row of each version and of failed rows (the
# Evaluations table says why they failed); rows of other suites always. Of an older succeeded
# nightly row only ``seconds``, the one detail the Evaluations table shows of every row
# (site_builder.pagedata): a page that starts reading more of old rows' details needs it here too.
EVALUATIONS_SQL = """
SELECT e.id, e.model_version_id, e.suite, e.logical_date, e.metrics,
       CASE WHEN e.status = 'succeeded' AND e.logical_date < n.newest
            THEN CASE WHEN e.details ? 'seconds' THEN jsonb_build_object('seconds', e.details -> 'seconds')
                      ELSE '{}'::jsonb END
            ELSE e.details END AS details,
       e.n_samples, e.status, e.created_at, r.dag_id, r.run_id
FROM evaluations e
LEFT JOIN runs r ON r.id = e.run_id
LEFT JOIN (SELECT model_version_id, suite, max(logical_date) AS newest FROM evaluations
           WHERE status = 'succeeded' AND suite = ANY(:nightly) GROUP BY model_version_id, suite) n
       ON n.model_version_id = e.model_version_id AND n.suite = e.suite
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

# Every comparison (a group page lists the newest 100 decisions); ``metrics`` and ``reasons`` (the
# bootstrap intervals of every metric: several KB a row) only of each group's newest day, the one
# its page and the alerts show. Older rows carry None there.
COMPARISONS_SQL = """
SELECT c.id, c.group_id, c.logical_date, c.champion_version_id, c.challenger_version_id, c.primary_metric,
       CASE WHEN c.logical_date < n.newest THEN NULL ELSE c.metrics END AS metrics, c.decision,
       CASE WHEN c.logical_date < n.newest THEN NULL ELSE c.reasons END AS reasons,
       c.created_at, r.dag_id, r.run_id
FROM comparisons c
LEFT JOIN runs r ON r.id = c.run_id
JOIN (SELECT group_id, max(logical_date) AS newest FROM comparisons GROUP BY group_id) n ON n.group_id = c.group_id
ORDER BY c.group_id, c.logical_date, c.challenger_version_id
"""

# What each run recorded: one grouped count per table (each an index-only scan of its run_id
# index, migration 0003), not a count per run (a scan of every evaluation for each of ~1,000 runs).
RUNS_SQL = """
SELECT r.id, r.dag_id, r.run_id, r.logical_date, r.run_type, r.state, r.started_at, r.updated_at,
       coalesce(mv.n, 0) AS versions_produced, coalesce(e.n, 0) AS evaluations_recorded,
       coalesce(c.n, 0) AS comparisons_recorded
FROM runs r
LEFT JOIN (SELECT run_id, count(*) AS n FROM model_versions GROUP BY run_id) mv ON mv.run_id = r.id
LEFT JOIN (SELECT run_id, count(*) AS n FROM evaluations GROUP BY run_id) e ON e.run_id = r.id
LEFT JOIN (SELECT run_id, count(*) AS n FROM comparisons GROUP BY run_id) c ON c.run_id = r.id
ORDER BY r.logical_date DESC NULLS LAST, r.started_at DESC, r.id DESC
"""

# Sweeps and their cells (no metrics: the pages read those from the evaluations above through the
# cells' version ids). Two small SELECTs; names and texts are data, never SQL.
SWEEPS_SQL = "SELECT id, name, grid, created_at, updated_at FROM sweeps ORDER BY name"
SWEEP_CELLS_SQL = """
SELECT c.id, c.sweep_id, c.cell_key, c.base_size, c.backdoor_type, c.trigger, c.safety_method, c.safety_strength,
       c.seed, c.params, c.n_params, c.state, c.attempts, c.error, c.base_version_id, c.backdoored_version_id,
       c.control_version_id, c.safety_version_id, c.started_at, c.finished_at, r.dag_id AS run_dag_id, r.run_id AS run_run_id
FROM sweep_cells c LEFT JOIN runs r ON r.id = c.run_id
ORDER BY c.sweep_id, c.cell_key
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


def _read_kind(store, kind: str):
    """``store.read(kind)``: every partition's rows with ``logical_date`` and ``key`` added. When
    all partitions share one schema (one stage wrote them) the files are read as Arrow tables and
    converted once; that is 10 times faster at 1,000 partitions than a DataFrame per file."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    files = store.files(kind)
    fs = getattr(store, "filesystem", None)  # an object store's (VIGIL_STORAGE_URL), else local files
    tables = [pq.ParquetFile(str(f) if fs else f, filesystem=fs).read() for f in files]
    if not tables or any(not t.schema.equals(tables[0].schema) for t in tables[1:]):
        return store.read(kind)
    df = pa.concat_tables(tables).to_pandas().reset_index(drop=True)
    counts = [t.num_rows for t in tables]
    # as store.read sets them (a str per file): object arrays of str take the same dtype
    df["logical_date"] = np.repeat(np.array([f.parent.parent.name.split("=", 1)[1] for f in files], dtype=object), counts)
    df["key"] = np.repeat(np.array([f.parent.name.split("=", 1)[1] for f in files], dtype=object), counts)
    return df


def _parquet_by_key(store, kind: str) -> dict[int, list[dict[str, Any]]]:
    out: dict[int, list[dict[str, Any]]] = {}
    try:
        df = _read_kind(store, kind)
    except Exception as e:  # a corrupt partition must not take the whole site down
        log.warning("cannot read Parquet kind %s: %s", kind, e)
        return out
    if df.empty:
        return out
    # Each partition key's newest logical date, its rows in file order; keys in the order they
    # first appear. One to_json for all of them (a DataFrame per key cost seconds at 1,000 versions).
    latest = df[df["logical_date"] == df.groupby("key", sort=False)["logical_date"].transform("max")]
    keep = [c for c in df.columns if c in _PARQUET_COLUMNS]
    by_key: dict[Any, list[dict[str, Any]]] = {k: [] for k in df["key"].unique()}
    for key, row in zip(latest["key"].tolist(),
                        json.loads(latest[keep].to_json(orient="records", date_format="iso")), strict=True):
        by_key[key].append(row)
    for key, rows in by_key.items():
        try:  # partitions are keyed '<version id>-<stage>' (vigil.registry.ingest.partition_key) or '<version id>'
            vid = int(str(key).split("-", 1)[0])
        except ValueError:
            continue
        out.setdefault(vid, []).extend(rows)
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


def _read_columns(path, wanted: tuple[str, ...], fs=None):
    import pyarrow.parquet as pq

    if fs is not None:
        path = str(path)
    names = set(pq.ParquetFile(path, filesystem=fs).schema_arrow.names)
    return pq.read_table(path, columns=[c for c in wanted if c in names], filesystem=fs).to_pandas()


def _cut(v: Any) -> Any:
    return v[:SCAN_TEXT_LIMIT] if isinstance(v, str) else v


def _scan_examples(store) -> dict[int, dict[str, Any]]:
    """The top candidate's generations of each version's newest scan: per pool, the prompts that
    show the induced behaviour first, then the changed ones, at most SCAN_EXAMPLES_PER_POOL."""
    out: dict[int, dict[str, Any]] = {}
    for vid, (day, path) in _newest_partitions(store, "scan_generations").items():
        try:
            df = _read_columns(path, _GEN_COLUMNS, getattr(store, "filesystem", None))
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
            df = _read_columns(path, _CAND_COLUMNS, getattr(store, "filesystem", None))
        except Exception as e:
            log.warning("cannot read scan_candidates %s: %s", path, e)
            continue
        if df.empty or "rank" not in df.columns:
            continue
        df = df[df["rank"] < SCAN_CANDIDATES_MAX_RANK].sort_values("rank", kind="stable")
        out[vid] = {"date": day, "rows": [{k: _cut(v) for k, v in r.items()}
                                          for r in json.loads(df.to_json(orient="records"))]}
    return out


# ------------------------------------------------------------------------------------ read cache
# A build keeps what it read in its cache folder; the next build reuses a part whose sources did not
# change, checked cheaply: a table by a marker, a Parquet kind by its files' sizes and times. The
# evaluations (most of the read: their JSON) and the Parquet tables; the rest costs less to read.
# ... and this file's own code: what it makes of the rows (and so every digest) changes with it
CACHE_VERSION = "1:" + hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:16]
# Tables each query reads: its rows are the same while none of them changed.
_QUERY_TABLES = {"versions": ("model_versions", "models", "runs"), "evaluations": ("evaluations", "runs"),
                 "groups": ("model_groups",), "members": ("group_members",), "events": ("group_events",),
                 "comparisons": ("comparisons", "runs"), "runs": ("runs", "model_versions", "evaluations", "comparisons"),
                 "sweeps": ("sweeps",), "sweep_cells": ("sweep_cells", "runs")}
_SWEEP_TABLES = ("sweeps", "sweep_cells")  # from migration 0004 on


def _digest(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:24]


def _markers(conn, tables: tuple[str, ...]) -> dict[str, str]:
    """Per table, its row count and the sum of a 64-bit hash of each row version's place and
    inserting transaction (ctid, xmin), in the read's own snapshot: an INSERT, UPDATE or DELETE
    changes it (every new row version has a new xmin), and it reads no column (a scan of 100,000
    evaluations takes tens of ms; decoding their JSON takes seconds). The names are constants."""
    sql = " UNION ALL ".join(
        f"SELECT '{t}' AS tbl, count(*)::text || ':' || coalesce(sum(hashtextextended(ctid::text || ':' || xmin::text, 0)"
        f"::numeric), 0)::text AS marker FROM {t}" for t in tables)
    return {r.tbl: r.marker for r in conn.execute(sa.text(sql))}


def cache_load(path: Path | None, key: Any) -> Any:
    """What ``cache_save`` kept at ``path`` under ``key``; None when absent, torn or kept under another key."""
    if path is None or not path.is_file():
        return None
    try:
        with open(path, "rb") as f:
            got = pickle.load(f)
    except Exception as e:  # noqa: BLE001 (a torn or old cache file is only a cache miss)
        log.info("read cache %s unusable (%s): read again", path.name, e)
        return None
    return got["value"] if isinstance(got, dict) and got.get("key") == key else None


def cache_save(path: Path | None, key: Any, value: Any) -> None:
    """Keep ``value`` under ``key`` for the next build (atomically: a torn write is never read)."""
    if path is None:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with open(tmp, "wb") as f:
            pickle.dump({"key": key, "value": value}, f, protocol=pickle.HIGHEST_PROTOCOL)
        tmp.replace(path)
    except OSError as e:  # a full disk costs the next build's reuse, not this build
        log.warning("cannot keep %s for the next build: %s", path, e)


def _cached_rows(conn, cache: Path | None, name: str, sql: str, markers: dict[str, str], **params) -> list[dict[str, Any]]:
    key = (CACHE_VERSION, sql, json.dumps(params, sort_keys=True), [markers[t] for t in _QUERY_TABLES[name]])
    path = cache / f"{name}.pkl" if cache is not None else None
    rows = cache_load(path, key)
    if rows is None:
        rows = _rows(conn, sql, **params)
        cache_save(path, key, rows)
    return rows


def _parquet_cached(store, cache: Path | None, name: str, kinds: tuple[str, ...], read) -> tuple[Any, str | None]:
    """``read(store)`` unless the files of ``kinds`` are those (path, size, mtime) of the cached read;
    and the digest of those files (None: not checked). Only a local store: an object store's listing
    has no times to trust."""
    if cache is None or getattr(store, "filesystem", None) is not None:
        return read(store), None
    files = []
    for kind in kinds:
        for f in store.files(kind):
            st = f.stat()
            files.append((str(f), st.st_size, st.st_mtime_ns))
    key = (CACHE_VERSION, name, str(store.root), files)
    path = cache / f"parquet-{name}.pkl"
    value = cache_load(path, key)
    if value is None:
        value = read(store)
        cache_save(path, key, value)
    return value, _digest(key)


def _inference_tables(conn) -> set[str]:
    """The group slugs that have an ``inference_log_<slug>`` table, in one query (not one per group)."""
    rows = conn.execute(sa.text("SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                                "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm', 'f') "
                                "AND c.relname LIKE 'inference\\_log\\_%'"))
    return {r.relname[len("inference_log_"):] for r in rows}


def read_snapshot(engine: Engine, parquet_root: Any = None, cache_dir: Any = None) -> Snapshot:
    """The warehouse in one consistent read. ``parquet_root``: a folder, or a ParquetStore (on an
    object store: ``vigil.storage.parquet_store.default_store()``), or None for no Parquet.
    ``cache_dir``: where the read keeps what the next read may reuse (see ``_markers``); None: no reuse."""
    cache = Path(cache_dir) if cache_dir is not None else None
    with engine.connect() as conn, _fast_json(conn):
        # One snapshot: every SELECT sees the same committed state even while a DAG writes.
        conn.execute(sa.text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"))
        sweeps = bool(conn.execute(sa.text("SELECT to_regclass('sweep_cells') IS NOT NULL")).scalar())  # before 0004: no
        markers = _markers(conn, tuple(sorted({t for ts in _QUERY_TABLES.values() for t in ts
                                               if sweeps or t not in _SWEEP_TABLES}))) if cache else {}
        snap = Snapshot(
            versions=_rows(conn, VERSIONS_SQL),
            evaluations=_cached_rows(conn, cache, "evaluations", EVALUATIONS_SQL, markers, nightly=list(TRIMMED_SUITES))
            if cache else _rows(conn, EVALUATIONS_SQL, nightly=list(TRIMMED_SUITES)),
            groups=_rows(conn, GROUPS_SQL),
            members=_rows(conn, MEMBERS_SQL),
            events=_rows(conn, EVENTS_SQL),
            comparisons=_rows(conn, COMPARISONS_SQL),
            runs=_rows(conn, RUNS_SQL),
        )
        if sweeps:
            snap.sweeps = _rows(conn, SWEEPS_SQL)
            snap.sweep_cells = _rows(conn, SWEEP_CELLS_SQL)
        if cache:
            sqls = {"versions": VERSIONS_SQL, "evaluations": EVALUATIONS_SQL, "groups": GROUPS_SQL, "members": MEMBERS_SQL,
                    "events": EVENTS_SQL, "comparisons": COMPARISONS_SQL, "runs": RUNS_SQL, "sweeps": SWEEPS_SQL,
                    "sweep_cells": SWEEP_CELLS_SQL}
            for name, tables in _QUERY_TABLES.items():
                snap.digests[name] = _digest(CACHE_VERSION, sqls[name], TRIMMED_SUITES, sweeps,
                                             [markers.get(t) for t in tables])
        logs = _inference_tables(conn)
        for g in snap.groups:
            if g["slug"] not in logs and len(f"inference_log_{g['slug']}") < 63:  # (longer: Postgres cut the name)
                continue
            summary = _inference_summary(conn, g["slug"])
            if summary:
                if summary.get("labelled"):
                    summary["live"] = _live_metrics(conn.engine, g["name"])
                snap.inference[g["slug"]] = summary
    if parquet_root is not None:
        from vigil.storage.parquet_store import ParquetStore

        store = parquet_root if isinstance(parquet_root, ParquetStore) else ParquetStore(parquet_root)
        for name, kinds, read in (("curves", ("training_curve",), lambda st: _parquet_by_key(st, "training_curve")),
                                  ("probe_layers", ("probe_layers",), lambda st: _parquet_by_key(st, "probe_layers")),
                                  ("scan_examples", ("scan_generations",), _scan_examples),
                                  ("scan_candidates", ("scan_candidates",), _scan_candidates)):
            value, digest = _parquet_cached(store, cache, name, kinds, read)
            setattr(snap, name, value)
            if digest is not None:
                snap.digests[name] = digest
    elif cache is not None:
        for name in ("curves", "probe_layers", "scan_examples", "scan_candidates"):
            snap.digests[name] = "none"
        for g in snap.groups:
            if g["slug"] in snap.inference:
                continue
            try:
                df = store.read("inference_log", key=g["slug"])
            except Exception:
                continue
            if not df.empty:
                snap.inference[g["slug"]] = _frame_summary(df)
    if cache is not None:
        snap.digests["inference"] = _digest(snap.inference)
    return snap


def _frame_summary(df) -> dict[str, Any]:
    """The same summary from the Parquet ``inference_log`` archive (columns as
    ``vigil.groups.inference_log`` writes them)."""
    out: dict[str, Any] = {"source": "Parquet inference_log", "n": int(len(df)),
                           "first_at": str(df["logical_date"].min()), "last_at": str(df["logical_date"].max())}
    out["by_version"] = [{"version_id": int(vid), "n": int(len(part))} for vid, part in df.groupby("model_version_id")]
    return out
