"""Build and publish the report site: warehouse -> pages + charts + PDFs -> ``mkdocs build`` -> swap.

``build_site`` is what ``vigil site build`` and the ``publish_reports`` DAG call.

* **Incremental.** Every page is a bundle (Markdown, SVG charts, PDF) stored under
  ``<site_dir>/.build-cache/<hash>/``, where the hash covers the page's data and the builder's
  own code and templates. A page whose hash already has a bundle is reused, not re-rendered.
* **Atomic.** Everything is built in a fresh ``<site_dir>/.build-<id>/`` directory; only when
  MkDocs succeeded and the result checks out is it exchanged with ``<site_dir>/public`` in one
  ``renameat2(RENAME_EXCHANGE)`` call. A failed build leaves the previous site whole.
* **One at a time.** A lock file serialises concurrent builds (two DAG runs, a CLI user).
"""

from __future__ import annotations

import ctypes
import fcntl
import hashlib
import json
import logging
import multiprocessing
import os
import shutil
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml
from markupsafe import escape

from site_builder.pagedata import PageSpec, SitePlan, plan_site
from vigil.settings import fault_point

log = logging.getLogger(__name__)

PACKAGE_DIR = Path(__file__).resolve().parent
CACHE = ".build-cache"
STATE = "state.json"
BUILD_INFO = "vigil-build.json"
# Below this many pages to render, a worker pool costs more than it saves.
POOL_MIN_PAGES = 12


class SiteBuildError(RuntimeError):
    """The site could not be built; the published site was left as it was."""


@dataclass
class BuildResult:
    index_html: Path
    pages_written: int
    pages_unchanged: int
    pdfs: list[Path]
    seconds: float
    public_dir: Path = Path()
    pages_total: int = 0
    pdf_seconds: float = 0.0
    pdfs_written: int = 0
    timings: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"index_html": str(self.index_html), "pages_written": self.pages_written,
                "pages_unchanged": self.pages_unchanged, "pages_total": self.pages_total, "pdfs": len(self.pdfs),
                "pdfs_written": self.pdfs_written, "pdf_seconds": round(self.pdf_seconds, 3),
                "seconds": round(self.seconds, 3), "timings": {k: round(v, 3) for k, v in self.timings.items()}}


# ------------------------------------------------------------------------------------ helpers
def project_dir(site_dir: Path) -> Path:
    """The MkDocs project (mkdocs.yml, overrides, assets): the site dir's own, else the repo's."""
    if (site_dir / "mkdocs.yml").is_file():
        return site_dir
    from vigil.settings import REPO_ROOT

    return REPO_ROOT / "site"


def vigil_version() -> str:
    from vigil import __version__

    return __version__


def code_fingerprint(project: Path) -> str:
    """Hash of everything besides the data that shapes a page: builder code, templates, theme files."""
    h = hashlib.sha256(vigil_version().encode())
    # Only what turns page data into files; the publisher and the SQL reader shape no page.
    files = sorted(p for p in PACKAGE_DIR.rglob("*") if p.is_file() and p.suffix in (".py", ".j2", ".css")
                   and p.name not in ("publish.py", "snapshot.py", "__init__.py"))
    files += sorted(p for p in (project / "assets").rglob("*") if p.is_file()) if (project / "assets").exists() else []
    for p in files:
        h.update(p.name.encode())
        h.update(p.read_bytes())
    return h.hexdigest()[:16]


