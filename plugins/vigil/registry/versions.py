"""The model registry: every model version any stage produces or imports, with lineage.

All writes are keyed by what produced them (``producer_key`` = dag_id/run_id/task_id for a
stage, ``import:<sha256>`` for an import), so re-running a task replaces its row instead of
adding one. Every write is one transaction: a failure leaves nothing half-written. User-given
names are bound parameters, never spliced into SQL.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from contract import jsonsafe
from contract.errors import UserError
from contract.manifest import StageManifest, sha256_path

NAME_MAX = 200
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
FAMILIES = ("llm", "sklearn", "external")


class RegistryError(UserError):
    """Bad input to the registry; the message names the field and the fix."""


class NotFound(RegistryError):
    pass


@dataclass(frozen=True)
class RunRef:
    """The Airflow run (or CLI invocation) that produced a write."""

    dag_id: str
    run_id: str
    task_id: str = ""
    logical_date: datetime | date | None = None

    @property
    def producer_key(self) -> str:
        return f"{self.dag_id}/{self.run_id}/{self.task_id}"

    @property
    def day(self) -> date:
        ld = self.logical_date
        if ld is None:
            return datetime.now(timezone.utc).date()
        return ld.date() if isinstance(ld, datetime) else ld


@dataclass
class ModelVersion:
    id: int
    name: str
    family: str
    version: int
    artifact_uri: str
    sha256: str | None
    params: dict[str, Any]
    metrics: dict[str, Any]
    status: str
    source: str
    stage: str | None
    parent_id: int | None
    created_at: datetime
    files: dict[str, str] = field(default_factory=dict)
    producer_key: str | None = None
    parent_ref: str | None = None
    run_dag_id: str | None = None
    run_run_id: str | None = None
    last_evaluated: date | None = None
    scorable: bool | None = None  # imports only: whether Vigil can run the model (None: built here)

    @property
    def ref(self) -> str:
        return f"{self.name}:{self.version}"

    def to_dict(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        d["ref"] = self.ref
        for k in ("created_at", "last_evaluated"):
            if d[k] is not None:
                d[k] = d[k].isoformat()
        return d


def validate_name(name: Any, field_name: str = "name", *, limit: int = NAME_MAX, what: str = "the model",
                  error: type[ValueError] = RegistryError) -> str:
    """A user-given name: any text (stored verbatim, always bound, never spliced), but not empty,
    not longer than ``limit`` and without control characters."""
    if not isinstance(name, str):
        raise error(f"{field_name} must be a string, got {type(name).__name__}")
    if not name.strip():
        raise error(f"{field_name} is empty: give {what} a name (1-{limit} characters)")
    if len(name) > limit:
        raise error(f"{field_name} is {len(name)} characters long; the limit is {limit}")
    if _CONTROL.search(name):
        raise error(f"{field_name} contains control characters (newline, tab, NUL...); remove them")
    return name


def parse_ref(ref: str) -> tuple[str, int | None]:
    """'NAME' or 'NAME:VERSION' (the last ':' followed by digits splits them)."""
    m = re.match(r"^(.*):(\d+)$", ref)
    if m:
        return m.group(1), int(m.group(2))
    return ref, None


_VERSION_COLS = """
    mv.id, m.name, m.family, mv.version, mv.artifact_uri, mv.sha256, mv.params, mv.metrics,
    mv.status, mv.source, mv.stage, mv.parent_id, mv.created_at, mv.files, mv.producer_key,
    (SELECT pm.name || ':' || p.version FROM model_versions p JOIN models pm ON pm.id = p.model_id
      WHERE p.id = mv.parent_id) AS parent_ref,
    r.dag_id AS run_dag_id, r.run_id AS run_run_id,
    (SELECT max(e.logical_date) FROM evaluations e WHERE e.model_version_id = mv.id) AS last_evaluated,
    (mv.mapping_report->>'scorable')::boolean AS scorable
