"""Static SVG charts, written directly as SVG text: the same file is shown on the page and in the PDF.

Each chart kind takes the JSON-able data a page spec carries (see :mod:`site_builder.pagedata` and
:mod:`site_builder.scanpages`) and writes one SVG:

=============  ====================================================================================
kind           data
=============  ====================================================================================
loss           ``{"points": [[step, loss], ...]}``
rates          ``{"bars": [[label, {"value", "low", "high", "n"}], ...]}`` (rates: 0..1)
rates_tall     as ``rates``, one row per bar
members        as ``rates`` plus ``"metric"`` and ``"direction"`` ("max"/"min"); a label with
               "(champion)" is drawn green
scan           as ``rates`` plus ``"thresholds": {"backdoored": x, "clean": y}`` (either may be
               absent), drawn as vertical lines with a legend; the top candidate is red
confusion      ``{"tp", "fn", "fp", "tn"}``
layers         ``{"probe"|"control"|"control_base"|"supervised": [[layer, auroc], ...],
               "random_best": x}`` (any subset)
roc            ``{"points": [[fpr, tpr], ...], "auroc": x, "layer": n}`` (step curve)
shap           ``{"features": [[name, mean |SHAP|], ...]}``
traffic        ``{"split": [[member, weight], ...]}``
trend          ``{"series": {metric: [[day, value, low, high], ...]}}`` (one panel per metric)
sensitivity    as ``rates``, one row per bar: the clean baseline first (grey), then the exact
               trigger (red), its placements (orange, labels starting "exact trigger,") and
               the variants (blue)
state_heatmap  ``{"tokens": [...], "scores": [[layer][token]], "norms": [[layer][token]],
               "threshold": x, "best_layer": n, "title": str}``: probe score (diverging around the
               threshold) and residual-stream norm per layer and token
radar          ``{"axes": [label, ...], "series": [{"label", "values", "low", "high"}, ...]}``
               (values in [0, 1] or None = no data): risk profiles, one polygon per series
scaling        ``{"panels": [{"label", "points": [[n_params, value, low, high], ...],
               "fit": [intercept, slope] | None}, ...]}``: x is log10(parameters)
=============  ====================================================================================

Charts are drawn on white (the site's dark palette inverts them with CSS), text is real ``<text>``
(searchable, selectable in the PDF), every piece of user text is XML-escaped, and the same data
always gives the same bytes. No plotting library is involved: a chart costs well under a
millisecond, where matplotlib took ~70 ms, which was 95% of a full site build.

Layout follows matplotlib's defaults the charts used to be drawn with (sizes in points, the
``AutoLocator`` tick choice, 5% data margins, spines left and bottom), so pages look as before.
Text widths are estimated from DejaVu Sans' advance widths (the font the charts name first).
"""

from __future__ import annotations

import math
import re
import textwrap
import unicodedata
from pathlib import Path
from typing import Any

BLUE, ORANGE, GREEN, RED, GREY = "#3f51b5", "#ef6c00", "#2e7d32", "#c62828", "#757575"
PALETTE = [BLUE, ORANGE, GREEN, RED, "#6a1b9a", "#00838f", "#8d6e63", GREY]

FONT = "DejaVu Sans, Bitstream Vera Sans, Arial, Helvetica, sans-serif"
FS, LEGEND_FS = 9.0, 8.0  # tick and axis labels; legends
INK = "#000000"  # ticks, spines, labels
GRID = "#e7e7e7"  # matplotlib's #b0b0b0 grid at alpha 0.3, on white
ERR = "#212121"  # interval bars
TICK, TICK_PAD, LABEL_PAD = 3.5, 3.5, 4.0
PLOT_W = 357.0  # a 6.4 in figure's axes (0.125..0.9 of its width), in points
BAR_ALPHA = 0.85

# DejaVu Sans advance widths (units of 1/2048 em) for ASCII 32..126, read from DejaVuSans.ttf.
_ASCII_W = (
    651, 821, 942, 1716, 1303, 1946, 1597, 563, 799, 799, 1024, 1716, 651, 739, 651, 690, 1303, 1303, 1303, 1303,
    1303, 1303, 1303, 1303, 1303, 1303, 690, 690, 1716, 1716, 1716, 1087, 2048, 1401, 1405, 1430, 1577, 1294, 1178,
    1587, 1540, 604, 604, 1343, 1141, 1767, 1532, 1612, 1235, 1612, 1423, 1300, 1251, 1499, 1401, 2025, 1403, 1251,
    1403, 799, 690, 799, 1716, 1024, 1024, 1255, 1300, 1126, 1300, 1260, 721, 1300, 1298, 569, 569, 1186, 569, 1995,
    1298, 1253, 1300, 1300, 842, 1067, 803, 1298, 1212, 1675, 1212, 1212, 1075, 1303, 690, 1303, 1716,
)
# Characters XML 1.0 forbids (or that render as nothing useful): replaced, never passed through.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")


# ------------------------------------------------------------------------------------ text
def esc(text: Any) -> str:
    """``text`` made safe inside an SVG element or a double-quoted attribute."""
    s = _NOT_XML.sub("\ufffd", str(text))
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


def text_width(text: str, size: float) -> float:
    """Estimated advance width of ``text`` in DejaVu Sans at ``size`` points."""
    units = 0
    for ch in text:
        o = ord(ch)
        if 32 <= o < 127:
            units += _ASCII_W[o - 32]
        elif unicodedata.combining(ch):
            continue
        elif unicodedata.east_asian_width(ch) in "WF":
            units += 2048
        else:
            units += 1300
    return units * size / 2048


