"""Import = plan (read, check, map: writes nothing) then execute (copy + register, one version).

``plan_import`` does every check that can refuse: path inside the import roots, sizes, syntax,
numbers, the name policy, the group. Only when the whole plan stands does ``execute_plan``
copy the files into the artifact store (content-addressed, atomically) and register the version
in one transaction. Re-importing the same content under the same name returns the same version.

Name policy (documented in docs/import.md):
- ``--name`` wins, then the name in the metadata, then the file or folder name.
- A name already registered with another family is refused (``--name`` to choose another).
- A name whose versions Vigil produced itself (source=stage) is refused: imports never become
  versions of a model Vigil trains.
- The same content under the same name is the same version (idempotent); different content under
  an existing name is a new version.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from vigil.importer.documents import resolve_import_path
from vigil.importer.errors import ImportRefused
from vigil.importer.mapping import Mapper
from vigil.importer.schema import ImportedRecord
from vigil.importer.sources import (
    KIND_WORDS,
    FamilyFacts,
    choose_family,
    collect_files,
    detect_kind,
    llm_facts,
    metadata_documents,
    sha256_file,
    sklearn_facts,
    tree_sha256,
)
from vigil.registry.versions import NotFound, Registry, RegistryError, RunRef, validate_name
from vigil.settings import Settings, get_settings

IMPORTER_VERSION = 1


@dataclass
class ImportPlan:
    path: Path
    kind: str
    family: str
    name: str
    files: dict[str, str]
    sha256: str
    producer_key: str
    record: ImportedRecord
    report: dict[str, Any]
    source_document: str
    is_dir: bool
    file_paths: dict[str, Path] = field(repr=False, default_factory=dict)
    parent_id: int | None = None
    group: str | None = None
    existing_ref: str | None = None

    def summary(self) -> dict[str, Any]:
        return {"path": str(self.path), "kind": self.kind, "family": self.family, "name": self.name,
                "sha256": self.sha256, "producer_key": self.producer_key, "files": self.files,
                "already_imported_as": self.existing_ref, "group": self.group, "report": self.report}


@dataclass
class ImportResult:
    status: str                 # imported | already-imported | dry-run
    plan: ImportPlan
    ref: str | None = None
    version_id: int | None = None
    artifact_uri: str | None = None
    group_membership: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "ref": self.ref, "version_id": self.version_id,
                "artifact_uri": self.artifact_uri, "group_membership": self.group_membership, **self.plan.summary()}


# ---------------------------------------------------------------------------------------------
def _check_group(group: str | None, family: str, registry: Registry | None) -> None:
    """Refuse, before anything is written, a group that is missing or holds another family."""
    if group is None:
        return
    if not group.strip():
        raise ImportRefused("--group is empty: give the model group's name or leave the option out")
    if registry is None:
        return
    from vigil.groups.membership import Groups

    try:
        g = Groups(registry.engine).get(group)
    except RegistryError as e:
        raise ImportRefused(f"--group: {e}") from None
    families = {m.family for m in g.members if m.role != "retired"}
    if families and family not in families:
        raise ImportRefused(f"--group: group {group!r} holds {sorted(families)[0]!r} models and this import is "
                            f"{family!r}; a group compares models of one family")


def _facts(family: str, src, max_bytes: int, trust_pickle: bool) -> FamilyFacts | None:
    if family == "llm":
        return llm_facts(src, max_bytes)
    if family == "sklearn":
        return sklearn_facts(src, max_bytes, trust_pickle)
    return None


def _name_policy(registry: Registry, name: str, family: str, name_from: str) -> None:
    with registry.engine.connect() as c:
        row = c.execute(
            sa.text("""SELECT m.family, bool_or(v.source = 'stage') AS trained
                       FROM models m LEFT JOIN model_versions v ON v.model_id = m.id
                       WHERE m.name = :n GROUP BY m.family"""),
            {"n": name},
        ).one_or_none()
    if row is None:
        return
    hint = "pass --name with another name" if name_from != "--name" else "choose another --name"
    if row.trained:
        raise ImportRefused(f"name {name!r} (from {name_from}) belongs to a model Vigil trains (its versions come from "
                            f"stages); imports need their own name: {hint}")
    if row.family != family:
        raise ImportRefused(f"name {name!r} (from {name_from}) is already registered with family {row.family!r}, "
                            f"this import is {family!r}: {hint}")


def _existing_ref(registry: Registry, producer_key: str) -> str | None:
    with registry.engine.connect() as c:
        return c.execute(
            sa.text("""SELECT m.name || ':' || v.version FROM model_versions v JOIN models m ON m.id = v.model_id
                       WHERE v.producer_key = :pk"""),
            {"pk": producer_key},
        ).scalar_one_or_none()


def plan_import(
    path: str | os.PathLike[str],
    *,
    name: str | None = None,
    family: str | None = None,
    group: str | None = None,
    trust_pickle: bool = False,
    llm_mapper: bool = False,
    registry: Registry | None = None,
    settings: Settings | None = None,
    llm_connection: Any = None,
) -> ImportPlan:
    """Read, check and map PATH. Writes nothing; raises ImportRefused with the reason."""
    settings = settings or get_settings()
    max_bytes = settings.import_max_bytes
    real = resolve_import_path(path, settings.import_roots)
    src = collect_files(real, settings.import_roots, max_bytes)
    kind = detect_kind(src, max_bytes)
    fam, family_from = choose_family(kind, family)
    _check_group(group, fam, registry)
    if name is not None:
        try:
            validate_name(name, "--name")
        except RegistryError as e:
            raise ImportRefused(str(e)) from None

    docs = metadata_documents(src, kind, max_bytes)
    for doc in docs:
        where = _nul_at(doc.data) or ("its text" if "\x00" in (doc.text or "") else None)
        if where:
            raise ImportRefused(f"{doc.rel}: {where} contains a NUL character (\\u0000), which the registry cannot store; "
                                "remove it and import again")
    facts = _facts(fam, src, max_bytes, trust_pickle)
    mapper = Mapper()
    if facts is not None:  # what the model files say wins over what the metadata claims
        mapper.set_origin("config.json" if fam == "llm" else facts.details.get("model_file", "model"))
        for k, v in facts.params.items():
            mapper.put(f"params.{k}", v, k, f"family:{fam}")
    for doc in docs:
        mapper.map_document(doc.data, doc.rel, doc.section)
        if doc.body_description:
            mapper.set_origin(doc.rel)
            mapper.put("description", doc.body_description, "body (first paragraph)", "model_card:body")
    if facts is not None:
        mapper.set_origin(f"({fam} folder)")
        for target in ("framework", "task"):
            if getattr(facts, target) and target not in mapper.values:
                mapper.put(target, getattr(facts, target), "model files", f"family:{fam}")
    llm_info = None
    if llm_mapper:
        from vigil.importer import llm_mapper as llm

        llm_info = llm.apply(mapper, llm_connection)
    result = mapper.result(origin=real.name)
    record = result.record
    if fam == "sklearn" and not trust_pickle and "dataset" in record.params:
        # The nightly run evaluates a scikit-learn version that has params.dataset, which means
        # unpickling it: an untrusted pickle must not get there by its own metadata.
        record.params["dataset_declared"] = record.params.pop("dataset")
        result.notes.append("params.dataset kept as params.dataset_declared: a dataset is attached for nightly "
                            "evaluation only once the pickle is trusted (--trust-pickle)")

    if name is not None:
        final_name, name_from = name, "--name"
    elif record.name:
        final_name, name_from = record.name, next(m["source"] for m in result.mapped if m["target"] == "name")
    else:
        final_name = real.stem if not src.is_dir else real.name
        name_from = "the file name (no name in the metadata)" if not src.is_dir else "the folder name (no name in the metadata)"
    try:
        validate_name(final_name, "name")
    except RegistryError as e:
        raise ImportRefused(f"{e} (name taken from {name_from}); pass --name") from None

    files = {rel: sha256_file(p) for rel, p in src.files.items()}
    sha = files[real.name] if not src.is_dir else tree_sha256(files)
    # Canonical source: the content (a single file's bytes; a folder's names + bytes), the target
    # name and family. The same content under the same name is the same version.
    canonical = {"family": fam, "name": final_name, "content": sha if not src.is_dir else files}
    producer_key = "import:" + hashlib.sha256(json.dumps(canonical, sort_keys=True).encode()).hexdigest()

    texts = {d.rel: d.text for d in docs} | (facts.extra_documents if facts else {})
    source_document = next(iter(texts.values())) if len(texts) == 1 else json.dumps(texts, indent=1, sort_keys=True)

    notes = list(result.notes) + (facts.notes if facts else [])
    parent_id, parent_ref, existing = None, None, None
    if registry is not None:
        _name_policy(registry, final_name, fam, name_from)
        existing = _existing_ref(registry, producer_key)
        if record.base_model:
            try:
                parent = registry.get(record.base_model)
                parent_id, parent_ref = parent.id, parent.ref
                notes.append(f"base_model {record.base_model!r} is registered: lineage parent {parent.ref}")
            except NotFound:
                notes.append(f"base_model {record.base_model!r} is not in the registry: no lineage parent linked")

    report = {
        "importer": IMPORTER_VERSION,
        "source": {"path": str(real), "kind": kind, "kind_description": KIND_WORDS[kind],
                   "documents": [d.rel for d in docs] + sorted(facts.extra_documents if facts else {}),
                   "formats": {d.rel: d.format for d in docs}},
        "family": fam, "family_from": family_from, "name": final_name, "name_from": name_from,
        **result.report(),
        "missing": result.missing + (facts.missing if facts else []),
        "notes": notes,
        "skipped_files": src.skipped,
        "scorable": facts.scorable if facts else False,
        "scorable_reason": (facts.scorable_reason if facts else "metadata only (family external): nothing to run"),
        "model_files": facts.details if facts else {},
        "parent": parent_ref,
        "llm_mapper": llm_info,
    }
    where = _nul_at(report) or ("the document text" if "\x00" in source_document else None)
    if where:
        raise ImportRefused(f"{real.name}: {where} contains a NUL character (\\u0000), which the registry cannot store; "
                            "remove it from the metadata and import again")
    return ImportPlan(path=real, kind=kind, family=fam, name=final_name, files=files, sha256=sha,
                      producer_key=producer_key, record=record, report=report, source_document=source_document,
                      is_dir=src.is_dir, file_paths=dict(src.files), parent_id=parent_id, group=group,
                      existing_ref=existing)


def _nul_at(obj: Any, path: str = "") -> str | None:
    """Where (a dotted path, escaped) the first NUL character sits in a key or string, if any:
    PostgreSQL's text and jsonb refuse it, so it must be refused at the door, not at the INSERT."""
    if isinstance(obj, str):
        return path or "a value" if "\x00" in obj else None
    if isinstance(obj, dict):
        for k, v in obj.items():
            here = f"{path}.{k}" if path else str(k)
            if "\x00" in str(k):
                return f"key {json.dumps(here)}"
            found = _nul_at(v, here)
            if found:
                return found
    if isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            found = _nul_at(v, f"{path}[{i}]")
            if found:
                return found
    return None


