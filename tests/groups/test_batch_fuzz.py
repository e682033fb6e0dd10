"""Bad input at the scoring door, generated: batch files for ``score_batch`` (columns missing or
renamed, wrong types, NaN, empty, duplicate or null request ids, NUL characters) and labels files,
through the real group, models and PostgreSQL. Each is scored or refused with ``InferenceError``;
nothing else escapes, and a refused batch writes no row."""

from __future__ import annotations

import uuid

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.groups.conftest import DAY
from vigil.groups.inference_log import InferenceError, ingest_labels, score_batch
from vigil.groups.membership import Groups
from vigil.registry.versions import RunRef

RUN = RunRef("score_batch", "manual__fuzz", "score", DAY)


@pytest.fixture
def fuzz_group(engine, registry, sk_versions, sk_dir):
    from gpu_trainer.sklearn_data import synthetic

    g = Groups(engine)
    g.create("fuzz", primary_metric="accuracy", direction="max")
    g.add("fuzz", registry.get_by_id(sk_versions["gb"]).ref, role="champion")
    g.add("fuzz", registry.get_by_id(sk_versions["lr"]).ref, weight=0.2)
    good = synthetic(rows=40, seed=7).drop(columns=["label"]).rename(columns={"row_id": "request_id"})
    return g.get("fuzz"), good


def _rows(engine, table) -> int:
    with engine.connect() as c:
        return c.execute(sa.text(f'SELECT count(*) FROM "{table}"')).scalar()


MUTATIONS = ["drop_column", "rename_id", "nan_feature", "text_feature", "null_id", "duplicate_id", "empty", "nul_in_id",
             "bool_feature", "inf_feature", "huge_number", "object_mix"]


@settings(deadline=None, max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(muts=st.lists(st.sampled_from(MUTATIONS), min_size=1, max_size=3, unique=True), seed=st.integers(0, 10_000))
def test_generated_bad_batches_are_scored_or_refused_cleanly(engine, fuzz_group, store, tmp_path_factory, muts, seed):
    group, good = fuzz_group
    rng = np.random.default_rng(seed)
    df = good.copy()
    df["request_id"] = uuid.uuid4().hex[:6] + "-" + df["request_id"]  # each example's requests are new to the log
    feature = rng.choice([c for c in df.columns if c != "request_id"])
    for m in muts:
        numeric = feature in df and df[feature].dtype.kind in "fi"
        if m == "drop_column" and feature in df:
            df = df.drop(columns=[feature])
        elif m == "rename_id" and "request_id" in df:
            df = df.rename(columns={"request_id": "id"})
        elif m == "empty":
            df = df.iloc[0:0]
        elif len(df) < 2:
            continue  # the mutations below change rows
        elif m in ("nan_feature", "inf_feature", "huge_number") and numeric:
            df[feature] = df[feature].astype(float)
            value = {"nan_feature": np.nan, "inf_feature": np.inf, "huge_number": 1e308}[m]
            df.loc[df.index[: len(df) // 2 if m == "nan_feature" else 1], feature] = value
        elif m == "text_feature" and numeric:
            df[feature] = df[feature].astype(str) + "x"
        elif m == "object_mix" and numeric:
            df[feature] = df[feature].astype(str)  # numbers as text, one of them not a number
            df.loc[df.index[0], feature] = "n/a"
        elif m == "bool_feature" and numeric:
            df[feature] = df[feature] > 0
        elif m == "null_id" and "request_id" in df:
            df["request_id"] = df["request_id"].astype(object)
            df.loc[df.index[0], "request_id"] = None
        elif m == "duplicate_id" and "request_id" in df:
            df.loc[df.index[1], "request_id"] = df["request_id"].iloc[0]
        elif m == "nul_in_id" and "request_id" in df:
            df["request_id"] = df["request_id"].astype(str)
            df.loc[df.index[0], "request_id"] = "a\x00b"
    path = tmp_path_factory.mktemp("b") / "batch.parquet"
    df.to_parquet(path, index=False)
    before = _rows(engine, group.table)
    try:
        score_batch(engine, group.name, path, RunRef(RUN.dag_id, f"fuzz-{uuid.uuid4().hex[:8]}", "score", DAY), store=store,
                    explain=False)
    except InferenceError as e:
        assert str(e) and "\n" not in str(e).strip(), str(e)
        assert _rows(engine, group.table) == before
        return
    assert _rows(engine, group.table) > before


@pytest.mark.parametrize("labels,match", [
    pytest.param(pd.DataFrame({"request_id": ["a"]}), "no 'label' column", id="no-label"),
    pytest.param(pd.DataFrame({"id": ["a"], "label": [1]}), "no 'request_id' column", id="no-id"),
    pytest.param(pd.DataFrame({"request_id": [None, "b"], "label": [1, 0]}), "request_id.*empty", id="null-id"),
    pytest.param(pd.DataFrame({"request_id": ["a\x00", "b"], "label": [1, 0]}), "NUL", id="nul-id"),
    pytest.param(pd.DataFrame({"request_id": ["a", "b"], "label": ["x\x00", 0]}), "NUL", id="nul-label"),
])
def test_bad_labels_are_refused_naming_the_column(engine, fuzz_group, labels, match):
    group, _ = fuzz_group
    with pytest.raises(InferenceError, match=match):
        ingest_labels(engine, group.name, labels)


def test_a_labels_file_that_is_not_parquet_is_refused(engine, fuzz_group, tmp_path):
    group, _ = fuzz_group
    (tmp_path / "labels.parquet").write_text("request_id,label\na,1\n")
    with pytest.raises(InferenceError, match="not a readable Parquet file"):
        ingest_labels(engine, group.name, tmp_path / "labels.parquet")
    with pytest.raises(InferenceError, match="does not exist"):
        ingest_labels(engine, group.name, tmp_path / "missing.parquet")
