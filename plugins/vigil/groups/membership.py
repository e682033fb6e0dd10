"""Model groups: a champion, its challengers, traffic weights, promotion with an audit trail
(the nightly champion-vs-challenger comparison is :mod:`vigil.groups.comparison`).

Invariants, and who keeps them:

* one champion per group: the database (partial unique index ``uq_group_one_champion``);
* routed weights sum to 1: every change runs under a row lock on the group and the champion
  takes the remainder (1 - the challengers' weights), so the sum cannot drift;
* every change writes a ``group_events`` row (who, when, why, the metrics that justified it) in
  the same transaction as the change: there is no change without its event;
* two promotions at once: both lock the group row first (``SELECT ... FOR UPDATE``), so they run
  one after the other and each sees the other's result.

User-supplied names only ever travel as bound parameters; the one identifier derived from a name
(the ``inference_log_<slug>`` table) is a sanitised slug quoted with ``psycopg.sql.Identifier``
(see :mod:`vigil.groups.log_table`).
"""

from __future__ import annotations

import logging
import math
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from contract import jsonsafe
from vigil.groups.records import Group, GroupError, Member, default_actor, slugify, validate_group_name
from vigil.registry.versions import ModelVersion, NotFound, Registry

log = logging.getLogger(__name__)

WEIGHT_TOL = 1e-9


_GROUP_COLS = ("id, name, slug, primary_metric, direction, guardrails, auto_promote, shadow, policy, description, "
               "created_at, deleted_at")


def _members(conn: Connection, group_id: int) -> list[Member]:
    rows = conn.execute(
        sa.text(
            """SELECT gm.model_version_id, m.name || ':' || mv.version AS ref, m.family, gm.role, gm.traffic_weight,
                      mv.artifact_uri, gm.added_at
               FROM group_members gm JOIN model_versions mv ON mv.id = gm.model_version_id
               JOIN models m ON m.id = mv.model_id
               WHERE gm.group_id = :g
               ORDER BY CASE gm.role WHEN 'champion' THEN 0 WHEN 'challenger' THEN 1 ELSE 2 END, gm.model_version_id"""
        ),
        {"g": group_id},
    )
    return [Member(*r) for r in rows]


def _load(conn: Connection, name: str, *, lock: bool = False) -> Group:
    q = f"SELECT {_GROUP_COLS} FROM model_groups WHERE name = :n AND deleted_at IS NULL"
    row = conn.execute(sa.text(q + (" FOR UPDATE" if lock else "")), {"n": name}).one_or_none()
    if row is None:
        known = list(conn.execute(sa.text(
            "SELECT name FROM model_groups WHERE deleted_at IS NULL ORDER BY name LIMIT 10")).scalars())
        hint = f"; groups: {', '.join(repr(k) for k in known)}" if known else "; no groups exist (vigil groups create)"
        raise NotFound(f"no model group {name!r}{hint}")
    g = Group(**dict(row._mapping))
    g.members = _members(conn, g.id)
    return g


def _event(conn: Connection, g: Group, event_type: str, *, actor: str, reason: str = "",
           from_id: int | None = None, to_id: int | None = None, snapshot: dict | None = None,
           details: dict | None = None) -> int:
    return conn.execute(
        sa.text(
            """INSERT INTO group_events (group_id, event_type, actor, reason, from_version_id, to_version_id,
                 metrics_snapshot, details)
               VALUES (:g, :t, :a, :r, :f, :to, CAST(:s AS jsonb), CAST(:d AS jsonb)) RETURNING id"""
        ),
        {"g": g.id, "t": event_type, "a": actor, "r": reason, "f": from_id, "to": to_id,
         "s": jsonsafe.dumps(snapshot or {}), "d": jsonsafe.dumps(details or {})},
    ).scalar_one()


def _rebalance(conn: Connection, g: Group) -> dict[int, float]:
    """Give the champion the remainder of the challengers' traffic; check the sum is 1."""
    members = _members(conn, g.id)
    challengers = sum(m.traffic_weight for m in members if m.role == "challenger")
    if challengers > 1 + WEIGHT_TOL:
        raise GroupError(
            f"challenger weights of group {g.name!r} sum to {challengers:.6g}, more than 1: lower a challenger's "
            "--weight (the champion takes the remainder)"
        )
    champ = next((m for m in members if m.role == "champion"), None)
    if champ is not None:
        conn.execute(
            sa.text("UPDATE group_members SET traffic_weight = :w, updated_at = now() WHERE group_id = :g AND role = 'champion'"),
            {"w": max(0.0, 1.0 - challengers), "g": g.id},
        )
    weights = {m.version_id: m.traffic_weight for m in _members(conn, g.id) if m.role != "retired"}
    if champ is not None and abs(sum(weights.values()) - 1) > 1e-6:  # pragma: no cover - guarded above
        raise GroupError(f"weights of group {g.name!r} sum to {sum(weights.values())}, not 1")
    return weights