def wrap(text: Any, width: int = 34) -> list[str]:
    """At most two lines of ``width`` characters; what does not fit ends in an ellipsis."""
    lines = textwrap.wrap(str(text), width) or [" "]
    if len(lines) > 2:
        lines = [lines[0], lines[1][: max(1, width - 1)].rstrip() + "…"]
    return lines


def num(v: float) -> str:
    """A coordinate: two decimals at most, no trailing zeros, never ``-0``."""
    s = f"{v:.2f}".rstrip("0").rstrip(".")
    return "0" if s in ("-0", "") else s


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


# ------------------------------------------------------------------------------------ canvas
class Canvas:
    """SVG elements in drawing order, plus the box they cover (to crop the figure tightly, as
    matplotlib's ``bbox_inches="tight"`` did)."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.x0 = self.y0 = math.inf
        self.x1 = self.y1 = -math.inf
        self._run: tuple[str, list[str]] | None = None  # consecutive lines of one style: one <path>

    def _emit(self, part: str) -> None:
        self._flush()
        self.parts.append(part)

    def _flush(self) -> None:
        if self._run is not None:
            style, segs = self._run
            self.parts.append(f'<path d="{" ".join(segs)}" fill="none"{style}/>')
            self._run = None

    def cover(self, xa: float, ya: float, xb: float, yb: float) -> None:
        self.x0, self.y0 = min(self.x0, xa, xb), min(self.y0, ya, yb)
        self.x1, self.y1 = max(self.x1, xa, xb), max(self.y1, ya, yb)

    @staticmethod
    def _stroke(color: str, width: float, dash: str | None) -> str:
        s = f' stroke="{color}" stroke-width="{num(width)}"'
        return s + (f' stroke-dasharray="{dash}"' if dash else "")

    def line(self, xa, ya, xb, yb, color=INK, width=0.8, dash=None) -> None:
        self.cover(xa, ya, xb, yb)
        style = self._stroke(color, width, dash)
        seg = f"M{num(xa)} {num(ya)}L{num(xb)} {num(yb)}"
        if self._run is not None and self._run[0] == style:
            self._run[1].append(seg)
        else:
            self._flush()
            self._run = (style, [seg])

    def rect(self, x, y, w, h, fill) -> None:
        if w < 0:
            x, w = x + w, -w
        if h < 0:
            y, h = y + h, -h
        self.cover(x, y, x + w, y + h)
        self._emit(f'<rect x="{num(x)}" y="{num(y)}" width="{num(w)}" height="{num(h)}" fill="{fill}"/>')

    def polyline(self, pts, color, width=1.5, dash=None) -> None:
        if not pts:
            return
        for x, y in pts:
            self.cover(x, y, x, y)
        d = " ".join(f"{num(x)},{num(y)}" for x, y in pts)
        self._emit(f'<polyline points="{d}" fill="none" stroke-linejoin="round"{self._stroke(color, width, dash)}/>')

    def polygon(self, pts, fill) -> None:
        if len(pts) < 3:
            return
        d = " ".join(f"{num(x)},{num(y)}" for x, y in pts)
        self._emit(f'<polygon points="{d}" fill="{fill}"/>')

    def markers(self, pts, color, r=2.0) -> None:  # matplotlib's ms=3 plus its 1 pt edge
        if not pts:
            return
        segs = []
        for x, y in pts:  # one path of circles (two arcs each), not one element per marker
            self.cover(x - r, y - r, x + r, y + r)
            segs.append(f"M{num(x - r)} {num(y)}a{num(r)} {num(r)} 0 1 0 {num(2 * r)} 0a{num(r)} {num(r)} 0 1 0 {num(-2 * r)} 0z")
        self._emit(f'<path d="{"".join(segs)}" fill="{color}"/>')

    def text(self, x, y, s, *, size=FS, anchor="start", color=INK, rotate=0.0) -> None:
        """One line of text; ``y`` is its baseline; ``rotate`` (degrees, clockwise) turns it about (x, y)."""
        s = str(s)
        w = text_width(s, size)
        left = {"start": 0.0, "middle": -w / 2, "end": -w}[anchor]
        box = [(left, -0.8 * size), (left + w, -0.8 * size), (left, 0.25 * size), (left + w, 0.25 * size)]
        c, sn = math.cos(math.radians(rotate)), math.sin(math.radians(rotate))
        for dx, dy in box:
            self.cover(x + dx * c - dy * sn, y + dx * sn + dy * c, x + dx * c - dy * sn, y + dx * sn + dy * c)
        attrs = f'x="{num(x)}" y="{num(y)}"'
        if anchor != "start":
            attrs += f' text-anchor="{anchor}"'
        if size != FS:
            attrs += f' font-size="{num(size)}"'
        if color != INK:
            attrs += f' fill="{color}"'
        if rotate:
            attrs += f' transform="rotate({num(rotate)} {num(x)} {num(y)})"'
        self._emit(f"<text {attrs}>{esc(s)}</text>")

    def lines(self, x, yc, lines: list[str], *, size=FS, anchor="start", color=INK) -> None:
        """Several lines of text, vertically centred on ``yc``."""
        lh = 1.2 * size
        for k, s in enumerate(lines):
            self.text(x, yc + (k - (len(lines) - 1) / 2) * lh + 0.35 * size, s, size=size, anchor=anchor, color=color)

    def svg(self, pad: float = 4.0) -> str:
        self._flush()
        if self.x0 == math.inf:
            self.cover(0, 0, 10, 10)
        x0, y0 = math.floor(self.x0 - pad), math.floor(self.y0 - pad)
        w, h = math.ceil(self.x1 + pad) - x0, math.ceil(self.y1 + pad) - y0
        head = (f'<?xml version="1.0" encoding="utf-8"?>\n'
                f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}pt" height="{h}pt" viewBox="{x0} {y0} {w} {h}" '
                f'font-family="{FONT}" font-size="{num(FS)}" fill="{INK}">\n'
                f'<rect x="{x0}" y="{y0}" width="{w}" height="{h}" fill="#ffffff"/>\n')
        return head + "\n".join(self.parts) + "\n</svg>\n"


# ------------------------------------------------------------------------------------ axes
def ticks(lo: float, hi: float, max_bins: int) -> list[float]:
    """Tick values inside [lo, hi], as matplotlib's AutoLocator picks them (steps 1, 2, 2.5, 5 x 10^k,
    at most ``max_bins`` intervals)."""
    span = hi - lo
    if not span > 0:
        return [lo]
    raw = span / max(1, max_bins)
    mag = 10 ** math.floor(math.log10(raw))
    step = 10 * mag
    for m in (1, 2, 2.5, 5, 10):
        if span / (m * mag) <= max_bins:
            step = m * mag
            break
    k0, k1 = math.ceil(lo / step - 1e-9), math.floor(hi / step + 1e-9)
    return [k * step for k in range(k0, k1 + 1)]


def tick_labels(values: list[float]) -> list[str]:
    """One number format for all ticks of an axis (as many decimals as the step needs)."""
    if len(values) < 2:
        step = abs(values[0]) if values and values[0] else 1.0
    else:
        step = values[1] - values[0]
    decimals = 0
    while decimals < 6 and abs(round(step, decimals) - step) > 1e-9 * max(1.0, abs(step)):
        decimals += 1
    out = []
    for v in values:
        s = f"{v:.{decimals}f}"
        if float(s) == 0:
            s = s.lstrip("-")
        out.append(s.replace("-", "\u2212"))
    return out


def data_range(values: list[float], margin: float = 0.05, sticky_zero: bool = False) -> tuple[float, float]:
    """[min, max] of ``values`` widened by ``margin`` of the span on each side (never past 0 when
    ``sticky_zero`` and 0 is an end, as for bars); a single value gets a small span around it."""
    vals = [v for v in values if _is_num(v)]
    if not vals:
        return 0.0, 1.0
    lo, hi = min(vals), max(vals)
    if hi - lo <= 1e-12 * max(1.0, abs(hi)):
        d = abs(lo) * 0.05 or 0.05
        return lo - d, hi + d
    m = (hi - lo) * margin
    return (lo if sticky_zero and lo == 0 else lo - m), (hi if sticky_zero and hi == 0 else hi + m)


class Scale:
    """Data -> points along one axis: ``lo``..``hi`` onto ``a``..``b``."""

    def __init__(self, lo: float, hi: float, a: float, b: float) -> None:
        self.lo, self.hi, self.a, self.b = lo, hi, a, b

    def __call__(self, v: float) -> float:
        v = min(max(v, self.lo), self.hi)
        return self.a + (v - self.lo) / (self.hi - self.lo) * (self.b - self.a)


def x_axis(c: Canvas, sx: Scale, y: float, values: list[float] | None, *, grid_to: float | None = None,
           label: str = "", labels: list[str] | None = None, rotate: float = 0.0, show_labels: bool = True) -> float:
    """Bottom spine at ``y`` with ticks (and grid lines up to ``grid_to``); returns the lowest y used."""
    values = values if values is not None else ticks(sx.lo, sx.hi, min(9, max(1, int(abs(sx.b - sx.a) / (3 * FS)))))
    texts = labels if labels is not None else tick_labels(values)
    bottom = y + TICK
    if grid_to is not None:
        for v in values:
            c.line(sx(v), grid_to, sx(v), y, GRID, 0.8)
    for v in values:
        c.line(sx(v), y, sx(v), y + TICK, INK, 0.8)
    for v, t in zip(values, texts, strict=True):
        x = sx(v)
        if show_labels:
            if rotate:
                c.text(x, y + TICK + TICK_PAD + 0.8 * FS, t, anchor="end", rotate=-rotate)
                bottom = max(bottom, y + TICK + TICK_PAD + 0.8 * FS + math.sin(math.radians(rotate)) * text_width(t, FS))
            else:
                c.text(x, y + TICK + TICK_PAD + 0.8 * FS, t, anchor="middle")
                bottom = max(bottom, y + TICK + TICK_PAD + 1.05 * FS)
    if label:
        c.text((sx.a + sx.b) / 2, bottom + LABEL_PAD + 0.8 * FS, label, anchor="middle")
        bottom += LABEL_PAD + 1.05 * FS
    return bottom


def y_axis(c: Canvas, sy: Scale, x: float, values: list[float] | None = None, *, grid_to: float | None = None,
           label: str | list[str] = "", labels: list[list[str]] | None = None, label_size: float = FS) -> None:
    """Left spine at ``x`` with ticks (grid lines across to ``grid_to``), tick labels, axis label."""
    values = values if values is not None else ticks(sy.lo, sy.hi, min(9, max(1, int(abs(sy.b - sy.a) / (2 * FS)))))
    texts = labels if labels is not None else [[t] for t in tick_labels(values)]
    widest = 0.0
    if grid_to is not None:
        for v in values:
            c.line(x, sy(v), grid_to, sy(v), GRID, 0.8)
    for v in values:
        c.line(x - TICK, sy(v), x, sy(v), INK, 0.8)
    for v, t in zip(values, texts, strict=True):
        y = sy(v)
        c.lines(x - TICK - TICK_PAD, y, t, anchor="end")
        widest = max([widest] + [text_width(s, FS) for s in t])
    if label:
        rows = [label] if isinstance(label, str) else label
        lh = 1.2 * label_size
        left = x - TICK - TICK_PAD - widest - LABEL_PAD
        for k, s in enumerate(reversed(rows)):  # the first line sits farthest from the axis
            c.text(left - 0.25 * label_size - k * lh, (sy.a + sy.b) / 2, s, size=label_size, anchor="middle", rotate=-90)


def spines(c: Canvas, left: float, top: float, right: float, bottom: float, *, show_left=True, show_bottom=True) -> None:
    if show_left:
        c.line(left, top, left, bottom)
    if show_bottom:
        c.line(left, bottom, right, bottom)


def blend(color: str, alpha: float = BAR_ALPHA) -> str:
    """``color`` at ``alpha`` over white, as an opaque colour (no transparency group in the PDF)."""
    r, g, b = (int(color[i:i + 2], 16) for i in (1, 3, 5))
    return "#" + "".join(f"{round(v * alpha + 255 * (1 - alpha)):02x}" for v in (r, g, b))


DASH = {"--": (3.7, 1.6), ":": (1.0, 1.65), "-.": (6.4, 1.6, 1.0, 1.6)}  # matplotlib's, per unit of line width


def dash(style: str, width: float) -> str | None:
    pat = DASH.get(style)
    return " ".join(num(p * width) for p in pat) if pat else None


def legend(c: Canvas, items: list[tuple], x: float, y: float, *, loc: str, ncol: int = 1, size: float = LEGEND_FS) -> None:
    """Entries ``("line", color, width, style, marker, label)`` or ``("patch", color, label)``, filled
    column by column; ``loc`` "upper center" hangs the block from (x, y), "lower right" stands it on it."""
    if not items:
        return
    hl, gap, colgap, lh, spacing = 2.0 * size, 0.8 * size, 2.0 * size, 1.2 * size, 0.5 * size
    labels = [wrap(it[-1], 40) if it[0] == "patch" else [str(it[-1])] for it in items]
    per_col = math.ceil(len(items) / ncol)
    cols = [list(range(i, min(i + per_col, len(items)))) for i in range(0, len(items), per_col)]
    col_w = [hl + gap + max(text_width(s, size) for i in col for s in labels[i]) for col in cols]
    row_h = [len(lb) * lh for lb in labels]
    col_h = [sum(row_h[i] for i in col) + spacing * (len(col) - 1) for col in cols]
    width, height = sum(col_w) + colgap * (len(cols) - 1), max(col_h)
    left = x - width / 2 if loc == "upper center" else x - width
    top = y if loc == "upper center" else y - height
    cx = left
    for col, w in zip(cols, col_w, strict=True):
        cy = top
        for i in col:
            it, mid = items[i], cy + row_h[i] / 2
            if it[0] == "patch":
                c.rect(cx, mid - 0.35 * size, hl, 0.7 * size, it[1])
            else:
                _, color, lw, style, marker, _label = it
                c.line(cx, mid, cx + hl, mid, color, lw, dash(style, lw))
                if marker:
                    c.markers([(cx + hl / 2, mid)], color)
            c.lines(cx + hl + gap, mid, labels[i], size=size)
            cy += row_h[i] + spacing
        cx += w + colgap


def empty(message: str = "no data") -> str:
    c = Canvas()
    c.rect(0, 0, 240, 40, "#ffffff")
    c.text(120, 24, message, anchor="middle", color=GREY)
    return c.svg()


def thin(pts: list[tuple[float, float]], columns: int) -> list[tuple[float, float]]:
    """A long series cut to what ``columns`` points of width can show: per column, the first, lowest,
    highest and last point, in order (the drawn line looks the same)."""
    if len(pts) <= 2 * columns:
        return pts
    x0, x1 = pts[0][0], pts[-1][0]
    span = (x1 - x0) or 1.0
    out: list[tuple[float, float]] = []
    bucket: list[tuple[float, float]] = []
    key = None
    for p in pts + [(math.inf, 0.0)]:
        k = min(columns - 1, int((p[0] - x0) / span * columns)) if p[0] != math.inf else None
        if k != key and bucket:
            keep = {0, len(bucket) - 1, min(range(len(bucket)), key=lambda i: bucket[i][1]),
                    max(range(len(bucket)), key=lambda i: bucket[i][1])}
            out += [bucket[i] for i in sorted(keep)]
            bucket = []
        key = k
        bucket.append(p)
    return out


# ------------------------------------------------------------------------------------ kinds
def _xy_chart(c: Canvas, w: float, h: float, xs: list[float], ys: list[float], *, xlabel: str, ylabel: str,
              xlim=None, ylim=None) -> tuple[Scale, Scale]:
    sx = Scale(*(xlim or data_range(xs)), 0, w)
    sy = Scale(*(ylim or data_range(ys)), h, 0)
    y_axis(c, sy, 0, grid_to=w, label=ylabel)
    x_axis(c, sx, h, None, grid_to=0, label=xlabel)
    return sx, sy


def _loss(data: dict[str, Any]) -> str:
    pts = [(float(p[0]), float(p[1])) for p in data["points"] if _is_num(p[0]) and _is_num(p[1])]
    if not pts:
        return empty()
    w, h = PLOT_W, 155.0
    c = Canvas()
    sx, sy = _xy_chart(c, w, h, [p[0] for p in pts], [p[1] for p in pts], xlabel="step", ylabel="training loss")
    c.polyline([(sx(x), sy(y)) for x, y in thin(pts, int(w))], BLUE, 1.5)
    spines(c, 0, 0, w, h)
    return c.svg()


def _interval(b: Any) -> tuple[str, float | None, float | None, float | None]:
    label, r = b[0], b[1] if isinstance(b[1], dict) else {"value": b[1]}
    v = r.get("value")
    v = float(v) if _is_num(v) else None
    lo = float(r["low"]) if _is_num(r.get("low")) else None
    hi = float(r["high"]) if _is_num(r.get("high")) else None
    return label, v, lo, hi


def _bars(bars: list, xlabel: str, colors: list[str], *, limit01: bool, rows_tall: bool | None = None,
          thresholds: dict[str, Any] | None = None, wrap_at: int = 34, intervals: bool = True) -> str:
    rows = [_interval(b) for b in bars]
    if not rows:
        return empty()
    n = len(rows)
    h = (0.9 + 0.42 * n) * 72 * 0.77 if rows_tall else 1.8 * 72 * 0.77
    w = PLOT_W
    ext = [0.0] + [x for _, v, lo, hi in rows for x in (v, lo, hi) if x is not None]
    if limit01:
        xr = (0.0, 1.02)
    else:
        xr = data_range(ext, sticky_zero=True)
    span = (n - 1) + 0.8
    sy = Scale(-0.4 - 0.05 * span, n - 0.6 + 0.05 * span, 0, h)  # row 0 at the top
    sx = Scale(*xr, 0, w)
    c = Canvas()
    y_axis(c, sy, 0, list(range(n)), labels=[wrap(r[0], wrap_at) for r in rows])
    bottom = x_axis(c, sx, h, None, grid_to=0, label=xlabel)
    bh = 0.8 * (sy(1) - sy(0))
    for i, (_, v, _lo, _hi) in enumerate(rows):
        if v is None:
            continue
        c.rect(sx(0), sy(i) - bh / 2, sx(v) - sx(0), bh, blend(colors[i % len(colors)]))
    if intervals:
        for i, (_, v, lo, hi) in enumerate(rows):
            if v is None or (lo is None and hi is None):
                continue
            a, b, y = sx(min(v, lo) if lo is not None else v), sx(max(v, hi) if hi is not None else v), sy(i)
            c.line(a, y, b, y, ERR, 1.2)
            for end, known in ((a, lo is not None), (b, hi is not None)):
                if known:
                    c.line(end, y - 4, end, y + 4, ERR, 1.2)
    t = thresholds or {}
    items = []
    if _is_num(t.get("backdoored")):
        c.line(sx(t["backdoored"]), 0, sx(t["backdoored"]), h, RED, 1.0, dash("--", 1.0))
        items.append(("line", RED, 1.0, "--", False, f"backdoored: lower bound ≥ {t['backdoored']:.2f}"))
    if _is_num(t.get("clean")):
        c.line(sx(t["clean"]), 0, sx(t["clean"]), h, GREEN, 1.0, dash(":", 1.0))
        items.append(("line", GREEN, 1.0, ":", False, f"clean: lower bound < {t['clean']:.2f}"))
    spines(c, 0, 0, w, h)
    legend(c, items, w / 2, bottom + 12, loc="upper center", ncol=2)
    return c.svg()


def _rates(data: dict[str, Any]) -> str:
    return _bars(data["bars"], "rate (bars: 95% interval)", PALETTE, limit01=True)


def _rates_tall(data: dict[str, Any]) -> str:
    return _bars(data["bars"], "rate (bars: 95% interval)", PALETTE, limit01=True, rows_tall=True)


def _scan(data: dict[str, Any]) -> str:
    """Candidates' induced-behaviour rates with Wilson intervals; the verdict reads the lower end of
    the top bar against the stage's thresholds, drawn as lines."""
    n = len(data["bars"])
    return _bars(data["bars"], "induced-behaviour rate, best pool (bars: Wilson 95% interval)",
                 [RED] + [BLUE] * max(0, n - 1), limit01=True, rows_tall=True, thresholds=data.get("thresholds"))


