import pytest
import sqlalchemy as sa

from vigil.storage.db import get_engine
from vigil.storage.warehouse import current_revision, downgrade, head_revision, migrate

TABLES = {"runs", "models", "model_versions", "datasets", "evaluations", "model_groups", "group_members",
          "group_events", "comparisons"}


def test_migrate_up_from_empty_then_idempotent(fresh_database):
    url = fresh_database()
    assert current_revision(get_engine(url)) is None
    eng = migrate(url)
    assert current_revision(eng) == head_revision()
    with eng.connect() as c:
        tables = set(c.execute(sa.text("SELECT tablename FROM pg_tables WHERE schemaname='public'")).scalars())
    assert TABLES <= tables
    migrate(url)  # second run: no "already exists"
    assert current_revision(eng) == head_revision()


def test_downgrade_to_base_and_up_again(fresh_database):
    url = fresh_database()
    migrate(url)
    downgrade(url, "base")
    with get_engine(url).connect() as c:
        left = set(c.execute(sa.text("SELECT tablename FROM pg_tables WHERE schemaname='public'")).scalars())
    assert not (TABLES & left)
    migrate(url)
    assert current_revision(get_engine(url)) == head_revision()


def test_one_champion_per_group_is_a_database_guarantee(engine):
    with engine.begin() as c:
        mid = c.execute(sa.text("INSERT INTO models (name, family) VALUES ('m', 'sklearn') RETURNING id")).scalar()
        v1, v2 = (c.execute(sa.text("INSERT INTO model_versions (model_id, version, artifact_uri, source) "
                                    "VALUES (:m, :v, '/x', 'import') RETURNING id"), {"m": mid, "v": v}).scalar()
                  for v in (1, 2))
        gid = c.execute(sa.text("INSERT INTO model_groups (name, slug, primary_metric, direction) "
                                "VALUES ('g', 'g', 'auc', 'max') RETURNING id")).scalar()
        c.execute(sa.text("INSERT INTO group_members (group_id, model_version_id, role, traffic_weight) "
                          "VALUES (:g, :v, 'champion', 1)"), {"g": gid, "v": v1})
    with pytest.raises(sa.exc.IntegrityError, match="uq_group_one_champion"):
        with engine.begin() as c:
            c.execute(sa.text("INSERT INTO group_members (group_id, model_version_id, role, traffic_weight) "
                              "VALUES (:g, :v, 'champion', 0)"), {"g": gid, "v": v2})
