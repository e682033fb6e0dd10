"""One storage layer for artifacts and the Parquet warehouse, addressed by URL.

``VIGIL_STORAGE_URL`` names the store: ``file://$VIGIL_DATA_DIR`` by default (the embedded
default: a local folder, used in place, exactly as before), or ``s3://bucket/prefix`` and any
other fsspec scheme for a fleet whose workers share no disk. Credentials never travel in the URL:
they are fsspec ``storage_options`` (for S3 the usual AWS variables, or an Airflow connection
resolved by ``vigil.airflow.storage_conn``).

Moving bytes between a worker's local scratch and the store:

- :meth:`ObjectStore.upload` puts a stage's output folder under a key: every file first, the
  ``manifest.json`` last, so a reader that sees the manifest sees a complete upload (then the
  record step registers the URL);
- :meth:`ObjectStore.fetch` brings an artifact to ``<scratch>/cas/<sha256>``: content-addressed,
  so a second fetch of the same digest on the same worker is free, and checked against the
  registered sha256 (``contract.hashing``, the one digest) before it is used; a download that
  does not match is deleted and refused, naming the URL and both digests.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from contract.errors import UserError
from contract.hashing import sha256_path
from vigil.settings import Settings, get_settings

MANIFEST = "manifest.json"
_SCHEME = re.compile(r"^([a-z][a-z0-9+.-]*)://(.*)$")
_KEY = re.compile(r"^[A-Za-z0-9_.=:@+-][A-Za-z0-9_./=:@+-]*$")


class StorageError(UserError):
    """A store URL, key or artifact Vigil cannot use; the message names it and the fix."""


def storage_url(settings: Settings | None = None) -> str:
    """``VIGIL_STORAGE_URL``, or ``file://<data dir>`` when unset."""
    settings = settings or get_settings()
    raw = (os.environ.get("VIGIL_STORAGE_URL") or "").strip().rstrip("/")
    if not raw:
        return f"file://{settings.data_dir}"
    m = _SCHEME.match(raw)
    if not m or not m.group(2):
        raise StorageError(f"VIGIL_STORAGE_URL={raw!r} is not a URL: use file:///abs/path or s3://bucket/prefix "
                           "(any fsspec scheme), or unset it for the local data dir")
    if "@" in m.group(2).split("/", 1)[0]:
        raise StorageError("VIGIL_STORAGE_URL carries credentials: remove them from the URL and give them as AWS_* "
                           "variables or an Airflow connection (VIGIL_STORAGE_CONN_ID)")
    if m.group(1) == "file" and not m.group(2).startswith("/"):
        raise StorageError(f"VIGIL_STORAGE_URL={raw!r}: a file:// URL needs an absolute path (file:///srv/vigil)")
    return raw


