"""pytest's warning filters (pyproject.toml): a DeprecationWarning raised from our own packages
fails the test; one raised from a third-party package stays ignored."""

import warnings

import pytest

WARN = compile("import warnings\nwarnings.warn('old API', DeprecationWarning)\n", "<fake module>", "exec")


@pytest.mark.parametrize("module", ["vigil.settings", "vigil", "gpu_trainer.cli", "evaluation.comparison",
                                    "site_builder.publish", "dags.nightly_evaluation", "contract.metrics"])
def test_deprecation_from_our_packages_is_an_error(module):
    with pytest.raises(DeprecationWarning, match="old API"):
        exec(WARN, {"__name__": module})


@pytest.mark.parametrize("module", ["sqlalchemy.engine", "airflow.sdk", "vigilant_thirdparty", "evaluations"])
def test_deprecation_from_third_party_packages_is_ignored(module):
    with warnings.catch_warnings(record=True) as seen:
        exec(WARN, {"__name__": module})
    assert seen == []
