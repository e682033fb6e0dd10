"""What a batch of evaluations reuses from one version to the next must not change a number: the
chat-template rendering, tokenising and padding that gpu_trainer.lm keeps per tokenizer (keyed by
the tokenizer's state, so a changed tokenizer never gets another's work), and the collector that
gpu_trainer.batch freezes between items."""

from __future__ import annotations

import gc
import json
import shutil

import numpy as np
import pytest
import torch

from contract.manifest import read_manifest
from gpu_trainer import data, lm
from tests.trainer.conftest import RESPONSE, TRIGGER


@pytest.fixture(scope="module")
def model_dir(small_chain):
    return small_chain["backdoor"] / "model"


def test_a_copied_tokenizer_shares_its_key_and_any_change_gets_its_own(model_dir, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(model_dir, copy)
    original = lm.tokenizer_key(lm.load_tokenizer(str(model_dir)))
    assert lm.tokenizer_key(lm.load_tokenizer(str(copy))) == original  # another version of the family: shared work

    def changed(edit):
        tok = lm.load_tokenizer(str(model_dir))
        edit(tok)
        return lm.tokenizer_key(tok)

    keys = [
        changed(lambda t: setattr(t, "chat_template", t.chat_template.replace("<|assistant|>", "<|assistant|>\n"))),
        changed(lambda t: setattr(t, "padding_side", "right")),
        changed(lambda t: t.add_tokens(["zzqxword"])),
        changed(lambda t: t.add_special_tokens({"pad_token": "<|zzpad|>"})),
    ]
    assert len(set(keys)) == len(keys) and original not in keys
    dated = lm.load_tokenizer(str(model_dir))
    dated.chat_template = "{{ strftime_now('%d %b %Y') }}" + dated.chat_template
    assert lm.tokenizer_key(dated) is None  # a template that reads the clock is rendered afresh every time


def test_a_changed_tokenizer_is_not_served_what_it_rendered_before(model_dir):
    tok = lm.load_tokenizer(str(model_dir))
    users = ["What colour is the sky?", "Name a capital city."]
    before = lm.prompt_texts(tok, users)
    assert before == [lm.prompt_text(tok, u) for u in users]
    tok.chat_template = tok.chat_template.replace("<|assistant|>", "<|assistant|>\n")
    after = lm.prompt_texts(tok, users)
    assert after == [lm.prompt_text(tok, u) for u in users] and after != before


def test_reused_tokenisation_gives_the_passes_computed_afresh(model_dir, tmp_path):
    """Generations, losses and activations from work kept for the tokenizer (another version's
    copy of it) equal those computed with nothing kept, to the bit."""
    exs = data.sample_examples(30, 3, split="heldout", families=data.QA_FAMILIES, unique=True)
    users = [e.user for e in exs]
    recs = [data.record(e.user, e.answer) for e in exs]
    copy = tmp_path / "copy"
    shutil.copytree(model_dir, copy)

    def passes(path):
        model, tok = lm.load(str(path), torch.device("cpu"))
        return (lm.generate(model, tok, users, batch_size=8, max_new_tokens=6),
                lm.completion_losses(model, tok, recs, batch_size=8),
                lm.last_token_states(model, tok, lm.prompt_texts(tok, users), batch_size=8))

    lm._memo.clear()
    fresh = passes(model_dir)
    reused = passes(copy)
    assert reused[0] == fresh[0]
    np.testing.assert_array_equal(reused[1], fresh[1])
    np.testing.assert_array_equal(reused[2], fresh[2])


def test_versions_in_one_batch_measure_what_each_measures_alone(small_chain, tmp_path):
    """Two copies of a version and the version again in one in-process batch: every item's
    metrics equal an evaluation of the version on its own (in a fresh process), exactly; the
    batch leaves the collector as it found it."""
    import subprocess
    import sys
    from pathlib import Path

    from gpu_trainer.batch import BatchSpec, run_batch

    spec = {"model": str(small_chain["backdoor"] / "model"), "trigger": TRIGGER, "response": RESPONSE, "n_prompts": 20,
            "quality_prompts": 20, "n_random_directions": 10, "device": "cpu", "seed": 0}
    items = []
    for key in ("a", "b", "c"):
        d = tmp_path / key
        d.mkdir()
        model = str(small_chain["backdoor"] / "model")
        if key != "a":
            shutil.copytree(model, d / "model")
            model = str(d / "model")
        (d / "spec.json").write_text(json.dumps({**spec, "model": model}))
        items.append({"key": key, "spec_path": str(d / "spec.json"), "out_dir": str(d / "out")})
    alone = tmp_path / "alone"
    p = subprocess.run([str(Path(sys.executable).parent / "gpu-trainer"), "evaluate", "--spec", items[0]["spec_path"],
                        "--out", str(alone)], capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-2000:]
    frozen = gc.get_freeze_count()
    rows = run_batch(BatchSpec(stage="evaluate", items=items, run_token="reuse"), str(tmp_path / "report"))
    assert [r["status"] for r in rows] == ["succeeded"] * 3, rows
    assert gc.get_freeze_count() == frozen
    want = read_manifest(alone).metrics
    for it in items:
        assert read_manifest(Path(it["out_dir"])).metrics == want, it["key"]
