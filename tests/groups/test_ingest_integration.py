"""The sklearn stages' manifests through the Airflow side's real record task (vigil.registry.ingest), then
the nightly comparison on what it filed: the contract between the stages and compare_groups."""

from tests.groups.conftest import DAY
from vigil.groups.comparison import compare_groups
from vigil.groups.membership import Groups
from vigil.registry import ingest
from vigil.registry.versions import RunRef


def test_recorded_sklearn_evaluations_are_paired_by_compare_groups(engine, registry, sk_dir, store):
    refs = {}
    for strat in ("gradient_boosting", "logistic_regression"):
        rec = ingest.record_stage(engine, sk_dir / strat, RunRef("train_sklearn", f"r-{strat}", "record", DAY),
                                  store=store)
        refs[strat] = rec.ref
        ev = ingest.record_stage(engine, sk_dir / f"{strat}-eval",
                                 RunRef("nightly_evaluation", "n", f"record_{strat}", DAY), store=store)
        assert ev.subject_version_id == rec.version_id  # subject_uri matched the registered artifact
        # the nightly DAG finds the dataset to evaluate on in the version's params
        assert registry.get(rec.ref).params["dataset"]
    g = Groups(engine)
    g.create("recorded", primary_metric="roc_auc", direction="max")
    g.add("recorded", refs["logistic_regression"], role="champion")
    g.add("recorded", refs["gradient_boosting"], weight=0.5)
    (row,) = compare_groups(engine, DAY, RunRef("nightly_evaluation", "n", "compare_groups", DAY))
    assert row["paired"], row["reasons"]
    assert row["metrics"]["n"] == registry.evaluations(registry.get(refs["gradient_boosting"]).id,
                                                       suite="evaluate-sklearn")[0]["n_samples"]
