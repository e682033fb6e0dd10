"""The site's warehouse read (site_builder.snapshot) against the read it replaced (kept in
bench/warehouse_read.py): on a real PostgreSQL warehouse with several nights of nightly
evaluations and comparisons, the pages planned from both are identical, and the snapshots are
equal once the parts the new read leaves in the database (old nightly details, old comparison
metrics) are set aside."""

from __future__ import annotations

import json
from datetime import timedelta

import pandas as pd
import pytest
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st

from bench.warehouse_read import add_nights, legacy_read, same_pages, unread
from site_builder import snapshot as snapmod
from site_builder.snapshot import read_snapshot
from tests.site.fill import DAY0, _run, fill
from vigil.registry.versions import Registry
from vigil.storage.parquet_store import ParquetStore

FIELDS = ("versions", "evaluations", "groups", "members", "events", "comparisons", "runs", "curves", "probe_layers",
          "inference", "scan_examples", "scan_candidates")


@pytest.fixture
def nightly_warehouse(engine, tmp_path):
    """Stage-shaped versions and a group (fill), then four nights of nightly evaluations and three
    of comparisons, and the cases the read's rules turn on: a failed night newer than a version's
    newest succeeded one, a failed night older than it, and a version whose only nightly
    evaluation failed."""
    parquet = tmp_path / "warehouse"
    filled = fill(engine, parquet, lineages=2, sklearn_models=1, sklearn_versions=2, groups=1, nights=2)
    first = DAY0 + timedelta(days=3)
    add_nights(engine, first_night=first, nights=4, comparison_nights=3, templates=3)
    reg = Registry(engine)
    late = first + timedelta(days=5)
    reg.record_evaluation(filled.versions["sk0_0"], suite="evaluate-sklearn", status="failed", metrics={},
                          details={"error": "dataset unreadable"},
                          run=_run("nightly_evaluation", f"scheduled__{late}", "evaluate", late))
    reg.record_evaluation(filled.versions["sk0_1"], suite="evaluate-sklearn", status="failed", metrics={},
                          details={"error": "chunk crashed\nTraceback ...", "seconds": 3.5},
                          run=_run("nightly_evaluation", f"scheduled__{first}", "evaluate", first))
    reg.record_evaluation(filled.versions["evil"], suite="evaluate", status="failed", metrics={},
                          details={"error": "artifact hash mismatch"},
                          run=_run("nightly_evaluation", f"scheduled__{late}", "evaluate", late))
    return engine, parquet, filled


def test_pages_and_snapshot_equal_the_full_read(nightly_warehouse):
    engine, parquet, filled = nightly_warehouse
    new = read_snapshot(engine, parquet)
    with legacy_read():
        old = read_snapshot(engine, parquet)
    assert same_pages(old, new) == []
    assert len(new.evaluations) == len(old.evaluations) > 4 * 7
    unread(old)
    for f in FIELDS:
        assert getattr(new, f) == getattr(old, f), f
    # what the rules kept and left out, on this data
    sk = [e for e in new.evaluations if e["model_version_id"] == filled.versions["sk0_0"] and e["suite"] == "evaluate-sklearn"]
    succeeded = [e for e in sk if e["status"] == "succeeded"]
    assert all(set(e["details"]) <= {"seconds"} for e in succeeded[:-1])
    assert any(e["details"] for e in succeeded[:-1])  # the Evaluations table shows each one's seconds
    assert succeeded[-1]["details"]["shap_importance"]  # the newest succeeded one: its page shows SHAP
    assert sk[-1]["status"] == "failed" and sk[-1]["details"] == {"error": "dataset unreadable"}
    assert [e["details"] for e in new.evaluations if e["status"] == "failed" and e["model_version_id"] ==
            filled.versions["sk0_1"]] == [{"error": "chunk crashed\nTraceback ...", "seconds": 3.5}]
    assert all(e["details"] is not None for e in new.evaluations if e["suite"] not in snapmod.TRIMMED_SUITES)
    days = sorted({c["logical_date"] for c in new.comparisons})
    assert len(days) >= 3
    assert all((c["metrics"] is None) == (c["logical_date"] < days[-1]) for c in new.comparisons)


def test_the_read_gives_the_connection_back_with_psycopgs_json_loaders(engine):
    from psycopg.pq import Format
    from psycopg.types.json import JsonbLoader

    read_snapshot(engine)
    with engine.connect() as c:
        raw = c.connection.driver_connection
        oid = raw.adapters.types["jsonb"].oid
        assert raw.adapters.get_loader(oid, Format.TEXT) is JsonbLoader
        assert c.execute(sa.text("""SELECT '{"a": [1, 2.5, "x"]}'::jsonb""")).scalar() == {"a": [1, 2.5, "x"]}


_json = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner, max_size=5),
    max_leaves=20)


@given(_json)
def test_json_decoding_gives_what_json_loads_gives(value):
    text = json.dumps(value).encode()
    got, want = snapmod._loads(text), json.loads(text)
    assert got == want and json.dumps(got) == json.dumps(want)  # same values, same float reprs and key order


def test_parquet_read_equals_the_store_read_for_one_schema_and_for_mixed_ones(tmp_path):
    store = ParquetStore(tmp_path)
    store.write("training_curve", DAY0, "1-train-backdoor", pd.DataFrame({"step": [1, 2], "loss": [2.0, 1.5], "phase": "a"}))
    store.write("training_curve", DAY0 + timedelta(days=1), "1-train-backdoor", pd.DataFrame({"step": [1], "loss": [1.2], "phase": "a"}))
    store.write("training_curve", DAY0, "2-safety-train", pd.DataFrame({"step": [5, 6], "loss": [0.9, 0.8], "phase": "b"}))
    one = snapmod._read_kind(store, "training_curve")
    pd.testing.assert_frame_equal(one, store.read("training_curve"))
    assert snapmod._parquet_by_key(store, "training_curve") == {
        1: [{"step": 1, "loss": 1.2, "phase": "a", "logical_date": str(DAY0 + timedelta(days=1))}],
        2: [{"step": 5, "loss": 0.9, "phase": "b", "logical_date": str(DAY0)},
            {"step": 6, "loss": 0.8, "phase": "b", "logical_date": str(DAY0)}]}
    # a partition with other columns: the store's own read (columns united, gaps null)
    store.write("training_curve", DAY0, "3", pd.DataFrame({"step": [1], "epoch": [0.5]}))
    pd.testing.assert_frame_equal(snapmod._read_kind(store, "training_curve"), store.read("training_curve"))
    assert snapmod._parquet_by_key(store, "training_curve")[3] == [
        {"step": 1, "loss": None, "phase": None, "epoch": 0.5, "logical_date": str(DAY0)}]


def test_the_nightly_suites_are_the_pages_and_the_dags():
    from site_builder.pagedata import NIGHTLY_SUITES
    from vigil.lifecycle.specs import NIGHTLY_STAGES

    assert snapmod.NIGHTLY_SUITES == NIGHTLY_SUITES == NIGHTLY_STAGES
    assert set(snapmod.TRIMMED_SUITES) - set(NIGHTLY_SUITES) == {"analyze"}  # the analyses nightly also runs


def test_head_has_the_read_indexes(engine):
    with engine.connect() as c:
        names = set(c.execute(sa.text("SELECT indexname FROM pg_indexes WHERE schemaname = 'public'")).scalars())
    assert {"ix_evaluations_run", "ix_model_versions_run", "ix_comparisons_run", "ix_evaluations_succeeded"} <= names