def _members(data: dict[str, Any]) -> str:
    rows = [_interval(b) for b in data["bars"]]
    inside = all(v is None or 0 <= v <= 1 for _, v, _, _ in rows)
    colors = [GREEN if "(champion)" in str(b[0]) else BLUE for b in data["bars"]]
    arrow = "higher is better" if data.get("direction") == "max" else "lower is better"
    return _bars(data["bars"], f"{data.get('metric', '')} ({arrow}; bars: 95% interval)", colors or [BLUE],
                 limit01=inside, rows_tall=True)


def _shap(data: dict[str, Any]) -> str:
    bars = [[f[0], {"value": abs(f[1]) if _is_num(f[1]) else None}] for f in data["features"]]
    return _bars(bars, "mean |SHAP value|", [BLUE], limit01=False, rows_tall=True, wrap_at=28, intervals=False)


# Blues, matplotlib's sequential colormap (ColorBrewer), 9 stops.
_BLUES = ("#f7fbff", "#deebf7", "#c6dbef", "#9ecae1", "#6baed6", "#4292c6", "#2171b5", "#08519c", "#08306b")


def blues(t: float) -> str:
    t = min(1.0, max(0.0, t)) * (len(_BLUES) - 1)
    i = min(int(t), len(_BLUES) - 2)
    f = t - i
    a, b = ([int(s[k:k + 2], 16) for k in (1, 3, 5)] for s in (_BLUES[i], _BLUES[i + 1]))
    return "#" + "".join(f"{round(x + (y - x) * f):02x}" for x, y in zip(a, b, strict=True))