"""
_VERSION_FROM = "model_versions mv JOIN models m ON m.id = mv.model_id LEFT JOIN runs r ON r.id = mv.run_id"


def _row_to_version(row) -> ModelVersion:
    return ModelVersion(**dict(row._mapping))


class Registry:
    def __init__(self, engine: Engine):
        self.engine = engine

    # ---------------------------------------------------------------- runs
    def upsert_run(self, conn: Connection, run: RunRef, *, state: str = "running", conf: dict | None = None,
                   run_type: str | None = None) -> int:
        return conn.execute(
            sa.text(
                """INSERT INTO runs (dag_id, run_id, logical_date, run_type, state, conf)
                   VALUES (:dag_id, :run_id, :ld, :rt, :state, CAST(:conf AS jsonb))
                   ON CONFLICT (dag_id, run_id) DO UPDATE
                     SET state = EXCLUDED.state, updated_at = now(),
                         logical_date = COALESCE(EXCLUDED.logical_date, runs.logical_date),
                         conf = CASE WHEN EXCLUDED.conf = '{}'::jsonb THEN runs.conf ELSE EXCLUDED.conf END
                   RETURNING id"""
            ),
            {"dag_id": run.dag_id, "run_id": run.run_id, "ld": run.logical_date, "rt": run_type, "state": state,
             "conf": jsonsafe.dumps(conf or {})},
        ).scalar_one()

    def finish_run(self, run: RunRef, state: str) -> None:
        with self.engine.begin() as c:
            self.upsert_run(c, run, state=state)

    # ---------------------------------------------------------------- writes
    def _model_id_locked(self, conn: Connection, name: str, family: str, description: str) -> int:
        if family not in FAMILIES:
            raise RegistryError(f"family {family!r} is not one of {', '.join(FAMILIES)}")
        mid = conn.execute(
            sa.text(
                """INSERT INTO models (name, family, description) VALUES (:n, :f, :d)
                   ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name RETURNING id, family"""
            ),
            {"n": name, "f": family, "d": description},
        ).one()
        if mid.family != family:
            raise RegistryError(
                f"model {name!r} is registered with family {mid.family!r}, not {family!r}; use another name"
            )
        # Row lock: version numbers for one model are handed out one writer at a time.
        conn.execute(sa.text("SELECT id FROM models WHERE id = :id FOR UPDATE"), {"id": mid.id})
        return mid.id

    def register_version(
        self,
        *,
        name: str,
        family: str,
        artifact_uri: str,
        producer_key: str,
        source: str = "stage",
        stage: str | None = None,
        sha256: str | None = None,
        files: dict[str, str] | None = None,
        params: dict[str, Any] | None = None,
        metrics: dict[str, Any] | None = None,
        parent_id: int | None = None,
        run: RunRef | None = None,
        manifest: dict | None = None,
        source_document: str | None = None,
        mapping_report: dict | None = None,
        description: str = "",
        conn: Connection | None = None,
    ) -> ModelVersion:
        """Insert a model version, or update the one this producer already wrote (idempotent)."""
        validate_name(name)
        if not artifact_uri:
            raise RegistryError("artifact_uri is empty: a version needs the location of its artifacts")
        if not producer_key:
            raise RegistryError("producer_key is empty: every write must say what produced it")
        if source not in ("stage", "import"):
            raise RegistryError(f"source {source!r} must be 'stage' or 'import'")
        if conn is None:
            with self.engine.begin() as c:
                return self.register_version(
                    name=name, family=family, artifact_uri=artifact_uri, producer_key=producer_key, source=source,
                    stage=stage, sha256=sha256, files=files, params=params, metrics=metrics, parent_id=parent_id,
                    run=run, manifest=manifest, source_document=source_document, mapping_report=mapping_report,
                    description=description, conn=c,
                )
        if parent_id is not None:
            exists = conn.execute(sa.text("SELECT 1 FROM model_versions WHERE id = :p"), {"p": parent_id}).scalar()
            if not exists:
                raise RegistryError(f"parent version id {parent_id} does not exist; register the parent first")
        model_id = self._model_id_locked(conn, name, family, description)
        run_pk = self.upsert_run(conn, run) if run else None
        values = {
            "model_id": model_id, "uri": artifact_uri, "sha": sha256, "files": jsonsafe.dumps(files or {}),
            "params": jsonsafe.dumps(params or {}, nonfinite="text"), "metrics": jsonsafe.dumps(metrics or {}),
            "parent": parent_id, "source": source, "stage": stage, "pk": producer_key, "run": run_pk,
            "manifest": jsonsafe.dumps(manifest) if manifest is not None else None,
            "doc": source_document, "mapping": jsonsafe.dumps(mapping_report) if mapping_report is not None else None,
        }
        existing = conn.execute(
            sa.text("SELECT id, model_id FROM model_versions WHERE producer_key = :pk FOR UPDATE"), {"pk": producer_key}
        ).one_or_none()
        if existing is not None:
            if existing.model_id != model_id:
                raise RegistryError(
                    f"producer {producer_key!r} already registered a version of another model; a task produces one model"
                )
            conn.execute(
                sa.text(
                    """UPDATE model_versions SET artifact_uri = :uri, sha256 = :sha, files = CAST(:files AS jsonb),
                         params = CAST(:params AS jsonb), metrics = CAST(:metrics AS jsonb), parent_id = :parent,
                         source = :source, stage = :stage, run_id = :run, manifest = CAST(:manifest AS jsonb),
                         source_document = :doc, mapping_report = CAST(:mapping AS jsonb), updated_at = now()
                       WHERE id = :id"""
                ),
                {**values, "id": existing.id},
            )
            vid = existing.id
        else:
            vid = conn.execute(
                sa.text(
                    """INSERT INTO model_versions (model_id, version, artifact_uri, sha256, files, params, metrics,
                         parent_id, source, stage, producer_key, run_id, manifest, source_document, mapping_report)
                       VALUES (:model_id,
                         (SELECT COALESCE(max(version), 0) + 1 FROM model_versions WHERE model_id = :model_id),
                         :uri, :sha, CAST(:files AS jsonb), CAST(:params AS jsonb), CAST(:metrics AS jsonb), :parent,
                         :source, :stage, :pk, :run, CAST(:manifest AS jsonb), :doc, CAST(:mapping AS jsonb))
                       RETURNING id"""
                ),
                values,
            ).scalar_one()
        return self._get_by_id(conn, vid)

    def register_from_manifest(
        self,
        manifest: StageManifest,
        manifest_dir: str | Path,
        *,
        run: RunRef,
        parent_id: int | None = None,
        name: str | None = None,
        location: str | None = None,
    ) -> ModelVersion:
        """Register the model a stage produced. The parent comes from ``parent_id`` or, failing
        that, from the manifest's ``model.parent_uri`` matched against registered artifact URIs.
        ``location``: the object-store URL of ``manifest_dir`` (a fleet); the artifact is then
        registered by its URL there, not by the local copy's path."""
        if manifest.model is None:
            raise RegistryError(f"manifest of stage {manifest.stage!r} has no 'model' section: it produced no model version")
        manifest_dir = Path(manifest_dir).resolve()
        art = manifest.artifact(manifest.model.artifact)
        artifact_path = manifest_dir / art.path
        with self.engine.begin() as conn:
            if parent_id is None and manifest.model.parent_uri:
                parent = self.find_by_artifact(manifest.model.parent_uri, conn=conn)
                if parent is None:
                    raise RegistryError(
                        f"model.parent_uri {manifest.model.parent_uri!r} matches no registered version; "
                        "register the parent model first"
                    )
                parent_id = parent.id
            return self.register_version(
                name=name or manifest.model.name,
                family=manifest.model.family,
                artifact_uri=f"{location}/{art.path}" if location else str(artifact_path),
                producer_key=run.producer_key,
                source="stage",
                stage=manifest.stage,
                sha256=art.sha256,
                files={a.name: a.sha256 for a in manifest.artifacts},
                params=manifest.params,
                metrics={k: v for k, v in manifest.metrics.items()},
                parent_id=parent_id,
                run=run,
                manifest=manifest.model_dump(mode="json"),
                description=manifest.model.description,
                conn=conn,
            )

    def record_evaluation(
        self,
        version_id: int,
        *,
        suite: str,
        run: RunRef,
        metrics: dict[str, Any],
        details: dict[str, Any] | None = None,
        n_samples: int | None = None,
        dataset_id: int | None = None,
        status: str = "succeeded",
    ) -> int:
        """Upsert the evaluation of one version by one suite on one logical date, and merge its
        metrics into the version's summary (the latest evaluation wins per metric name)."""
        if not suite or len(suite) > 100:
            raise RegistryError("suite must be 1-100 characters")
        with self.engine.begin() as conn:
            if not conn.execute(sa.text("SELECT 1 FROM model_versions WHERE id = :v FOR UPDATE"), {"v": version_id}).scalar():
                raise NotFound(f"model version id {version_id} does not exist")
            run_pk = self.upsert_run(conn, run)
            eid = conn.execute(
                sa.text(
                    """INSERT INTO evaluations (model_version_id, suite, logical_date, run_id, dataset_id, metrics,
                         details, n_samples, status, producer_key)
                       VALUES (:v, :suite, :d, :run, :ds, CAST(:m AS jsonb), CAST(:det AS jsonb), :n, :status, :pk)
                       ON CONFLICT (model_version_id, suite, logical_date) DO UPDATE SET
                         run_id = EXCLUDED.run_id, dataset_id = EXCLUDED.dataset_id, metrics = EXCLUDED.metrics,
                         details = EXCLUDED.details, n_samples = EXCLUDED.n_samples, status = EXCLUDED.status,
                         producer_key = EXCLUDED.producer_key, created_at = now()
                       RETURNING id"""
                ),
                {"v": version_id, "suite": suite, "d": run.day, "run": run_pk, "ds": dataset_id,
                 "m": jsonsafe.dumps(metrics), "det": jsonsafe.dumps(details or {}),
                 "n": n_samples, "status": status, "pk": run.producer_key},
            ).scalar_one()
            if status == "succeeded":
                new_status = "validated" if suite == "validate-backdoor" else "evaluated"
                conn.execute(
                    sa.text(
                        """UPDATE model_versions SET metrics = metrics || CAST(:m AS jsonb), updated_at = now(),
                             status = CASE WHEN status IN ('registered', 'validated') THEN :s ELSE status END
                           WHERE id = :v"""
                    ),
                    {"m": jsonsafe.dumps(metrics), "v": version_id, "s": new_status},
                )
            return eid

    # ---------------------------------------------------------------- reads
    def _get_by_id(self, conn: Connection, vid: int) -> ModelVersion:
        row = conn.execute(sa.text(f"SELECT {_VERSION_COLS} FROM {_VERSION_FROM} WHERE mv.id = :id"), {"id": vid}).one()
        return _row_to_version(row)

    def get_by_id(self, vid: int) -> ModelVersion:
        with self.engine.connect() as c:
            row = c.execute(sa.text(f"SELECT {_VERSION_COLS} FROM {_VERSION_FROM} WHERE mv.id = :id"), {"id": vid}).one_or_none()
        if row is None:
            raise NotFound(f"model version id {vid} does not exist")
        return _row_to_version(row)

    def get(self, ref: str) -> ModelVersion:
        """'NAME:VERSION', or 'NAME' for its latest version."""
        name, version = parse_ref(ref)
        with self.engine.connect() as c:
            q = f"SELECT {_VERSION_COLS} FROM {_VERSION_FROM} WHERE m.name = :n"
            params: dict[str, Any] = {"n": name}
            if version is not None:
                q += " AND mv.version = :v"
                params["v"] = version
            row = c.execute(sa.text(q + " ORDER BY mv.version DESC LIMIT 1"), params).one_or_none()
        if row is None:
            known = self.model_names()
            hint = f"; registered models: {', '.join(known[:10])}" if known else "; the registry is empty"
            raise NotFound(f"no model version {ref!r}{hint}")
        return _row_to_version(row)

    def find_by_artifact(self, uri: str, conn: Connection | None = None) -> ModelVersion | None:
        """The newest version whose artifact is at ``uri`` (paths compared resolved)."""
        candidates = {uri}
        try:
            candidates.add(str(Path(uri).resolve()))
        except OSError:
            pass
        q = sa.text(
            f"SELECT {_VERSION_COLS} FROM {_VERSION_FROM} WHERE mv.artifact_uri = ANY(:u) ORDER BY mv.id DESC LIMIT 1"
        )
        if conn is None:
            with self.engine.connect() as c:
                row = c.execute(q, {"u": list(candidates)}).one_or_none()
        else:
            row = conn.execute(q, {"u": list(candidates)}).one_or_none()
        return _row_to_version(row) if row is not None else None

    def model_names(self) -> list[str]:
        with self.engine.connect() as c:
            return list(c.execute(sa.text("SELECT name FROM models ORDER BY name")).scalars())

    def list_versions(self, as_of: datetime | date | None = None, name: str | None = None) -> list[ModelVersion]:
        """Every version registered on or before ``as_of`` (end of that day for a date)."""
        q = f"SELECT {_VERSION_COLS} FROM {_VERSION_FROM} WHERE mv.status <> 'archived'"
        params: dict[str, Any] = {}
        if as_of is not None:
            if not isinstance(as_of, datetime):
                as_of = datetime.combine(as_of, datetime.max.time(), tzinfo=timezone.utc)
            q += " AND mv.created_at <= :asof"
            params["asof"] = as_of
        if name is not None:
            q += " AND m.name = :n"
            params["n"] = name
        with self.engine.connect() as c:
            return [_row_to_version(r) for r in c.execute(sa.text(q + " ORDER BY m.name, mv.version"), params)]

    def lineage(self, ref: str) -> list[ModelVersion]:
        """Ancestors from the root down to ``ref`` itself (base -> backdoored -> safety-trained)."""
        leaf = self.get(ref)
        with self.engine.connect() as c:
            ids = list(
                c.execute(
                    sa.text(
                        """WITH RECURSIVE up(id, parent_id, depth) AS (
                             SELECT id, parent_id, 0 FROM model_versions WHERE id = :id
                             UNION ALL
                             SELECT p.id, p.parent_id, up.depth + 1 FROM model_versions p JOIN up ON p.id = up.parent_id
                             WHERE up.depth < 1000)
                           SELECT id FROM up ORDER BY depth DESC"""
                    ),
                    {"id": leaf.id},
                ).scalars()
            )
            return [self._get_by_id(c, i) for i in ids]

    def children(self, version_id: int) -> list[ModelVersion]:
        with self.engine.connect() as c:
            rows = c.execute(
                sa.text(f"SELECT {_VERSION_COLS} FROM {_VERSION_FROM} WHERE mv.parent_id = :p ORDER BY mv.id"),
                {"p": version_id},
            )
            return [_row_to_version(r) for r in rows]

    def evaluations(self, version_id: int, suite: str | None = None) -> list[dict[str, Any]]:
        q = """SELECT e.id, e.suite, e.logical_date, e.metrics, e.details, e.n_samples, e.status, e.created_at,
                      r.dag_id, r.run_id
               FROM evaluations e LEFT JOIN runs r ON r.id = e.run_id WHERE e.model_version_id = :v"""
        params: dict[str, Any] = {"v": version_id}
        if suite:
            q += " AND e.suite = :s"
            params["s"] = suite
        with self.engine.connect() as c:
            return [dict(r._mapping) for r in c.execute(sa.text(q + " ORDER BY e.logical_date, e.suite"), params)]

    def has_evaluation_data(self, version_id: int, suite: str | None = None) -> bool:
        q = "SELECT EXISTS (SELECT 1 FROM evaluations WHERE model_version_id = :v AND status = 'succeeded'"
        params: dict[str, Any] = {"v": version_id}
        if suite:
            q += " AND suite = :s"
            params["s"] = suite
        with self.engine.connect() as c:
            return bool(c.execute(sa.text(q + ")"), params).scalar())

    def verify_hashes(self, ref: str, store: Any = None) -> dict[str, Any]:
        """Re-hash the artifact and compare with the registered sha256. An artifact registered by URL
        in an object store (``s3://...``) is read through the storage layer (``store``, default
        ``VIGIL_STORAGE_URL``'s): downloaded afresh into a temporary folder, never from a cache."""
        v = self.get(ref)
        uri = v.artifact_uri
        if "://" in uri and not uri.startswith("file://"):
            import tempfile

            from vigil.storage.objects import StorageError, default_store

            if v.sha256 is None:
                return {"ref": v.ref, "ok": False, "artifact_uri": uri, "problem": "no registered sha256 to check"}
            with tempfile.TemporaryDirectory(prefix="vigil-verify-") as scratch:
                try:
                    (store or default_store()).fetch(uri, v.sha256, scratch)
                except StorageError as e:
                    return {"ref": v.ref, "ok": False, "artifact_uri": uri, "expected": v.sha256, "problem": str(e)}
            return {"ref": v.ref, "ok": True, "artifact_uri": uri, "expected": v.sha256, "actual": v.sha256,
                    "problem": None}
        p = Path(uri.removeprefix("file://"))
        if not p.exists():
            return {"ref": v.ref, "ok": False, "artifact_uri": v.artifact_uri, "problem": "artifact is missing"}
        actual = sha256_path(p)
        ok = v.sha256 is None or actual == v.sha256
        return {"ref": v.ref, "ok": ok, "artifact_uri": v.artifact_uri, "expected": v.sha256, "actual": actual,
                "problem": None if ok else "sha256 mismatch: the artifact changed after registration"}
