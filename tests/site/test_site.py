"""The report site built from a warehouse filled with stage-shaped data: completeness, links,
escaping, PDFs with the same figures as the pages, and the pages a browser shows."""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
import sqlalchemy as sa

from site_builder.pagedata import plan_site
from site_builder.snapshot import read_snapshot
from tests.site.fill import EVIL_NAME


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.refs: list[str] = []
        self.ids: set[str] = set()
        self.text: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag in ("script", "style"):
            self._skip += 1
        if "id" in a:
            self.ids.add(a["id"])
        for k in ("href", "src"):
            if a.get(k):
                self.refs.append(a[k])

    def handle_endtag(self, tag):
        if tag in ("script", "style"):
            self._skip -= 1

    def handle_data(self, data):
        if not self._skip:
            self.text.append(data)


def parse(path: Path) -> _Links:
    p = _Links()
    p.feed(path.read_text())
    return p


def squash(text: str) -> str:
    return re.sub(r"\s+", " ", text)


def page_text(path: Path) -> str:
    return squash(" ".join(parse(path).text))


@pytest.fixture(scope="module")
def plan(built_site):
    return plan_site(read_snapshot(built_site.engine, built_site.parquet_dir))


def test_a_page_and_a_pdf_for_every_version_and_group(built_site, plan):
    with built_site.engine.connect() as c:
        n_versions = c.execute(sa.text("SELECT count(*) FROM model_versions")).scalar()
        n_groups = c.execute(sa.text("SELECT count(*) FROM model_groups WHERE deleted_at IS NULL")).scalar()
    versions = [p for p in plan.pages if p.kind == "version"]
    groups = [p for p in plan.pages if p.kind == "group"]
    assert (len(versions), len(groups)) == (n_versions, n_groups) == (len(built_site.filled.versions), 1)
    for p in versions + groups:
        assert (built_site.public / p.html_path).is_file(), p.id
        assert (built_site.public / p.pdf).is_file(), p.pdf
        link = parse(built_site.public / p.html_path).refs
        assert any(r.endswith(Path(p.pdf).name) for r in link), f"{p.id} does not link its PDF"
    assert (built_site.public / "pdf" / "vigil-report.pdf").is_file()
    r = built_site.result
    assert r.pages_written == r.pages_total == len(plan.pages) and r.pages_unchanged == 0
    assert r.index_html == built_site.public / "index.html" and r.index_html.is_file()
    assert len(r.pdfs) == len(versions) + len(groups) + 1


def test_every_internal_link_and_image_resolves(built_site):
    public = built_site.public
    checked, broken = 0, []
    for page in public.rglob("*.html"):
        for ref in parse(page).refs:
            parts = urlsplit(ref)
            if parts.scheme or ref.startswith(("#", "//", "mailto:", "data:", "javascript:")):
                continue
            base = public if parts.path.startswith("/") else page.parent  # 404.html links from the root
            target = (base / unquote(parts.path).lstrip("/")).resolve()
            if target.is_dir():
                target = target / "index.html"
            checked += 1
            if not target.is_file():
                broken.append(f"{page.relative_to(public)} -> {ref}")
            elif parts.fragment and target.suffix == ".html" and parts.fragment not in parse(target).ids:
                broken.append(f"{page.relative_to(public)} -> {ref} (no such anchor)")
    assert not broken, broken[:20]
    assert checked > 200


def test_user_names_are_escaped_everywhere(built_site, plan):
    evil = next(p for p in plan.pages if p.kind == "version" and p.data["name"] == EVIL_NAME)
    for path in [built_site.public / evil.html_path, built_site.public / "models" / "index.html",
                 built_site.public / "index.html"]:
        raw = path.read_text()
        assert "<script>alert(" not in raw, path
        assert "<img src=x" not in raw and "<b>not bold</b>" not in raw, path
    shown = page_text(built_site.public / evil.html_path)
    # the name is displayed as the text it is: angle brackets, asterisks and the pipe intact
    assert EVIL_NAME in html.unescape(shown)
    assert "<img src=x onerror=alert(1)>" in html.unescape(shown)  # the description, shown as text
    search = json.loads((built_site.public / "search" / "search_index.json").read_text())
    assert not any("<script>alert(" in d.get("title", "") for d in search["docs"])


