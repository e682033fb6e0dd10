"""The analytical half of the warehouse: Parquet partitions by kind / logical date / key.

Layout: ``<root>/<kind>/date=<YYYY-MM-DD>/key=<key>/part.parquet``. ``key`` is normally the
model version id. A partition is written to a hidden temporary file in the same directory and
renamed over the old one, so a crash mid-write leaves the previous partition whole, and
re-writing a partition (a re-run or a back-fill) replaces it instead of adding to it.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import uuid
from datetime import date
from pathlib import Path

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
    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root)

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
        return (self.partition_dir(kind, logical_date, key) / PART).exists()

    def files(self, kind: str, logical_date: date | str | None = None, key: str | int | None = None) -> list[Path]:
        base = self.root / kind
        if not base.exists():
            return []
        date_glob = f"date={_day(logical_date)}" if logical_date is not None else "date=*"
        key_glob = f"key={key}" if key is not None else "key=*"
        return sorted(base.glob(f"{date_glob}/{key_glob}/{PART}"))

    def read(self, kind: str, logical_date: date | str | None = None, key: str | int | None = None) -> pd.DataFrame:
        """Rows of the matching partitions with ``logical_date`` and ``key`` columns added."""
        frames = []
        for f in self.files(kind, logical_date, key):
            df = pq.read_table(f).to_pandas()
            df["logical_date"] = f.parent.parent.name.split("=", 1)[1]
            df["key"] = f.parent.name.split("=", 1)[1]
            frames.append(df)
        if not frames:
            return pd.DataFrame()
        return pd.concat(frames, ignore_index=True)

    def delete(self, kind: str, logical_date: date | str, key: str | int) -> bool:
        f = self.partition_dir(kind, logical_date, key) / PART
        if f.exists():
            f.unlink()
            return True
        return False


def default_store() -> ParquetStore:
    from vigil.settings import get_settings

    return ParquetStore(get_settings().parquet_dir)
