import pandas as pd
import pyarrow.parquet as pq
import pytest

from vigil.storage.parquet_store import ParquetStore, ParquetStoreError


def test_write_read_and_replace(tmp_path):
    store = ParquetStore(tmp_path)
    store.write("generations", "2026-11-24", 7, pd.DataFrame({"i": [1, 2, 3]}))
    store.write("generations", "2026-11-25", 7, pd.DataFrame({"i": [9]}))
    assert len(store.read("generations")) == 4
    store.write("generations", "2026-11-24", 7, pd.DataFrame({"i": [4, 5]}))  # a re-run replaces
    df = store.read("generations", "2026-11-24")
    assert sorted(df["i"]) == [4, 5] and set(df["key"]) == {"7"}
    assert len(store.read("generations")) == 3


def test_crash_mid_write_leaves_old_partition_readable(tmp_path, monkeypatch):
    store = ParquetStore(tmp_path)
    path = store.write("probe_layers", "2026-11-24", 1, pd.DataFrame({"x": [1.0, 2.0]}))

    def crash(table, where, *a, **k):
        with open(where, "wb") as f:
            f.write(b"PAR1 half a file")
        raise OSError("disk full")

    monkeypatch.setattr(pq, "write_table", crash)
    with pytest.raises(OSError, match="disk full"):
        store.write("probe_layers", "2026-11-24", 1, pd.DataFrame({"x": [3.0]}))
    monkeypatch.undo()
    assert list(store.read("probe_layers")["x"]) == [1.0, 2.0]
    assert [p.name for p in path.parent.iterdir()] == ["part.parquet"]  # no temp file left behind


@pytest.mark.parametrize(
    "kind, day, key",
    [
        pytest.param("../etc", "2026-11-24", 1, id="kind-traversal"),
        pytest.param("Gen", "2026-11-24", 1, id="kind-upper"),
        pytest.param("gen", "yesterday", 1, id="bad-date"),
        pytest.param("gen", "2026-11-24", "../x", id="key-traversal"),
    ],
)
def test_bad_partition_names_are_refused(tmp_path, kind, day, key):
    with pytest.raises(ParquetStoreError):
        ParquetStore(tmp_path).write(kind, day, key, pd.DataFrame({"a": [1]}))
