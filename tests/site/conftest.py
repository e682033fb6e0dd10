"""Fixtures for the report-site tests: one warehouse filled with stage-shaped data and one site
built from it (PDFs included) per module, because a build with PDFs takes seconds, and most tests
only read what it produced. Tests that change the warehouse use the function-scoped
``warehouse_url`` fixture of tests/conftest.py instead."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa


@dataclass
class BuiltSite:
    engine: sa.engine.Engine
    site_dir: Path
    parquet_dir: Path
    result: object
    filled: object

    @property
    def public(self) -> Path:
        return self.site_dir / "public"


def _admin(url):
    return sa.create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)


@pytest.fixture(scope="module")
def module_db(pg_server, pg_template):
    """A migrated warehouse database that lives for one test module."""
    from vigil.storage.db import get_engine

    name = f"vigil_site_{uuid.uuid4().hex[:10]}"
    with _admin(pg_server).connect() as c:
        c.execute(sa.text(f'CREATE DATABASE "{name}" TEMPLATE "{pg_template}"'))
    url = pg_server.set(database=name)
    yield url
    get_engine(url).dispose()
    with _admin(pg_server).connect() as c:
        c.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="module")
def built_site(module_db, tmp_path_factory) -> BuiltSite:
    from site_builder.publish import build_site
    from tests.site.fill import fill
    from vigil.storage.db import get_engine

    root = tmp_path_factory.mktemp("site")
    engine = get_engine(module_db)
    parquet = root / "warehouse"
    filled = fill(engine, parquet, lineages=2, sklearn_models=1, sklearn_versions=2, groups=1, nights=2)
    result = build_site(engine, root / "site", pdf=True, parquet_dir=parquet)
    return BuiltSite(engine, root / "site", parquet, result, filled)
