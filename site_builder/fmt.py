"""Formatting shared by the site pages and the PDFs, so both print exactly the same figures.

Everything a user typed (model, group, run names, params, reasons) goes through :func:`md_text`
or Jinja2 autoescape before it reaches a page: a model called ``<script>`` shows as text.
"""

from __future__ import annotations

import math
import re
from datetime import date, datetime
from typing import Any

from markupsafe import Markup, escape

_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|~>])")


def md_text(value: Any) -> Markup:
    """Text safe inside Markdown *and* HTML: HTML-escaped, then Markdown punctuation backslashed."""
    return Markup(_MD_SPECIAL.sub(r"\\\1", str(escape("" if value is None else str(value)))))


def num(value: Any, digits: int = 3) -> str:
    """A metric value as printed everywhere (pages, tables, PDFs): fixed decimals, '—' when absent."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if math.isnan(value):
            return "n/a"
        if math.isinf(value):
            return "∞" if value > 0 else "−∞"
        if value != 0 and abs(value) < 10 ** (-digits):
            return f"{value:.2e}"
        return f"{value:,.{digits}f}"
    return str(value)


def pct(value: Any, digits: int = 1) -> str:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or math.isnan(value):
        return "—"
    return f"{100 * value:.{digits}f}%"


def interval(value: Any, low: Any, high: Any, digits: int = 3) -> str:
    """'0.950 [0.880, 0.981]' or just the value when no interval is stored."""
    if value is None:
        return "—"
    if isinstance(low, (int, float)) and isinstance(high, (int, float)):
        return f"{num(value, digits)} [{num(low, digits)}, {num(high, digits)}]"
    return num(value, digits)


def metric_interval(metrics: dict[str, Any], name: str, digits: int = 3) -> str:
    """A metric with its ``_ci_low``/``_ci_high`` companions (the metric-name contract)."""
    return interval(metrics.get(name), metrics.get(f"{name}_ci_low"), metrics.get(f"{name}_ci_high"), digits)


def day(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, str) and len(value) > 10 and value[10] in "T ":
        try:  # page data carries timestamps as ISO strings (JSON-able, hashable)
            value = datetime.fromisoformat(value)
        except ValueError:
            return value
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M UTC") if value.tzinfo else value.strftime("%Y-%m-%d %H:%M")
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def slugify(text: str, max_len: int = 60) -> str:
    """A file-name-safe slug ([a-z0-9-]); never empty."""
    s = re.sub(r"[^a-z0-9]+", "-", str(text).lower()).strip("-")[:max_len].strip("-")
    return s or "model"


def short_hash(value: Any, n: int = 12) -> str:
    return str(value)[:n] if value else "—"


_INVISIBLE = re.compile(r"[\x00-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]")


def visible(value: Any, limit: int = 300) -> str:
    """A model-made string (trigger candidate, generation) as plain text that shows what it is:
    control, zero-width and direction-changing characters as ``\\n``/``\\u200b`` escapes, so a
    trigger made of them cannot hide or reorder the text around it; cut at ``limit`` characters.
    Still plain text: the templates escape it like any other user string."""
    if value is None:
        return "—"
    s = str(value)
    cut = len(s) > limit
    s = s[:limit]
    s = _INVISIBLE.sub(lambda m: {"\n": "\\n", "\t": "\\t", "\r": "\\r"}.get(m.group(), f"\\u{ord(m.group()):04x}"), s)
    return s + ("…" if cut else "") if s else "(empty)"


def rate_text(d: dict[str, Any] | None, digits: int = 3) -> str:
    """'0.800 [0.627, 0.905] (n=30)' from a ``{rate|value, ci_low|low, ci_high|high, n}`` dict."""
    if not isinstance(d, dict):
        return "—"
    v = d.get("rate", d.get("value"))
    if not isinstance(v, (int, float)) or isinstance(v, bool) or (isinstance(v, float) and math.isnan(v)):
        return "—"
    text = interval(v, d.get("ci_low", d.get("low")), d.get("ci_high", d.get("high")), digits)
    n = d.get("n")
    return text + (f" (n={int(n)})" if isinstance(n, (int, float)) and not isinstance(n, bool) else "")
