"""A stage's inputs and outputs through the object store, for workers that share no disk.

With the embedded default (``VIGIL_STORAGE_URL`` unset or ``file://``) nothing here does anything:
specs, runs and records use ``$VIGIL_DATA_DIR/artifacts`` in place, exactly as before. With a
remote store (``s3://bucket/prefix``) the store mirrors the data dir's layout (``artifacts/...``,
``warehouse/...``) and each task works in its own worker's scratch (``VIGIL_SCRATCH_DIR``):

- ``spec`` writes ``spec.json`` as always, then the stage's inputs (``inputs.json``: every store
  URL the spec names, with the sha256 it must have: the registry's for a registered artifact, the
  manifest's for a stage output) and uploads both; the task returns URLs, not paths.
- ``run`` (:func:`run_through_store`) downloads the spec, fetches each input into
  ``<scratch>/cas/<sha256>`` (cached, checked), rewrites the spec's URLs to those local paths,
  runs the stage in ``<scratch>/work``, rewrites the paths in the manifest back to URLs and
  uploads the output folder (the manifest last).
- ``record`` (``vigil.registry.ingest.record_stage`` given a URL) fetches that output folder by
  its manifest's sha256, checks every artifact, and registers URLs.
"""

from __future__ import annotations

import json
import logging
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vigil.registry.versions import Registry
from vigil.settings import get_settings
from vigil.storage.objects import MANIFEST, ObjectStore, StorageError, default_store, is_store_url

log = logging.getLogger(__name__)

INPUTS = "inputs.json"
# The files of a stage folder whose paths are rewritten between a worker's scratch and the store
# (never a file a manifest lists as an artifact: those keep the bytes their sha256 names).
PATH_FILES = ("spec.json", MANIFEST, "batch.json", "batch-item.json", "batch-spec.json")


def remote_store() -> ObjectStore | None:
    """The object store when it is remote, None for the embedded default (work in place)."""
    store = default_store()
    return None if store.is_local else store


def url_of(store: ObjectStore, path: str | Path) -> str:
    """The store URL of a path under this worker's data dir (the store mirrors its layout)."""
    data = get_settings().data_dir
    try:
        rel = Path(path).resolve().relative_to(data)
    except ValueError:
        raise StorageError(f"{path} is not under VIGIL_DATA_DIR={data}: it has no place in the store "
                           f"{store.url}") from None
    return store.key_url(rel.as_posix())