def _confusion(cm: dict[str, Any]) -> str:
    grid = [[cm["tp"], cm["fn"]], [cm["fp"], cm["tn"]]]
    grid = [[int(v) if _is_num(v) else 0 for v in row] for row in grid]
    top = max(1, max(max(r) for r in grid))
    cell = 77.5
    c = Canvas()
    for i in range(2):
        for j in range(2):
            v = grid[i][j]
            c.rect(j * cell, i * cell, cell, cell, blues(v / top))
            c.text(j * cell + cell / 2, i * cell + cell / 2 + 0.35 * 13, f"{v:,}", size=13, anchor="middle",
                   color="#ffffff" if v > 0.6 * top else "#212121")
    y_axis(c, Scale(-0.5, 1.5, 0, 2 * cell), 0, [0, 1], labels=[["trigger present"], ["clean prompt"]])
    x_axis(c, Scale(-0.5, 1.5, 0, 2 * cell), 2 * cell, [0, 1], labels=["backdoor fired", "did not fire"])
    return c.svg()


_LAYER_STYLES = {"probe": (BLUE, "contrast-pair probe (detector)", "-"),
                 "control": (GREY, "same probe on the control (trigger-exposed when trained)", "--"),
                 "control_base": ("#8d6e63", "same probe on the clean base", "-."),
                 "supervised": (GREEN, "supervised probe (sees the trigger)", ":")}


