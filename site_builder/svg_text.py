"""A faster path for the ``<text>`` of our SVG charts in WeasyPrint's SVG renderer.

WeasyPrint 69 draws every SVG ``<text>`` one letter at a time: a Pango layout, a bounding box and a
text object per character, so that per-letter ``x``/``dy``/``rotate`` lists and ``textLength``
work. Our charts never use those: every label is one run at one position. Drawn letter by letter,
their labels were about a tenth of a version PDF's time (a thousand of them in a full build).

:func:`install` puts a path in front of WeasyPrint's ``text`` that lays such a node out and draws it
once, with the same style, baseline alignment, cursor and bounding box (which ``text-anchor``
reads) as the per-letter code; any other node goes to WeasyPrint's own function. Whole-run layout
also applies the font's kerning, which per-letter drawing cannot (positions move by a fraction
of a point). It follows ``weasyprint/svg/text.py`` of the release in :data:`FOR_VERSION` and is
installed only there: another release keeps its own path (correct, slower) until this module
is checked against it; tests/site/test_svg_text.py compares the two renderings.
"""

from __future__ import annotations

import importlib
from math import inf

FOR_VERSION = "69.0"
_PER_LETTER_ATTRS = ("dx", "dy", "rotate", "letter-spacing", "textLength")


def install() -> bool:
    """Install the path (idempotent); False where the installed WeasyPrint is not FOR_VERSION."""
    import weasyprint

    if weasyprint.__version__ != FOR_VERSION:
        return False
    svg_pkg = importlib.import_module("weasyprint.svg")
    text_mod = importlib.import_module("weasyprint.svg.text")
    if getattr(svg_pkg.text, "per_letter", None) is not None:
        return True
    per_letter = text_mod.text
    fast = _make_fast(per_letter, text_mod)
    # draw_node dispatches through TAGS and recognises text nodes by comparing with svg_pkg.text
    svg_pkg.text = fast
    for tag, fn in list(svg_pkg.TAGS.items()):
        if fn is per_letter:
            svg_pkg.TAGS[tag] = fast
    return True


def installed() -> bool:
    svg_pkg = importlib.import_module("weasyprint.svg")
    return getattr(svg_pkg.text, "per_letter", None) is not None


def _single(value: str | None) -> bool:
    from weasyprint.svg.utils import normalize

    return value is None or len(normalize(value).split()) <= 1


def _make_fast(per_letter, text_mod):
    from weasyprint.css.properties import INITIAL_VALUES
    from weasyprint.draw.text import draw_emojis, draw_first_line
    from weasyprint.matrix import Matrix
    from weasyprint.svg.bounding_box import extend_bounding_box
    from weasyprint.svg.utils import normalize, size
    from weasyprint.text.line_break import split_first_line

    def text(svg, node, font_size):
        attrib = node.attrib
        if (node.tag != "text" or not node.text or any(a in attrib for a in _PER_LETTER_ATTRS)
                or not _single(attrib.get("x")) or not _single(attrib.get("y"))):
            return per_letter(svg, node, font_size)
        style = text_mod.Style()
        style.update(INITIAL_VALUES)
        style.font_config = svg.font_config
        style["font_family"] = [f.strip("\"'") for f in node.get("font-family", "sans-serif").split(",")]
        style["font_style"] = node.get("font-style", "normal")
        weight = node.get("font-weight", 400)
        if weight == "normal":
            weight = 400
        elif weight == "bold":
            weight = 700
        else:
            try:
                weight = int(weight)
            except ValueError:
                weight = 400
        style["font_weight"] = weight
        style["font_size"] = font_size
        layout, _, _, width, height, baseline = split_first_line(node.text, style, svg.context, inf, 0)

        # vertical alignment exactly as the per-letter code does it
        ascent, descent = font_size * .8, font_size * .2
        y_align = 0
        anchor = node.get("display-anchor")
        alignment = node.get("dominant-baseline", node.get("alignment-baseline"))
        if anchor == "middle":
            y_align = -height / 2
        elif anchor == "top":
            pass
        elif anchor == "bottom":
            y_align = -height
        elif alignment in ("central", "middle"):
            y_align = (ascent + descent) / 2 - descent
        elif alignment in ("text-before-edge", "before_edge", "top", "hanging", "text-top"):
            y_align = ascent
        elif alignment in ("text-after-edge", "after_edge", "bottom", "text-bottom"):
            y_align = -descent

        x = size(normalize(attrib["x"]).strip(), font_size, svg.inner_width) if "x" in attrib else None
        y = size(normalize(attrib["y"]).strip(), font_size, svg.inner_height) if "y" in attrib else None
        if x:  # (a zero keeps the offset: the per-letter code tests truthiness too)
            svg.cursor_d_position[0] = 0
        if y:
            svg.cursor_d_position[1] = 0
        x = svg.cursor_position[0] if x is None else x
        y = svg.cursor_position[1] if y is None else y
        svg.cursor_position = x + width, y
        x_position = x + svg.cursor_d_position[0]
        y_position = y + svg.cursor_d_position[1] + y_align
        node.text_bounding_box = extend_bounding_box(
            node.text_bounding_box,
            ((x_position, y_position - baseline), (x_position + width, y_position - baseline + height)))

        svg.stream.push_state()
        svg.set_graphical_state(node, font_size, text=True)
        svg.stream.begin_text()
        layout.reactivate(style)
        svg.fill_stroke(node, font_size, text=True)
        emojis = draw_first_line(svg.stream, text_mod.TextBox(layout, style), "none", "none",
                                 Matrix(a=1, d=-1, e=x_position, f=y_position))
        svg.stream.end_text()
        svg.stream.pop_state()
        draw_emojis(svg.stream, style, x, y, emojis)

    text.per_letter = per_letter
    return text