@contextmanager
def _lock(site_dir: Path):
    # inside the cache dir, which .gitignore already covers (site/.build-*/)
    (site_dir / CACHE).mkdir(parents=True, exist_ok=True)
    with open(site_dir / CACHE / ".lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


_RENAME_EXCHANGE = 2


def exchange(a: Path, b: Path) -> None:
    """Atomically swap two directories (Linux renameat2); elsewhere, two renames close together."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        fn = None
    if fn is not None:
        AT_FDCWD = -100
        if fn(AT_FDCWD, os.fsencode(str(a)), AT_FDCWD, os.fsencode(str(b)), _RENAME_EXCHANGE) == 0:
            return
        err = ctypes.get_errno()
        log.debug("renameat2 failed (%s); falling back to two renames", os.strerror(err))
    aside = b.with_name(b.name + f".old-{uuid.uuid4().hex[:6]}")
    os.rename(b, aside)
    os.rename(a, b)
    os.rename(aside, a)


def _link_or_copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)  # bundles are immutable once written, and MkDocs copies out of docs/
    except OSError:
        shutil.copy2(src, dst)


# ------------------------------------------------------------------------------------ bundles
def _render_job(page: PageSpec, tmp: str, final: str, pdf: bool, generated: str, version: str) -> tuple[str, dict]:
    from site_builder.render import render_bundle

    tmp_p, final_p = Path(tmp), Path(final)
    timings = render_bundle(page, tmp_p, pdf=pdf, generated=generated, version=version)
    (tmp_p / "page.json").write_text(json.dumps({"id": page.id, "charts": [c["name"] for c in page.charts]}))
    try:
        os.rename(tmp_p, final_p)  # content-addressed: a concurrent twin may have won, both are equal
    except OSError:
        shutil.rmtree(tmp_p, ignore_errors=True)
    return page.id, timings


def _pool(workers: int) -> ProcessPoolExecutor:
    # fork: workers inherit the imported renderer (no re-import of the caller's __main__, which
    # spawn/forkserver would do inside an Airflow task or a test runner). Workers only get page
    # data and write files; they never touch the database engine the parent holds.
    import site_builder.charts  # noqa: F401  (imported once, before the fork)
    import site_builder.render  # noqa: F401

    return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("fork"))


def _render_pages(todo: list[tuple[PageSpec, Path]], cache: Path, *, pdf: bool, generated: str, version: str,
                  workers: int) -> dict[str, dict]:
    jobs = []
    for page, final in todo:
        tmp = cache / f".tmp-{uuid.uuid4().hex}"
        jobs.append((page, str(tmp), str(final), pdf, generated, version))
    results: dict[str, dict] = {}
    if workers > 1 and len(jobs) >= POOL_MIN_PAGES:
        with _pool(workers) as ex:
            for pid, t in ex.map(_render_job, *zip(*jobs, strict=True), chunksize=4):
                results[pid] = t
    else:
        for j in jobs:
            pid, t = _render_job(*j)
            results[pid] = t
    return results


# ------------------------------------------------------------------------------------ mkdocs
def _mkdocs_config(project: Path, build: Path, nav: list) -> Path:
    cfg = yaml.safe_load((project / "mkdocs.yml").read_text()) or {}

    def esc_nav(items):
        # MkDocs themes print nav titles unescaped: escape user-named entries here.
        out = []
        for item in items:
            (title, target), = item.items()
            out.append({str(escape(title)): esc_nav(target) if isinstance(target, list) else target})
        return out

    cfg["nav"] = esc_nav(nav)
    cfg["docs_dir"] = str(build / "docs")
    cfg["site_dir"] = str(build / "public")
    theme = cfg.setdefault("theme", {})
    if theme.get("custom_dir"):
        theme["custom_dir"] = str((project / theme["custom_dir"]).resolve())
    path = build / "mkdocs.yml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False, allow_unicode=True))
    return path


def run_mkdocs(config_file: Path) -> None:
    """``mkdocs build`` in-process (saves the interpreter start); a warning in strict mode fails it."""
    os.environ.setdefault("NO_MKDOCS_2_WARNING", "1")
    from mkdocs import exceptions
    from mkdocs.commands.build import build
    from mkdocs.config import load_config

    mk_log = logging.getLogger("mkdocs")
    captured: list[str] = []

    class _Keep(logging.Handler):
        def emit(self, record):
            if record.levelno >= logging.WARNING:
                captured.append(record.getMessage())

    handler = _Keep()
    mk_log.addHandler(handler)
    try:
        cfg = load_config(config_file=str(config_file))
        build(cfg)
    except (exceptions.MkDocsException, exceptions.Abort, SystemExit) as e:
        detail = "; ".join(captured[:5]) or str(e)
        raise SiteBuildError(f"mkdocs build failed: {detail}") from e
    finally:
        mk_log.removeHandler(handler)


# ------------------------------------------------------------------------------------ build
def build_site(engine=None, site_dir=None, *, pdf: bool = True, parquet_dir=None, workers: int | None = None) -> BuildResult:
    """Build the report site from the warehouse into ``<site_dir>/public`` (atomic swap).

    engine: warehouse engine (default ``vigil.storage.db.get_engine()``); site_dir: MkDocs project and
    output (default ``get_settings().site_dir``); pdf: also render the PDFs; parquet_dir: the
    Parquet store (default ``get_settings().parquet_dir``); workers: render processes (default:
    CPU count, at most 4).
    """
    t0 = time.perf_counter()
    from vigil.settings import get_settings

    settings = get_settings()
    if engine is None:
        from vigil.storage.db import get_engine

        engine = get_engine()
    site_dir = Path(site_dir or settings.site_dir).resolve()
    parquet_dir = Path(parquet_dir or settings.parquet_dir)
    workers = workers or min(4, os.cpu_count() or 1)
    timings: dict[str, float] = {}

    with _lock(site_dir):
        from site_builder.snapshot import read_snapshot

        t = time.perf_counter()
        snap = read_snapshot(engine, parquet_dir)
        timings["read"] = time.perf_counter() - t
        t = time.perf_counter()
        plan: SitePlan = plan_site(snap)
        timings["plan"] = time.perf_counter() - t
        project = project_dir(site_dir)
        fingerprint = code_fingerprint(project) + (":pdf" if pdf else ":nopdf")
        version = vigil_version()
        generated = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")

        cache = site_dir / CACHE
        for stale in site_dir.glob(".build-*"):  # left by a build that was killed (we hold the lock)
            if stale.name != CACHE and stale.is_dir():
                shutil.rmtree(stale, ignore_errors=True)
        build = site_dir / f".build-{uuid.uuid4().hex[:10]}"
        build.mkdir()
        try:
            result = _build(plan, project, cache, build, site_dir, fingerprint, pdf=pdf, generated=generated,
                            version=version, workers=workers, timings=timings)
        except BaseException:
            shutil.rmtree(build, ignore_errors=True)
            raise
    result.seconds = time.perf_counter() - t0
    log.info("site built: %s", result.to_dict())
    return result


def _build(plan: SitePlan, project: Path, cache: Path, build: Path, site_dir: Path, fingerprint: str, *, pdf: bool,
           generated: str, version: str, workers: int, timings: dict[str, float]) -> BuildResult:
    # 1. Page bundles: reuse what the cache holds for an unchanged hash, render the rest.
    t = time.perf_counter()
    bundles: dict[str, Path] = {}
    todo = []
    for page in plan.pages:
        h = page.content_hash(fingerprint)
        final = cache / h
        bundles[page.id] = final
        if not (final / "page.json").exists():
            todo.append((page, final))
    rendered = _render_pages(todo, cache, pdf=pdf, generated=generated, version=version, workers=workers)
    pdf_seconds = sum(r["pdf"] for r in rendered.values())
    timings["render"] = time.perf_counter() - t
    timings["charts_cpu"] = sum(r["charts"] for r in rendered.values())

    # 2. The full report PDF (its own bundle, keyed by the report's data).
    report_path = None
    if pdf:
        t = time.perf_counter()
        from site_builder.render import report_html, write_pdf

        groups = [p for p in plan.pages if p.kind == "group"]
        blob = json.dumps(plan.report, sort_keys=True, default=str) + json.dumps([g.data for g in groups], default=str)
        h = hashlib.sha256((fingerprint + blob).encode()).hexdigest()
        report_path = cache / f"report-{h}.pdf"
        if not report_path.exists():
            html = report_html(plan.report, groups, {g.id: bundles[g.id] / "charts" for g in groups},
                               generated=generated, version=version)
            secs = write_pdf(html, report_path, build)
            pdf_seconds += secs
            timings["report_pdf"] = secs
            rendered["__report__"] = {"pdf": secs}
        timings["report"] = time.perf_counter() - t

    # 3. Assemble the MkDocs docs dir from the bundles (hard links: cheap, and bundles never change).
    t = time.perf_counter()
    docs = build / "docs"
    docs.mkdir()
    if (project / "assets").exists():
        shutil.copytree(project / "assets", docs / "assets")
    for page in plan.pages:
        b = bundles[page.id]
        _link_or_copy(b / "page.md", docs / page.md_path)
        if (b / "charts").exists():
            for svg in (b / "charts").iterdir():
                _link_or_copy(svg, docs / page.chart_dir / svg.name)
        if pdf and page.pdf and (b / "page.pdf").exists():
            _link_or_copy(b / "page.pdf", docs / page.pdf)
    if report_path is not None:
        _link_or_copy(report_path, docs / "pdf" / "vigil-report.pdf")
    timings["assemble"] = time.perf_counter() - t

    # 4. MkDocs into build/public, then check the result before anyone sees it.
    t = time.perf_counter()
    run_mkdocs(_mkdocs_config(project, build, plan.nav))
    timings["mkdocs"] = time.perf_counter() - t
    public = build / "public"
    missing = [p.html_path for p in plan.pages if not (public / p.html_path).is_file()]
    if missing:
        raise SiteBuildError(f"mkdocs did not write {len(missing)} page(s), e.g. {missing[:3]}")
    pdfs = sorted(public.glob("pdf/**/*.pdf")) if pdf else []
    info = {"generated": generated, "vigil_version": version, "fingerprint": fingerprint,
            "pages": {p.id: p.content_hash(fingerprint) for p in plan.pages},
            "pages_written": len([k for k in rendered if k != "__report__"]), "timings": timings}
    (public / BUILD_INFO).write_text(json.dumps(info, indent=1))

    # 5. Swap it in; the old tree ends up in the build dir and is removed with it.
    fault_point("publish:before-swap")  # the fault campaign kills a build here (tests/reliability)
    t = time.perf_counter()
    target = site_dir / "public"
    if target.exists():
        exchange(public, target)
    else:
        os.rename(public, target)
    shutil.rmtree(build, ignore_errors=True)
    timings["swap"] = time.perf_counter() - t

    # 6. Forget bundles no page uses any more (the cache only ever holds the current site).
    keep = {b.name for b in bundles.values()} | ({report_path.name} if report_path else set())
    for entry in cache.iterdir():
        if entry.name not in keep and entry.name != ".lock":  # (.tmp-* left by a crashed build go too)
            shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() else entry.unlink(missing_ok=True)
    written = len([k for k in rendered if k != "__report__"])
    return BuildResult(
        index_html=target / "index.html", pages_written=written, pages_unchanged=len(plan.pages) - written,
        pdfs=[target / p.relative_to(public) for p in pdfs], seconds=0.0, public_dir=target,
        pages_total=len(plan.pages), pdf_seconds=pdf_seconds,
        pdfs_written=sum(1 for r in rendered.values() if r.get("pdf")), timings=timings,
    )
