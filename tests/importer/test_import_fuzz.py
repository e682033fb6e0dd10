"""Bad input at the import door, generated: random metadata documents (JSON, YAML, model cards with
front matter, MLmodel files) and random names go through the real import into a real registry.
Every input is either imported or refused with ``ImportRefused`` (one message naming the field or
the file); nothing else may escape, and a refused input writes nothing."""

from __future__ import annotations

import json
import uuid

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.importer.helpers import counts, write
from vigil.importer import ImportRefused, import_path
from vigil.registry.versions import RegistryError, validate_name

KEYS = st.sampled_from(["name", "model_name", "metrics", "accuracy", "f1", "eval_results", "results", "params", "hyperparameters",
                        "learning_rate", "model-index", "dataset", "datasets", "task", "framework", "base_model", "value", "unit",
                        "metric", "scores", "recall_fraction", "loss", "epochs", "tags", "description", "license", "split"])
LEAVES = st.one_of(st.none(), st.booleans(), st.integers(-10**12, 10**12), st.floats(allow_nan=True, allow_infinity=True),
                   st.text(max_size=30), st.sampled_from(["0.9", "95%", "high", "", "fraction", "percent", "NaN"]))
DOCS = st.recursive(LEAVES, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                     st.dictionaries(st.one_of(KEYS, st.text(max_size=10)), inner, max_size=5)),
                    max_leaves=16)


def _render(kind: str, doc) -> tuple[str, str]:
    if kind == "json":
        return "meta.json", json.dumps(doc, allow_nan=True)
    if kind == "yaml":
        return "meta.yaml", yaml.safe_dump(doc, allow_unicode=True)
    if kind == "card":
        return "README.md", f"---\n{yaml.safe_dump(doc, allow_unicode=True)}---\n\nA model.\n"
    return "MLmodel", yaml.safe_dump(doc if isinstance(doc, dict) else {"flavors": doc}, allow_unicode=True)


@pytest.fixture
def import_root(vigil_env):
    return vigil_env / "imports"


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(kind=st.sampled_from(["json", "yaml", "card", "mlmodel"]), doc=DOCS, name=st.one_of(st.none(), st.text(max_size=40)))
def test_random_metadata_is_imported_or_refused_cleanly(registry, engine, import_root, kind, doc, name):
    fname, text = _render(kind, doc)
    folder = import_root / uuid.uuid4().hex[:8]
    path = write(folder / fname, text) if kind in ("json", "yaml") else write(folder / fname, text).parent
    before = counts(engine)
    try:
        r = import_path(path, registry, name=name)
    except ImportRefused as e:
        msg = str(e)
        assert msg and "Traceback" not in msg
        assert counts(engine) == before  # a refused input changes no row
        return
    assert r.ref and counts(engine)["model_versions"] >= before["model_versions"]


@settings(deadline=None)
@given(name=st.text(max_size=300))
def test_any_model_or_group_name_is_accepted_or_refused_naming_the_field(name):
    from vigil.groups.records import validate_group_name

    for validate in (lambda n: validate_name(n, "name"), validate_group_name):
        try:
            validate(name)
        except RegistryError as e:
            assert "name" in str(e)


@pytest.mark.parametrize("doc,where", [
    pytest.param({"\x00": None}, 'key', id="nul-in-a-key"),
    pytest.param({"name": "ok", "metrics": {"accuracy": 0.9}, "description": "a\x00b"}, "description", id="nul-in-a-value"),
])
def test_nul_characters_are_refused_at_the_door(registry, engine, import_root, doc, where):
    # found by the fuzz above: PostgreSQL's jsonb refused the row with a DataError deep in the INSERT
    path = write(import_root / "nul" / "meta.json", json.dumps(doc))
    before = counts(engine)
    with pytest.raises(ImportRefused, match=rf"meta\.json: .*{where}.* NUL character"):
        import_path(path, registry)
    assert counts(engine) == before