# ---------------------------------------------------------------------------------------------
def _store_copy(plan: ImportPlan, settings: Settings) -> tuple[Path, bool]:
    """Copy the planned files into ``<artifacts>/imports/<key>/<name>``; (artifact path, created)."""
    root = settings.artifacts_dir / "imports" / plan.producer_key.removeprefix("import:")[:24]
    target = root / plan.path.name
    if target.exists():
        from contract.manifest import sha256_path

        if sha256_path(target) == plan.sha256:
            return target, False
        shutil.rmtree(root)  # a damaged earlier copy: replace it
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = root.parent / f".{root.name}.{uuid.uuid4().hex}.tmp"
    try:
        dest = tmp / plan.path.name
        for rel, src in plan.file_paths.items():
            out = dest / rel if plan.is_dir else dest
            out.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, out)
            if sha256_file(out) != plan.files[rel]:
                raise ImportRefused(f"{rel} changed while it was being imported; import it again once it is stable")
        try:
            os.rename(tmp, root)
        except OSError:
            if not root.exists():
                raise
            return target, False  # a concurrent import of the same content won the rename
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target, True


def _join_group(registry: Registry, ref: str, group: str, path: Path) -> dict[str, Any]:
    """Add the new version to a model group as a challenger with no traffic (an audited event)."""
    from vigil.groups.membership import Groups

    g = Groups(registry.engine).add(group, ref, role="challenger", weight=0.0, reason=f"imported from {path}")
    member = next(m for m in g.members if m.ref == ref)
    return {"group": g.name, "role": member.role, "traffic_weight": member.traffic_weight}