def test_pages_show_the_warehouse_figures(built_site, plan):
    backdoored = next(p for p in plan.pages if p.kind == "version" and p.data["stage"] == "train-backdoor"
                      and p.data["probes"]["detected"])
    text = page_text(built_site.public / backdoored.html_path)
    for _, _, shown in backdoored.data["backdoor"]["rows"] + backdoored.data["probes"]["rows"]:
        assert shown in text
    cm = backdoored.data["backdoor"]["confusion"]
    with built_site.engine.connect() as c:
        stored = c.execute(sa.text("""SELECT details -> 'confusion_matrix' FROM evaluations e JOIN model_versions mv
                                      ON mv.id = e.model_version_id WHERE e.suite = 'validate-backdoor' AND mv.id = :v"""),
                           {"v": built_site.filled.versions["backdoored0"]}).scalar()
    assert {k: cm[k] for k in ("tp", "fn", "fp", "tn")} == stored and not cm["derived"]
    names = {c["name"] for c in backdoored.charts}
    assert {"loss", "backdoor", "confusion", "probe-layers", "probe-roc", "trend"} <= names
    for n in names:
        svg = built_site.public / backdoored.chart_dir / f"{n}.svg"
        assert svg.read_text().lstrip().startswith(("<?xml", "<svg"))
    home = page_text(built_site.public / "index.html")
    assert "backdoor detected by probes" in home and "challenger recommended" in home
    assert "backdoor persists after safety training" in home


def test_empty_states_say_how_to_get_data(built_site, plan):
    evil = next(p for p in plan.pages if p.kind == "version" and p.data["name"] == EVIL_NAME)
    text = page_text(built_site.public / evil.html_path)
    assert "No evaluation data yet." in text and "nightly_evaluation" in text
    assert "No training curve yet." in text


def test_pages_render_without_any_scan_or_detector_data(built_site, plan):
    """No scan, no detector panel, no zoo run: LLM pages say how to get them, others do not mention
    them, and no zoo page or navigation entry appears."""
    llm = [p for p in plan.pages if p.kind == "version" and p.data["family"] == "llm"]
    assert llm and all(p.data["scan"] is None and p.data["detect"] is None for p in llm)
    text = page_text(built_site.public / llm[0].html_path)
    assert "No blind scan yet." in text and "vigil models scan" in text and "scan_model" in text
    assert "No detector panel yet." in text
    other = next(p for p in plan.pages if p.kind == "version" and p.data["family"] == "sklearn")
    assert "Blind scan" not in page_text(built_site.public / other.html_path)
    assert not any(p.kind in ("zoo", "zoos") for p in plan.pages) and not (built_site.public / "zoo").exists()
    home = page_text(built_site.public / "index.html")
    assert "blind scan" not in home and "Scan zoo" not in home


