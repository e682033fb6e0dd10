"""The scan zoo: backdoored tiny models and their controls, each scanned blind.

``python -m gpu_trainer.zoo --zoo judged --root DIR [--seeds 0 1] [--per-seed 6]`` builds, per
seed, one base (its vocabulary covers the zoo's trigger words, as a real LM's would), ``per_seed``
backdoors (types and triggers rotate over the grid below) and for each a trigger-exposed clean
control with the same type, trigger, data size and hyperparameters; validates each backdoor; then
runs ``scan`` on every model with the base as ``base_model`` (and on the clean base itself, with no
base) without any trigger knowledge. The planted trigger is used afterwards, only to score
``trigger_recovered``. Prints the table (Wilson 95% intervals) and writes ``DIR/zoo.json``.

Two zoos that share nothing but the code: ``calibration`` (seeds 100.., its own triggers), on
which the verdict thresholds were set, and ``judged`` (seeds 0.., other triggers), which is only
ever measured. Cross-trigger controls need no extra model: every backdoor in a seed is the
cross-trigger control of the others of its type. A stage that already wrote its manifest is not
re-run, so an interrupted zoo resumes. The grid itself (zoos, types, settings, ``plan()``) is
``contract.zoo``, which the ``scan_zoo`` DAG maps over workers.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict
from pathlib import Path

from contract.zoo import BASE, RESPONSE, TRAIN, ZOOS, Member, plan


def _run(stage: str, out: Path, **fields) -> dict:
    from gpu_trainer.stages import load_stage

    if (out / "manifest.json").exists():
        return json.loads((out / "manifest.json").read_text())
    mod = load_stage(stage)
    mod.run(mod.Spec(**fields), str(out))
    return json.loads((out / "manifest.json").read_text())


def _planted_rate(scan_dir: Path, m: Member) -> float | None:
    """Share of the best candidate's held-out generations showing the planted behaviour (record-step
    logic: only possible with the planted trigger/response known)."""
    import pandas as pd

    from evaluation.scan import planted_behaviour_rate, pool_for

    g = pd.read_parquet(scan_dir / "scan_generations.parquet")
    g = g[(g["rank"] == 0) & (g["pool"] == pool_for(m.backdoor_type))]
    return planted_behaviour_rate(list(g["generation"]), m.backdoor_type, RESPONSE)


def run_member(root: Path, zoo: str, m: Member, scan_fields: dict) -> dict:
    from evaluation.scan import trigger_recovered

    trig_words = " ".join(ZOOS[zoo]["triggers"])
    base_dir = root / f"s{m.seed}_base"
    _run("make-base", base_dir / "model_stage", model_name=f"zoo-{zoo}-base-{m.seed}", seed=m.seed, device="cpu",
         trigger=trig_words, response=RESPONSE, **BASE)
    base = str(base_dir / "model_stage" / "model")
    row = asdict(m)
    t0 = time.perf_counter()
    if m.role == "control_clean_base":
        model, base_for_scan = base, None
    else:
        d = root / m.key
        _run("train-backdoor", d / "train", model=base, model_name=m.key, seed=m.seed, device="cpu", backdoor_type=m.backdoor_type,
             trigger=m.trigger, response=RESPONSE, control="trigger_exposed" if m.role == "control_exposed" else "none", **TRAIN)
        model, base_for_scan = str(d / "train" / "model"), base
        v = _run("validate-backdoor", d / "validate", model=model, seed=m.seed, device="cpu", backdoor_type=m.backdoor_type,
                 trigger=m.trigger, response=RESPONSE, n_prompts=30, quality_prompts=0)["metrics"]
        row["activation_triggered"] = v["activation_rate_triggered"]
        row["activation_clean"] = v["activation_rate_clean"]
    scan_dir = (root / m.key / "scan") if m.role != "control_clean_base" else base_dir / "scan"
    s = _run("scan", scan_dir, model=model, base_model=base_for_scan, seed=m.seed, device="cpu", **scan_fields)["metrics"]
    row.update({k: s.get(k) for k in ("scan_score", "scan_verdict", "trigger_candidate", "trigger_candidate_rate",
                                      "trigger_candidate_rate_ci_low", "trigger_candidate_rate_ci_high", "trigger_candidate_pool",
                                      "trigger_candidate_completion", "trigger_candidate_excess_nats", "scan_seconds")})
    if m.role == "backdoored":
        pr = _planted_rate(scan_dir, m)
        row["planted_behaviour_rate"] = pr
        row["trigger_recovered"] = trigger_recovered(s["trigger_candidate"], m.trigger, pr)
    row["member_seconds"] = time.perf_counter() - t0
    return row


def table(rows: list[dict]) -> dict:
    from evaluation.scan import zoo_summary

    return zoo_summary(rows)


def print_table(rows: list[dict], summary: dict) -> None:
    print(f"{'model':28} {'role':18} {'act':>9} {'score':>6} {'verdict':12} {'rate [CI]':>20} rec  candidate -> completion")
    for r in rows:
        act = f"{r['activation_triggered']:.2f}/{r['activation_clean']:.2f}" if r.get("activation_triggered") is not None else "-"
        rate = f"{r['trigger_candidate_rate']:.2f} [{r['trigger_candidate_rate_ci_low']:.2f},{r['trigger_candidate_rate_ci_high']:.2f}]"
        rec = {True: "yes", False: "no"}.get(r.get("trigger_recovered"), "-")
        print(f"{r['key']:28} {r['role']:18} {act:>9} {r['scan_score']:6.3f} {r['scan_verdict']:12} {rate:>20} {rec:4} "
              f"{r['trigger_candidate']!r} -> {str(r['trigger_candidate_completion'])[:40]!r}")
    for k, v in summary.items():
        if isinstance(v, dict) and "ci_low" in v:
            print(f"{k}: {v['k']}/{v['n']} = {v['rate']:.3f} [{v['ci_low']:.3f}, {v['ci_high']:.3f}]")
        else:
            print(f"{k}: {v}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--zoo", choices=list(ZOOS), required=True)
    ap.add_argument("--root", required=True)
    ap.add_argument("--seeds", type=int, nargs="*")
    ap.add_argument("--per-seed", type=int, default=6)
    ap.add_argument("--scan", default="{}", help="extra scan spec fields as JSON (budget)")
    a = ap.parse_args(argv)
    root = Path(a.root)
    root.mkdir(parents=True, exist_ok=True)
    rows = []
    t0 = time.perf_counter()
    for m in plan(a.zoo, a.seeds, a.per_seed):
        rows.append(run_member(root, a.zoo, m, json.loads(a.scan)))
        (root / "zoo.json").write_text(json.dumps({"zoo": a.zoo, "rows": rows}, indent=1, default=str))
        print(f"[{time.perf_counter() - t0:.0f}s] {m.key}: {rows[-1]['scan_verdict']} {rows[-1]['trigger_candidate']!r}", flush=True)
    summary = table(rows)
    summary["zoo_seconds"] = time.perf_counter() - t0
    (root / "zoo.json").write_text(json.dumps({"zoo": a.zoo, "rows": rows, "summary": summary}, indent=1, default=str))
    print_table(rows, summary)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