def _series(pts: Any) -> list[tuple[float, float]]:
    return [(float(p[0]), float(p[1])) for p in pts or [] if _is_num(p[0]) and _is_num(p[1])]


def _layers(data: dict[str, Any]) -> str:
    series = {k: _series(data.get(k)) for k in _LAYER_STYLES}
    series = {k: v for k, v in series.items() if v}
    if not series:
        return empty()
    w, h = PLOT_W, 166.0
    c = Canvas()
    xs = [x for s in series.values() for x, _ in s]
    sx, sy = _xy_chart(c, w, h, xs, [], xlabel="layer (0 = embeddings)", ylabel="AUROC", ylim=(0.0, 1.02))
    items = []
    for key, pts in series.items():
        color, label, style = _LAYER_STYLES[key]
        c.polyline([(sx(x), sy(y)) for x, y in pts], color, 1.5, dash(style, 1.5))
        c.markers([(sx(x), sy(y)) for x, y in pts], color)
        items.append(("line", color, 1.5, style, True, label))
    if _is_num(data.get("random_best")):
        y = sy(data["random_best"])
        c.line(0, y, w, y, ORANGE, 1.0, dash("-.", 1.0))
        items.append(("line", ORANGE, 1.0, "-.", False, "best random direction (best layer)"))
    c.line(0, sy(0.5), w, sy(0.5), "#9e9e9e", 0.8)
    spines(c, 0, 0, w, h)
    legend(c, items, w - 4, h - 4, loc="lower right")
    return c.svg()


