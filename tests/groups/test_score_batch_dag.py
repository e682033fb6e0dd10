"""The score_batch DAG with dag.test() against a real Airflow metadata DB and warehouse."""

import pandas as pd
import pytest
import sqlalchemy as sa

from tests.groups.conftest import DAY
from vigil.groups import Groups

pytestmark = pytest.mark.airflow


def test_score_batch_dag_routes_scores_and_joins_labels(airflow_db, engine, registry, sk_versions, tmp_path):
    from datetime import datetime, timezone

    from gpu_trainer.sklearn_data import synthetic
    from tests.airflow.conftest import dagbag

    gb, lr = (registry.get_by_id(sk_versions[k]).ref for k in ("gb", "lr"))
    g = Groups(engine)
    g.create("dag group", primary_metric="accuracy", direction="max")
    g.add("dag group", gb, role="champion")
    g.add("dag group", lr, weight=0.1)
    df = synthetic(rows=300, seed=4).rename(columns={"row_id": "request_id"})
    df.drop(columns=["label"]).to_parquet(tmp_path / "b.parquet")
    df[["request_id", "label"]].to_parquet(tmp_path / "l.parquet")

    dag = dagbag().dags["score_batch"]
    dr = dag.test(logical_date=datetime(2026, 11, 21, tzinfo=timezone.utc),
                  run_conf={"group": "dag group", "batch_path": str(tmp_path / "b.parquet"),
                            "labels_path": str(tmp_path / "l.parquet"), "shadow": True, "explain": False})
    assert dr.state == "success"
    table = g.get("dag group").table
    with engine.connect() as c:
        n, labelled = c.execute(sa.text(f'SELECT count(*), count(label) FROM "{table}"')).one()
    assert (n, labelled) == (600, 600)  # shadow: both members scored all 300 rows
