"""Benchmark the report site build on a synthetic warehouse of 1,000 model versions and 100 groups.

Prints: warehouse fill time; full build time (every page rendered, charts + mkdocs); a rebuild
with nothing changed; an incremental rebuild after one group changes and its ratio to the full
build (target < 0.1); the MkDocs share of each; and PDF export time per page (version pages,
group pages, the full report), measured on a sample of pages or, with --full-pdf, on all.

The warehouse is a temporary database: on VIGIL_TEST_DATABASE_URL / VIGIL_DATABASE_URL's server
when set, otherwise on an embedded PostgreSQL started in a temporary directory. Data is shaped
like real stage outputs (tests/site/fill.py).

    .venv/bin/python bench/site_build.py [--versions 1000] [--groups 100] [--pdf-sample 20] [--full-pdf]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
import warnings
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import sqlalchemy as sa  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402


@contextmanager
def temporary_database():
    env = os.environ.get("VIGIL_TEST_DATABASE_URL") or os.environ.get("VIGIL_DATABASE_URL")
    root = Path(tempfile.mkdtemp(prefix="vigil-bench-", dir="/tmp"))
    srv = None
    if env:
        server = make_url(env)
        if server.drivername in ("postgresql", "postgres"):
            server = server.set(drivername="postgresql+psycopg")
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import pgserver

            srv = pgserver.get_server(root / "pg", cleanup_mode=None)
        server = sa.engine.URL.create("postgresql+psycopg", username="postgres", database="postgres",
                                      query={"host": str(root / "pg")})
    name = f"vigil_bench_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(server.set(database="postgres"), isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    with admin.connect() as c:
        c.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield server.set(database=name), root
    finally:
        from vigil.storage.db import get_engine

        get_engine(server.set(database=name)).dispose()
        with admin.connect() as c:
            c.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        if srv is not None:
            from pgserver._commands import pg_ctl

            pg_ctl(["-w", "stop", "-m", "immediate"], pgdata=srv.pgdata, user=srv.system_user)
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--versions", type=int, default=1000)
    ap.add_argument("--groups", type=int, default=100)
    ap.add_argument("--pdf-sample", type=int, default=20, help="pages of each kind whose PDF time is measured")
    ap.add_argument("--full-pdf", action="store_true", help="also time a full build with every PDF")
    ap.add_argument("--workers", type=int, default=None)
    args = ap.parse_args()
    os.environ.setdefault("NO_MKDOCS_2_WARNING", "1")

    from site_builder.publish import build_site
    from tests.site.fill import fill
    from vigil.storage.warehouse import migrate

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
        full = build_site(engine, site, pdf=False, parquet_dir=parquet, workers=args.workers)
        print(f"full build (no PDFs): {full.seconds:.1f} s for {full.pages_total} pages "
              f"(render {full.timings['render']:.1f} s, mkdocs {full.timings['mkdocs']:.1f} s, "
              f"read+plan {full.timings['read'] + full.timings['plan']:.1f} s)")
        same = build_site(engine, site, pdf=False, parquet_dir=parquet, workers=args.workers)
        print(f"rebuild, nothing changed: {same.seconds:.1f} s ({same.pages_written} pages rendered; "
              f"mkdocs {same.timings['mkdocs']:.1f} s)")
        gid = next(iter(filled.groups.values()))
        with engine.begin() as c:
            c.execute(sa.text("""INSERT INTO group_events (group_id, event_type, actor, reason, at)
                                 VALUES (:g, 'weights', 'bench', 'one group changes', :at)"""),
                      {"g": gid, "at": datetime.now(timezone.utc)})
        inc = build_site(engine, site, pdf=False, parquet_dir=parquet, workers=args.workers)
        ratio = inc.seconds / full.seconds
        print(f"incremental after one group changed: {inc.seconds:.1f} s ({inc.pages_written} page(s) rendered; "
              f"mkdocs {inc.timings['mkdocs']:.1f} s = {inc.timings['mkdocs'] / inc.seconds:.0%} of it); "
              f"ratio to full build {ratio:.3f} (target < 0.1: {'met' if ratio < 0.1 else 'NOT met'})")

        # PDF time per page, on a sample (the same renderer the build uses)
        from site_builder.pagedata import plan_site
        from site_builder.render import render_bundle, report_html, write_pdf
        from site_builder.snapshot import read_snapshot

        plan = plan_site(read_snapshot(engine, parquet))
        out = root / "pdf-sample"
        per_kind: dict[str, list[float]] = {}
        for kind in ("version", "group"):
            pages = [p for p in plan.pages if p.kind == kind][: args.pdf_sample]
            for p in pages:
                t = render_bundle(p, out / p.id, pdf=True, generated="bench", version="bench")
                per_kind.setdefault(kind, []).append(t["pdf"])
        groups = [p for p in plan.pages if p.kind == "group"]
        html = report_html(plan.report, groups, {g.id: out / g.id / "charts" for g in groups}, generated="bench", version="bench")
        report_s = write_pdf(html, out / "report.pdf", out)
        pages = _pdf_pages(out / "report.pdf")
        v, g = per_kind.get("version", []), per_kind.get("group", [])
        print(f"PDF per page: version {statistics.median(v):.2f} s (median of {len(v)}, max {max(v):.2f}), "
              f"group {statistics.median(g):.2f} s (median of {len(g)}); full report {report_s:.1f} s"
              + (f" for {pages} pages ({report_s / pages:.2f} s/page)" if pages else ""))
        workers = args.workers or min(4, os.cpu_count() or 1)
        est = (statistics.median(v) * nv + statistics.median(g) * ng) / workers + report_s
        figures = {"versions": nv, "groups": ng, "pages": full.pages_total, "full_s": round(full.seconds, 2),
                   "full_mkdocs_s": round(full.timings["mkdocs"], 2), "unchanged_s": round(same.seconds, 2),
                   "incremental_s": round(inc.seconds, 2), "incremental_mkdocs_s": round(inc.timings["mkdocs"], 2),
                   "ratio": round(ratio, 4), "pdf_version_s": round(statistics.median(v), 3),
                   "pdf_group_s": round(statistics.median(g), 3), "pdf_report_s": round(report_s, 2), "pdf_report_pages": pages}
        if args.full_pdf:
            fp = build_site(engine, site, pdf=True, parquet_dir=parquet, workers=args.workers)
            print(f"full build with every PDF: {fp.seconds:.1f} s ({len(fp.pdfs)} PDFs, {fp.pdf_seconds:.1f} s of PDF "
                  f"rendering summed over workers)")
            figures["full_pdf_s"] = round(fp.seconds, 2)
        else:
            print(f"(every PDF would add about {est:.0f} s to a full build on {workers} render workers; "
                  "run with --full-pdf to measure it)")
    print(json.dumps(figures))


def _pdf_pages(path: Path) -> int | None:
    exe = shutil.which("pdfinfo")
    if not exe:
        return None
    import subprocess

    out = subprocess.run([exe, str(path)], capture_output=True, text=True).stdout
    return next((int(line.split()[-1]) for line in out.splitlines() if line.startswith("Pages:")), None)


if __name__ == "__main__":
    main()