def _version_snapshot(reg: Registry, version_id: int | None) -> dict[str, Any]:
    if version_id is None:
        return {}
    v = reg.get_by_id(version_id)
    return {"ref": v.ref, "metrics": v.metrics}


# --------------------------------------------------------------------------- the service
class Groups:
    def __init__(self, engine: Engine):
        self.engine = engine
        self.registry = Registry(engine)

    # reads -----------------------------------------------------------------
    def get(self, name: str) -> Group:
        with self.engine.connect() as c:
            return _load(c, name)

    def list(self) -> list[Group]:
        with self.engine.connect() as c:
            names = list(c.execute(sa.text(
                "SELECT name FROM model_groups WHERE deleted_at IS NULL ORDER BY name")).scalars())
            return [_load(c, n) for n in names]

    def events(self, name: str, limit: int = 100) -> list[dict[str, Any]]:
        with self.engine.connect() as c:
            g = _load(c, name)
            rows = c.execute(
                sa.text(
                    """SELECT e.id, e.event_type, e.actor, e.reason, e.at, e.metrics_snapshot, e.details,
                              fm.name || ':' || fv.version AS from_ref, tm.name || ':' || tv.version AS to_ref
                       FROM group_events e
                       LEFT JOIN model_versions fv ON fv.id = e.from_version_id LEFT JOIN models fm ON fm.id = fv.model_id
                       LEFT JOIN model_versions tv ON tv.id = e.to_version_id LEFT JOIN models tm ON tm.id = tv.model_id
                       WHERE e.group_id = :g ORDER BY e.id DESC LIMIT :l"""
                ),
                {"g": g.id, "l": limit},
            )
            return [dict(r._mapping) for r in rows]

    def comparisons(self, name: str, limit: int = 50) -> list[dict[str, Any]]:
        with self.engine.connect() as c:
            g = _load(c, name)
            rows = c.execute(
                sa.text(
                    """SELECT c.logical_date, c.decision, c.reasons, c.primary_metric, c.metrics,
                              cm.name || ':' || cv.version AS champion, hm.name || ':' || hv.version AS challenger
                       FROM comparisons c
                       JOIN model_versions cv ON cv.id = c.champion_version_id JOIN models cm ON cm.id = cv.model_id
                       JOIN model_versions hv ON hv.id = c.challenger_version_id JOIN models hm ON hm.id = hv.model_id
                       WHERE c.group_id = :g ORDER BY c.logical_date DESC, c.id DESC LIMIT :l"""
                ),
                {"g": g.id, "l": limit},
            )
            return [dict(r._mapping) for r in rows]

    # writes ----------------------------------------------------------------
    def create(
        self,
        name: str,
        *,
        primary_metric: str,
        direction: str,
        guardrails: dict[str, float] | None = None,
        auto_promote: bool = False,
        shadow: bool = False,
        alpha: float = 0.05,
        min_effect: float = 0.0,
        description: str = "",
        actor: str | None = None,
        reason: str = "",
    ) -> Group:
        """Create a group and its ``inference_log_<slug>`` table in one transaction."""
        from evaluation.comparison import ComparisonError, Policy
        from vigil.groups.log_table import create_table

        validate_group_name(name)
        if not primary_metric or len(primary_metric) > 100:
            raise GroupError("--primary-metric must be 1-100 characters, e.g. accuracy, roc_auc, activation_rate_triggered")
        if direction not in ("min", "max"):
            raise GroupError(f"--direction {direction!r} must be 'min' (lower is better) or 'max' (higher is better)")
        try:
            Policy(primary_metric, direction, dict(guardrails or {}), alpha=alpha, min_effect=min_effect)
        except ComparisonError as e:
            raise GroupError(str(e)) from None
        slug = slugify(name)
        actor = actor or default_actor()
        policy = {"alpha": alpha, "min_effect": min_effect}
        with self.engine.begin() as c:
            clash = c.execute(sa.text("SELECT name FROM model_groups WHERE deleted_at IS NULL AND (name = :n OR slug = :s)"),
                              {"n": name, "s": slug}).scalar()
            if clash is not None:
                raise GroupError(f"a model group named {clash!r} already exists (table inference_log_{slug}); "
                                 "pick another name or `vigil groups delete` it first")
            gid = c.execute(
                sa.text(
                    """INSERT INTO model_groups (name, slug, primary_metric, direction, guardrails, auto_promote, shadow,
                         policy, description)
                       VALUES (:n, :s, :pm, :d, CAST(:gr AS jsonb), :ap, :sh, CAST(:p AS jsonb), :desc) RETURNING id"""
                ),
                {"n": name, "s": slug, "pm": primary_metric, "d": direction, "gr": jsonsafe.dumps(guardrails or {}),
                 "ap": auto_promote, "sh": shadow, "p": jsonsafe.dumps(policy), "desc": description},
            ).scalar_one()
            g = _load(c, name, lock=True)
            create_table(c, g.slug)
            _event(c, g, "create", actor=actor, reason=reason,
                   details={"primary_metric": primary_metric, "direction": direction, "guardrails": guardrails or {},
                            "auto_promote": auto_promote, "shadow": shadow, "policy": policy, "table": g.table})
            log.info("created group %r (id %d, table %s)", name, gid, g.table)
            return g

    def add(self, name: str, ref: str, *, role: str = "challenger", weight: float = 0.0,
            actor: str | None = None, reason: str = "") -> Group:
        """Add a version (or change its weight/role). The champion's weight is always the
        remainder of the challengers' weights."""
        if role not in ("champion", "challenger"):
            raise GroupError(f"--role {role!r} must be 'champion' or 'challenger' (use promote to change the champion)")
        if not isinstance(weight, (int, float)) or not 0 <= weight <= 1 or not math.isfinite(weight):
            raise GroupError(f"--weight {weight!r} must be between 0 and 1 (the share of traffic this member scores)")
        v = self.registry.get(ref)
        actor = actor or default_actor()
        with self.engine.begin() as c:
            g = _load(c, name, lock=True)
            existing = next((m for m in g.members if m.version_id == v.id), None)
            if role == "champion":
                if g.champion is not None and g.champion.version_id != v.id:
                    raise GroupError(f"group {name!r} already has champion {g.champion.ref}; "
                                     f"use `vigil groups promote {name!r} {v.ref} --reason ...` to replace it")
                weight = 0.0  # set by _rebalance
            self._check_family(g, v)
            if existing is not None and existing.role == "champion" and role == "challenger":
                raise GroupError(f"{v.ref} is the champion of {name!r}; promote another version first")
            c.execute(
                sa.text(
                    """INSERT INTO group_members (group_id, model_version_id, role, traffic_weight)
                       VALUES (:g, :v, :r, :w)
                       ON CONFLICT (group_id, model_version_id) DO UPDATE
                         SET role = EXCLUDED.role, traffic_weight = EXCLUDED.traffic_weight, updated_at = now()"""
                ),
                {"g": g.id, "v": v.id, "r": role, "w": weight},
            )
            weights = _rebalance(c, g)
            _event(c, g, "add" if existing is None else "update", actor=actor, reason=reason, to_id=v.id,
                   snapshot=_version_snapshot(self.registry, v.id),
                   details={"role": role, "weight": weight, "weights": {str(k): w for k, w in weights.items()}})
            return _load(c, name)

    def remove(self, name: str, ref: str, *, actor: str | None = None, reason: str = "") -> Group:
        """Retire a challenger (weight 0); its rows in the log and comparisons stay."""
        v = self.registry.get(ref)
        with self.engine.begin() as c:
            g = _load(c, name, lock=True)
            m = next((m for m in g.members if m.version_id == v.id), None)
            if m is None:
                raise GroupError(f"{v.ref} is not a member of group {name!r}")
            if m.role == "champion":
                raise GroupError(f"{v.ref} is the champion of {name!r}: promote another version or roll back first")
            c.execute(sa.text("UPDATE group_members SET role = 'retired', traffic_weight = 0, updated_at = now() "
                              "WHERE group_id = :g AND model_version_id = :v"), {"g": g.id, "v": v.id})
            _rebalance(c, g)
            _event(c, g, "retire", actor=actor or default_actor(), reason=reason, from_id=v.id)
            return _load(c, name)

    @staticmethod
    def _check_family(g: Group, v: ModelVersion) -> None:
        fams = {m.family for m in g.members if m.role != "retired" and m.version_id != v.id}
        if fams and v.family not in fams:
            raise GroupError(f"{v.ref} is a {v.family!r} model but group {g.name!r} holds {sorted(fams)[0]!r} models; "
                             "a group compares models of one family on the same data")

    def promote(self, name: str, ref: str, *, reason: str, actor: str | None = None,
                metrics_snapshot: dict | None = None, event_type: str = "promote",
                details: dict | None = None) -> Group:
        """Make ``ref`` the champion in one transaction; the old champion is retired (weight 0)
        and the new one takes the remainder of the challengers' traffic."""
        if not reason or not reason.strip():
            raise GroupError("--reason is required: say why (it is written to the group's audit trail)")
        v = self.registry.get(ref)
        actor = actor or default_actor()
        with self.engine.begin() as c:
            g = _load(c, name, lock=True)  # serialises concurrent promotions of this group
            old = g.champion
            if old is not None and old.version_id == v.id:
                raise GroupError(f"{v.ref} is already the champion of {name!r}")
            self._check_family(g, v)
            if old is not None:
                c.execute(sa.text("UPDATE group_members SET role = 'retired', traffic_weight = 0, updated_at = now() "
                                  "WHERE group_id = :g AND model_version_id = :v"), {"g": g.id, "v": old.version_id})
            c.execute(
                sa.text(
                    """INSERT INTO group_members (group_id, model_version_id, role, traffic_weight) VALUES (:g, :v, 'champion', 0)
                       ON CONFLICT (group_id, model_version_id) DO UPDATE
                         SET role = 'champion', traffic_weight = 0, updated_at = now()"""
                ),
                {"g": g.id, "v": v.id},
            )
            weights = _rebalance(c, g)
            snap = metrics_snapshot if metrics_snapshot is not None else self._promotion_snapshot(c, g, old, v)
            _event(c, g, event_type, actor=actor, reason=reason, from_id=old.version_id if old else None, to_id=v.id,
                   snapshot=snap, details={**(details or {}), "weights": {str(k): w for k, w in weights.items()}})
            return _load(c, name)

    def _promotion_snapshot(self, c: Connection, g: Group, old: Member | None, new: ModelVersion) -> dict[str, Any]:
        """What justified a manual promotion: both versions' metrics and the latest comparison."""
        snap: dict[str, Any] = {"champion": _version_snapshot(self.registry, old.version_id if old else None),
                                "challenger": _version_snapshot(self.registry, new.id)}
        row = c.execute(
            sa.text("""SELECT logical_date, decision, reasons, metrics FROM comparisons
                       WHERE group_id = :g AND challenger_version_id = :v ORDER BY logical_date DESC LIMIT 1"""),
            {"g": g.id, "v": new.id},
        ).one_or_none()
        if row is not None:
            snap["comparison"] = {"logical_date": row.logical_date.isoformat(), "decision": row.decision,
                                  "reasons": row.reasons, "primary": (row.metrics.get("metrics") or {}).get(g.primary_metric)}
        return snap

    def rollback(self, name: str, *, reason: str = "", actor: str | None = None) -> Group:
        """Return to the champion before the current one (from the audit trail)."""
        with self.engine.connect() as c:
            g = _load(c, name)
            if g.champion is None:
                raise GroupError(f"group {name!r} has no champion to roll back")
            prev = c.execute(
                sa.text("""SELECT from_version_id FROM group_events WHERE group_id = :g AND to_version_id = :v
                           AND event_type IN ('promote', 'auto_promote', 'rollback') ORDER BY id DESC LIMIT 1"""),
                {"g": g.id, "v": g.champion.version_id},
            ).scalar()
        if prev is None:
            raise GroupError(f"group {name!r}: champion {g.champion.ref} was not promoted over another version; "
                             "there is nothing to roll back to")
        prev_ref = self.registry.get_by_id(prev).ref
        return self.promote(name, prev_ref, reason=reason or f"rollback from {g.champion.ref}", actor=actor,
                            event_type="rollback", details={"rolled_back": g.champion.ref})

    def delete(self, name: str, *, reason: str = "", actor: str | None = None,
               store=None) -> dict[str, Any]:
        """Archive the group's inference log to Parquet, then drop the table and mark the group
        deleted (its events and comparisons stay). The archive is written first: if anything
        after it fails, the table is still there."""
        from vigil.groups.log_table import archive_and_drop

        actor = actor or default_actor()
        with self.engine.begin() as c:
            g = _load(c, name, lock=True)
            archive = archive_and_drop(c, g, store=store)
            c.execute(sa.text("UPDATE model_groups SET deleted_at = now() WHERE id = :g"), {"g": g.id})
            _event(c, g, "delete", actor=actor, reason=reason, details=archive)
            return {"group": name, "id": g.id, **archive}
