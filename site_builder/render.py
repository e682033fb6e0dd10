"""Page data -> files: the Markdown page, its SVG charts and its PDF, written as one bundle.

Site pages and PDFs render the same body templates (``templates/body/*.j2``) from the same page
data; only the wrapper differs (Markdown for MkDocs, HTML + print CSS for WeasyPrint). Jinja2
autoescape is on for every template, so user text reaches HTML escaped; Markdown headings go
through :func:`site_builder.fmt.md_text`.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import time
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup, escape

from site_builder import fmt
from site_builder.pagedata import PageSpec, rel

TEMPLATES = Path(__file__).parent / "templates"
# Up to this many groups, the full report carries each group's whole page; beyond it, a summary table.
REPORT_GROUP_DETAIL_LIMIT = 20
BODY = {"home": "body/home.j2", "models": "body/models.j2", "version": "body/version.j2", "groups": "body/groups.j2",
        "group": "body/group.j2", "runs": "body/runs.j2", "coverage": "body/coverage.j2", "zoo": "body/zoo.j2",
        "zoos": "body/zoos.j2", "analyses": "body/analyses.j2", "sweep": "body/sweep.j2", "sweeps": "body/sweeps.j2"}


def _ticks(text: str) -> Markup:
    """Escape, then show `backticked` words as code (help texts are written Markdown-style)."""
    return Markup(re.sub(r"`([^`]+)`", r"<code>\1</code>", str(escape(text))))


@functools.lru_cache(maxsize=1)
def env() -> Environment:
    e = Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=select_autoescape(default=True,
                    default_for_string=True), trim_blocks=True, lstrip_blocks=True, undefined=StrictUndefined,
                    keep_trailing_newline=True)
    e.filters.update(num=fmt.num, pct=fmt.pct, day=fmt.day, md=fmt.md_text, ticks=_ticks,
                     fmt_pair=lambda p: [p[0], fmt.num(p[1], 4)])
    e.tests["text_metric"] = _text_metric
    return e


def _text_metric(name: Any) -> bool:
    """A metric the catalogue says is text (a verdict, a trigger candidate): shown as text, not as a
    right-aligned, unbreakable number (a long model-made string must wrap)."""
    from contract import metrics as catalogue

    m = catalogue.lookup(str(name))
    return m is not None and m.unit == "text"


def _body(page: PageSpec, mode: str, chart_src, extra: dict[str, Any] | None = None) -> str:
    alts = {c["name"]: c["alt"] for c in page.charts}
    ctx = {"mode": mode, "data": page.data, "chart_names": set(alts), "chart_src": chart_src,
           "chart_alt": lambda n: alts.get(n, n), "pdf_url": ""}
    ctx.update(extra or {})
    return env().get_template(BODY[page.kind]).render(ctx)


_H2 = re.compile(r"(?=<h2[ >])")
_H2_TITLE = re.compile(r"<h2[^>]*>(.*?)</h2>", re.S)
# what an empty section holds besides its heading: what it would measure, and how to produce it
_EMPTY_PARTS = re.compile(r'<p>What it measures:.*?</p>|<div class="vigil-empty">.*?</div>', re.S)


def compact_empty_sections(body: str) -> str:
    """A PDF body with every section that has no data (its heading, what it would measure and the
    empty-state note, nothing else) folded into one list at the end. A version of a young model
    has a dozen such sections; in print their notes repeated across a thousand PDFs were about a
    fifth of the PDF time, while the site page keeps them where a reader looks for them."""
    parts = _H2.split(body)
    kept, empty = [], []
    for part in parts:
        m = _H2_TITLE.match(part)
        if m and "vigil-empty" in part and not _EMPTY_PARTS.sub("", part[m.end():]).strip():
            empty.append(m.group(1))
        else:
            kept.append(part)
    if not empty:
        return body
    return "".join(kept) + ('<h2 id="not-measured">Not measured yet</h2><p class="vigil-not-measured">No data yet for: '
                            + "; ".join(empty) + ". The site page of this version says how to produce each.</p>\n")


def _tidy(text: str) -> str:
    return re.sub(r"\n{3,}", "\n\n", text).strip() + "\n"


def markdown_page(page: PageSpec, *, pdf: bool = True) -> str:
    """The MkDocs source of a page (Markdown with raw HTML blocks); without ``pdf`` (a build
    without PDFs) it links no PDF, so no link on the site leads nowhere."""
    extra = {"pdf_url": rel(page.id, "pdf/vigil-report.pdf")} if page.kind == "home" and pdf else {}
    body = _body(page, "site", lambda n: f"{Path(page.chart_dir).name}/{n}.svg", extra)
    # MkDocs themes print page.title unescaped (in <title> and the nav): give it the HTML-escaped
    # text as front matter, which MkDocs prefers over the H1 it would otherwise unescape.
    head = f"---\ntitle: {json.dumps(str(escape(page.title)))}\n---\n\n# {fmt.md_text(page.title)}\n\n"
    if page.pdf and pdf:
        head += (f'<p class="vigil-pdf-link"><a class="vigil-pdf" href="{escape(rel(page.id, page.pdf))}">'
                 f"Download this page as PDF</a></p>\n\n")
    return _tidy(head + body)


# ------------------------------------------------------------------------------------ MkDocs' share
@functools.lru_cache(maxsize=4)
def _markdown(setup_json: str):
    import markdown

    setup = json.loads(setup_json)
    return markdown.Markdown(extensions=setup["extensions"], extension_configs=setup["configs"])


def site_html(source: str, src_uri: str, setup: dict[str, Any]) -> dict[str, Any]:
    """What MkDocs would make of one page's Markdown, made here instead: in the render workers (in
    parallel) and kept with the page's bundle, so MkDocs only wraps it in the theme.

    ``setup`` is the project's Markdown setup as MkDocs loaded it (``extensions``, ``configs``,
    ``use_directory_urls``; see :func:`site_builder.publish.markdown_setup`). Returns the HTML body
    (``content``), the front matter (``meta``), the table-of-contents tokens (``toc``), the search-index entries the theme's
    search plugin would have made (``search``) and any warnings the conversion logged (``warnings``,
    re-logged by the build so strict mode still fails on them). The pages carry their links in raw
    HTML, which MkDocs does not rewrite or check, so a page's HTML depends on its Markdown alone.
    """
    from types import SimpleNamespace

    from material.plugins.search.plugin import SearchIndex
    from mkdocs.structure.files import File
    from mkdocs.structure.toc import get_toc
    from mkdocs.utils import meta as md_meta

    warnings: list[str] = []

    class _Keep(logging.Handler):
        def emit(self, record):
            if record.levelno >= logging.WARNING:
                warnings.append(record.getMessage())

    handler, loggers = _Keep(), [logging.getLogger(n) for n in ("MARKDOWN", "markdown", "mkdocs")]
    for lg in loggers:
        lg.addHandler(handler)
    try:
        text, meta = md_meta.get_data(source)
        md = _markdown(json.dumps({"extensions": setup["extensions"], "configs": setup["configs"]}, sort_keys=True))
        md.reset()
        content = md.convert(text)
        tokens = getattr(md, "toc_tokens", [])
        url = File(src_uri, src_dir=None, dest_dir="", use_directory_urls=setup["use_directory_urls"]).url
        index = SearchIndex()
        index.add_entry_from_context(SimpleNamespace(meta=meta, content=content, toc=get_toc(tokens), url=url,
                                                     title=meta.get("title")))
    finally:
        for lg in loggers:
            lg.removeHandler(handler)
    # meta: the front matter MkDocs would read (the page's title), so the build need not parse it again
    return {"content": content, "toc": tokens, "search": index.entries, "warnings": warnings, "meta": meta}


def _print_css() -> str:
    return (TEMPLATES / "pdf" / "print.css").read_text()


def pdf_html(title: str, sections: list[str], *, generated: str, version: str, subtitle: str = "") -> str:
    return env().get_template("pdf/document.html.j2").render(
        title=title, subtitle=subtitle, sections=[Markup(s) for s in sections], css=Markup(_print_css()),
        generated=generated, version=version)


def write_pdf(html: str, target: Path, base_url: Path) -> float:
    """Render ``html`` with WeasyPrint; returns seconds spent."""
    from weasyprint import HTML  # heavy: imported only when a PDF is made

    from site_builder import svg_text

    svg_text.install()  # our charts' labels drawn as one run each, not letter by letter
    t = time.perf_counter()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".pdf.tmp")
    HTML(string=html, base_url=str(base_url)).write_pdf(str(tmp))
    tmp.replace(target)
    return time.perf_counter() - t


def render_bundle(page: PageSpec, out: Path, *, pdf: bool, generated: str, version: str,
                  site_setup: dict[str, Any] | None = None) -> dict[str, float]:
    """Write ``out/page.md``, ``out/charts/*.svg`` and (``pdf``) ``out/page.pdf`` for one page; with
    ``site_setup`` (the Markdown setup MkDocs will use) also ``out/page.html`` and ``out/site.json``:
    the page as MkDocs would convert it (:func:`site_html`)."""
    from site_builder import charts

    timings = {"charts": 0.0, "pdf": 0.0}
    out.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    for c in page.charts:
        try:
            charts.render(c["kind"], c["data"], out / "charts" / f"{c['name']}.svg")
        except Exception as e:  # a malformed series must cost one chart, not the site
            logging.getLogger(__name__).warning("chart %s of %s failed: %s", c["name"], page.id, e)
            page.charts = [x for x in page.charts if x["name"] != c["name"]]
    timings["charts"] = time.perf_counter() - t
    source = markdown_page(page, pdf=pdf)
    (out / "page.md").write_text(source)
    if site_setup is not None:
        t = time.perf_counter()
        done = site_html(source, page.md_path, site_setup)
        (out / "page.html").write_text(done.pop("content"))
        (out / "site.json").write_text(json.dumps(done))
        timings["markdown"] = time.perf_counter() - t
    if pdf and page.pdf:
        body = compact_empty_sections(_body(page, "pdf", lambda n: (out / "charts" / f"{n}.svg").resolve().as_uri()))
        html = pdf_html(page.title, [body], generated=generated, version=version,
                        subtitle={"version": "Model version", "group": "Model group", "zoo": "Scan zoo",
                                          "sweep": "Sweep"}.get(page.kind, ""))
        timings["pdf"] = write_pdf(html, out / "page.pdf", out)
    return timings


def report_html(report: dict[str, Any], group_pages: list[PageSpec], group_chart_dirs: dict[str, Path], *,
                generated: str, version: str) -> str:
    """The full report: summary, alerts, every version, every group, runs, coverage."""
    def body(kind, data, charts_dir=None, page=None):
        spec = page or PageSpec("report", kind, "", data)
        src = (lambda n: (charts_dir / f"{n}.svg").resolve().as_uri()) if charts_dir else (lambda n: "")
        return _body(spec, "pdf", src)

    sections = [
        '<h2 id="summary">Summary</h2>' + body("home", report["home"]),
        # one table per 50 rows: WeasyPrint lays a long table out in time that grows faster than its length
        '<h2 id="models" class="break">Models</h2>' + "".join(
            body("models", {"rows": report["models"][i:i + 50], "metric_heads": report["metric_heads"]})
            for i in range(0, max(1, len(report["models"])), 50)),
    ]
    if len(group_pages) <= REPORT_GROUP_DETAIL_LIMIT:
        for g in group_pages:
            sections.append(f'<h2 class="break">Group: {escape(g.title)}</h2>' + body("group", g.data, group_chart_dirs.get(g.id), g))
    elif group_pages:
        # Many groups: one summary table here (each group has its own PDF); rendering every group in
        # full made a 100-group report 400+ pages and 2+ minutes to rebuild on every change.
        sections.append(f'<h2 class="break">Groups</h2><p>{len(group_pages)} groups; each has its own PDF '
                        '(pdf/groups/&lt;slug&gt;.pdf) with the full comparison.</p>'
                        + body("groups", {"rows": report["home"]["groups"]}))
    for z in report.get("zoos", [])[:REPORT_GROUP_DETAIL_LIMIT]:
        sections.append(f'<h2 class="break">{escape(z["title"])}</h2>' + body("zoo", z))
    for sw in report.get("sweeps", [])[:REPORT_GROUP_DETAIL_LIMIT]:
        sections.append(f'<h2 class="break">{escape(sw["title"])}</h2>' + body("sweep", sw))
    sections.append('<h2 class="break">Coverage</h2>' + body("coverage", report["coverage"]))
    sections.append('<h2 class="break">Latest runs</h2>' + body("runs", {"rows": report["runs"], "total": len(report["runs"]),
                                                                         "shown": len(report["runs"])}))
    return pdf_html("Vigil report", sections, generated=generated, version=version, subtitle="Full report")