def execute_plan(plan: ImportPlan, registry: Registry, *, run: RunRef | None = None,
                 settings: Settings | None = None) -> ImportResult:
    settings = settings or get_settings()
    artifact, created = _store_copy(plan, settings)
    try:
        version = registry.register_version(
            name=plan.name, family=plan.family, artifact_uri=str(artifact), producer_key=plan.producer_key,
            source="import", sha256=plan.sha256, files=plan.files, params=plan.record.params,
            metrics=plan.record.metrics, parent_id=plan.parent_id, run=run, source_document=plan.source_document,
            mapping_report=plan.report, description=(plan.record.description or "")[:2000],
        )
    except RegistryError as e:
        if created:
            shutil.rmtree(artifact.parent, ignore_errors=True)
        raise ImportRefused(str(e)) from None
    except Exception:
        if created:
            shutil.rmtree(artifact.parent, ignore_errors=True)
        raise
    membership = None
    if plan.group:
        try:
            membership = _join_group(registry, version.ref, plan.group, plan.path)
        except RegistryError as e:  # checked in the plan; only a concurrent change gets here
            raise ImportRefused(f"registered {version.ref}, but joining group {plan.group!r} failed: {e}; add it with "
                                "`vigil groups add`") from None
    return ImportResult(status="already-imported" if plan.existing_ref else "imported", plan=plan, ref=version.ref,
                        version_id=version.id, artifact_uri=str(artifact), group_membership=membership)


def import_path(path: str | os.PathLike[str], registry: Registry, *, dry_run: bool = False,
                run: RunRef | None = None, **options: Any) -> ImportResult:
    """Plan and (unless ``dry_run``) execute an import. Options: see ``plan_import``."""
    plan = plan_import(path, registry=registry, **options)
    if dry_run:
        return ImportResult(status="dry-run", plan=plan, ref=plan.existing_ref)
    return execute_plan(plan, registry, run=run, settings=options.get("settings"))
