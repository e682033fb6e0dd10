"""Disk full while the warehouse writes a Parquet partition: a real small filesystem (tmpfs) as the
store's root. The write fails with an error naming the partition's path, the partition written
before stays whole and readable, and no temporary file is left behind."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from vigil.storage.parquet_store import ParquetStore, ParquetStoreError


def test_full_disk_names_the_partition_and_keeps_the_previous_one(small_tmpfs):
    store = ParquetStore(small_tmpfs("512k") / "warehouse")
    old = pd.DataFrame({"row": range(100), "score": np.linspace(0, 1, 100)})
    path = store.write("generations", "2026-11-24", "7-evaluate", old)
    # a re-run of the same task brings a partition too big for what is left on the device
    big = pd.DataFrame({"row": range(200_000), "noise": np.random.default_rng(0).random(200_000)})
    with pytest.raises(ParquetStoreError) as e:
        store.write("generations", "2026-11-24", "7-evaluate", big)
    msg = str(e.value)
    assert "no space left" in msg and str(path.parent) in msg, msg
    pd.testing.assert_frame_equal(store.read("generations", "2026-11-24", "7-evaluate")[["row", "score"]], old)
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left