@dataclass
class ObjectStore:
    """A store rooted at ``url`` (``file://``, ``s3://``, ... ) with fsspec ``storage_options``."""

    url: str
    storage_options: dict[str, Any] = field(default_factory=dict, repr=False)  # may hold secrets: never printed

    def __post_init__(self) -> None:
        import fsspec

        m = _SCHEME.match(self.url.rstrip("/"))
        if not m:
            raise StorageError(f"store URL {self.url!r} has no scheme (file:// or s3://...)")
        self.scheme, self.url = m.group(1), self.url.rstrip("/")
        options = dict(self.storage_options)
        if self.scheme in ("s3", "s3a", "gs", "gcs"):
            # other workers upload while this process runs: never answer a listing from a cache
            options.setdefault("use_listings_cache", False)
        try:
            self.fs = fsspec.filesystem(self.scheme, **options)
        except (ImportError, ValueError) as e:
            raise StorageError(f"no filesystem for {self.scheme}:// ({e}); for s3:// install the fleet extra "
                               "(pip install 'vigil[fleet]')") from None
        self.root = m.group(2) if self.scheme != "file" else "/" + m.group(2).lstrip("/")

    @property
    def is_local(self) -> bool:
        """True for the embedded default: artifacts are used where they are, nothing is copied."""
        return self.scheme == "file"

    # ------------------------------------------------------------------ addressing
    def key_url(self, key: str) -> str:
        """The URL of ``key`` under the store's root (keys are relative, '/'-separated, no '..')."""
        if not _KEY.match(key) or any(part in ("", ".", "..") for part in key.split("/")):
            raise StorageError(f"store key {key!r}: use a relative path of letters, digits and ._=:@+- (no '..')")
        return f"{self.url}/{key}"

    def _path(self, url: str) -> str:
        if not url.startswith(self.url + "/") and url != self.url:
            raise StorageError(f"{url} is not in the store {self.url} (VIGIL_STORAGE_URL)")
        return self.root.rstrip("/") + url[len(self.url):]

    def local_path(self, url: str) -> Path:
        """The file behind a ``file://`` URL of this store."""
        if not self.is_local:
            raise StorageError(f"{url} is not on local disk; fetch it")
        return Path(self._path(url))

    # ------------------------------------------------------------------ writes
    def upload(self, local: str | os.PathLike[str], key: str) -> str:
        """Put a file or a folder under ``key``; a folder's ``manifest.json`` goes last. Returns its URL.
        On the local store a folder already at that place is left as it is (nothing to copy)."""
        local, url = Path(local), self.key_url(key)
        dest = self._path(url)
        if self.is_local and Path(dest).resolve() == local.resolve():
            return url
        if local.is_file():
            self.fs.put_file(str(local), dest)
            return url
        if not local.is_dir():
            raise StorageError(f"cannot upload {local}: no such file or folder")
        files = sorted(p for p in local.rglob("*") if p.is_file())
        files.sort(key=lambda p: p.relative_to(local).as_posix() == MANIFEST)  # the manifest last
        for f in files:
            target = f"{dest}/{f.relative_to(local).as_posix()}"
            self.fs.makedirs(target.rsplit("/", 1)[0], exist_ok=True)
            self.fs.put_file(str(f), target)
        return url

    # ------------------------------------------------------------------ reads
    def exists(self, url: str) -> bool:
        return self.fs.exists(self._path(url))

    def read_bytes(self, url: str) -> bytes:
        return self.fs.cat_file(self._path(url))

    def write_bytes(self, url: str, data: bytes) -> None:
        dest = self._path(url)
        self.fs.makedirs(dest.rsplit("/", 1)[0], exist_ok=True)
        self.fs.pipe_file(dest, data)

    def key_of(self, url: str) -> str:
        """The key of a URL of this store (what :meth:`key_url` turned into that URL)."""
        self._path(url)
        return url[len(self.url) + 1:]

    def manifest_digest(self, url: str) -> str:
        """sha256 of the ``manifest.json`` of the stage output folder at ``url``: the content
        address of that output (the manifest lists every artifact's own sha256)."""
        try:
            return hashlib.sha256(self.read_bytes(f"{url}/{MANIFEST}")).hexdigest()
        except FileNotFoundError:
            raise StorageError(f"{url}/{MANIFEST} is not in the store: the stage that writes {url} did not finish "
                               "its upload (the manifest goes last); re-run that stage") from None

    def fetch_output(self, url: str, scratch: str | os.PathLike[str], digest: str | None = None) -> Path:
        """A verified local copy of a stage's whole output folder (manifest, artifacts, tables).

        Content-addressed by the sha256 of its ``manifest.json`` (``digest``, default the one in
        the store now); every artifact the manifest lists is re-hashed against its own sha256
        before the copy is used, so a folder that was changed or half-uploaded is refused. On the
        local store the folder itself is returned (its artifacts are checked by the reader)."""
        if self.is_local:
            return self.local_path(url)
        digest = digest or self.manifest_digest(url)
        if not re.fullmatch(r"[0-9a-f]{64}", digest):
            raise StorageError(f"fetch {url}: {digest!r} is not a sha256 hex digest")

        def fill(item: Path) -> None:
            self.fs.get(self._path(url).rstrip("/") + "/", str(item), recursive=True)
            manifest = item / MANIFEST
            if not manifest.exists():
                raise StorageError(f"{url}/{MANIFEST} is not in the store: re-run the stage that writes {url}")
            actual = hashlib.sha256(manifest.read_bytes()).hexdigest()
            if actual != digest:
                raise StorageError(f"{url}/{MANIFEST}: sha256 {actual[:12]}... is not the expected {digest[:12]}...; "
                                   "the output was replaced since its spec was written: re-run the task")
            for a in json.loads(manifest.read_text()).get("artifacts", []):
                self._check(f"{url}/{a['path']}", item / a["path"], a["sha256"])

        return self._cached(url, digest, scratch, fill)

    def fetch(self, url: str, sha256: str, scratch: str | os.PathLike[str]) -> Path:
        """A verified local copy of the artifact at ``url`` (file or folder) in ``scratch/cas``.

        Content-addressed by ``sha256``: a copy already there is reused without a download. A
        download whose digest is not ``sha256`` is deleted and refused. On the local store the
        artifact itself is checked and returned (no copy)."""
        if not re.fullmatch(r"[0-9a-f]{64}", sha256 or ""):
            raise StorageError(f"fetch {url}: {sha256!r} is not a sha256 hex digest")
        if self.is_local:
            path = self.local_path(url)
            self._check(url, path, sha256)
            return path
        src = self._path(url)

        def fill(item: Path) -> None:
            if not self.fs.exists(src):
                raise StorageError(f"{url} is not in the store: it was never uploaded, or was deleted")
            if self.fs.isdir(src):
                self.fs.get(src.rstrip("/") + "/", str(item), recursive=True)
            else:
                self.fs.get_file(src, str(item))
            self._check(url, item, sha256)

        return self._cached(url, sha256, scratch, fill)

    @staticmethod
    def _cached(url: str, digest: str, scratch: str | os.PathLike[str], fill: Callable[[Path], None]) -> Path:
        """``scratch/cas/<digest>/<name>``: kept when already there; otherwise ``fill`` downloads
        and checks it into a private temporary place, renamed in only once whole and checked."""
        name = url.rstrip("/").rsplit("/", 1)[-1]
        done = Path(scratch) / "cas" / digest / name
        if done.exists():
            return done
        tmp = Path(scratch) / "cas" / f".{digest}.{uuid.uuid4().hex[:8]}"
        try:
            tmp.mkdir(parents=True)
            fill(tmp / name)
            done.parent.mkdir(parents=True, exist_ok=True)
            try:
                (tmp / name).rename(done)
            except OSError:  # another task on this worker finished the same digest first
                if not done.exists():
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return done

    @staticmethod
    def _check(url: str, path: Path, sha256: str) -> None:
        if not path.exists():
            raise StorageError(f"{url} is missing from the store: the upload was incomplete; re-run the stage that made it")
        actual = sha256_path(path)
        if actual != sha256:
            raise StorageError(f"{url}: sha256 {actual[:12]}... does not match the registered {sha256[:12]}...; "
                               "the stored artifact changed or the upload was incomplete: re-run the stage that made it")

    # ------------------------------------------------------------------ Parquet
    def arrow_filesystem(self):
        """(pyarrow filesystem, root path) for Parquet reads and writes through the same store."""
        from pyarrow.fs import FSSpecHandler, LocalFileSystem, PyFileSystem

        if self.is_local:
            return LocalFileSystem(), self.root
        return PyFileSystem(FSSpecHandler(self.fs)), self.root


