"""A stage's inputs and outputs through the object store, for workers that share no disk.

With the embedded default (``VIGIL_STORAGE_URL`` unset or ``file://``) nothing here does anything:
specs, runs and records use ``$VIGIL_DATA_DIR/artifacts`` in place, exactly as before. With a
remote store (``s3://bucket/prefix``) the store mirrors the data dir's layout (``artifacts/...``,
``warehouse/...``) and each task works in its own worker's scratch (``VIGIL_SCRATCH_DIR``):

- ``spec`` writes ``spec.json`` as always, then the stage's inputs (``inputs.json``: every store
  URL the spec names, with the sha256 it must have: the registry's for a registered artifact, the
  manifest's for a stage output) and uploads both; the task returns URLs, not paths. A local file
  or folder the spec names (an absolute path, e.g. the table a user points ``train_sklearn`` at)
  is uploaded first, content-addressed, to ``inputs/<sha256>/<name>``, and the spec names that URL.
- ``run`` (:func:`run_through_store`) downloads the spec, fetches each input into
  ``<scratch>/cas/<sha256>`` (cached, checked), rewrites the spec's URLs to those local paths,
  runs the stage in ``<scratch>/work``, rewrites the paths in the manifest back to URLs and
  uploads the output folder (the manifest last). A batch (``gpu-trainer batch``) uploads each
  item's folder as soon as it is finished, and a retry (on any worker) first fetches the done
  markers and manifests of the items already in the store for the same run token and spec, so
  the batch keeps them instead of running them again.
- ``record`` (``vigil.registry.ingest.record_stage`` given a URL) fetches that output folder by
  its manifest's sha256, checks every artifact, and registers URLs.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import socket
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from contract.batch import DONE_FILE, REPORT_FILE, spec_digest
from contract.hashing import sha256_path
from vigil.registry.versions import Registry
from vigil.settings import get_settings
from vigil.storage.objects import MANIFEST, ObjectStore, StorageError, default_store, is_store_url

log = logging.getLogger(__name__)

INPUTS = "inputs.json"
# The files of a stage folder whose paths are rewritten between a worker's scratch and the store
# (never a file a manifest lists as an artifact: those keep the bytes their sha256 names).
PATH_FILES = ("spec.json", MANIFEST, REPORT_FILE, DONE_FILE, "batch-spec.json")
# Local files and folders a spec names, uploaded by the spec task: inputs/<sha256>/<name>.
INPUTS_PREFIX = "inputs"
_INPUT_KEY = re.compile(rf"^{INPUTS_PREFIX}/([0-9a-f]{{64}})/[^/]+$")
_UNSAFE = re.compile(r"[^A-Za-z0-9_.=:@+-]+")


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
    m = _INPUT_KEY.match(store.key_of(url))
    if m:  # a local input a spec task uploaded: its key is its content address (checked on fetch)
        return {"url": url, "sha256": m.group(1), "kind": "artifact"}
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


def _is_local_path(value: str) -> bool:
    """An absolute path (``/...`` or ``~/...``) in a spec: a file the stage would read on this disk."""
    return (value.startswith(("/", "~/")) and len(value) < 4096 and "\n" not in value
            and not value.startswith("//"))


def upload_local_input(store: ObjectStore, field: str, value: str,
                       field_names: dict[str, str] | None = None) -> dict[str, str]:
    """Upload the local file or folder ``value`` (spec field ``field``) to the store under its
    content address, ``inputs/<sha256>/<name>``, once; the input entry naming that URL."""
    path = Path(value).expanduser()
    if not path.exists():
        shown = (f"form field {field_names[field]!r} (spec field {field!r})" if field_names and field in field_names
                 else f"spec field {field!r}")
        raise StorageError(
            f"{shown}: {value} does not exist on this worker ({socket.gethostname()}). With the object store "
            f"{store.url} the spec task uploads the local files a stage reads, so it needs the file where it runs: "
            "put the file at that path on every worker (or a disk they share), or give a path that exists, "
            "then re-run the task")
    sha = sha256_path(path)
    name = _UNSAFE.sub("_", path.resolve().name).strip("._") or "input"
    key = f"{INPUTS_PREFIX}/{sha}/{name}"
    url = store.key_url(key)
    if path.is_dir() or not store.exists(url):  # a file under its digest is that file: uploaded once
        store.upload(path, key)
        log.info("spec field %s: uploaded %s to %s", field, path, url)
    return {"url": url, "sha256": sha, "kind": "artifact"}


def local_inputs(spec: dict[str, Any], field_names: dict[str, str] | None = None
                 ) -> tuple[list[dict[str, str]] | None, dict[str, Any], dict[str, Any]]:
    """``(inputs, as_run, to_write)`` for a spec on a remote store: the store URLs ``spec`` names,
    each with the sha256 it must have; the spec as a stage on this worker would see it (every
    input fetched into scratch and checked, local files where they are): validation then sees real
    files; and the spec to write and upload, every local file it names replaced by its store URL
    (uploaded here, see :func:`upload_local_input`; a path that does not exist is refused, naming
    the field, ``field_names`` mapping spec fields to the form's). Locally: ``(None, spec, spec)``."""
    store = remote_store()
    if store is None:
        return None, spec, spec
    from vigil.storage.warehouse import ready_engine

    reg = Registry(ready_engine())
    inputs: dict[str, dict[str, str]] = {}
    uploaded: dict[str, str] = {}  # local path as written in the spec -> its store URL
    for field, value in _strings(spec):
        if is_store_url(value, store) and value not in inputs:
            inputs[value] = _input_of(store, reg, field, value)
        elif _is_local_path(value) and value not in uploaded:
            entry = upload_local_input(store, field, value, field_names)
            uploaded[value] = entry["url"]
            inputs.setdefault(entry["url"], entry)
    paths = _Paths(store, get_settings().scratch_dir / "work")
    scratch = get_settings().scratch_dir
    for i in inputs.values():
        if i["url"] not in uploaded.values():  # the local ones are validated where they are
            paths.inputs[i["url"]] = str(_fetch(store, i, scratch))
    to_write = _map_strings(spec, lambda s: uploaded.get(s, s))
    return sorted(inputs.values(), key=lambda i: i["url"]), _map_strings(spec, paths.local), to_write


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


def _seed_finished(store: ObjectStore, out_url: str, local_out: Path, stored_digest: str, local_digest: str) -> bool:
    """A retried batch on any worker: when the store holds item ``out_url`` finished (its done
    marker and manifest uploaded) for the same run token and spec (``stored_digest``), put the
    marker and manifest in the local item folder, the marker saying ``local_digest`` (this
    worker's spec text), so ``gpu-trainer batch`` keeps the item instead of running it again."""
    try:
        done = json.loads(store.read_bytes(f"{out_url}/{DONE_FILE}"))
        if not isinstance(done, dict) or done.get("store_spec_sha256") != stored_digest:
            return False  # another run (token) or another spec: evaluate afresh
        manifest = store.read_bytes(f"{out_url}/{MANIFEST}")
    except (FileNotFoundError, ValueError):
        return False
    local_out.mkdir(parents=True, exist_ok=True)
    (local_out / MANIFEST).write_bytes(manifest)
    (local_out / DONE_FILE).write_text(json.dumps({**done, "spec_sha256": local_digest}))
    return True


def _finish_upload(store: ObjectStore, local: Path, url: str, paths: _Paths, stored_digest: str | None) -> None:
    """Rewrite the folder's local paths to URLs and upload it (manifest last). A batch item's done
    marker gets the worker-independent digest a retry elsewhere compares (``store_spec_sha256``)."""
    _rewrite_paths(local, paths.url)
    marker = local / DONE_FILE
    if stored_digest is not None and marker.is_file():
        done = json.loads(marker.read_text())
        marker.write_text(json.dumps({**done, "store_spec_sha256": stored_digest}))
    store.upload(local, store.key_of(url))


def _item_finished(local: Path) -> bool:
    """The batch wrote the item's done marker (after its manifest): the folder is complete."""
    try:
        return isinstance(json.loads((local / DONE_FILE).read_text()), dict) and (local / MANIFEST).is_file()
    except (OSError, ValueError):
        return False


def run_through_store(store: ObjectStore, argv: list[str], scratch: Path, run: Callable[[list[str]], None]) -> None:
    """Run ``argv`` (``gpu-trainer STAGE --spec URL --out URL``) on this worker: inputs fetched and
    checked, the stage run in scratch, its outputs uploaded with the manifest last. ``run`` runs
    the local argv (the operator's subprocess); nothing is uploaded when it raises, except a
    batch's items that finished before (each is uploaded as soon as its done marker is written;
    a retry keeps them: see :func:`_seed_finished`)."""
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
        token = str(doc.get("run_token") or "") if batch else ""
        specs = [(spec_url, doc)]
        outs = [out_url]
        texts: dict[str, str] = {}  # item spec URL -> its text as stored
        if batch:
            items = doc.get("items") or []
            for i in items:
                texts[i["spec_path"]] = store.read_bytes(i["spec_path"]).decode()
            specs = [(i["spec_path"], json.loads(texts[i["spec_path"]])) for i in items] + specs
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
        local_texts: dict[str, str] = {}
        for url, body in specs:
            local = Path(paths.local(url))
            local.parent.mkdir(parents=True, exist_ok=True)
            local_texts[url] = json.dumps(_map_strings(body, paths.local), indent=2, sort_keys=True)
            local.write_text(local_texts[url])
        for url in outs:
            Path(paths.local(url)).mkdir(parents=True, exist_ok=True)
        # a batch item's folder: (its out URL, the stored digest its done marker must carry)
        item_digest = {i["out_dir"]: spec_digest(token, texts[i["spec_path"]]) for i in (doc.get("items") or [])} \
            if batch else {}
        seeded = set()
        for i in (doc.get("items") or []) if batch else []:
            if _seed_finished(store, i["out_dir"], Path(paths.local(i["out_dir"])), item_digest[i["out_dir"]],
                              spec_digest(token, local_texts[i["spec_path"]])):
                seeded.add(i["out_dir"])
        if seeded:
            log.info("%d batch item(s) already finished in the store for this run: the batch keeps them", len(seeded))
        log.info("fetched %d input(s) into %s; running in %s", len(paths.inputs), scratch / "cas", work)
        uploaded: set[str] = set(seeded)
        lock = threading.Lock()

        def upload_finished_items() -> None:
            for url in item_digest:
                with lock:
                    if url not in uploaded and _item_finished(Path(paths.local(url))):
                        _finish_upload(store, Path(paths.local(url)), url, paths, item_digest[url])
                        uploaded.add(url)

        stop = threading.Event()

        def watch() -> None:  # each item goes to the store as soon as it is done: a retry elsewhere keeps it
            while not stop.wait(1.0):
                try:
                    upload_finished_items()
                except Exception:  # noqa: BLE001 - retried on the next tick, and once more after the run
                    log.warning("uploading a finished batch item failed; retrying", exc_info=True)

        watcher = threading.Thread(target=watch, name="batch-item-upload", daemon=True) if item_digest else None
        if watcher:
            watcher.start()
        try:
            run([paths.local(a) for a in argv])
        finally:
            if watcher:
                stop.set()
                watcher.join()
                try:  # also after a failed batch: what finished is kept by a retry
                    upload_finished_items()
                except Exception:  # noqa: BLE001 - after a success the loop below uploads what is left (or fails)
                    log.warning("uploading the finished batch items failed", exc_info=True)
        for url in outs:  # the items first, the batch's report last (the record reads it first)
            if url in uploaded:
                continue
            _finish_upload(store, Path(paths.local(url)), url, paths, item_digest.get(url))
        log.info("uploaded %d output folder(s) to %s (%d kept from a previous attempt)", len(outs) - len(seeded),
                 out_url, len(seeded))
    finally:
        shutil.rmtree(work, ignore_errors=True)
