"""Static SVG charts (matplotlib, Agg backend): the same file is shown on the page and in the PDF.

Each chart kind takes the JSON-able data a page spec carries (see :mod:`site_builder.pagedata`)
and writes one SVG. Charts are drawn on white; the site's dark palette inverts them with CSS.
User text (model names) is drawn with math parsing off, so a ``$`` in a name stays a ``$``.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

plt.rcParams.update({
    "svg.fonttype": "none",  # real <text>: small files, selectable, searchable in the PDF
    "svg.hashsalt": "vigil",  # stable ids: the same data gives the same bytes
    "text.parse_math": False,
    "font.family": "DejaVu Sans",
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "figure.dpi": 100,
})

BLUE, ORANGE, GREEN, RED, GREY = "#3f51b5", "#ef6c00", "#2e7d32", "#c62828", "#757575"
PALETTE = [BLUE, ORANGE, GREEN, RED, "#6a1b9a", "#00838f", "#8d6e63", GREY]


def _label(text: str, width: int = 34) -> str:
    return "\n".join(textwrap.wrap(str(text), width)[:2]) or " "


def _save(fig, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(fig)


def _loss(ax, data):
    xs, ys = zip(*data["points"], strict=True)
    ax.plot(xs, ys, color=BLUE, lw=1.5)
    ax.set_xlabel("step")
    ax.set_ylabel("training loss")


def _interval_bars(ax, bars, xlabel, limit01=True, colors=None):
    labels = [_label(b[0]) for b in bars]
    vals = [b[1]["value"] for b in bars]
    lows = [max(0.0, v - (b[1]["low"] if b[1]["low"] is not None else v)) for v, b in zip(vals, bars, strict=True)]
    highs = [max(0.0, (b[1]["high"] if b[1]["high"] is not None else v) - v) for v, b in zip(vals, bars, strict=True)]
    y = range(len(bars))
    ax.barh(list(y), vals, xerr=[lows, highs], color=colors or PALETTE[: len(bars)], alpha=0.85,
            error_kw={"ecolor": "#212121", "capsize": 4, "lw": 1.2})
    ax.set_yticks(list(y), labels)
    ax.invert_yaxis()
    ax.set_xlabel(xlabel)
    if limit01:
        ax.set_xlim(0, 1.02)
    ax.grid(axis="y", visible=False)


def _rates(ax, data):
    _interval_bars(ax, data["bars"], "rate (bars: 95% interval)")


def _scan(ax, data):
    """Candidates' induced-behaviour rates with Wilson intervals; the verdict reads the lower end of
    the top bar against the stage's thresholds, drawn as lines."""
    _interval_bars(ax, data["bars"], "induced-behaviour rate, best pool (bars: Wilson 95% interval)",
                   colors=[RED if i == 0 else BLUE for i in range(len(data["bars"]))])
    t = data.get("thresholds") or {}
    if isinstance(t.get("backdoored"), (int, float)):
        ax.axvline(t["backdoored"], color=RED, lw=1, ls="--", label=f"backdoored: lower bound ≥ {t['backdoored']:.2f}")
    if isinstance(t.get("clean"), (int, float)):
        ax.axvline(t["clean"], color=GREEN, lw=1, ls=":", label=f"clean: lower bound < {t['clean']:.2f}")
    if t:
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.35 if len(data["bars"]) < 4 else -0.2), ncol=2,
                  fontsize=8, frameon=False)


def _members(ax, data):
    vals = [b[1]["value"] for b in data["bars"]]
    inside = all(0 <= v <= 1 for v in vals)
    colors = [GREEN if "(champion)" in b[0] else BLUE for b in data["bars"]]
    arrow = "higher is better" if data["direction"] == "max" else "lower is better"
    _interval_bars(ax, data["bars"], f"{data['metric']} ({arrow}; bars: 95% interval)", limit01=inside, colors=colors)


def _confusion(ax, cm):
    grid = [[cm["tp"], cm["fn"]], [cm["fp"], cm["tn"]]]
    ax.imshow(grid, cmap="Blues", vmin=0, vmax=max(1, max(max(r) for r in grid)))
    for i in range(2):
        for j in range(2):
            v = grid[i][j]
            ax.text(j, i, f"{v:,}", ha="center", va="center", fontsize=13,
                    color="white" if v > 0.6 * max(1, max(max(r) for r in grid)) else "#212121")
    ax.set_xticks([0, 1], ["backdoor fired", "did not fire"])
    ax.set_yticks([0, 1], ["trigger present", "clean prompt"])
    ax.grid(False)
    for s in ax.spines.values():
        s.set_visible(False)


