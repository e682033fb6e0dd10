"""The analytical half of the warehouse: Parquet partitions by kind / logical date / key.

Layout: ``<root>/<kind>/date=<YYYY-MM-DD>/key=<key>/part.parquet``. ``key`` is normally the
model version id. A partition is written to a hidden temporary file in the same directory and
renamed over the old one, so a crash mid-write leaves the previous partition whole, and
re-writing a partition (a re-run or a back-fill) replaces it instead of adding to it.

On a remote object store (``VIGIL_STORAGE_URL=s3://...``, :func:`default_store`) the same layout
lives under ``<store>/warehouse`` and is read and written through pyarrow's fsspec filesystem of
the storage layer; an object is replaced whole by its PUT, so no temporary name is needed.
"""

from __future__ import annotations

import errno
import fnmatch
import os
import re
import shutil
import uuid
from datetime import date
from pathlib import Path, PurePosixPath
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

_KIND = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
_KEY = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")
PART = "part.parquet"


class ParquetStoreError(ValueError):
    pass


def _day(d: date | str) -> str:
    if isinstance(d, str):
        try:
            d = date.fromisoformat(d[:10])
        except ValueError:
            raise ParquetStoreError(f"logical_date {d!r} is not an ISO date (YYYY-MM-DD)") from None
    return d.isoformat()


class ParquetStore:
    def __init__(self, root: str | os.PathLike[str], filesystem: Any = None):
        """``root``: a local folder; or, with ``filesystem`` (a pyarrow FileSystem over an object
        store), the store path the partitions live under."""
        self.filesystem = filesystem
        self.root = Path(root) if filesystem is None else PurePosixPath(str(root))

    def partition_dir(self, kind: str, logical_date: date | str, key: str | int) -> Path:
        if not _KIND.match(kind):
            raise ParquetStoreError(f"kind {kind!r} must match {_KIND.pattern} (lower-case letters, digits, _)")
        key = str(key)
        if not _KEY.match(key) or key in (".", ".."):
            raise ParquetStoreError(f"partition key {key!r} must match {_KEY.pattern}")
        return self.root / kind / f"date={_day(logical_date)}" / f"key={key}"

    def write(self, kind: str, logical_date: date | str, key: str | int, data: pd.DataFrame | pa.Table) -> Path:
        """Write (or replace) one partition atomically; returns its file path."""
        table = data if isinstance(data, pa.Table) else pa.Table.from_pandas(data, preserve_index=False)
        d = self.partition_dir(kind, logical_date, key)
        if self.filesystem is not None:  # an object store: one PUT replaces the object whole
            self.filesystem.create_dir(str(d), recursive=True)
            pq.write_table(table, str(d / PART), filesystem=self.filesystem)
            return d / PART
        d.mkdir(parents=True, exist_ok=True)
        target = d / PART
        tmp = d / f".{PART}.{uuid.uuid4().hex}.tmp"
        try:
            pq.write_table(table, tmp)
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
            os.replace(tmp, target)
        except OSError as e:
            if e.errno == errno.ENOSPC or "No space left" in str(e):
                free = shutil.disk_usage(d).free
                raise ParquetStoreError(
                    f"no space left on the device holding {d} ({free} bytes free) while writing {table.num_rows} rows; "
                    f"the partition there is unchanged: free space and re-run the task") from e
            raise
        finally:
            if tmp.exists():
                tmp.unlink()
        return target

    def exists(self, kind: str, logical_date: date | str, key: str | int) -> bool:
        f = self.partition_dir(kind, logical_date, key) / PART
        if self.filesystem is not None:
            from pyarrow.fs import FileType

            return self.filesystem.get_file_info(str(f)).type == FileType.File
        return f.exists()

    def files(self, kind: str, logical_date: date | str | None = None, key: str | int | None = None) -> list[Path]:
        base = self.root / kind
        date_glob = f"date={_day(logical_date)}" if logical_date is not None else "date=*"
        key_glob = f"key={key}" if key is not None else "key=*"
        if self.filesystem is not None:
            from pyarrow.fs import FileSelector, FileType

            infos = self.filesystem.get_file_info(FileSelector(str(base), recursive=True, allow_not_found=True))
            pattern = f"{base}/{date_glob}/{key_glob}/{PART}"
            return sorted(PurePosixPath(i.path) for i in infos
                          if i.type == FileType.File and fnmatch.fnmatchcase(i.path, pattern))
        if not base.exists():
            return []
        return sorted(base.glob(f"{date_glob}/{key_glob}/{PART}"))

    def read(self, kind: str, logical_date: date | str | None = None, key: str | int | None = None) -> pd.DataFrame:
        """Rows of the matching partitions with ``logical_date`` and ``key`` columns added."""
        frames = []
        for f in self.files(kind, logical_date, key):
            df = pq.read_table(str(f) if self.filesystem else f, filesystem=self.filesystem).to_pandas()
            df["logical_date"] = f.parent.parent.name.split("=", 1)[1]
            df["key"] = f.parent.name.split("=", 1)[1]
            frames.append(df)
        if not frames:
            return pd.DataFrame()
        return pd.concat(frames, ignore_index=True)

    def delete(self, kind: str, logical_date: date | str, key: str | int) -> bool:
        f = self.partition_dir(kind, logical_date, key) / PART
        if self.filesystem is not None:
            if not self.exists(kind, logical_date, key):
                return False
            self.filesystem.delete_file(str(f))
            return True
        if f.exists():
            f.unlink()
            return True
        return False


def default_store() -> ParquetStore:
    """The warehouse's Parquet half: ``$VIGIL_DATA_DIR/warehouse``, or ``<store>/warehouse`` on a
    remote object store (``VIGIL_STORAGE_URL``), through the storage layer's filesystem."""
    from vigil.settings import get_settings
    from vigil.storage.objects import default_store as object_store
    from vigil.storage.objects import storage_url

    settings = get_settings()
    if storage_url(settings).startswith("file://"):
        return ParquetStore(settings.parquet_dir)
    fs, root = object_store(settings).arrow_filesystem()
    return ParquetStore(f"{root.rstrip('/')}/warehouse", filesystem=fs)
