"""Warehouse schema lifecycle: create the database and run Alembic migrations to head."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy.engine import URL, Engine

from vigil.storage.db import DatabaseError, display_url, ensure_database, get_engine, warehouse_url

MIGRATIONS_DIR = Path(__file__).with_name("migrations")


def _alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return cfg


def head_revision() -> str:
    return ScriptDirectory.from_config(_alembic_config()).get_current_head()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as c:
        has = c.execute(sa.text("SELECT to_regclass('alembic_version') IS NOT NULL")).scalar()
        if not has:
            return None
        return c.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()


def migrate(url: URL | str | None = None, revision: str = "head") -> Engine:
    """Create the database if needed and upgrade it to ``revision``; idempotent. Returns its engine."""
    if url is None:
        url = warehouse_url()
    if isinstance(url, str):
        url = sa.engine.make_url(url)
    ensure_database(url)
    engine = get_engine(url)
    cfg = _alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
    return engine


def downgrade(url: URL | str, revision: str = "base") -> None:
    if isinstance(url, str):
        url = sa.engine.make_url(url)
    engine = get_engine(url)
    cfg = _alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, revision)


_READY: dict[str, Engine] = {}


def ready_engine() -> Engine:
    """The warehouse engine, migrated to head once per process and reachable now (tasks call this,
    not get_engine). The embedded server is started again if it was stopped; an unreachable
    external one raises :class:`DatabaseError` in one line, and Airflow retries the task."""
    url = warehouse_url()
    key = url.render_as_string(hide_password=False)
    if key not in _READY:
        _READY[key] = migrate(url)
    engine = _READY[key]
    try:
        with engine.connect() as c:  # the pool pre-pings: a restarted server gets fresh connections
            c.execute(sa.text("SELECT 1"))
    except sa.exc.OperationalError as e:
        reason = str(e.orig).strip().splitlines()[0] if e.orig else type(e).__name__
        raise DatabaseError(
            f"warehouse database unreachable at {display_url(url)}: {reason}; start that server "
            "(`vigil db start` for the embedded one) or fix VIGIL_DATABASE_URL, then retry the task") from e
    return engine