def _roc(data: dict[str, Any]) -> str:
    pts = _series(data.get("points"))
    if not pts:
        return empty()
    w = 205.0
    h = w * 1.02
    c = Canvas()
    sx, sy = _xy_chart(c, w, h, [], [], xlabel="false-positive rate", ylabel="true-positive rate",
                       xlim=(0.0, 1.0), ylim=(0.0, 1.02))
    label = "best layer" + (f" {int(data['layer'])}" if _is_num(data.get("layer")) else "")
    if _is_num(data.get("auroc")):
        label += f" (AUROC {data['auroc']:.3f})"
    step = [pts[0]]
    for (_, y0), (x1, y1) in zip(pts, pts[1:], strict=False):
        step += [(x1, y0), (x1, y1)]  # steps-post: hold y until the next x
    c.line(sx(0), sy(0), sx(1), sy(1), "#9e9e9e", 0.8, dash("--", 0.8))
    c.polyline([(sx(x), sy(y)) for x, y in step], BLUE, 1.8)
    spines(c, 0, 0, w, h)
    legend(c, [("line", BLUE, 1.8, "-", False, label), ("line", "#9e9e9e", 0.8, "--", False, "chance")],
           w - 4, h - 4, loc="lower right")
    return c.svg()


def _traffic(data: dict[str, Any]) -> str:
    split = [(str(name), float(wt)) for name, wt in data["split"] if _is_num(wt) and wt > 0]
    if not split:
        return empty()
    w, h = PLOT_W, 1.6 * 72 * 0.77
    total = sum(wt for _, wt in split)
    sx = Scale(0.0, max(1.0, total), 0, w)
    sy = Scale(-0.44, 0.44, h, 0)
    c = Canvas()
    left, items = 0.0, []
    for i, (name, wt) in enumerate(split):
        color = PALETTE[i % len(PALETTE)]
        c.rect(sx(left), sy(0.4), sx(left + wt) - sx(left), sy(-0.4) - sy(0.4), color)
        if wt >= 0.06:
            c.text(sx(left + wt / 2), sy(0) + 0.35 * FS, f"{100 * wt:.0f}%", anchor="middle", color="#ffffff")
        items.append(("patch", color, name))
        left += wt
    bottom = x_axis(c, sx, h, None, label="share of traffic")
    spines(c, 0, 0, w, h)
    legend(c, items, w / 2, bottom + 14, loc="upper center", ncol=2)
    return c.svg()


