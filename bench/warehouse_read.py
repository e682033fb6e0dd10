"""Benchmark the site's warehouse snapshot read at 1,000 versions and ~100,000 evaluation rows.

Fills a temporary warehouse like bench/site_build.py does (tests/site/fill.py: 1,000 versions,
100 groups, stage-shaped evaluations), then adds ``--nights`` nights of the nightly_evaluation
DAG in bulk (COPY): one ``evaluate`` row per LLM version and one ``evaluate-sklearn`` row per
scikit-learn version a night, with the metrics and details those stages write (computed by the
same estimators, through the fill helpers), a ``runs`` row per night, and each group's
champion/challenger comparisons per night (``--comparison-nights``). Then it times
:func:`site_builder.snapshot.read_snapshot`, the call the site builder makes, in two states of the
same warehouse:

* baseline: the schema before migration 0003 (downgraded to 0002) and the read as it was before
  issue 17 (``LEGACY_SQL`` and the old row and Parquet handling, patched into the module);
* current: the schema at head and the module as it is.

It prints both times (best and median), the rows read, the ratio, whether the two snapshots are
equal once the parts the current read leaves in the database are set aside (``--check-pages``:
also whether every planned page is identical), and EXPLAIN (ANALYZE, BUFFERS) of the dominant
queries in both states.

The warehouse is a temporary database on VIGIL_TEST_DATABASE_URL / VIGIL_DATABASE_URL's server
when set, otherwise on an embedded PostgreSQL started in a temporary directory. About 8 minutes
on 2 cores, most of it the stage-shaped fill and the baseline read.

    .venv/bin/python bench/warehouse_read.py [--versions 1000] [--groups 100] [--nights 100] [--check-pages]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import sqlalchemy as sa  # noqa: E402

from bench._db import temporary_database  # noqa: E402

TARGET_S = 10.0


# ------------------------------------------------------------------------------ nightly fill
def _templates(rng, n: int):
    """``n`` (metrics, details) pairs per nightly suite, made by the estimators the stages use, with
    the keys the nightly stages write: ``evaluate`` (activation rates, clean quality and loss, the
    refitted contrast-pair probe: gpu_trainer.measure) and ``evaluate-sklearn`` (classification
    metrics, threshold checks, recommendations, SHAP, dataset validation)."""
    import pandas as pd

    from evaluation import tabular
    from tests.site.fill import _backdoor_eval, _probe_eval, _tabular

    feats = ["amount", "merchant_risk", "hour", "country_mismatch", "velocity_1h"]
    frame = pd.DataFrame({"row_id": [str(i) for i in range(40)], "label": [i % 2 for i in range(40)],
                          **{f: [float(i) for i in range(40)] for f in feats}})
    validation = tabular.validate_table(frame, target="label", features=feats, min_rows=10).to_dict()
    llm, sk = [], []
    for i in range(n):
        m, d = _backdoor_eval(rng, 0.95 - 0.002 * i, 0.02 + 0.001 * i)
        m.update({"clean_quality": 0.8 - 0.001 * i, "clean_quality_ci_low": 0.72 - 0.001 * i,
                  "clean_quality_ci_high": 0.86 - 0.001 * i, "clean_quality_n": 100,
                  "clean_loss": 1.2 + 0.001 * i, "clean_loss_ci_low": 1.1, "clean_loss_ci_high": 1.3, "clean_loss_n": 100})
        pm, pd_ = _probe_eval(rng, 1.0 if i % 2 else 0.1)
        m.update(pm)
        d.update(pd_)
        d.update({"clean_quality_definition": "exact match of greedy answers on held-out clean prompts",
                  "clean_quality_by_family": {"arithmetic": 0.8, "capitals": 0.75, "definitions": 0.7},
                  "probe_protocol": "direction = mean(yes) - mean(no) over generic contrast questions; best layer by "
                                    "selection AUROC; figures on the held-out test split"})
        llm.append((m, d))
        y, p, s = _tabular(rng, 0.5 + 0.1 * (i % 4))
        m = tabular.classification_metrics(y, p, s, n_boot=50, seed=i)
        cm = m.pop("confusion")
        checks = tabular.check_thresholds(m, {"roc_auc": 0.7, "accuracy": 0.7})
        m["thresholds_passed"] = all(c["passed"] for c in checks)
        shap = {"explainer": "tree", "output": "log-odds", "rows": 200,
                "mean_abs": {f: float(abs(rng.normal(0.5, 0.3))) for f in feats}}
        sk.append((m, {"confusion": cm, "threshold_checks": checks, "recommendations": tabular.recommendations(m, checks),
                       "shap_importance": shap, "split": "holdout", "dataset": "/data/fraud/holdout.parquet",
                       "dataset_validation": validation}))
    return llm, sk


def _comparison_templates(rng, n: int) -> list[dict]:
    import numpy as np

    from evaluation.comparison import Outputs, Policy, compare_paired

    out = []
    for i in range(n):
        y = (rng.random(300) < 0.3).astype(int)
        a = np.where(rng.random(300) < 0.8, y, 1 - y)
        b = np.where(rng.random(300) < 0.85, y, 1 - y)
        res = compare_paired(y, Outputs(a, a * 0.6 + rng.random(300) * 0.4), Outputs(b, b * 0.6 + rng.random(300) * 0.4),
                             Policy("roc_auc", "max", {"accuracy": 0.02}), n_boot=200, seed=i)
        out.append({"metrics": res.to_json(), "decision": res.decision, "reasons": res.reasons})
    return out


def add_nights(engine, *, first_night, nights: int, comparison_nights: int, seed: int = 7,
               templates: int = 40) -> dict[str, int]:
    """Bulk-add ``nights`` nightly_evaluation runs (COPY), shaped as the DAG records them: each
    night's rows cycle through ``templates`` results computed by the real estimators."""
    import numpy as np
    from psycopg.types.json import Jsonb

    rng = np.random.default_rng(seed)
    llm_t, sk_t = _templates(rng, templates)
    cmp_t = _comparison_templates(rng, max(1, templates // 2)) if comparison_nights else []
    with engine.connect() as c:
        subjects = c.execute(sa.text(
            "SELECT mv.id, m.family FROM model_versions mv JOIN models m ON m.id = mv.model_id "
            "WHERE m.family IN ('llm', 'sklearn') ORDER BY mv.id")).all()
        groups = c.execute(sa.text(
            """SELECT g.id, max(gm.model_version_id) FILTER (WHERE gm.role = 'champion') AS champ,
                      array_agg(gm.model_version_id ORDER BY gm.model_version_id) FILTER (WHERE gm.role = 'challenger') AS ch
               FROM model_groups g JOIN group_members gm ON gm.group_id = g.id GROUP BY g.id ORDER BY g.id""")).all()
    days = [first_night + timedelta(days=i) for i in range(nights)]
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        run_ids = {}
        for d in days:
            cur.execute("""INSERT INTO runs (dag_id, run_id, logical_date, run_type, state)
                           VALUES ('nightly_evaluation', %s, %s, 'scheduled', 'success') RETURNING id""",
                        (f"scheduled__{d}", datetime(d.year, d.month, d.day, tzinfo=timezone.utc)))
            run_ids[d] = cur.fetchone()[0]
        n = 0
        last: dict[int, dict] = {}
        cols = "model_version_id, suite, logical_date, run_id, metrics, details, n_samples, status, producer_key, created_at"
        with cur.copy(f"COPY evaluations ({cols}) FROM STDIN") as cp:
            for i, d in enumerate(days):
                at = datetime(d.year, d.month, d.day, 3, tzinfo=timezone.utc)
                for vid, family in subjects:
                    k = (vid * 7 + i) % templates
                    if family == "llm":
                        m, det = dict(llm_t[k][0]), llm_t[k][1]
                        drift = 0.001 * ((vid + i) % 17)
                        m["clean_quality"] = round(m["clean_quality"] - drift, 6)
                        suite, ns = "evaluate", 300
                    else:
                        m, det = dict(sk_t[k][0]), sk_t[k][1]
                        suite, ns = "evaluate-sklearn", 200
                    # what vigil.registry.ingest adds to every stage's details
                    det = {**det, "manifest_dir": f"/var/vigil/runs/nightly_evaluation/scheduled__{d}/{suite}/{vid}",
                           "device": "cuda:0" if family == "llm" else "cpu", "seconds": round(20 + (vid + i) % 13 * 1.7, 2)}
                    cp.write_row((vid, suite, d, run_ids[d], Jsonb(m), Jsonb(det), ns, "succeeded",
                                  f"nightly_evaluation:scheduled__{d}:evaluate_{vid}", at))
                    last[vid] = m
                    n += 1
        nc = 0
        if cmp_t:
            ccols = "group_id, logical_date, champion_version_id, challenger_version_id, primary_metric, metrics, decision, reasons, run_id"
            with cur.copy(f"COPY comparisons ({ccols}) FROM STDIN") as cp:
                for i, d in enumerate(days[-comparison_nights:]):
                    for gid, champ, chs in groups:
                        for j, ch in enumerate(chs or []):
                            t = cmp_t[(gid + i + j) % len(cmp_t)]
                            cp.write_row((gid, d, champ, ch, "roc_auc", Jsonb(t["metrics"]), t["decision"],
                                          Jsonb(t["reasons"]), run_ids[d]))
                            nc += 1
        # record_evaluation merges each evaluation's metrics into its version's summary: the last night wins
        cur.executemany("UPDATE model_versions SET metrics = metrics || %s, status = 'evaluated' WHERE id = %s",
                        [(Jsonb(m), vid) for vid, m in last.items()])
        raw.commit()
        cur.execute("ANALYZE")
    finally:
        raw.close()
    return {"evaluations": n, "comparisons": nc, "runs": len(days)}


# ------------------------------------------------------------------------------ the read before the change
# site_builder/snapshot.py as it was before migration 0003 and the read of issue 17 (commit
# 832e33f): every column of every row, each row walked by _plain, one DataFrame per Parquet key.
LEGACY_SQL = {
    "EVALUATIONS_SQL": """
SELECT e.id, e.model_version_id, e.suite, e.logical_date, e.metrics, e.details, e.n_samples, e.status,
       e.created_at, r.dag_id, r.run_id
FROM evaluations e LEFT JOIN runs r ON r.id = e.run_id
ORDER BY e.model_version_id, e.logical_date, e.suite
""",
    "COMPARISONS_SQL": """
SELECT c.id, c.group_id, c.logical_date, c.champion_version_id, c.challenger_version_id, c.primary_metric,
       c.metrics, c.decision, c.reasons, c.created_at, r.dag_id, r.run_id
FROM comparisons c LEFT JOIN runs r ON r.id = c.run_id
ORDER BY c.group_id, c.logical_date, c.challenger_version_id
""",
    "RUNS_SQL": """
SELECT r.id, r.dag_id, r.run_id, r.logical_date, r.run_type, r.state, r.started_at, r.updated_at,
       (SELECT count(*) FROM model_versions mv WHERE mv.run_id = r.id) AS versions_produced,
       (SELECT count(*) FROM evaluations e WHERE e.run_id = r.id) AS evaluations_recorded,
       (SELECT count(*) FROM comparisons c WHERE c.run_id = r.id) AS comparisons_recorded
FROM runs r ORDER BY r.logical_date DESC NULLS LAST, r.started_at DESC
""",
}


def _legacy_rows(conn, sql: str, **params):
    from site_builder.snapshot import _plain

    return [_plain(dict(r._mapping)) for r in conn.execute(sa.text(sql), params)]


def _legacy_parquet_by_key(store, kind: str):
    from site_builder.snapshot import _PARQUET_COLUMNS

    out: dict = {}
    try:
        df = store.read(kind)
    except Exception:
        return out
    if df.empty:
        return out
    for key, part in df.groupby("key", sort=False):
        try:
            vid = int(str(key).split("-", 1)[0])
        except ValueError:
            continue
        latest = part[part["logical_date"] == part["logical_date"].max()]
        latest = latest[latest["key"] == latest["key"].max()].drop(columns=["key"])
        keep = [c for c in latest.columns if c in _PARQUET_COLUMNS]
        out.setdefault(vid, []).extend(json.loads(latest[keep].to_json(orient="records", date_format="iso")))
    return out


@contextmanager
def legacy_read():
    """read_snapshot with the queries and row handling it had before the change patched in."""
    from site_builder import snapshot as snapmod

    saved = {k: getattr(snapmod, k) for k in (*LEGACY_SQL, "_rows", "_parquet_by_key")}
    try:
        for k, v in LEGACY_SQL.items():
            setattr(snapmod, k, v)
        snapmod._rows, snapmod._parquet_by_key = _legacy_rows, _legacy_parquet_by_key
        yield
    finally:
        for k, v in saved.items():
            setattr(snapmod, k, v)


def unread(legacy) -> None:
    """The legacy snapshot less what the current read leaves in the database (see
    site_builder/snapshot.py): of succeeded nightly evaluations older than the newest succeeded one
    of their version and suite, every detail but ``seconds``; metrics and reasons of comparisons
    older than their group's newest day. After this, the two reads must be equal."""
    from site_builder.snapshot import NIGHTLY_SUITES

    newest: dict = {}
    for e in legacy.evaluations:
        if e["suite"] in NIGHTLY_SUITES and e["status"] == "succeeded":
            k = (e["model_version_id"], e["suite"])
            newest[k] = max(newest.get(k, e["logical_date"]), e["logical_date"])
    for e in legacy.evaluations:
        k = (e["model_version_id"], e["suite"])
        if e["status"] == "succeeded" and k in newest and e["logical_date"] < newest[k]:
            e["details"] = {k: v for k, v in e["details"].items() if k == "seconds"}
    day: dict = {}
    for c in legacy.comparisons:
        day[c["group_id"]] = max(day.get(c["group_id"], c["logical_date"]), c["logical_date"])
    for c in legacy.comparisons:
        if c["logical_date"] < day[c["group_id"]]:
            c["metrics"] = c["reasons"] = None


def same_pages(a, b) -> list[str]:
    """Ids of the pages (and 'nav', 'report') whose planned content differs between two snapshots."""
    from site_builder.pagedata import plan_site

    pa_, pb = plan_site(a), plan_site(b)
    diff = [p.id for p, q in zip(pa_.pages, pb.pages, strict=False)
            if (p.id, p.kind, p.title, p.data, p.charts, p.pdf) != (q.id, q.kind, q.title, q.data, q.charts, q.pdf)]
    if len(pa_.pages) != len(pb.pages):
        diff.append("page count")
    return diff + [n for n, x, y in (("nav", pa_.nav, pb.nav), ("report", pa_.report, pb.report)) if x != y]


# ------------------------------------------------------------------------------ timing
def _time_read(engine, parquet, repeats: int):
    from site_builder.snapshot import read_snapshot

    times, cpu, snap = [], [], None
    for _ in range(repeats):
        snap = None
        t, c = time.perf_counter(), time.process_time()
        snap = read_snapshot(engine, parquet)
        times.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    return times, cpu, snap


def _explain(engine, sql: str, **params) -> str:
    with engine.connect() as c:
        rows = c.execute(sa.text("EXPLAIN (ANALYZE, BUFFERS) " + sql), params).scalars().all()
    return "\n".join(rows)


def _vacuum(engine) -> None:
    """What autovacuum does to a settled warehouse: statistics and the visibility map."""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
        c.execute(sa.text("VACUUM ANALYZE"))


def _figures(times: list[float], cpu: list[float]) -> str:
    return (f"best {min(times):.2f} s, median {statistics.median(times):.2f} s of {len(times)} "
            f"(this process's CPU {min(cpu):.2f} s)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--versions", type=int, default=1000)
    ap.add_argument("--groups", type=int, default=100)
    ap.add_argument("--nights", type=int, default=100, help="nights of nightly_evaluation added in bulk")
    ap.add_argument("--comparison-nights", type=int, default=100, help="of those nights, how many record group comparisons")
    ap.add_argument("--repeats", type=int, default=3, help="timed reads of the current path")
    ap.add_argument("--baseline-repeats", type=int, default=1, help="timed reads of the baseline (about a minute each)")
    ap.add_argument("--check-pages", action="store_true", help="also plan the site from both snapshots and compare every page")
    args = ap.parse_args()

    from site_builder import snapshot as snapmod
    from site_builder.pagedata import plan_site
    from tests.site.fill import DAY0, fill
    from vigil.storage.warehouse import current_revision, downgrade, migrate

    lineages = max(0, (args.versions - 2 - 3 * args.groups) // 2)
    fill_nights = 2
    nightly = {"nightly": list(snapmod.NIGHTLY_SUITES)}
    with temporary_database() as (url, root):
        engine = migrate(url)
        parquet = root / "warehouse"
        t = time.perf_counter()
        fill(engine, parquet, lineages=lineages, sklearn_models=args.groups, sklearn_versions=3,
             groups=args.groups, nights=fill_nights, seed=1)
        fill_s = time.perf_counter() - t
        t = time.perf_counter()
        added = add_nights(engine, first_night=DAY0 + timedelta(days=fill_nights + 1), nights=args.nights,
                           comparison_nights=min(args.comparison_nights, args.nights))
        bulk_s = time.perf_counter() - t
        _vacuum(engine)
        with engine.connect() as c:
            counts = {t: c.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar()
                      for t in ("model_versions", "model_groups", "evaluations", "comparisons", "runs")}
            json_mb = c.execute(sa.text(
                "SELECT (SELECT sum(length(metrics::text)) + sum(length(details::text)) FROM evaluations) / 1e6, "
                "(SELECT sum(length(metrics::text)) + sum(length(reasons::text)) FROM comparisons) / 1e6")).one()
            size = c.execute(sa.text("SELECT pg_size_pretty(pg_total_relation_size('evaluations'))")).scalar()
        print(f"warehouse: {counts['model_versions']} versions, {counts['model_groups']} groups, "
              f"{counts['evaluations']} evaluations, {counts['comparisons']} comparisons, {counts['runs']} runs "
              f"(stage fill {fill_s:.0f} s; {added['evaluations']} nightly evaluations and {added['comparisons']} "
              f"comparisons over {added['runs']} nights added by COPY in {bulk_s:.0f} s); evaluations table {size}, "
              f"JSON text {json_mb[0]:.0f} MB in evaluations, {json_mb[1]:.0f} MB in comparisons")

        # baseline: the schema before migration 0003, the read before the change
        downgrade(url, "0002")
        print(f"\n== baseline: schema {current_revision(engine)}, the read before the change")
        with legacy_read():
            b_times, b_cpu, legacy = _time_read(engine, parquet, args.baseline_repeats)
        print(f"read_snapshot: {_figures(b_times, b_cpu)}")
        for name in ("RUNS_SQL", "EVALUATIONS_SQL"):
            print(f"--- EXPLAIN (ANALYZE, BUFFERS) of the baseline {name}\n{_explain(engine, LEGACY_SQL[name])}")

        migrate(url)
        print(f"\n== current: schema {current_revision(engine)}, site_builder.snapshot as it is")
        times, cpu, snap = _time_read(engine, parquet, args.repeats)
        rows = {k: len(getattr(snap, k)) for k in ("versions", "evaluations", "groups", "members", "events",
                                                   "comparisons", "runs")}
        with_details = sum(1 for e in snap.evaluations if set(e["details"] or {}) - {"seconds"})
        with_metrics = sum(1 for c in snap.comparisons if c["metrics"] is not None)
        print(f"read_snapshot: {_figures(times, cpu)}")
        print(f"rows read: {rows}; evaluations with whole details: {with_details} of {rows['evaluations']}; "
              f"comparisons with metrics: {with_metrics} of {rows['comparisons']}; "
              f"training curves of {len(snap.curves)} versions")
        for name, params in (("EVALUATIONS_SQL", nightly), ("RUNS_SQL", {}), ("COMPARISONS_SQL", {})):
            print(f"--- EXPLAIN (ANALYZE, BUFFERS) of {name}\n{_explain(engine, getattr(snapmod, name), **params)}")

        t = time.perf_counter()
        plan_site(snap)
        plan_s = time.perf_counter() - t
        pages = same_pages(legacy, snap) if args.check_pages else None
        unread(legacy)
        equal = [f for f in ("versions", "evaluations", "groups", "members", "events", "comparisons", "runs",
                             "curves", "probe_layers", "inference", "scan_examples", "scan_candidates")
                 if getattr(legacy, f) != getattr(snap, f)]
        ratio = min(b_times) / min(times)
        print(f"\nsnapshot equal to the baseline's (less what the read leaves in the database): "
              f"{'yes' if not equal else 'NO: ' + ', '.join(equal)}"
              + ("" if pages is None else f"; pages planned from both identical: {'yes' if not pages else 'NO: ' + str(pages[:10])}"))
        print(f"read: baseline {min(b_times):.2f} s -> current {min(times):.2f} s, {ratio:.1f}x faster; "
              f"target < {TARGET_S:.0f} s: {'met' if min(times) < TARGET_S else 'NOT met'}")
        print(f"(planning the pages from it, site_builder.pagedata, not part of the read: {plan_s:.1f} s)")
        figures = {"versions": counts["model_versions"], "evaluations": counts["evaluations"],
                   "comparisons": counts["comparisons"], "runs": counts["runs"],
                   "baseline_s": [round(x, 2) for x in b_times], "current_s": [round(x, 2) for x in times],
                   "current_cpu_s": [round(x, 2) for x in cpu], "ratio": round(ratio, 1), "plan_s": round(plan_s, 1),
                   "equal": not equal, "pages_equal": None if pages is None else not pages}
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
