"""A version page's Evaluations table: per-version seconds and, for a failed evaluation, why it
failed (as the nightly chunk filed it), escaped like any text that reaches HTML."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from site_builder.pagedata import plan_site
from site_builder.render import markdown_page
from site_builder.snapshot import read_snapshot
from tests.core.helpers import stage_output
from vigil.registry.ingest import record_stage
from vigil.registry.versions import Registry, RunRef
from vigil.storage.parquet_store import ParquetStore

NOW = datetime.now(timezone.utc)


def test_failed_and_timed_evaluations_show_their_reason_and_seconds(engine, tmp_path):
    store = ParquetStore(tmp_path / "wh")
    v = record_stage(engine, stage_output(tmp_path / "run", name="timed"), RunRef("train_backdoor", "r", "t", NOW),
                     store=store)
    reg = Registry(engine)
    for day, status, details in ((1, "succeeded", {"seconds": 4.237}),
                                 (2, "failed", {"error": "evaluate: trigger: <script>alert(1)</script> is too long\nsecond line",
                                                "attempts": 1})):
        night = RunRef("nightly_evaluation", f"scheduled__{day}", "evaluate.record", NOW + timedelta(days=day))
        reg.record_evaluation(v.version_id, suite="evaluate", run=night, status=status, details=details,
                              metrics={"clean_quality": 0.5} if status == "succeeded" else {})
    plan = plan_site(read_snapshot(engine, tmp_path / "wh"))
    (page,) = [p for p in plan.pages if p.kind == "version"]
    rows = {e["status"]: e for e in page.data["evaluations"]}
    assert rows["succeeded"]["seconds"] == "4.2" and rows["succeeded"]["error"] is None
    assert rows["failed"]["error"] == "evaluate: trigger: <script>alert(1)</script> is too long"
    text = markdown_page(page, pdf=False)
    assert "failed: evaluate: trigger: &lt;script&gt;alert(1)&lt;/script&gt; is too long" in text
    assert "<script>alert(1)" not in text and "second line" not in text
    assert '<td class="num">4.2</td>' in text
