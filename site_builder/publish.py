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

import contextvars
import ctypes
import fcntl
import gc
import hashlib
import json
import logging
import multiprocessing
import os
import shutil
import subprocess
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
JINJA = ".jinja"  # in the cache: the theme's compiled templates
SNAPSHOT = ".snapshot"  # in the cache: what the warehouse read keeps for the next (snapshot.read_snapshot)
PLAN = ".plan"  # in the cache: the version pages the plan keeps for the next (pagedata.Planner.version_pages)
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
    # ... and what turns a page's Markdown into HTML (the render workers do it: render.site_html)
    # and wraps it in the theme (a reused page's HTML: _PageReuse).
    files += [project / "mkdocs.yml"] + sorted(p for p in (project / "overrides").rglob("*") if p.is_file())
    for p in files:
        if p.is_file():
            h.update(p.name.encode())
            h.update(p.read_bytes())
    for dist in ("mkdocs", "mkdocs-material", "markdown"):
        h.update(f"{dist}={_dist_version(dist)}".encode())
    return h.hexdigest()[:16]


def _dist_version(name: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "-"


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


def _remove_later(path: Path) -> None:
    """Remove a finished build dir (the previous site, swapped out) off the critical path: nothing
    reads it any more, and a removal cut short by the process ending is finished by the next build.
    ``rm -rf`` in a process of its own where there is one: an rmtree thread took the GIL for every
    one of ~8,000 entries while the next build in the same process ran."""
    aside = path.with_name(f".build-old-{uuid.uuid4().hex[:10]}")
    try:
        os.rename(path, aside)  # its name no longer looks like a build in progress
    except OSError:
        aside = path
    rm = shutil.which("rm")
    if rm is not None:
        try:
            _removals.append(subprocess.Popen([rm, "-rf", "--", str(aside)], stdin=subprocess.DEVNULL,
                                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            _removals[:] = [p for p in _removals if p.poll() is None]  # reap the finished ones
            return
        except OSError:
            pass
    import threading

    threading.Thread(target=shutil.rmtree, args=(aside,), kwargs={"ignore_errors": True}, daemon=True,
                     name="vigil-site-cleanup").start()


_removals: list = []


def _link_or_copy(src: str | Path, dst: str | Path) -> None:
    """Hard-link ``src`` at ``dst`` (bundles are immutable once written), copying where links fail;
    ``dst``'s folder is made on the first file into it, not checked for every file."""
    try:
        os.link(src, dst)
        return
    except FileNotFoundError:
        if not os.path.exists(src):
            raise
        os.makedirs(os.path.dirname(dst), exist_ok=True)
    except OSError:
        pass
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


# ------------------------------------------------------------------------------------ bundles
def _render_job(page: PageSpec, tmp: str, final: str, pdf: bool, generated: str, version: str,
                site_setup: dict | None) -> tuple[str, dict]:
    from site_builder.render import render_bundle

    tmp_p, final_p = Path(tmp), Path(final)
    timings = render_bundle(page, tmp_p, pdf=pdf, generated=generated, version=version, site_setup=site_setup)
    (tmp_p / "page.json").write_text(json.dumps({"id": page.id, "charts": [c["name"] for c in page.charts]}))
    try:
        os.rename(tmp_p, final_p)  # content-addressed: a concurrent twin may have won, both are equal
    except OSError:
        shutil.rmtree(tmp_p, ignore_errors=True)
    return page.id, timings


def _report_job(report: dict, groups: list[PageSpec], chart_dirs: dict[str, Path], generated: str, version: str,
                target: str, base: str) -> float:
    from site_builder.render import report_html, write_pdf

    html = report_html(report, groups, chart_dirs, generated=generated, version=version)
    return write_pdf(html, Path(target), Path(base))


def _pool(workers: int, pdf: bool = False) -> ProcessPoolExecutor:
    # fork: workers inherit the imported renderer (no re-import of the caller's __main__, which
    # spawn/forkserver would do inside an Airflow task or a test runner). Workers only get page
    # data and write files; they never touch the database engine the parent holds.
    import site_builder.charts  # noqa: F401  (imported once, before the fork)
    import site_builder.render  # noqa: F401

    if pdf:
        import weasyprint  # noqa: F401  (seconds to import: once, not once per worker)

        from site_builder import svg_text

        svg_text.install()
    return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("fork"))


def _render_pages(todo: list[tuple[PageSpec, Path]], cache: Path, *, pdf: bool, generated: str, version: str,
                  workers: int, site_setup: dict | None = None, report: tuple | None = None
                  ) -> tuple[dict[str, dict], float | None]:
    """Render the bundles of ``todo``; ``report`` (the arguments of :func:`_report_job`) is the full
    report PDF, the longest single job: it goes to the pool first, so it runs beside the pages
    instead of after them. Returns the pages' timings and the report's seconds (None: none made)."""
    jobs = []
    for page, final in todo:
        tmp = cache / f".tmp-{uuid.uuid4().hex}"
        jobs.append((page, str(tmp), str(final), pdf, generated, version, site_setup))
    results: dict[str, dict] = {}
    report_s = None
    if workers > 1 and (len(jobs) >= POOL_MIN_PAGES or (report and jobs)):
        # The workers inherit the parent's heap (the snapshot and the plan: millions of objects at
        # a thousand versions); frozen, no collection in a worker walks it (or copies its pages):
        # measured 7% of every PDF's time with 1.5M inherited objects. Garbage frozen with
        # them is freed after the pool, when they are unfrozen.
        gc.freeze()
        try:
            with _pool(workers, pdf) as ex:
                rep = ex.submit(_report_job, *report) if report else None
                if jobs:
                    for pid, t in ex.map(_render_job, *zip(*jobs, strict=True), chunksize=4):
                        results[pid] = t
                report_s = rep.result() if rep else None
        finally:
            gc.unfreeze()
    else:
        for j in jobs:
            pid, t = _render_job(*j)
            results[pid] = t
        report_s = _report_job(*report) if report else None
    return results, report_s


# ------------------------------------------------------------------------------------ mkdocs
# MkDocs does three things per page: Markdown -> HTML, the search plugin's parse of that HTML, and
# the theme template. The first two depend on the page alone, so the render workers do them in
# parallel and keep them with the bundle (render.site_html); MkDocs is handed the result
# (_Prerendered). The third depends on the whole nav too: a page whose bundle and site signature
# (config, nav, theme) are those of the published site keeps its published HTML (_PageReuse).
PRERENDER = True  # tests turn it off to check MkDocs' own conversion gives the same site


def _mkdocs_config(project: Path, build: Path, nav: list) -> tuple[Path, str]:
    """Write the build's mkdocs.yml; returns it and the site signature: a hash of everything in it but
    the build's own paths (the nav included), which a reused page's HTML must share."""
    cfg = yaml.safe_load((project / "mkdocs.yml").read_text()) or {}

    def esc_nav(items):
        # MkDocs themes print nav titles unescaped: escape user-named entries here.
        out = []
        for item in items:
            (title, target), = item.items()
            out.append({str(escape(title)): esc_nav(target) if isinstance(target, list) else target})
        return out

    cfg["nav"] = esc_nav(nav)
    signature = hashlib.sha256(json.dumps(cfg, sort_keys=True, default=str).encode()).hexdigest()[:16]
    cfg["docs_dir"] = str(build / "docs")
    cfg["site_dir"] = str(build / "public")
    theme = cfg.setdefault("theme", {})
    if theme.get("custom_dir"):
        theme["custom_dir"] = str((project / theme["custom_dir"]).resolve())
    path = build / "mkdocs.yml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False, allow_unicode=True))
    return path, signature


@contextmanager
def _mkdocs_errors():
    """MkDocs' failures (and, in strict mode, its warnings) as one SiteBuildError."""
    from mkdocs import exceptions

    mk_log = logging.getLogger("mkdocs")
    captured: list[str] = []

    class _Keep(logging.Handler):
        def emit(self, record):
            if record.levelno >= logging.WARNING:
                captured.append(record.getMessage())

    handler = _Keep()
    mk_log.addHandler(handler)
    try:
        yield
    except (exceptions.MkDocsException, exceptions.Abort, SystemExit) as e:
        detail = "; ".join(captured[:5]) or str(e)
        raise SiteBuildError(f"mkdocs build failed: {detail}") from e
    finally:
        mk_log.removeHandler(handler)


def load_mkdocs(config_file: Path):
    """The build's MkDocs config, loaded once: its Markdown setup goes to the render workers first."""
    os.environ.setdefault("NO_MKDOCS_2_WARNING", "1")
    from mkdocs.config import load_config

    with _mkdocs_errors():
        return load_config(config_file=str(config_file))


def markdown_setup(cfg) -> dict[str, Any]:
    """What render.site_html needs to convert a page as MkDocs would (JSON-able, for the workers)."""
    return {"extensions": [e if isinstance(e, str) else f"{type(e).__module__}:{type(e).__name__}"
                           for e in cfg["markdown_extensions"]],
            "configs": cfg["mdx_configs"] or {}, "use_directory_urls": bool(cfg["use_directory_urls"])}


def _search_plugin(cfg):
    return next((p for name, p in cfg.plugins.items() if name.split("/")[-1] == "search"), None)


class _Prerendered:
    """An in-process MkDocs plugin: pages whose bundle holds their HTML (``page.html``, ``site.json``)
    skip the Markdown conversion and the search plugin's parse; MkDocs only wraps them in the theme."""

    def __init__(self, bundles: dict[str, Path], reuse: dict[str, Path] | None = None,
                 jinja_cache: Path | None = None) -> None:
        self.bundles = bundles  # src_uri -> bundle dir
        self.reuse = reuse or {}  # src_uri -> published HTML kept as it is (its content is never needed)
        self.jinja_cache = jinja_cache  # where the theme's compiled templates are kept between builds
        self.site: dict[str, dict] = {}
        self.log = logging.getLogger("mkdocs.plugins.vigil")

    def load(self, src_uri: str) -> dict | None:
        """The bundle's site.json (what MkDocs would have made of the page), or None: MkDocs converts it."""
        if src_uri in self.site:
            return self.site[src_uri]
        b = self.bundles.get(src_uri)
        if b is None or not (b / "page.html").is_file() or not (b / "site.json").is_file():
            return None
        done = self.site[src_uri] = json.loads((b / "site.json").read_text())
        return done

    def content(self, src_uri: str) -> str:
        return (self.bundles[src_uri] / "page.html").read_text()

    def plugin(self):
        from mkdocs.plugins import BasePlugin

        outer = self

        class Plugin(BasePlugin):
            def on_config(self, config):
                own_env = config.theme.get_env

                def get_env():
                    env = own_env()
                    _list_theme_files_without_dot_dirs(env)
                    return env

                config.theme.get_env = get_env
                return config

            def on_pre_build(self, *, config):
                search = _search_plugin(config)
                index = getattr(search, "search_index", None)
                if index is not None and hasattr(index, "entries"):
                    own = index.add_entry_from_context

                    def add(page):
                        done = outer.site.get(page.file.src_uri)
                        index.entries.extend(done["search"]) if done is not None else own(page)

                    index.add_entry_from_context = add  # this build's own plugin instance only
                    outer.index = add
                # a page's HTML may be reused only when its search entries can be added without it
                outer.ready = search is None or outer.index is not None

            def on_page_markdown(self, markdown, *, page, config, files):
                return markdown if outer.load(page.file.src_uri) is None else ""

            def on_page_content(self, html, *, page, config, files):
                done = outer.site.get(page.file.src_uri)
                if done is None:
                    return html
                from mkdocs.structure.toc import get_toc

                for w in done["warnings"]:  # logged again, so strict mode fails as it would have
                    outer.log.warning(w)
                if outer.ready and page.file.src_uri in outer.reuse:
                    # its published HTML is linked in (_build_page): no theme render needs its
                    # content or table of contents; both are read only if the link fails
                    return ""
                page.toc = get_toc(done["toc"])
                return outer.content(page.file.src_uri)

            def on_env(self, env, *, config, files):
                # the theme's templates compiled once, not on every build (most of a small
                # rebuild's MkDocs time); keyed by each template's source, so a change recompiles
                if outer.jinja_cache is not None and env.bytecode_cache is None:
                    from jinja2 import FileSystemBytecodeCache

                    outer.jinja_cache.mkdir(parents=True, exist_ok=True)
                    env.bytecode_cache = FileSystemBytecodeCache(str(outer.jinja_cache))
                return env

        return Plugin()

    index = None
    ready = False


def _list_theme_files_without_dot_dirs(env) -> None:
    """MkDocs lists the theme's files on every build to find its static ones, and drops any path
    with a part starting with a dot; Material's ``.icons`` holds some 14,000 SVGs, so the walk
    into it took 0.07 s of every build (0.002 s without it), for names all thrown away. The listing here
    leaves dot folders out of the walk, for a filter that would drop them anyway (checked on two
    such names); any other caller gets Jinja's own listing."""
    from jinja2 import FileSystemLoader

    loader, own = env.loader, env.list_templates
    if not isinstance(loader, FileSystemLoader):
        return

    def list_templates(extensions=None, filter_func=None):
        if extensions is not None or filter_func is None or filter_func(".x/y.css") or filter_func("x/.y/z.css"):
            return own(extensions, filter_func)
        found = set()
        for root in loader.searchpath:
            root = os.fspath(root)
            for folder, dirs, names in os.walk(root, followlinks=loader.followlinks):
                dirs[:] = [d for d in dirs if not d.startswith(".")]
                rel = os.path.relpath(folder, root)
                for n in names:
                    found.add(n if rel == "." else f"{rel}/{n}".replace(os.path.sep, "/"))
        return [n for n in sorted(found) if filter_func(n)]

    env.list_templates = list_templates


_REUSE: contextvars.ContextVar[_Prerendered | None] = contextvars.ContextVar("vigil_reuse", default=None)


def _install_page_reuse() -> bool:
    """Wrap MkDocs' per-page reader and writer (once, inert outside a build that sets _REUSE).

    Reader: a page whose bundle holds its HTML and front matter (site.json ``meta``) is not read
    and parsed again, nor given a Markdown converter of its own: MkDocs gets what ``Page.read_source``
    and ``Page.render`` would have set for the empty Markdown the plugin hands it. Writer: a page
    listed for reuse gets the published HTML linked in, instead of the theme rendered again."""
    from mkdocs.commands import build as mk_build

    own = getattr(mk_build, "_build_page", None)
    own_populate = getattr(mk_build, "_populate_page", None)
    if own is None or own_populate is None:  # another MkDocs: no reuse, every page is rendered
        return False
    if getattr(own, "vigil_reuse", False):
        return True

    def _populate_page(page, config, files, dirty=False):
        pre = _REUSE.get()
        done = pre.load(page.file.src_uri) if pre is not None else None
        if done is None or not isinstance(done.get("meta"), dict) or dirty:
            return own_populate(page, config, files, dirty)
        from mkdocs.structure.toc import get_toc

        config._current_page = page
        try:
            page = config.plugins.on_pre_page(page, config=config, files=files)
            page.meta = dict(done["meta"])
            page.markdown = config.plugins.on_page_markdown("", page=page, config=config, files=files)
            # what Page.render sets for empty Markdown
            page.content, page.toc, page._title_from_render = "", get_toc([]), None
            page.present_anchor_ids, page.links_to_anchors = set(), {}
            page.content = config.plugins.on_page_content(page.content, page=page, config=config, files=files)
        finally:
            config._current_page = None

    def _build_page(page, config, doc_files, nav, env, dirty=False, excluded=False):
        pre = _REUSE.get()
        old = pre.reuse.get(page.file.src_uri) if pre is not None else None
        if old is None or not pre.ready or page.file.src_uri not in pre.site:
            return own(page, config, doc_files, nav, env, dirty, excluded)
        try:
            _link_or_copy(old, Path(page.file.abs_dest_path))
        except OSError:
            from mkdocs.structure.toc import get_toc

            page.content, page.toc = pre.content(page.file.src_uri), get_toc(pre.site[page.file.src_uri]["toc"])
            return own(page, config, doc_files, nav, env, dirty, excluded)
        if pre.index is not None:
            pre.index(page)  # its search entries, in the order MkDocs would have added them

    _build_page.vigil_reuse = True  # type: ignore[attr-defined]
    mk_build._build_page = _build_page
    mk_build._populate_page = _populate_page
    return True


def run_mkdocs(cfg, bundles: dict[str, Path] | None = None, reuse: dict[str, Path] | None = None,
               jinja_cache: Path | None = None) -> None:
    """``mkdocs build`` in-process (saves the interpreter start); a warning in strict mode fails it.

    cfg: the loaded config (:func:`load_mkdocs`) or a mkdocs.yml path; bundles: src_uri -> bundle dir
    of pages converted in advance; reuse: src_uri -> published HTML to keep as it is; jinja_cache: a
    folder for the theme's compiled templates.
    """
    from mkdocs.commands.build import build

    if isinstance(cfg, (str, Path)):
        cfg = load_mkdocs(Path(cfg))
    pre = _Prerendered(bundles or {}, reuse, jinja_cache)
    if bundles:
        cfg.plugins["vigil/prerendered"] = pre.plugin()
    token = _REUSE.set(pre if bundles and _install_page_reuse() else None)
    try:
        with _mkdocs_errors():
            build(cfg)
    finally:
        _REUSE.reset(token)


# ------------------------------------------------------------------------------------ build
def build_site(engine=None, site_dir=None, *, pdf: bool = True, parquet_dir=None, workers: int | None = None) -> BuildResult:
    """Build the report site from the warehouse into ``<site_dir>/public`` (atomic swap).

    engine: warehouse engine (default ``vigil.storage.db.get_engine()``); site_dir: MkDocs project and
    output (default ``get_settings().site_dir``); pdf: also render the PDFs; parquet_dir: the
    Parquet store (default the storage layer's: ``get_settings().parquet_dir``, or ``warehouse/`` of
    ``VIGIL_STORAGE_URL``'s object store); workers: render processes (default:
    CPU count, at most 4).
    """
    t0 = time.perf_counter()
    from vigil.settings import get_settings

    settings = get_settings()
    if engine is None:
        from vigil.storage.db import get_engine

        engine = get_engine()
    site_dir = Path(site_dir or settings.site_dir).resolve()
    if parquet_dir is None:  # the warehouse's Parquet through the storage layer (local, or VIGIL_STORAGE_URL's store)
        from vigil.storage.parquet_store import default_store

        parquet_dir = default_store()
    else:
        parquet_dir = Path(parquet_dir)
    workers = workers or min(4, os.cpu_count() or 1)
    timings: dict[str, float] = {}

    with _lock(site_dir):
        from site_builder.snapshot import read_snapshot

        t = time.perf_counter()
        snap = read_snapshot(engine, parquet_dir, cache_dir=site_dir / CACHE / SNAPSHOT)
        timings["read"] = time.perf_counter() - t
        t = time.perf_counter()
        project = project_dir(site_dir)
        code = code_fingerprint(project)
        plan: SitePlan = plan_site(snap, site_dir / CACHE / PLAN, code)
        timings["plan"] = time.perf_counter() - t
        fingerprint = code + (":pdf" if pdf else ":nopdf")
        version = vigil_version()
        generated = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")

        cache = site_dir / CACHE
        for stale in site_dir.glob(".build-*"):  # left by a build that was killed, or still being removed
            if stale.name != CACHE and stale.is_dir():
                _remove_later(stale)
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


def _reusable(published: Path, plan: SitePlan, hashes: dict[str, str], fingerprint: str,
              site_signature: str) -> dict[str, Path]:
    """src_uri -> published HTML of every page whose bundle and site signature (config, nav, theme,
    builder code) are those the published site was built with: its HTML would come out the same."""
    try:
        info = json.loads((published / BUILD_INFO).read_text())
    except (OSError, ValueError):
        return {}
    if info.get("fingerprint") != fingerprint or info.get("site_signature") != site_signature:
        return {}
    old = info.get("pages") or {}
    out = {}
    for p in plan.pages:
        f = published / p.html_path
        if old.get(p.id) == hashes[p.id] and f.is_file():
            out[p.md_path] = f
    return out


def _build(plan: SitePlan, project: Path, cache: Path, build: Path, site_dir: Path, fingerprint: str, *, pdf: bool,
           generated: str, version: str, workers: int, timings: dict[str, float]) -> BuildResult:
    # 0. The MkDocs config first: the render workers convert each page's Markdown as it will.
    t = time.perf_counter()
    docs = build / "docs"
    docs.mkdir()
    config_file, site_signature = _mkdocs_config(project, build, plan.nav)
    cfg = load_mkdocs(config_file)
    site_setup = markdown_setup(cfg) if PRERENDER else None
    timings["config"] = time.perf_counter() - t

    # 1. Page bundles: reuse what the cache holds for an unchanged hash, render the rest.
    t = time.perf_counter()
    bundles: dict[str, Path] = {}
    hashes: dict[str, str] = {}
    todo = []
    for page in plan.pages:
        h = hashes[page.id] = page.content_hash(fingerprint)
        final = cache / h
        bundles[page.id] = final
        if not (final / "page.json").exists():
            todo.append((page, final))
    keeping = plan.keep(fingerprint) if plan.keep is not None else None
    # 2. The full report PDF (its own bundle, keyed by what it shows): rendered beside the pages,
    # unless it shows whole group pages (few groups) whose charts are still to be drawn.
    report_path, report_job, report_after = None, None, False
    if pdf:
        from site_builder.render import REPORT_GROUP_DETAIL_LIMIT

        groups = [p for p in plan.pages if p.kind == "group"]
        detailed = len(groups) <= REPORT_GROUP_DETAIL_LIMIT
        # Keyed by what it shows: beyond the limit, the groups' summary rows (in report["home"]), not
        # each group's whole page (report["groups"]): one group's new event must not redo the report.
        shown = plan.report if detailed else {k: v for k, v in plan.report.items() if k != "groups"}
        blob = json.dumps(shown, sort_keys=True, default=str)
        if detailed:
            blob += json.dumps([g.data for g in groups], sort_keys=True, default=str)
        h = hashlib.sha256((fingerprint + blob).encode()).hexdigest()
        report_path = cache / f"report-{h}.pdf"
        if not report_path.exists():
            report_job = (plan.report, groups, {g.id: bundles[g.id] / "charts" for g in groups} if detailed else {},
                          generated, version, str(report_path), str(build))
            todo_ids = {p.id for p, _ in todo}
            report_after = detailed and any(g.id in todo_ids for g in groups)

    rendered, report_s = _render_pages(todo, cache, pdf=pdf, generated=generated, version=version, workers=workers,
                                       site_setup=site_setup, report=None if report_after else report_job)
    if report_after:
        report_s = _report_job(*report_job)
    pdf_seconds = sum(r["pdf"] for r in rendered.values())
    timings["render"] = time.perf_counter() - t
    timings["charts_cpu"] = sum(r["charts"] for r in rendered.values())
    timings["markdown_cpu"] = sum(r.get("markdown", 0.0) for r in rendered.values())
    timings["pdf_cpu"] = pdf_seconds
    if report_s is not None:
        pdf_seconds += report_s
        timings["report_pdf"] = report_s
        rendered["__report__"] = {"pdf": report_s}

    # 3. Assemble the MkDocs docs dir from the bundles (hard links: cheap, and bundles never change).
    # Charts and PDFs are linked straight into the output after MkDocs (step 4): the pages link them
    # from raw HTML, which MkDocs neither rewrites nor checks, so copying them through it is waste.
    t = time.perf_counter()
    if (project / "assets").exists():
        shutil.copytree(project / "assets", docs / "assets")
    for page in plan.pages:
        _link_or_copy(bundles[page.id] / "page.md", docs / page.md_path)
    reuse = _reusable(site_dir / "public", plan, hashes, fingerprint, site_signature)
    timings["assemble"] = time.perf_counter() - t

    # 4. MkDocs into build/public, then check the result before anyone sees it; then the charts and
    # PDFs are linked in.
    public = build / "public"
    linked: dict[str, float] = {}

    def link_files() -> None:  # ~6,000 files at 1,000 versions: plain os calls on str paths
        t = time.perf_counter()
        out = str(public)
        for page in plan.pages:
            b = str(bundles[page.id])
            try:
                names = os.listdir(f"{b}/charts")
            except FileNotFoundError:
                names = []
            for n in names:
                _link_or_copy(f"{b}/charts/{n}", f"{out}/{page.chart_dir}/{n}")
            if pdf and page.pdf and os.path.exists(f"{b}/page.pdf"):
                _link_or_copy(f"{b}/page.pdf", f"{out}/{page.pdf}")
        if report_path is not None:
            _link_or_copy(str(report_path), f"{out}/pdf/vigil-report.pdf")
        linked["s"] = time.perf_counter() - t

    t = time.perf_counter()
    run_mkdocs(cfg, {p.md_path: bundles[p.id] for p in plan.pages} if PRERENDER else None, reuse, cache / JINJA)
    timings["mkdocs"] = time.perf_counter() - t
    timings["pages_reused"] = len(reuse)
    link_files()  # (in a thread beside MkDocs it took ten times as long: each link waited for the GIL)
    timings["assemble"] += linked["s"]
    missing = [p.html_path for p in plan.pages if not (public / p.html_path).is_file()]
    if missing:
        raise SiteBuildError(f"mkdocs did not write {len(missing)} page(s), e.g. {missing[:3]}")
    pdfs = sorted(public.glob("pdf/**/*.pdf")) if pdf else []
    info = {"generated": generated, "vigil_version": version, "fingerprint": fingerprint,
            "site_signature": site_signature, "pages": hashes,
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
    timings["swap"] = time.perf_counter() - t
    _remove_later(build)  # the previous site: thousands of links and dirs, seconds on a slow disk

    # 6. Forget bundles no page uses any more (the cache only ever holds the current site).
    keep = {b.name for b in bundles.values()} | ({report_path.name} if report_path else set())
    for entry in cache.iterdir():
        if entry.name not in keep and entry.name not in (".lock", JINJA, SNAPSHOT, PLAN):  # (.tmp-* left by a crashed build go too)
            shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() else entry.unlink(missing_ok=True)
    written = len([k for k in rendered if k != "__report__"])
    if keeping is not None:
        keeping.join()
    return BuildResult(
        index_html=target / "index.html", pages_written=written, pages_unchanged=len(plan.pages) - written,
        pdfs=[target / p.relative_to(public) for p in pdfs], seconds=0.0, public_dir=target,
        pages_total=len(plan.pages), pdf_seconds=pdf_seconds,
        pdfs_written=sum(1 for r in rendered.values() if r.get("pdf")), timings=timings,
    )
