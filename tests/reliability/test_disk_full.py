"""Disk full while the warehouse writes a Parquet partition: a real small filesystem (tmpfs) as the
store's root. The write fails with an error naming the partition's path, the partition written
before stays whole and readable, and no temporary file is left behind."""

from __future__ import annotations

import os
import subprocess
import uuid

import numpy as np
import pandas as pd
import pytest

from vigil.storage.parquet_store import ParquetStore, ParquetStoreError


@pytest.fixture
def small_fs(tmp_path):
    mnt = tmp_path / f"fs-{uuid.uuid4().hex[:6]}"
    mnt.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(mnt)], capture_output=True, text=True)
    if r.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_full_disk_names_the_partition_and_keeps_the_previous_one(small_fs):
    store = ParquetStore(small_fs / "warehouse")
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
