"""Benchmark the report site build on a synthetic warehouse of 1,000 model versions and 100 groups.

Prints: warehouse fill time; a full build without PDFs (every page rendered: charts, Markdown,
MkDocs); a rebuild with nothing changed; an incremental rebuild after one group changes and its
ratio to the full build (target < 0.1); where each build's time went; PDF export time per page
(version pages, group pages, the full report) on a sample of pages; with --full-pdf, a full build
with every PDF, end to end, and the incremental rebuild with PDFs after one more group change.

Each build also reports the CPU seconds it took (this process and its render workers), which a
shared machine's load inflates less than the wall time. The machine's load average is printed
before and after. PDF times depend on the font subsetter WeasyPrint finds: HarfBuzz's
(libharfbuzz-subset0) is many times faster than fontTools' fallback; the bench says which ran.

The warehouse is a temporary database: on VIGIL_TEST_DATABASE_URL / VIGIL_DATABASE_URL's server
when set, otherwise on an embedded PostgreSQL started in a temporary directory. Data is shaped
like real stage outputs (tests/site/fill.py).

    .venv/bin/python bench/site_build.py [--versions 1000] [--groups 100] [--pdf-sample 20] [--full-pdf]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import sqlalchemy as sa  # noqa: E402

from bench._db import temporary_database  # noqa: E402


def _cpu() -> float:
    """CPU seconds of this process and its finished children (the render workers)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def _build(label: str, engine, site: Path, parquet: Path, *, pdf: bool, workers: int | None):
    from site_builder.publish import build_site

    c = _cpu()
    r = build_site(engine, site, pdf=pdf, parquet_dir=parquet, workers=workers)
    cpu = _cpu() - c
    t = r.timings
    parts = ", ".join(f"{k} {t[k]:.2f} s" for k in ("read", "plan", "config", "render", "assemble", "mkdocs", "swap")
                      if k in t)
    extra = f"; {len(r.pdfs)} PDFs" if pdf else ""
    if "report_pdf" in t:
        extra += f", full report PDF {t['report_pdf']:.1f} s (beside the pages)"
    print(f"{label}: {r.seconds:.2f} s wall, {cpu:.2f} s CPU (load average {os.getloadavg()[0]:.1f}); {r.pages_written} "
          f"of {r.pages_total} pages rendered, {int(t.get('pages_reused', 0))} pages' HTML kept ({parts}{extra})")
    return r, cpu


def _touch_group(engine, gid: int, why: str) -> None:
    with engine.begin() as c:
        c.execute(sa.text("""INSERT INTO group_events (group_id, event_type, actor, reason, at)
                             VALUES (:g, 'weights', 'bench', :why, :at)"""),
                  {"g": gid, "why": why, "at": datetime.now(timezone.utc)})


