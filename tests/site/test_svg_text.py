"""The one-run path for SVG chart labels (site_builder/svg_text.py) draws what WeasyPrint's own
letter-by-letter path draws: the same words at the same places, on a real chart and on labels
anchored start/middle/end, rotated and baseline-shifted; nodes it does not handle go to WeasyPrint."""

from __future__ import annotations

import importlib
import re
import shutil
import subprocess
from contextlib import contextmanager
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(shutil.which("pdftotext") is None, reason="needs poppler's pdftotext")

LABELS = """<svg xmlns="http://www.w3.org/2000/svg" width="300pt" height="200pt" viewBox="0 0 300 200"
 font-family="DejaVu Sans, sans-serif" font-size="9">
<text x="10" y="20">start anchored label</text>
<text x="150" y="40" text-anchor="middle">middle anchored</text>
<text x="290" y="60" text-anchor="end" font-weight="bold">end anchored bold</text>
<text x="20" y="150" text-anchor="middle" transform="rotate(-90 20 150)">rotated axis</text>
<text x="100" y="90" dominant-baseline="central" font-size="12">central twelve</text>
<text x="100" y="120" dy="4">shifted by dy</text>
<text x="100" y="180">escaped &lt;b&gt; label</text>
</svg>"""


@contextmanager
def per_letter_only():
    """WeasyPrint's own text path for the duration (the fast one put back after); write_pdf's
    install() is held off meanwhile, or it would put the fast one straight back."""
    from site_builder import svg_text

    svg_pkg = importlib.import_module("weasyprint.svg")
    fast = svg_pkg.text
    original = fast.per_letter
    swapped = {t for t, f in svg_pkg.TAGS.items() if f is fast}
    install, svg_text.install = svg_text.install, lambda: False
    svg_pkg.text = original
    for t in swapped:
        svg_pkg.TAGS[t] = original
    try:
        yield
    finally:
        svg_text.install = install
        svg_pkg.text = fast
        for t in swapped:
            svg_pkg.TAGS[t] = fast


def words(pdf: Path) -> list[tuple[str, float, float, float, float]]:
    out = subprocess.run(["pdftotext", "-bbox", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    return [(w, *map(float, box)) for *box, w in
            re.findall(r'<word xMin="([\d.]+)" yMin="([\d.]+)" xMax="([\d.]+)" yMax="([\d.]+)">([^<]*)</word>', out)]


def _render(tmp: Path, svg_path: Path, name: str) -> Path:
    from site_builder.render import write_pdf

    html = f'<html><body style="margin:0"><img src="{svg_path.as_uri()}"></body></html>'
    write_pdf(html, tmp / f"{name}.pdf", tmp)
    return tmp / f"{name}.pdf"


def _same_words(a: list, b: list, tol: float) -> None:
    assert [w[0] for w in a] == [w[0] for w in b]
    for x, y in zip(a, b, strict=True):
        assert all(abs(p - q) <= tol for p, q in zip(x[1:], y[1:], strict=True)), (x, y)


@pytest.mark.parametrize("source", [
    pytest.param("labels", id="anchors-rotation-baselines"),
    pytest.param("chart", id="a-real-chart"),
])
def test_labels_are_where_weasyprint_draws_them_letter_by_letter(tmp_path, source):
    import weasyprint

    from site_builder import charts, svg_text

    if weasyprint.__version__ != svg_text.FOR_VERSION:
        pytest.fail(f"WeasyPrint {weasyprint.__version__}: check site_builder/svg_text.py against its "
                    f"svg/text.py and set FOR_VERSION (it follows {svg_text.FOR_VERSION})")
    svg = tmp_path / "in.svg"
    if source == "labels":
        svg.write_text(LABELS)
    else:
        charts.render("rates", {"bars": [["triggered prompts", {"value": 0.95, "low": 0.89, "high": 0.98, "n": 100}],
                                         ["clean prompts (false activations)",
                                          {"value": 0.04, "low": 0.01, "high": 0.1, "n": 100}]]}, svg)
    fast = _render(tmp_path, svg, "fast")
    assert svg_text.installed()  # write_pdf put it in place on the pinned release
    with per_letter_only():
        slow = _render(tmp_path, svg, "slow")
    got, want = words(fast), words(slow)
    assert len(want) >= 8
    # whole-run layout applies kerning, per-letter drawing cannot: a kerned pair moves what
    # follows it by a fraction of a point (a run of AVAWAT ends 2.8 pt sooner); these labels have few
    _same_words(got, want, tol=1.0)
