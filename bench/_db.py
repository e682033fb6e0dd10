"""A temporary warehouse database for the benchmarks: on VIGIL_TEST_DATABASE_URL /
VIGIL_DATABASE_URL's server when set, otherwise on an embedded PostgreSQL (pgserver) started in a
temporary directory; dropped (and the embedded server stopped) afterwards."""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
import warnings
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import make_url


@contextmanager
def temporary_database():
    env = os.environ.get("VIGIL_TEST_DATABASE_URL") or os.environ.get("VIGIL_DATABASE_URL")
    root = Path(tempfile.mkdtemp(prefix="vigil-bench-", dir="/tmp"))
    srv = None
    if env:
        server = make_url(env)
        if server.drivername in ("postgresql", "postgres"):
            server = server.set(drivername="postgresql+psycopg")
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import pgserver

            srv = pgserver.get_server(root / "pg", cleanup_mode=None)
        server = sa.engine.URL.create("postgresql+psycopg", username="postgres", database="postgres",
                                      query={"host": str(root / "pg")})
    name = f"vigil_bench_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(server.set(database="postgres"), isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    with admin.connect() as c:
        c.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield server.set(database=name), root
    finally:
        from vigil.storage.db import get_engine

        get_engine(server.set(database=name)).dispose()
        with admin.connect() as c:
            c.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        if srv is not None:
            from pgserver._commands import pg_ctl

            pg_ctl(["-w", "stop", "-m", "immediate"], pgdata=srv.pgdata, user=srv.system_user)
        shutil.rmtree(root, ignore_errors=True)