# Where credentials come from when the caller gives none: set by the Airflow glue
# (vigil.airflow.storage_conn: VIGIL_STORAGE_CONN_ID), so code below it (the registry, the
# nightly checks, the Parquet store) reads the store with the same keys without importing Airflow.
_OPTIONS_PROVIDER: Callable[[], dict[str, Any]] | None = None


def set_options_provider(provider: Callable[[], dict[str, Any]] | None) -> None:
    """Name the function that returns the store's fsspec options (credentials) by default."""
    global _OPTIONS_PROVIDER
    _OPTIONS_PROVIDER = provider


def default_store(settings: Settings | None = None, storage_options: dict[str, Any] | None = None) -> ObjectStore:
    """The store of ``VIGIL_STORAGE_URL`` (default: the data dir); credentials from
    ``storage_options``, else from the provider the Airflow glue sets (never for file://)."""
    url = storage_url(settings)
    if storage_options is None and _OPTIONS_PROVIDER is not None and not url.startswith("file://"):
        storage_options = _OPTIONS_PROVIDER()
    return ObjectStore(url, storage_options or {})


def is_store_url(value: Any, store: ObjectStore) -> bool:
    """True when ``value`` is a URL under a remote ``store`` (what a fleet's tasks pass around)."""
    return (not store.is_local and isinstance(value, str)
            and (value == store.url or value.startswith(store.url + "/")))