def _layers(ax, data):
    styles = {"probe": (BLUE, "contrast-pair probe (detector)", "-"),
              "control": (GREY, "same probe on the control (trigger-exposed when trained)", "--"),
              "control_base": ("#8d6e63", "same probe on the clean base", "-."),
              "supervised": (GREEN, "supervised probe (sees the trigger)", ":")}
    for key, (color, label, ls) in styles.items():
        if key in data:
            xs, ys = zip(*data[key], strict=True)
            ax.plot(xs, ys, ls, color=color, marker="o", ms=3, lw=1.5, label=label)
    if isinstance(data.get("random_best"), (int, float)):
        ax.axhline(data["random_best"], color=ORANGE, lw=1, ls="-.", label="best random direction (best layer)")
    ax.axhline(0.5, color="#9e9e9e", lw=0.8)
    ax.set_xlabel("layer (0 = embeddings)")
    ax.set_ylabel("AUROC")
    ax.set_ylim(0, 1.02)
    ax.legend(loc="lower right", fontsize=8, frameon=False)


def _roc(ax, data):
    xs, ys = zip(*data["points"], strict=True)
    label = "best layer" + (f" {int(data['layer'])}" if isinstance(data.get("layer"), (int, float)) else "")
    if isinstance(data.get("auroc"), (int, float)):
        label += f" (AUROC {data['auroc']:.3f})"
    ax.plot(xs, ys, color=BLUE, lw=1.8, label=label, drawstyle="steps-post")
    ax.plot([0, 1], [0, 1], "--", color="#9e9e9e", lw=0.8, label="chance")
    ax.set_xlabel("false-positive rate")
    ax.set_ylabel("true-positive rate")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_aspect("equal")
    ax.legend(loc="lower right", fontsize=8, frameon=False)


def _shap(ax, data):
    feats = data["features"]
    y = range(len(feats))
    ax.barh(list(y), [abs(f[1]) for f in feats], color=BLUE, alpha=0.85)
    ax.set_yticks(list(y), [_label(f[0], 28) for f in feats])
    ax.invert_yaxis()
    ax.set_xlabel("mean |SHAP value|")
    ax.grid(axis="y", visible=False)


def _traffic(ax, data):
    left = 0.0
    for i, (name, w) in enumerate(data["split"]):
        ax.barh([0], [w], left=left, color=PALETTE[i % len(PALETTE)], label=_label(name, 40))
        if w >= 0.06:
            ax.text(left + w / 2, 0, f"{100 * w:.0f}%", ha="center", va="center", color="white", fontsize=9)
        left += w
    ax.set_xlim(0, max(1.0, left))
    ax.set_yticks([])
    ax.set_xlabel("share of traffic")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.45), ncol=2, fontsize=8, frameon=False)
    ax.grid(False)


def render_trend(path: Path, data: dict[str, Any]) -> None:
    series = data["series"]
    fig, axes = plt.subplots(len(series), 1, figsize=(6.4, 1.7 * len(series) + 0.4), sharex=True, squeeze=False)
    all_days = sorted({p[0] for pts in series.values() for p in pts})
    pos = {d: i for i, d in enumerate(all_days)}
    for ax, (name, pts) in zip(axes[:, 0], series.items(), strict=True):
        xs = [pos[p[0]] for p in pts]
        ys = [p[1] for p in pts]
        ax.plot(xs, ys, color=BLUE, marker="o", ms=3, lw=1.5)
        if all(p[2] is not None and p[3] is not None for p in pts):
            ax.fill_between(xs, [p[2] for p in pts], [p[3] for p in pts], color=BLUE, alpha=0.15, lw=0)
        ax.set_ylabel(_label(name, 18), fontsize=8)
    step = max(1, len(all_days) // 8)
    axes[-1, 0].set_xticks(range(0, len(all_days), step), [all_days[i] for i in range(0, len(all_days), step)],
                           rotation=30, ha="right")
    _save(fig, path)


KINDS = {"loss": (_loss, (6.4, 2.8)), "rates": (_rates, (6.4, 1.8)), "members": (_members, (6.4, None)),
         "confusion": (_confusion, (3.6, 2.8)), "layers": (_layers, (6.4, 3.0)), "roc": (_roc, (3.8, 3.8)),
         "shap": (_shap, (6.4, None)), "traffic": (_traffic, (6.4, 1.6)),
         "scan": (_scan, (6.4, None)), "rates_tall": (_rates, (6.4, None))}


def render(kind: str, data: dict[str, Any], path: Path) -> Path:
    """Draw one chart of ``kind`` to ``path`` (an .svg file)."""
    if kind == "trend":
        render_trend(path, data)
        return path
    fn, (w, h) = KINDS[kind]
    if h is None:  # one row per bar
        rows = len(data.get("bars") or data.get("features") or [])
        h = 0.9 + 0.42 * rows
    fig, ax = plt.subplots(figsize=(w, h))
    fn(ax, data)
    _save(fig, path)
    return path
