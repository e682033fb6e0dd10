"""Batch scoring with SHAP: rows/s, and what SHAP costs per row relative to prediction alone.

Two levels, both measured in this run (ratios, not absolute numbers, are what carries over to
another machine):

1. model level (``inference_log.score_frame``: prediction + inputs JSON, with and without SHAP)
   for a gradient-boosting classifier (TreeExplainer) and a logistic regression (LinearExplainer);
2. end to end (``inference_log.score_batch``: read Parquet, route 90/10, score both members,
   COPY into the group's Postgres table and write Parquet), with and without SHAP, on an
   embedded PostgreSQL started in a temporary directory.

    python bench/scoring_shap.py [--rows 20000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def best_of(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=20000, help="rows in the scored batch")
    ap.add_argument("--repeat", type=int, default=3, help="take the best of this many runs")
    a = ap.parse_args()
    warnings.simplefilter("ignore")

    from gpu_trainer import sklearn_data
    from gpu_trainer.stages import train_sklearn as T

    work = Path(tempfile.mkdtemp(prefix="vigil-bench-shap-", dir="/tmp"))
    try:
        data = sklearn_data.write("synthetic", work / "train.parquet", rows=4000, seed=0)
        for strat in ("gradient_boosting", "logistic_regression"):
            T.run(T.Spec(dataset=str(data), target="label", strategy=strat, model_name=strat, cv_folds=0, n_boot=100),
                  str(work / strat))
        batch = sklearn_data.synthetic(rows=a.rows, seed=1).drop(columns=["label"]).rename(columns={"row_id": "request_id"})
        batch["request_id"] = "req-" + batch["request_id"]
        batch_path = work / "batch.parquet"
        batch.to_parquet(batch_path, index=False)

        import numpy as np

        from evaluation.explain import Explainer
        from evaluation.tabular import load_model
        from vigil.groups.inference_log import LoadedMember, score_frame

        print(f"scoring {a.rows} rows x {batch.shape[1] - 1} features, best of {a.repeat}")
        print(f"{'model':<30}{'predict rows/s':>16}{'+SHAP rows/s':>14}{'SHAP us/row':>13}{'cost ratio':>12}")
        for strat in ("gradient_boosting", "logistic_regression"):
            est, meta = load_model(work / strat / "model")
            expl = Explainer(est, np.load(work / strat / "model" / "background.npy"), features=meta["features"])
            m = LoadedMember(0, strat, est, meta, expl)
            score_frame(m, batch.head(100))  # warm-up (imports, explainer caches)
            t_pred = best_of(lambda m=m: score_frame(m, batch, explain=False), a.repeat)
            t_shap = best_of(lambda m=m: score_frame(m, batch, explain=True), a.repeat)
            print(f"{strat + ' (' + expl.kind + ')':<30}{a.rows / t_pred:>16,.0f}{a.rows / t_shap:>14,.0f}"
                  f"{(t_shap - t_pred) / a.rows * 1e6:>13.1f}{t_shap / t_pred:>11.2f}x")

        # end to end through Postgres
        import pgserver
        import sqlalchemy as sa

        from contract.manifest import read_manifest
        from vigil.groups.inference_log import score_batch
        from vigil.groups.membership import Groups
        from vigil.registry.versions import Registry, RunRef
        from vigil.storage.parquet_store import ParquetStore
        from vigil.storage.warehouse import migrate

        srv = pgserver.get_server(work / "pg", cleanup_mode=None)
        try:
            url = sa.engine.URL.create("postgresql+psycopg", username="postgres", database="bench",
                                       query={"host": str(work / "pg")})
            eng = migrate(url)
            reg = Registry(eng)
            refs = [reg.register_from_manifest(read_manifest(work / s), work / s, run=RunRef("bench", "r", s)).ref
                    for s in ("gradient_boosting", "logistic_regression")]
            g = Groups(eng)
            g.create("bench", primary_metric="accuracy", direction="max", actor="bench")
            g.add("bench", refs[0], role="champion", actor="bench")
            g.add("bench", refs[1], weight=0.1, actor="bench")
            store = ParquetStore(work / "warehouse")
            results = {}
            for label, explain in (("without SHAP", False), ("with SHAP", True)):
                ts = []
                for i in range(a.repeat):
                    t0 = time.perf_counter()
                    score_batch(eng, "bench", batch_path, RunRef("bench", f"{label}-{i}", "score"),
                                explain=explain, store=store)
                    ts.append(time.perf_counter() - t0)
                results[label] = ts
            for label, ts in results.items():
                print(f"end to end (90/10 routed, COPY into Postgres + Parquet) {label:<13} "
                      f"{a.rows / min(ts):>8,.0f} rows/s (best {min(ts):.2f}s, median {statistics.median(ts):.2f}s)")
            results = {k: min(v) for k, v in results.items()}
            print(f"end to end SHAP cost ratio: {results['with SHAP'] / results['without SHAP']:.2f}x")
            eng.dispose()
        finally:
            from pgserver._commands import pg_ctl

            pg_ctl(["-w", "stop", "-m", "fast"], pgdata=srv.pgdata, user=srv.system_user)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("VIGIL_ACTOR", "bench")
    raise SystemExit(main())
