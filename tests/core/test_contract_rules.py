"""One rule for group slugs and one JSON normaliser (contract.names, contract.jsonsafe): the schema
agrees with the slug rule, every name slugifies into it, and nothing Vigil stores holds a NaN."""

from __future__ import annotations

import json
import math
import re
from datetime import date, datetime, timezone
from pathlib import Path

import numpy as np
import pytest

from contract import jsonsafe
from contract.names import GROUP_SLUG_PATTERN, is_group_slug
from vigil.groups.records import slugify
from vigil.registry.versions import RunRef

MIGRATION = Path(__file__).resolve().parents[2] / "plugins/vigil/storage/migrations/versions/0001_initial.py"


def test_the_schema_checks_the_same_slug_pattern():
    (pattern,) = re.findall(r"slug ~ '([^']+)'", MIGRATION.read_text())
    assert pattern == GROUP_SLUG_PATTERN


@pytest.mark.parametrize(("value", "ok"), [
    pytest.param("fraud_model", True, id="clean"),
    pytest.param("a" * 40, True, id="longest"),
    pytest.param("a" * 41, False, id="too-long"),
    pytest.param("", False, id="empty"),
    pytest.param("Fraud", False, id="upper"),
    pytest.param("x; DROP TABLE models", False, id="sql"),
    pytest.param("a\n", False, id="trailing-newline"),
    pytest.param(None, False, id="not-a-string"),
])
def test_group_slug_rule(value, ok):
    assert is_group_slug(value) is ok


@pytest.mark.parametrize("name", ["Fraud model", "fraud_model", "ünïcödé group", "<script>", "x" * 100, "Группа", "--", "a_"])
def test_every_group_name_slugifies_into_the_rule(name):
    assert is_group_slug(slugify(name))


def test_to_json_normalises_what_numpy_dates_and_nonfinite_numbers_give():
    value = {"a": np.float64("nan"), "b": np.int64(3), "c": [float("inf"), np.float32(0.5)], 4: (date(2026, 1, 2),),
             "d": datetime(2026, 1, 2, 3, 4, tzinfo=timezone.utc), "e": {1, 2} - {2}, "f": np.bool_(True), "p": Path("/x")}
    out = jsonsafe.to_json(value)
    assert out == {"a": None, "b": 3, "c": [None, 0.5], "4": ["2026-01-02"], "d": "2026-01-02T03:04:00+00:00", "e": [1],
                   "f": True, "p": "/x"}
    assert isinstance(out["b"], int) and isinstance(out["f"], bool)
    assert jsonsafe.to_json([float("nan"), -math.inf], nonfinite="text") == ["nan", "-inf"]
    assert "NaN" not in jsonsafe.dumps(value) and json.loads(jsonsafe.dumps(value)) == out


def test_the_registry_stores_a_nan_metric_as_null_and_a_nan_param_as_its_text(registry):
    """PostgreSQL's jsonb refuses NaN: before the one normaliser, a NaN metric failed the record."""
    v = registry.register_version(name="m", family="llm", artifact_uri="/a", producer_key="p",
                                  params={"lr": float("nan")}, metrics={"auc": float("nan"), "n": np.int64(5)})
    got = registry.get_by_id(v.id)
    assert got.params["lr"] == "nan" and got.metrics == {"auc": None, "n": 5}
    registry.record_evaluation(v.id, suite="evaluate", run=RunRef("nightly_evaluation", "r", "evaluate", date(2026, 1, 1)),
                               metrics={"clean_quality": np.float64("inf")}, details={"x": [np.nan]})
    (ev,) = registry.evaluations(v.id)
    assert ev["metrics"] == {"clean_quality": None} and ev["details"] == {"x": [None]}


def test_a_folder_digest_is_the_same_from_disk_and_from_a_listing(tmp_path):
    """The importer hashes a listing, the stages and `vigil models verify` hash the folder: names
    that sort differently as strings and as paths ("a-c" < "a/b" < "a.d") must not split them."""
    from contract.hashing import sha256_file, sha256_path, tree_sha256

    for rel in ("a/b.txt", "a-c.txt", "a.d/x", "z", "A/B", "a b/c"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(rel)
    listing = {p.relative_to(tmp_path).as_posix(): sha256_file(p) for p in tmp_path.rglob("*") if p.is_file()}
    assert sha256_path(tmp_path) == tree_sha256(listing)
    assert sha256_path(tmp_path / "z") == sha256_file(tmp_path / "z")
    with pytest.raises(FileNotFoundError, match="no such file"):
        sha256_path(tmp_path / "missing")


def test_every_stage_spec_is_the_contracts_class():
    """One schema per stage: the Airflow side (forms, spec tasks) validates with the class the
    stage runs, looked up in the contract."""
    from contract.specs import spec_for, spec_module
    from contract.stages import STAGES
    from gpu_trainer.stages import load_stage

    for stage in STAGES:
        trainer = load_stage(stage).Spec
        assert spec_for(stage) is trainer and trainer.__module__ == spec_module(stage), stage


def test_an_unknown_stage_is_refused_naming_the_stages():
    from contract.specs import spec_for

    with pytest.raises(KeyError, match="train-backdoor"):
        spec_for("train-backdor")