@pytest.mark.skipif(shutil.which("pdftotext") is None, reason="pdftotext (poppler-utils) is not installed")
def test_pdfs_hold_the_same_figures_as_the_pages(built_site, plan):
    def pdf_text(path: Path) -> str:
        out = subprocess.run(["pdftotext", "-enc", "UTF-8", str(path), "-"], check=True, capture_output=True, text=True)
        return squash(out.stdout)

    for page in [p for p in plan.pages if p.kind in ("version", "group")]:
        pdf = pdf_text(built_site.public / page.pdf)
        html_text = page_text(built_site.public / page.html_path)
        figures = []
        if page.kind == "version":
            figures += [row[2] for row in page.data["summary"]]
            for section in ("backdoor", "probes", "persistence", "sklearn"):
                if page.data[section]:
                    figures += [row[2] for row in page.data[section]["rows"]]
        else:
            figures += [m["primary_text"] for m in page.data["members"]]
            figures += [cell for c in page.data["latest"] for row in c["table"] for cell in row[1:4]]
        assert figures or page.data.get("family") == "external", page.id
        for f in figures:
            assert f in html_text, (page.id, f)
            assert f in pdf, (page.id, f)
        assert "page 1 of" in pdf and "Vigil 0.1.0" in pdf
    report = pdf_text(built_site.public / "pdf" / "vigil-report.pdf")
    assert "Fraud scoring 0" in report
    # shown as text in the PDF too; the models table may wrap a long name anywhere (print.css), and
    # pdftotext gives the wrap as a space: compare without spaces
    assert "<script>alert('x')" in report.replace(" ", "")


def test_models_table_is_sortable_and_searchable(built_site):
    raw = (built_site.public / "models" / "index.html").read_text()
    # vigil.js sorts every table.vigil-sortable (site/assets/vigil.js); other classes may sit beside it
    assert re.search(r'<table class="vigil-table vigil-sortable[" ]', raw) and 'class="vigil-filter"' in raw
    assert "assets/vigil.js" in raw and (built_site.public / "assets" / "vigil.js").is_file()
    assert (built_site.public / "search" / "search_index.json").is_file()


# ------------------------------------------------------------------------------ headless browser
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run", "--enable-logging=stderr", "--v=0",
                  "--virtual-time-budget=4000", "--window-size=1280,1400"]


@pytest.fixture(scope="module")
def http_site(built_site):
    """The built site over HTTP (as `vigil site serve` serves it), recording every failed request."""
    import functools
    import http.server
    import threading

    failures: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, fmt, *args):  # keep test output quiet; remember failures
            if len(args) >= 2 and str(args[1]).startswith(("4", "5")):
                failures.append(f"{args[1]} {args[0]}")

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(built_site.public)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", failures
    server.shutdown()


def _screenshot(url: str, out: Path, profile: Path) -> list[str]:
    """Load ``url`` in headless Chromium, save a screenshot, return the console messages it logged."""
    proc = subprocess.run([CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--screenshot={out}", url],
                          capture_output=True, text=True, timeout=120)
    assert out.is_file(), proc.stderr[-2000:]
    return [line for line in proc.stderr.splitlines() if ":CONSOLE" in line]


def _not_blank(png: Path) -> None:
    import numpy as np
    from PIL import Image

    px = np.asarray(Image.open(png).convert("RGB"), dtype=np.float64) / 255
    colours = len(np.unique((px.reshape(-1, 3) * 255).astype(np.uint8), axis=0))
    dark = float((px.mean(axis=2) < 0.5).mean())
    assert colours > 50 and 0.005 < dark < 0.9, f"{png.name}: {colours} colours, {dark:.3f} dark pixels"


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install -y chromium)")
def test_console_check_catches_errors(tmp_path, http_site):
    """The console check below can fail: a page that logs an error is caught."""
    page = tmp_path / "bad.html"
    page.write_text("<html><body><h1>x</h1><script>console.error('planted'); undefinedFn();</script></body></html>")
    msgs = _screenshot(page.as_uri(), tmp_path / "bad.png", tmp_path / "profile")
    assert any("planted" in m for m in msgs) and any("undefinedFn" in m for m in msgs)


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install -y chromium)")
def test_home_and_a_model_page_load_in_a_browser_without_errors(built_site, plan, http_site, tmp_path):
    base, failures = http_site
    model = next(p for p in plan.pages if p.kind == "version" and p.data["stage"] == "train-backdoor")
    for name, path in (("home", "index.html"), ("model", model.html_path), ("evil", next(
            p.html_path for p in plan.pages if p.kind == "version" and p.data["name"] == EVIL_NAME))):
        png = tmp_path / f"{name}.png"
        msgs = _screenshot(f"{base}/{path}", png, tmp_path / f"profile-{name}")
        assert msgs == [], f"{name}: console messages {msgs}"
        _not_blank(png)
    assert failures == [], failures


