"""The score_batch DAG with dag.test() against a real Airflow metadata DB and warehouse."""

import pytest
import sqlalchemy as sa

from vigil.groups.membership import Groups


@pytest.mark.airflow
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


@pytest.mark.airflow
def test_score_batch_dag_runs_the_score_llm_stage_for_an_llm_group(airflow_db, engine, llm_group, tmp_path):
    """LLM members run the score-llm stage as mapped stage tasks (a subprocess here, the GPU
    container in production); their rows reach the group's log and the labels join."""
    from datetime import datetime, timezone

    from tests.airflow.conftest import dagbag
    from tests.groups.conftest import prompts_batch

    group, bd, base = llm_group
    df = prompts_batch(40)
    df.drop(columns=["label"]).to_parquet(tmp_path / "b.parquet")
    df[["request_id", "label"]].to_parquet(tmp_path / "l.parquet")
    dr = dagbag().dags["score_batch"].test(
        logical_date=datetime(2026, 11, 22, tzinfo=timezone.utc),
        run_conf={"group": group.name, "batch_path": str(tmp_path / "b.parquet"), "labels_path": str(tmp_path / "l.parquet")})
    assert dr.state == "success"
    with engine.connect() as c:
        rows = c.execute(sa.text(f'SELECT model_version_id, count(*), count(label), count(score) FROM "{group.table}" '
                                 "GROUP BY model_version_id")).all()
    got = {vid: (n, labelled, scored) for vid, n, labelled, scored in rows}
    assert sum(n for n, _, _ in got.values()) == 40 and set(got) == {bd.version_id, base.version_id}
    assert got[bd.version_id][1] == got[bd.version_id][0] == got[bd.version_id][2]  # labelled, probe-scored


@pytest.mark.parametrize(("params", "extras", "message"), [
    pytest.param({"group": "", "batch_path": ""}, [], "nothing to score", id="nothing"),
    pytest.param({"group": "", "batch_path": "/b.parquet"}, [], "'group' is required", id="form-no-group"),
    pytest.param({"group": "g", "batch_path": ""}, [{"group": "g"}], "give 'batch_path'", id="event-no-batch"),
    pytest.param({}, [{"group": "g", "batch_path": "/b", "bogus": 1}], r"unknown keys \['bogus'\]", id="event-unknown-key"),
    pytest.param({}, [{"group": "g", "batch_path": "/b", "shadow": "yes"}], "'shadow' must be true or false", id="event-bad-flag"),
])
def test_score_requests_name_the_bad_field(params, extras, message):
    from vigil.groups.inference_log import InferenceError, requests_from

    with pytest.raises(InferenceError, match=message):
        requests_from(params, extras)


def test_score_requests_come_from_the_form_and_every_inbox_event():
    from vigil.groups.inference_log import requests_from

    reqs = requests_from({"group": "", "batch_path": "", "shadow": False, "explain": True, "labels_path": ""},
                         [{"group": "a", "batch_path": "/1.parquet"}, {"group": "b", "batch_path": "/2.parquet", "shadow": True,
                                                                       "explain": False, "labels_path": "/l.parquet"}])
    assert reqs == [{"group": "a", "batch_path": "/1.parquet", "labels_path": "", "shadow": None, "explain": True},
                    {"group": "b", "batch_path": "/2.parquet", "labels_path": "/l.parquet", "shadow": True, "explain": False}]