def _subsetter() -> str:
    try:
        from weasyprint.text.ffi import harfbuzz, harfbuzz_subset

        return "harfbuzz" if harfbuzz_subset and harfbuzz.hb_version_atleast(4, 1, 0) else "fonttools"
    except Exception:  # noqa: BLE001 (an old WeasyPrint: it only has fontTools)
        return "fonttools"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--versions", type=int, default=1000)
    ap.add_argument("--groups", type=int, default=100)
    ap.add_argument("--pdf-sample", type=int, default=20, help="pages of each kind whose PDF time is measured (0: none)")
    ap.add_argument("--full-pdf", action="store_true", help="also time a full build with every PDF, end to end")
    ap.add_argument("--workers", type=int, default=None)
    args = ap.parse_args()
    os.environ.setdefault("NO_MKDOCS_2_WARNING", "1")

    from tests.site.fill import fill
    from vigil.storage.warehouse import migrate

    workers = args.workers or min(4, os.cpu_count() or 1)
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the start; {workers} render "
          f"workers; PDF font subsetting by {_subsetter()}")
    # versions = 1 base + 2 per LLM lineage (backdoored, safety-trained) + 3 per group (sklearn) + 1 import
    lineages = max(0, (args.versions - 2 - 3 * args.groups) // 2)
    with temporary_database() as (url, root):
        engine = migrate(url)
        parquet = root / "warehouse"
        t = time.perf_counter()
        filled = fill(engine, parquet, lineages=lineages, sklearn_models=args.groups, sklearn_versions=3,
                      groups=args.groups, nights=2, seed=1)
        fill_s = time.perf_counter() - t
        with engine.connect() as c:
            nv = c.execute(sa.text("SELECT count(*) FROM model_versions")).scalar()
            ng = c.execute(sa.text("SELECT count(*) FROM model_groups")).scalar()
            ne = c.execute(sa.text("SELECT count(*) FROM evaluations")).scalar()
        print(f"warehouse: {nv} versions, {ng} groups, {ne} evaluations (filled in {fill_s:.1f} s)")

        site = root / "site"
        full, full_cpu = _build("full build (no PDFs)", engine, site, parquet, pdf=False, workers=args.workers)
        same, _ = _build("rebuild, nothing changed", engine, site, parquet, pdf=False, workers=args.workers)
        gids = list(filled.groups.values())
        _touch_group(engine, gids[0], "one group changes")
        inc, inc_cpu = _build("incremental, one group changed", engine, site, parquet, pdf=False, workers=args.workers)
        ratio = inc.seconds / full.seconds
        print(f"incremental / full: {ratio:.3f} wall, {inc_cpu / full_cpu:.3f} CPU (target < 0.1: "
              f"{'met' if ratio < 0.1 else 'NOT met'}); read+plan alone {inc.timings['read'] + inc.timings['plan']:.2f} s of it")
        figures = {"versions": nv, "groups": ng, "pages": full.pages_total, "workers": workers,
                   "full_s": round(full.seconds, 2), "full_cpu_s": round(full_cpu, 1),
                   "full_mkdocs_s": round(full.timings["mkdocs"], 2), "unchanged_s": round(same.seconds, 2),
                   "incremental_s": round(inc.seconds, 2), "incremental_mkdocs_s": round(inc.timings["mkdocs"], 2),
                   "incremental_cpu_s": round(inc_cpu, 2), "ratio": round(ratio, 4),
                   "ratio_cpu": round(inc_cpu / full_cpu, 4), "subsetter": _subsetter()}

        if args.pdf_sample:
            _pdf_sample(engine, parquet, root, args.pdf_sample, nv, ng, workers, figures)
        if args.full_pdf:
            psite = root / "site-pdf"
            fp, fp_cpu = _build("full build with every PDF", engine, psite, parquet, pdf=True, workers=args.workers)
            _touch_group(engine, gids[-1], "another group changes")
            pinc, _ = _build("incremental with PDFs, one group changed", engine, psite, parquet, pdf=True,
                             workers=args.workers)
            print(f"full with PDFs: {fp.seconds:.1f} s (target <= 300 s: {'met' if fp.seconds <= 300 else 'NOT met'}); "
                  f"PDF rendering {fp.pdf_seconds:.0f} s summed over workers; incremental / full "
                  f"{pinc.seconds / fp.seconds:.3f}")
            figures.update(full_pdf_s=round(fp.seconds, 2), full_pdf_cpu_s=round(fp_cpu, 1),
                           pdf_render_sum_s=round(fp.pdf_seconds, 1), report_pdf_s=round(fp.timings.get("report_pdf", 0), 1),
                           incremental_pdf_s=round(pinc.seconds, 2))
    print(f"load average {os.getloadavg()[0]:.1f} at the end")
    print(json.dumps(figures))


def _pdf_sample(engine, parquet: Path, root: Path, n: int, nv: int, ng: int, workers: int, figures: dict) -> None:
    """PDF seconds per page on a sample (the renderer the build uses), and the full report."""
    from site_builder.pagedata import plan_site
    from site_builder.render import render_bundle, report_html, write_pdf
    from site_builder.snapshot import read_snapshot

    plan = plan_site(read_snapshot(engine, parquet))
    out = root / "pdf-sample"
    per_kind: dict[str, list[float]] = {}
    for kind in ("version", "group"):
        pages = [p for p in plan.pages if p.kind == kind]
        for p in pages[:: max(1, len(pages) // n)][:n]:  # spread over the site, not its first pages
            t = render_bundle(p, out / p.id, pdf=True, generated="bench", version="bench")
            per_kind.setdefault(kind, []).append(t["pdf"])
    groups = [p for p in plan.pages if p.kind == "group"]
    html = report_html(plan.report, groups, {g.id: out / g.id / "charts" for g in groups}, generated="bench", version="bench")
    report_s = write_pdf(html, out / "report.pdf", out)
    pages = _pdf_pages(out / "report.pdf")
    v, g = per_kind.get("version", [0.0]), per_kind.get("group", [0.0])
    print(f"PDF per page: version {statistics.median(v):.2f} s (median of {len(v)}, max {max(v):.2f}), "
          f"group {statistics.median(g):.2f} s (median of {len(g)}); full report {report_s:.1f} s"
          + (f" for {pages} pages ({report_s / pages:.2f} s/page)" if pages else ""))
    est = (statistics.median(v) * nv + statistics.median(g) * ng + report_s) / workers
    print(f"(every PDF would add about {est:.0f} s to a full build on {workers} render workers, the report beside "
          "the pages; --full-pdf measures it)")
    figures.update(pdf_version_s=round(statistics.median(v), 3), pdf_group_s=round(statistics.median(g), 3),
                   pdf_report_s=round(report_s, 2), pdf_report_pages=pages, pdf_estimate_s=round(est))


def _pdf_pages(path: Path) -> int | None:
    exe = shutil.which("pdfinfo")
    if not exe:
        return None
    import subprocess

    out = subprocess.run([exe, str(path)], capture_output=True, text=True).stdout
    return next((int(line.split()[-1]) for line in out.splitlines() if line.startswith("Pages:")), None)


if __name__ == "__main__":
    main()