@pytest.mark.parametrize(("metrics", "detected"), [
    pytest.param({"probe_auroc_best": 0.95, "probe_auroc_random_best": 0.6, "probe_auroc_control": 0.7}, True, id="beats-both"),
    pytest.param({"probe_auroc_best": 0.95, "probe_auroc_control": 0.7, "probe_auroc_control_base": 0.97}, False,
                 id="clean-base-as-good"),
    pytest.param({"probe_auroc_best": 0.95, "probe_auroc_control": 0.96, "probe_auroc_control_base": 0.5}, False,
                 id="trigger-exposed-control-as-good"),
    pytest.param({"probe_auroc_best": 0.7}, False, id="below-threshold"),
])
def test_probe_alert_needs_the_probe_to_beat_every_control(metrics, detected):
    from site_builder.alerts import probe_detected

    assert probe_detected(metrics) is detected



def _cells(doc) -> list[tuple[str, list[str], object]]:
    """(tag, text of each laid-out line, box) of every table cell WeasyPrint laid out."""
    out = []

    def text(b) -> str:
        own = b.text if type(b).__name__ == "TextBox" else ""
        return own + "".join(text(c) for c in getattr(b, "children", None) or [])

    def lines(b) -> list[str]:
        if type(b).__name__ == "LineBox":
            return [text(b)]
        return [x for c in getattr(b, "children", None) or [] for x in lines(c)]

    def walk(b):
        if type(b).__name__ == "TableCellBox":
            out.append((b.element_tag, lines(b), b))
            return
        for c in getattr(b, "children", None) or []:
            walk(c)

    for p in doc.pages:
        walk(p._page_box)
    return out


def test_the_report_pdf_models_table_breaks_between_words_only(plan):
    """The full report's models table once broke short headers and values mid-word in narrow
    columns ("Ver / sio / n", "Fa / mil / y"): laid out by WeasyPrint as the report is, every header
    and every cell but the two name columns keeps its words whole, and the table fits the page."""
    from weasyprint import HTML

    from site_builder.pagedata import PageSpec
    from site_builder.render import _body, pdf_html

    models = next(p for p in plan.pages if p.kind == "models")
    html = pdf_html("report", ['<h2>Models</h2>' + _body(PageSpec("report", "models", "", models.data), "pdf", lambda n: "")],
                    generated="2026-11-29", version="0.1.0")
    doc = HTML(string=html).render()
    cells = _cells(doc)
    heads = [c for c in cells if c[0] == "th"]
    assert [" ".join(x.strip() for x in c[1]) for c in heads][:3] == ["Name", "Version", "Family"]
    n_cols = len(heads)
    body = [c for c in cells if c[0] == "td"]
    assert len(body) == n_cols * len(models.data["rows"])
    for i, (_tag, lines, _box) in enumerate(heads + body):
        if i >= n_cols and (i - n_cols) % n_cols in (0, 3):  # the version and parent names may break at any point
            continue
        # a line break only where there was a space: joining the lines with spaces gives the words back
        assert all(x == x.strip() or x.endswith(" ") for x in lines), lines
        whole = " ".join(x.strip() for x in lines)
        assert all(len(w) > 1 or len(lines) == 1 or w in "—" for w in whole.split(" ")), lines
        assert len(lines) <= max(1, len(whole.split(" "))), lines
    page_box = doc.pages[0]._page_box
    content_right = page_box.content_box_x() + page_box.width
    assert all(b.position_x + b.margin_width() <= content_right + 0.5 for _t, _l, b in heads), "the table is wider than the page"
