"""One metric catalogue (contract.metrics): every metric a stage writes is in it, every reader
takes directions from it, and a metric it does not know gets no direction instead of a guess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from contract import metrics as catalogue
from contract.manifest import read_manifest
from evaluation.comparison import ComparisonError, Outputs, Policy, compare_paired, compare_summaries
from site_builder import alerts, pagedata


def _uncatalogued(root: Path) -> dict[str, list[str]]:
    """Metric names of every stage manifest under ``root`` that the catalogue does not know."""
    out: dict[str, list[str]] = {}
    manifests = sorted(root.rglob("manifest.json"))
    assert manifests, f"no stage manifests under {root}"
    for path in manifests:
        m = read_manifest(path)
        missing = sorted(k for k in m.metrics if not catalogue.is_known(k))
        if missing:
            out[f"{m.stage} ({path.parent.name})"] = missing
    return out


def test_contract_imports_only_the_standard_library_and_pydantic():
    """What every side imports stays light: no torch, numpy, Airflow or SQLAlchemy behind it, in any
    module of the package (the stage specs under contract.specs included)."""
    import pkgutil

    import contract

    modules = sorted(m.name for m in pkgutil.walk_packages(contract.__path__, "contract."))
    assert {"contract.manifest", "contract.specs", "contract.specs.train_backdoor", "contract.zoo"} <= set(modules)
    code = (f"import sys; before = set(sys.modules); import {', '.join(modules)}; "
            "import json; print(json.dumps(sorted({m.split('.')[0] for m in set(sys.modules) - before})))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    # _sysconfigdata_*: the standard library's sysconfig data for this platform (not in stdlib_module_names)
    loaded = {m for m in json.loads(out.stdout) if m != "contract" and not m.startswith("_sysconfigdata")}
    allowed = set(sys.stdlib_module_names) | {"pydantic", "pydantic_core", "typing_extensions", "annotated_types",
                                              "typing_inspection"}
    assert loaded <= allowed, loaded - allowed


def test_every_metric_the_sklearn_stages_write_is_catalogued(sk_dir):
    assert _uncatalogued(sk_dir) == {}


@pytest.mark.slow
def test_every_metric_the_llm_stages_write_is_catalogued(small_chain):
    assert _uncatalogued(Path(small_chain["base"]).parent) == {}


def test_every_catalogued_suite_is_a_stage_or_a_documented_writer():
    from contract.stages import STAGES

    writers = set(STAGES) | {"import", "comparison"}
    for m in catalogue.METRICS.values():
        assert m.suites and set(m.suites) <= writers, m
        assert m.direction in ("higher", "lower", "none") and m.label and m.unit, m


def test_metric_names_the_site_reads_are_catalogued():
    names = [*pagedata.BACKDOOR_ROWS, *pagedata.PROBE_ROWS, *pagedata.PERSISTENCE_ROWS, *pagedata.TREND_PRIORITY,
             *pagedata.SCORE_METRICS, *(k for k, _ in pagedata.TABLE_METRICS),
             "probe_auroc_best", "probe_auroc_random_best", "probe_auroc_control", "persistence"]
    assert [n for n in names if not catalogue.is_known(n)] == []


def test_canonical_names_of_imported_metrics_are_catalogued():
    from vigil.importer.rules import METRICS as IMPORT_RULES

    targets = {r.target for r in IMPORT_RULES.values()}
    assert sorted(t for t in targets if t not in catalogue.METRICS) == []


def test_families_and_interval_parts():
    assert catalogue.split_interval("roc_auc_ci_low") == ("roc_auc", "_ci_low")
    assert catalogue.split_interval("before_clean_quality_n") == ("before_clean_quality", "_n")
    assert catalogue.is_known("trigger_candidate_rate_ci_high")
    assert catalogue.lookup("before_activation_rate_triggered").label.endswith("before safety training")
    assert catalogue.direction("before_activation_rate_triggered") is None  # a baseline, not a score
    assert catalogue.direction("mean_loss") is None and catalogue.is_known("mean_loss")
    assert not catalogue.is_known("after_activation_rate_triggered")


@pytest.mark.parametrize("name, expected", [("mse", "lower"), ("rmse", "lower"), ("mae", "lower"), ("r2", "higher"),
                                            ("roc_auc", "higher"), ("activation_rate_triggered", "lower"),
                                            ("probe_best_layer", None), ("made_up_score", None)])
def test_direction_comes_from_the_catalogue(name, expected):
    assert catalogue.direction(name) == expected


def test_unknown_primary_metric_is_refused_naming_the_field_and_the_known_metrics():
    with pytest.raises(ComparisonError, match=r"primary_metric 'made_up_score' is not in the metric catalogue.*roc_auc"):
        Policy("made_up_score", "max")
    with pytest.raises(ComparisonError, match=r"primary_metric 'probe_best_layer' has no direction"):
        Policy("probe_best_layer", "max")
    with pytest.raises(ComparisonError, match=r"guardrails: metric 'made_up_score'"):
        Policy("roc_auc", "max", {"made_up_score": 0.1})
    with pytest.raises(ComparisonError, match="contradicts the metric catalogue: for mse lower is better"):
        Policy("mse", "max")
    assert Policy("mse").direction == "min" and Policy("accuracy").direction == "max"


def test_group_with_unknown_primary_metric_is_refused(engine):
    from vigil.groups.membership import Groups
    from vigil.groups.records import GroupError

    with pytest.raises(GroupError, match="primary_metric 'made_up_score' is not in the metric catalogue"):
        Groups(engine).create("unknown metric", primary_metric="made_up_score", direction="max")


def test_unknown_metric_is_compared_without_a_direction():
    champ = {"accuracy": 0.8, "accuracy_n": 500, "made_up_score": 3.0, "mse": 0.20}
    chall = {"accuracy": 0.8, "accuracy_n": 500, "made_up_score": 5.0, "mse": 0.10}
    r = compare_summaries(champ, chall, Policy("accuracy"))
    assert r.metrics["made_up_score"].direction is None and r.metrics["made_up_score"].improvement is None
    assert r.metrics["mse"].direction == "min" and r.metrics["mse"].improvement == pytest.approx(0.10)
    rows = pagedata._comparison_rows(r.to_json(), "accuracy")
    assert [row[0] for row in rows] == ["accuracy (primary)", "made_up_score (no direction)", "mse"]
    y = np.array([0, 1] * 20)
    paired = compare_paired(y, Outputs(y, extra={"loss": np.ones(40)}), Outputs(y, extra={"loss": np.zeros(40)}),
                            Policy("accuracy"), metrics=["accuracy", "mean_loss"], n_boot=50)
    assert paired.metrics["mean_loss"].direction is None and paired.metrics["mean_loss"].improvement is None


def test_site_regression_alert_reads_directions_from_the_catalogue():
    def night(v, lo, hi, name):
        return {name: v, f"{name}_ci_low": lo, f"{name}_ci_high": hi}

    assert alerts.regression("mse", night(0.1, 0.09, 0.11, "mse"), night(0.3, 0.28, 0.32, "mse"))
    assert not alerts.regression("mse", night(0.3, 0.28, 0.32, "mse"), night(0.1, 0.09, 0.11, "mse"))
    assert alerts.regression("activation_rate_triggered", night(0.1, 0.05, 0.15, "activation_rate_triggered"),
                             night(0.9, 0.85, 0.95, "activation_rate_triggered"))
    assert not alerts.regression("made_up_score", night(1, 0.9, 1.1, "made_up_score"), night(9, 8.9, 9.1, "made_up_score"))
