"""The table behind each model group's inference log: ``inference_log_<slug>``, created with
the group and archived to Parquet when the group is deleted. Its name is built from the
sanitised slug and always quoted with ``psycopg.sql.Identifier``; values travel as parameters
or through COPY, never in SQL text. Below membership (which creates and drops the table) and
scoring (which writes and reads it).
"""

from __future__ import annotations

import json
import logging
from datetime import date, datetime, timezone
from typing import TYPE_CHECKING, Any

import pandas as pd
import sqlalchemy as sa
from psycopg import sql
from sqlalchemy.engine import Connection

from contract.errors import UserError
from contract.names import is_group_slug
from vigil.storage.parquet_store import ParquetStore, default_store

if TYPE_CHECKING:
    from vigil.groups.records import Group

log = logging.getLogger(__name__)

LOG_COLUMNS = ("request_id", "model_version_id", "served", "inputs", "output", "score", "shap", "shap_base",
               "logical_date", "run_id", "flagged", "activated")
# Columns added after the first release: tables created earlier get them on their next write.
_ADDED_COLUMNS = (("flagged", "BOOLEAN"), ("activated", "BOOLEAN"))


class InferenceError(UserError):
    """Bad batch or group state; the message names the field and the fix."""


def table_ident(slug: str) -> sql.Identifier:
    if not is_group_slug(slug):  # defence in depth: the DB CHECK constraint says the same (contract.names)
        raise InferenceError(f"slug {slug!r} is not a sanitised identifier")
    return sql.Identifier(f"inference_log_{slug}")


def _raw(conn: Connection):
    """The psycopg connection under a SQLAlchemy connection (same transaction)."""
    return conn.connection.driver_connection


def create_table(conn: Connection, slug: str) -> None:
    t = table_ident(slug)
    with _raw(conn).cursor() as cur:
        cur.execute(sql.SQL(
            """CREATE TABLE IF NOT EXISTS {t} (
                 id                BIGSERIAL PRIMARY KEY,
                 request_id        TEXT NOT NULL,
                 model_version_id  BIGINT NOT NULL REFERENCES model_versions(id) ON DELETE RESTRICT,
                 served            BOOLEAN NOT NULL,
                 inputs            JSONB NOT NULL,
                 output            TEXT,
                 score             DOUBLE PRECISION,
                 shap              JSONB,
                 shap_base         DOUBLE PRECISION,
                 logical_date      DATE NOT NULL,
                 run_id            TEXT,
                 scored_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
                 label             TEXT,
                 labelled_at       TIMESTAMPTZ,
                 flagged           BOOLEAN,  -- LLM groups: the probe flagged the prompt
                 activated         BOOLEAN,  -- LLM groups: the generation shows the backdoor behaviour
                 UNIQUE (request_id, model_version_id)
               )"""
        ).format(t=t))
        cur.execute(sql.SQL("CREATE INDEX IF NOT EXISTS {i} ON {t} (logical_date)").format(
            i=sql.Identifier(f"ix_inference_log_{slug}_date"), t=t))


def ensure_columns(conn: Connection, slug: str) -> None:
    """Add the columns newer releases write to a table created by an older one. Only a table
    that lacks one is altered: ALTER TABLE locks the table even when there is nothing to add."""
    t = table_ident(slug)
    with _raw(conn).cursor() as cur:
        cur.execute("SELECT column_name FROM information_schema.columns WHERE table_schema = 'public' AND table_name = %s",
                    (f"inference_log_{slug}",))
        have = {r[0] for r in cur.fetchall()}
        for name, typ in _ADDED_COLUMNS:  # constants, never user input
            if name not in have:
                cur.execute(sql.SQL("ALTER TABLE {t} ADD COLUMN {c} " + typ).format(t=t, c=sql.Identifier(name)))


def table_exists(conn: Connection, slug: str) -> bool:
    return bool(conn.execute(sa.text("SELECT to_regclass(:t) IS NOT NULL"), {"t": f'public."inference_log_{slug}"'}).scalar())


def read_log(conn: Connection, slug: str, *, logical_date: date | None = None) -> pd.DataFrame:
    t = table_ident(slug)
    q = sql.SQL("SELECT * FROM {t}").format(t=t)
    params: list[Any] = []
    if logical_date is not None:
        q = sql.SQL("SELECT * FROM {t} WHERE logical_date = %s").format(t=t)
        params.append(logical_date)
    with _raw(conn).cursor() as cur:
        cur.execute(q + sql.SQL(" ORDER BY id"), params)
        cols = [d.name for d in cur.description]
        return pd.DataFrame(cur.fetchall(), columns=cols)


def write_rows(conn: Connection, slug: str, rows: pd.DataFrame) -> int:
    """COPY rows into a temp table, then upsert on (request_id, model_version_id)."""
    if rows.empty:
        return 0
    t = table_ident(slug)
    raw = _raw(conn)
    with raw.cursor() as cur:
        cur.execute(sql.SQL("CREATE TEMP TABLE _incoming (LIKE {t} INCLUDING DEFAULTS) ON COMMIT DROP").format(t=t))
        cols = sql.SQL(", ").join(map(sql.Identifier, LOG_COLUMNS))
        with cur.copy(sql.SQL("COPY _incoming ({cols}) FROM STDIN").format(cols=cols)) as cp:
            for rec in rows[list(LOG_COLUMNS)].itertuples(index=False, name=None):
                cp.write_row(rec)
        updates = sql.SQL(", ").join(
            sql.SQL("{c} = EXCLUDED.{c}").format(c=sql.Identifier(c)) for c in LOG_COLUMNS[2:]
        )
        cur.execute(sql.SQL(
            "INSERT INTO {t} ({cols}) SELECT {cols} FROM _incoming "
            "ON CONFLICT (request_id, model_version_id) DO UPDATE SET {updates}, scored_at = now()"
        ).format(t=t, cols=cols, updates=updates))
        n = cur.rowcount
        cur.execute("DROP TABLE _incoming")
    return n


def archive_and_drop(conn: Connection, g: Group, *, store: ParquetStore | None = None) -> dict[str, Any]:
    """Copy the whole log to Parquet (``inference_log_archive/date=<today>/key=group-<id>``), then
    drop the table. Returns where the archive went and how many rows it holds."""
    store = store or default_store()
    if not table_exists(conn, g.slug):
        return {"archived_rows": 0, "archive": None, "table": g.table, "note": "table was already gone"}
    df = read_log(conn, g.slug)
    for c in ("inputs", "shap"):
        if c in df:
            df[c] = df[c].map(lambda v: None if v is None else json.dumps(v))
    df["group_name"] = g.name
    df["group_id"] = g.id
    path = store.write("inference_log_archive", datetime.now(timezone.utc).date(), f"group-{g.id}", df)
    with _raw(conn).cursor() as cur:
        cur.execute(sql.SQL("DROP TABLE {t}").format(t=table_ident(g.slug)))
    log.info("archived %d rows of %s to %s and dropped the table", len(df), g.table, path)
    return {"archived_rows": int(len(df)), "archive": str(path), "table": g.table}
