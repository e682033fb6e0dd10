"""The warehouse database: an embedded PostgreSQL (pgserver wheel) or any configured URL.

With VIGIL_DATABASE_URL unset, Vigil runs a real PostgreSQL server from the `pgserver` wheel in
``$VIGIL_DATA_DIR/pg`` (unix socket only, no TCP port). The warehouse lives in database
``vigil`` and Airflow's metadata in database ``airflow`` on the same server.
"""

from __future__ import annotations

import functools
import logging
import os
import warnings

import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine, make_url

from vigil.settings import Settings, get_settings

log = logging.getLogger(__name__)

WAREHOUSE_DB = "vigil"
AIRFLOW_DB = "airflow"


class DatabaseError(RuntimeError):
    """The database cannot be reached or prepared; the message says what to do."""


def _pgserver(settings: Settings, start: bool = True):
    # Imported here: pgserver pulls platformdirs/fasteners, and most commands do not need it.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
        import pgserver
    if not start and not (settings.pg_dir / "PG_VERSION").exists():
        return None
    settings.pg_dir.parent.mkdir(parents=True, exist_ok=True)
    if len(str(settings.pg_dir)) > 90:
        # Unix socket paths are limited to ~107 bytes; pgserver puts the socket in the data dir.
        raise DatabaseError(
            f"VIGIL_DATA_DIR is too long for a unix socket ({settings.pg_dir}); set VIGIL_DATA_DIR to a shorter path"
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # cleanup_mode=None: the server outlives this process (Airflow workers share it).
        srv = pgserver.get_server(settings.pg_dir, cleanup_mode=None)
        if start and not embedded_running(settings):
            # pgserver hands back its cached handle for a server this process started before,
            # without checking it still runs: start it again after a `vigil db stop` or a crash.
            with srv._lock:
                srv.ensure_postgres_running()
        return srv


def embedded_running(settings: Settings | None = None) -> bool:
    settings = settings or get_settings()
    pid_file = settings.pg_dir / "postmaster.pid"
    if not pid_file.exists():
        return False
    try:
        pid = int(pid_file.read_text().splitlines()[0])
        os.kill(pid, 0)
        return True
    except (ValueError, IndexError, ProcessLookupError, PermissionError):
        return False


def start_embedded(settings: Settings | None = None) -> None:
    """Start the embedded server if it is not running (idempotent)."""
    settings = settings or get_settings()
    _pgserver(settings, start=True)


def stop_embedded(settings: Settings | None = None) -> bool:
    """Stop the embedded server; returns False if it was not running."""
    settings = settings or get_settings()
    if not embedded_running(settings):
        return False
    srv = _pgserver(settings, start=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from pgserver._commands import pg_ctl

    pg_ctl(["-w", "stop", "-m", "fast"], pgdata=srv.pgdata, user=srv.system_user)
    return True


def _embedded_url(settings: Settings, database: str, driver: str) -> URL:
    return URL.create(f"postgresql+{driver}", username="postgres", database=database, query={"host": str(settings.pg_dir)})


def warehouse_url(settings: Settings | None = None, *, start: bool = True) -> URL:
    """SQLAlchemy URL of the warehouse; starts the embedded server when needed."""
    settings = settings or get_settings()
    if settings.database_url:
        url = make_url(settings.database_url)
        if url.drivername in ("postgresql", "postgres"):
            url = url.set(drivername="postgresql+psycopg")
        if not url.drivername.startswith("postgresql"):
            raise DatabaseError(f"VIGIL_DATABASE_URL must be a PostgreSQL URL, got driver {url.drivername!r}")
        return url
    if start:
        start_embedded(settings)
    return _embedded_url(settings, WAREHOUSE_DB, "psycopg")


def airflow_url(settings: Settings | None = None) -> str:
    """Airflow metadata DB URL (psycopg2 driver) on the same server as the warehouse."""
    settings = settings or get_settings()
    if settings.database_url:
        url = make_url(settings.database_url).set(drivername="postgresql+psycopg2", database=AIRFLOW_DB)
    else:
        url = _embedded_url(settings, AIRFLOW_DB, "psycopg2")
    return url.render_as_string(hide_password=False)


def ensure_database(url: URL) -> None:
    """CREATE DATABASE if missing (safe when two processes race to do it)."""
    admin = url.set(database="postgres")
    eng = sa.create_engine(admin, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    try:
        with eng.connect() as c:
            exists = c.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": url.database}).scalar()
            if not exists:
                try:
                    c.execute(sa.text(f'CREATE DATABASE "{url.database.replace(chr(34), "")}"'))
                except sa.exc.ProgrammingError as e:  # lost the race: someone else created it
                    if "already exists" not in str(e):
                        raise
    except sa.exc.OperationalError as e:
        raise DatabaseError(f"cannot reach PostgreSQL at {url.render_as_string(hide_password=True)}: {e.orig}") from e
    finally:
        eng.dispose()


@functools.lru_cache(maxsize=8)
def _engine_for(url_str: str) -> Engine:
    return sa.create_engine(url_str, pool_pre_ping=True, pool_size=5, max_overflow=5)


def get_engine(url: URL | str | None = None) -> Engine:
    """A pooled engine for the warehouse (cached per URL)."""
    if url is None:
        url = warehouse_url()
    if isinstance(url, URL):
        url = url.render_as_string(hide_password=False)
    return _engine_for(url)


def display_url(url: URL | str) -> str:
    """The URL with any password masked: safe for logs and pages."""
    return make_url(url).render_as_string(hide_password=True) if isinstance(url, str) else url.render_as_string(hide_password=True)