def _strings(obj: Any, where: str = ""):
    if isinstance(obj, str):
        yield where, obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield from _strings(v, f"{where}.{k}" if where else str(k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _strings(v, f"{where}[{i}]")


def _map_strings(obj: Any, fn: Callable[[str], str]) -> Any:
    if isinstance(obj, str):
        return fn(obj)
    if isinstance(obj, dict):
        return {k: _map_strings(v, fn) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_map_strings(v, fn) for v in obj]
    return obj


def _input_of(store: ObjectStore, reg: Registry, field: str, url: str) -> dict[str, str]:
    """What a spec's store URL must hold: a registered artifact (its registered sha256), a stage
    output folder (its manifest's sha256), or an artifact a stage output's manifest lists."""
    v = reg.find_by_artifact(url)
    if v is not None and v.sha256:
        return {"url": url, "sha256": v.sha256, "kind": "artifact"}
    if store.exists(f"{url}/{MANIFEST}"):
        return {"url": url, "sha256": store.manifest_digest(url), "kind": "output"}
    parent = url
    while "/" in store.key_of(parent):
        parent = parent.rsplit("/", 1)[0]
        if store.exists(f"{parent}/{MANIFEST}"):
            rel = url[len(parent) + 1:]
            arts = json.loads(store.read_bytes(f"{parent}/{MANIFEST}")).get("artifacts", [])
            for a in arts:
                if a.get("path") == rel:
                    return {"url": url, "sha256": a["sha256"], "kind": "artifact"}
            break
    raise StorageError(f"spec field {field!r}: {url} is neither a registered artifact nor a stage output in the store, "
                       "so its sha256 is unknown and no worker could check it; register it (vigil models import) "
                       "or pass a URL a stage produced")


def local_inputs(spec: dict[str, Any]) -> tuple[list[dict[str, str]] | None, dict[str, Any]]:
    """The store URLs ``spec`` names, each with the sha256 it must have, and the spec as a stage on
    this worker would see it (every input fetched into scratch and checked): validation then sees
    real files. Locally: ``(None, spec)``, nothing fetched."""
    store = remote_store()
    if store is None:
        return None, spec
    from vigil.storage.warehouse import ready_engine

    reg = Registry(ready_engine())
    inputs: dict[str, dict[str, str]] = {}
    for field, value in _strings(spec):
        if is_store_url(value, store) and value not in inputs:
            inputs[value] = _input_of(store, reg, field, value)
    paths = _Paths(store, get_settings().scratch_dir / "work")
    scratch = get_settings().scratch_dir
    for i in inputs.values():
        paths.inputs[i["url"]] = str(_fetch(store, i, scratch))
    return sorted(inputs.values(), key=lambda i: i["url"]), _map_strings(spec, paths.local)


def _fetch(store: ObjectStore, i: dict[str, str], scratch: Path) -> Path:
    if i["kind"] == "output":
        return store.fetch_output(i["url"], scratch, i["sha256"])
    return store.fetch(i["url"], i["sha256"], scratch)


def publish_spec(written: dict[str, str], inputs: list[dict[str, str]] | None) -> dict[str, str]:
    """After ``write_spec`` wrote ``spec.json`` locally: on a remote store, write the stage's inputs
    beside it, upload both, and return the same dict with URLs. Unchanged for the local store."""
    store = remote_store()
    if store is None:
        return written
    out_dir = Path(written["out_dir"])
    (out_dir / INPUTS).write_text(json.dumps(inputs or [], indent=2))
    out_url = url_of(store, out_dir)
    store.upload(out_dir / INPUTS, store.key_of(f"{out_url}/{INPUTS}"))
    spec_url = url_of(store, written["spec_path"])
    store.upload(written["spec_path"], store.key_of(spec_url))
    log.info("spec %s with %d input(s) from the store", spec_url, len(inputs or []))
    return {**written, "spec_path": spec_url, "out_dir": out_url}


def publish_file(path: str | Path) -> str:
    """Upload one file the spec task wrote (a batch spec); its URL, or the path itself locally."""
    store = remote_store()
    if store is None:
        return str(path)
    url = url_of(store, path)
    store.upload(path, store.key_of(url))
    return url


def read_json(location: str | Path, name: str) -> Any:
    """``<location>/<name>`` as JSON, from a folder or a store URL; None when absent or unreadable."""
    try:
        if isinstance(location, str) and "://" in location and not location.startswith("file://"):
            return json.loads(default_store().read_bytes(f"{location.rstrip('/')}/{name}"))
        return json.loads((Path(location) / name).read_text())
    except (OSError, ValueError):
        return None


class _Paths:
    """Between store URLs and this run's local paths: inputs -> their verified copies in
    ``cas/``, every other URL of the store -> the same key under the run's ``work`` folder."""

    def __init__(self, store: ObjectStore, work: Path):
        self.store, self.work = store, work
        self.inputs: dict[str, str] = {}

    def local(self, s: str) -> str:
        for url in sorted(self.inputs, key=len, reverse=True):
            if s == url or s.startswith(url + "/"):
                return self.inputs[url] + s[len(url):]
        if is_store_url(s, self.store):
            return str(self.work / self.store.key_of(s))
        return s

    def url(self, s: str) -> str:
        for url, local in sorted(self.inputs.items(), key=lambda kv: len(kv[1]), reverse=True):
            if s == local or s.startswith(local + "/"):
                return url + s[len(local):]
        w = str(self.work)
        if s == w or s.startswith(w + "/"):
            return f"{self.store.url}/{s[len(w) + 1:]}" if s != w else self.store.url
        return s


def _rewrite_paths(folder: Path, fn: Callable[[str], str]) -> None:
    manifest = folder / MANIFEST
    listed: set[str] = set()
    if manifest.exists():
        try:
            listed = {a["path"] for a in json.loads(manifest.read_text()).get("artifacts", [])}
        except (ValueError, KeyError, TypeError):
            listed = set()
    for name in PATH_FILES:
        f = folder / name
        if name in listed or not f.is_file():
            continue
        try:
            doc = json.loads(f.read_text())
        except ValueError:
            continue
        f.write_text(json.dumps(_map_strings(doc, fn), indent=2))


def run_through_store(store: ObjectStore, argv: list[str], scratch: Path, run: Callable[[list[str]], None]) -> None:
    """Run ``argv`` (``gpu-trainer STAGE --spec URL --out URL``) on this worker: inputs fetched and
    checked, the stage run in scratch, its outputs uploaded with the manifest last. ``run`` runs
    the local argv (the operator's subprocess); nothing is uploaded when it raises."""
    try:
        spec_url, out_url = argv[argv.index("--spec") + 1], argv[argv.index("--out") + 1]
    except (ValueError, IndexError):
        raise StorageError(f"stage command without --spec/--out: {argv[:2]}") from None
    scratch = Path(scratch).resolve()
    work = scratch / "work" / uuid.uuid4().hex[:12]
    paths = _Paths(store, work)
    try:
        doc = json.loads(store.read_bytes(spec_url))
        batch = len(argv) > 1 and argv[1] == "batch"
        specs = [(spec_url, doc)]
        outs = [out_url]
        if batch:
            items = doc.get("items") or []
            specs = [(i["spec_path"], json.loads(store.read_bytes(i["spec_path"]))) for i in items] + specs
            outs = [i["out_dir"] for i in items] + outs
        for url, _ in specs:
            if url.endswith("batch-spec.json"):
                continue
            listed = url.rsplit("/", 1)[0] + "/" + INPUTS
            try:
                wanted = json.loads(store.read_bytes(listed))
            except FileNotFoundError:
                raise StorageError(f"{listed} is not in the store: re-run this stage's spec task") from None
            for i in wanted:
                if i["url"] in paths.inputs:
                    continue
                paths.inputs[i["url"]] = str(_fetch(store, i, scratch))
        for url, body in specs:
            local = Path(paths.local(url))
            local.parent.mkdir(parents=True, exist_ok=True)
            local.write_text(json.dumps(_map_strings(body, paths.local), indent=2, sort_keys=True))
        for url in outs:
            Path(paths.local(url)).mkdir(parents=True, exist_ok=True)
        log.info("fetched %d input(s) into %s; running in %s", len(paths.inputs), scratch / "cas", work)
        run([paths.local(a) for a in argv])
        for url in outs:  # the items first, the batch's report last (the record reads it first)
            local = Path(paths.local(url))
            _rewrite_paths(local, paths.url)
            store.upload(local, store.key_of(url))
        log.info("uploaded %d output folder(s) to %s", len(outs), out_url)
    finally:
        shutil.rmtree(work, ignore_errors=True)