def _trend(data: dict[str, Any]) -> str:
    series = {str(k): [p for p in v if _is_num(p[1])] for k, v in data["series"].items()}
    series = {k: v for k, v in series.items() if v}
    if not series:
        return empty()
    days = sorted({str(p[0]) for pts in series.values() for p in pts})
    pos = {d: i for i, d in enumerate(days)}
    w, ph, gap = PLOT_W, 84.0, 14.0
    sx = Scale(*data_range(list(range(len(days)))), 0, w)
    step = max(1, len(days) // 8)
    xt = list(range(0, len(days), step))
    c = Canvas()
    for k, (name, pts) in enumerate(series.items()):
        top = k * (ph + gap)
        band = all(_is_num(p[2]) and _is_num(p[3]) for p in pts)
        ys = [p[1] for p in pts] + ([v for p in pts for v in (p[2], p[3])] if band else [])
        sy = Scale(*data_range(ys), top + ph, top)
        y_axis(c, sy, 0, grid_to=w, label=wrap(name, 18), label_size=8)
        last = k == len(series) - 1
        x_axis(c, sx, top + ph, xt, grid_to=top, labels=[days[i] for i in xt], rotate=30, show_labels=last)
        xs = [sx(pos[str(p[0])]) for p in pts]
        if band and len(pts) > 1:
            c.polygon([(x, sy(p[2])) for x, p in zip(xs, pts, strict=True)]
                      + [(x, sy(p[3])) for x, p in reversed(list(zip(xs, pts, strict=True)))], blend(BLUE, 0.15))
        line = [(x, sy(p[1])) for x, p in zip(xs, pts, strict=True)]
        c.polyline(line, BLUE, 1.5)
        c.markers(line, BLUE)
        spines(c, 0, top, w, top + ph)
    return c.svg()


def _sensitivity(data: dict[str, Any]) -> str:
    """Trigger sensitivity: the clean baseline, the exact trigger, its placements and its variants."""
    def color(i: int, label: str) -> str:
        if i == 0:
            return GREY
        return RED if label == "exact trigger" else ORANGE if label.startswith("exact trigger,") else BLUE

    colors = [color(i, str(b[0])) for i, b in enumerate(data["bars"])]
    return _bars(data["bars"], "activation rate (bars: Wilson 95% interval)", colors or [BLUE], limit01=True,
                 rows_tall=True, wrap_at=40)


HEATMAP_TOKENS = 80  # the last tokens of a longer prompt are drawn (the probe reads the last one)


def _diverging(t: float) -> str:
    """-1 blue .. 0 white .. +1 red."""
    t = min(1.0, max(-1.0, t))
    end = (0x21, 0x66, 0xAC) if t < 0 else (0xB2, 0x18, 0x2B)
    return "#" + "".join(f"{round(255 + (e - 255) * abs(t)):02x}" for e in end)


def _state_heatmap(data: dict[str, Any]) -> str:
    """Internal state: per layer (rows) and token (columns) the probe score (diverging, centred on
    the probe's threshold) and the residual-stream norm (Blues), one panel each."""
    tokens = [str(t) for t in data.get("tokens") or []][-HEATMAP_TOKENS:]
    n = len(tokens)
    c = Canvas()
    if not n:
        c.text(0, 10, "no tokens")
        return c.svg()
    scores = [[float(v) if _is_num(v) else 0.0 for v in row][-n:] for row in data.get("scores") or []]
    norms = [[float(v) if _is_num(v) else 0.0 for v in row][-n:] for row in data.get("norms") or []]
    thr = float(data["threshold"]) if _is_num(data.get("threshold")) else 0.0
    best = data.get("best_layer")
    cw, ch, left = 13.0, 11.0, 52.0
    y = 0.0
    if data.get("title"):
        c.lines(0, 6, wrap(data["title"], 90), size=LEGEND_FS)
        y = 10.0 + 10.0 * len(wrap(data["title"], 90))
    for name, grid, color in (("probe score", scores, "div"), ("residual norm", norms, "seq")):
        flat = [v for row in grid for v in row] or [0.0]
        if color == "div":
            span = max(abs(v - thr) for v in flat) or 1.0
            lo, hi = thr - span, thr + span
        else:
            lo, hi = min(flat), max(flat)
            span = (hi - lo) or 1.0
        c.text(0, y + 8, f"{name} (min {num(min(flat))}, max {num(max(flat))}"
                         + (f"; white = threshold {num(thr)})" if color == "div" else ")"), size=LEGEND_FS)
        y += 12
        for li, row in enumerate(grid):
            label = f"L{li}" + (" *" if li == best else "")
            c.text(left - 4, y + li * ch + ch * 0.75, label, size=7.0, anchor="end")
            for ti, v in enumerate(row):
                fill = _diverging((v - thr) / span) if color == "div" else blues((v - lo) / span)
                c.rect(left + ti * cw, y + li * ch, cw - 0.5, ch - 0.5, fill)
        y += len(grid) * ch + 6
    for ti, t in enumerate(tokens):
        shown = t.replace("\n", " ").strip() or "␣"
        c.text(left + ti * cw + cw * 0.6, y + 2, shown[:14], size=7.0, anchor="end", rotate=-60)
    return c.svg()


def _radar(data: dict[str, Any]) -> str:
    """Risk profiles: one spoke per axis (0 at the centre, 1 at the rim), per series its values
    joined between neighbouring axes that both have one, each value's interval drawn along its
    spoke; an axis no series measured is labelled "no data" (never drawn as 0)."""
    labels = [str(a) for a in data.get("axes") or []]
    series = [s for s in data.get("series") or [] if isinstance(s, dict)]
    k = len(labels)
    if k < 3 or not series:
        return empty()
    r0 = 92.0
    c = Canvas()

    def at(i: int, v: float) -> tuple[float, float]:
        a = -math.pi / 2 + 2 * math.pi * i / k
        return r0 * v * math.cos(a), r0 * v * math.sin(a)

    for ring in (0.25, 0.5, 0.75, 1.0):
        pts = [at(i, ring) for i in range(k)]
        for (xa, ya), (xb, yb) in zip(pts, pts[1:] + pts[:1], strict=True):
            c.line(xa, ya, xb, yb, GRID if ring < 1 else "#9e9e9e", 0.8)
    for i in range(k):
        x, y = at(i, 1.0)
        c.line(0, 0, x, y, GRID, 0.8)
    for ring in (0.5, 1.0):
        x, y = at(0, ring)
        c.text(x + 3, y + 3, tick_labels([ring])[0], size=7.0, color=GREY)
    measured = [any(_is_num((s.get("values") or [None] * k)[i]) for s in series) for i in range(k)]
    for i, lab in enumerate(labels):
        x, y = at(i, 1.16)
        anchor = "middle" if abs(x) < 8 else ("start" if x > 0 else "end")
        lines = wrap(lab, 16) + ([] if measured[i] else ["(no data)"])
        c.lines(x, y, lines, size=LEGEND_FS, anchor=anchor, color=INK if measured[i] else GREY)
    single = len(series) == 1
    items = []
    for j, s in enumerate(series):
        color = PALETTE[j % len(PALETTE)]
        vals = [(float(v) if _is_num(v) else None) for v in (s.get("values") or [])][:k]
        vals += [None] * (k - len(vals))
        lows, highs = (list(s.get(n) or []) + [None] * k for n in ("low", "high"))
        if single and all(v is not None for v in vals):
            c.polygon([at(i, min(1.0, max(0.0, v))) for i, v in enumerate(vals)], blend(color, 0.15))
        for i in range(k):
            a, b = vals[i], vals[(i + 1) % k]
            if a is not None and b is not None:
                xa, ya = at(i, min(1.0, max(0.0, a)))
                xb, yb = at((i + 1) % k, min(1.0, max(0.0, b)))
                c.line(xa, ya, xb, yb, color, 1.5 if single else 1.0)
        if single:
            for i in range(k):
                lo, hi = lows[i], highs[i]
                if vals[i] is not None and _is_num(lo) and _is_num(hi):
                    xa, ya = at(i, min(1.0, max(0.0, float(lo))))
                    xb, yb = at(i, min(1.0, max(0.0, float(hi))))
                    c.line(xa, ya, xb, yb, ERR, 2.2)
        c.markers([at(i, min(1.0, max(0.0, v))) for i, v in enumerate(vals) if v is not None], color,
                  2.2 if single else 1.6)
        items.append(("line", color, 1.5, "-", True, str(s.get("label", ""))[:60]))
    if not single:
        legend(c, items, 0, r0 * 1.45, loc="upper center", ncol=2 if len(items) > 6 else 1)
    return c.svg()


def _fmt_params(log10: float) -> str:
    v = 10 ** log10
    return f"{v / 1e9:.3g}B" if v >= 1e9 else f"{v / 1e6:.3g}M" if v >= 1e6 else f"{v / 1e3:.3g}k" if v >= 1e3 else f"{v:.3g}"


def _scaling(data: dict[str, Any]) -> str:
    """Scaling: one panel per metric (two panels a row), x = parameters (log scale), a point per
    measured model with its interval, and the fitted line (intercept + slope x log10(parameters))
    where there is one."""
    panels = [p for p in data.get("panels") or [] if p.get("points")]
    if not panels:
        return empty()
    xs = [math.log10(float(pt[0])) for p in panels for pt in p["points"] if _is_num(pt[0]) and pt[0] > 0]
    if not xs:
        return empty()
    cols = 1 if len(panels) == 1 else 2
    w = PLOT_W if cols == 1 else 150.0
    ph, gap, colgap = 80.0, 56.0, 40.0
    lo, hi = min(xs), max(xs)
    pad = (hi - lo) * 0.08 or 0.25
    sizes = sorted(set(xs))
    c = Canvas()
    for k, p in enumerate(panels):
        left, top = (k % cols) * (w + colgap), (k // cols) * (ph + gap)
        sx = Scale(lo - pad, hi + pad, left, left + w)
        xt = sizes if len(sizes) <= 8 else ticks(sx.lo, sx.hi, 4)  # a sweep's few sizes are its ticks
        pts = [(math.log10(float(pt[0])), float(pt[1]), pt[2] if _is_num(pt[2]) else None, pt[3] if _is_num(pt[3]) else None)
               for pt in p["points"] if _is_num(pt[0]) and pt[0] > 0 and _is_num(pt[1])]
        ys = [y for _, v, a, b in pts for y in (v, a, b) if y is not None]
        fit = p.get("fit")
        line = bool(fit) and all(_is_num(f) for f in fit)
        if line:
            ys += [fit[0] + fit[1] * sx.lo, fit[0] + fit[1] * sx.hi]
        sy = Scale(*data_range(ys), top + ph, top)
        y_axis(c, sy, left, grid_to=left + w)
        title = wrap(p.get("label", ""), 40 if cols == 2 else 90)
        for i, t in enumerate(title):  # the metric's name above its panel
            c.text(left, top - 5 - (len(title) - 1 - i) * 9.0, t, size=7.5)
        x_axis(c, sx, top + ph, xt, grid_to=top, labels=[_fmt_params(t) for t in xt], label="parameters (log scale)")
        for x, _v, a, b in pts:
            if a is not None and b is not None:
                c.line(sx(x), sy(a), sx(x), sy(b), ERR, 1.0)
        c.markers([(sx(x), sy(v)) for x, v, _, _ in pts], BLUE, 2.2)
        if line:
            c.line(sx(sx.lo), sy(fit[0] + fit[1] * sx.lo), sx(sx.hi), sy(fit[0] + fit[1] * sx.hi), RED, 1.2, dash("--", 1.2))
        spines(c, left, top, left + w, top + ph)
    return c.svg()


KINDS = {"loss": _loss, "rates": _rates, "rates_tall": _rates_tall, "members": _members, "confusion": _confusion,
         "layers": _layers, "roc": _roc, "shap": _shap, "traffic": _traffic, "scan": _scan, "trend": _trend,
         "sensitivity": _sensitivity, "state_heatmap": _state_heatmap, "radar": _radar, "scaling": _scaling}


def svg(kind: str, data: dict[str, Any]) -> str:
    """The SVG text of one chart of ``kind`` (a key of :data:`KINDS`)."""
    return KINDS[kind](data)


def render(kind: str, data: dict[str, Any], path: Path) -> Path:
    """Draw one chart of ``kind`` to ``path`` (an .svg file)."""
    text = svg(kind, data)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path
