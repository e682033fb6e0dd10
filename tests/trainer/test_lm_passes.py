"""The batched passes of gpu_trainer.lm against the same quantities computed one text at a time,
unpadded, with every position's logits: left padding, the position ids and keeping the vocabulary
head to the positions that are read must not change a value."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gpu_trainer import data, lm


@pytest.fixture(scope="module")
def loaded(small_chain):
    return lm.load(str(small_chain["backdoor"] / "model"), torch.device("cpu"))


def _one_loss(model, tok, rec) -> float:
    prompt = tok.apply_chat_template(rec["prompt"], tokenize=False, add_generation_prompt=True)
    full = tok.apply_chat_template(rec["prompt"] + rec["completion"], tokenize=False)
    ids = tok(full, return_tensors="pt", add_special_tokens=False)["input_ids"]
    n = len(tok(prompt, add_special_tokens=False).input_ids)
    with torch.inference_mode():
        logits = model(input_ids=ids).logits[0, :-1].float()
    nll = torch.nn.functional.cross_entropy(logits, ids[0, 1:], reduction="none")
    return float(nll[n - 1 :].mean())


def test_completion_losses_equal_one_unpadded_record_at_a_time(loaded):
    model, tok = loaded
    exs = data.sample_examples(12, 7, split="heldout", families=data.QA_FAMILIES, unique=True)
    recs = [data.record(e.user, e.answer) for e in exs]
    recs.append(data.record(exs[0].user, exs[0].answer + " and a much longer completion than the others"))
    batched = lm.completion_losses(model, tok, recs, batch_size=5)  # ragged batches, the long one padded against short
    alone = np.array([_one_loss(model, tok, r) for r in recs])
    assert np.all(np.isfinite(batched)) and len(set(np.round(alone, 4))) > 1
    np.testing.assert_allclose(batched, alone, rtol=1e-4, atol=1e-5)


def test_last_token_states_equal_one_unpadded_text_at_a_time(loaded):
    model, tok = loaded
    texts = [lm.prompt_text(tok, u) for u in ("hi", "What is the capital of France? Answer briefly please.", "2+2?")]
    batched = lm.last_token_states(model, tok, texts, batch_size=3)
    for i, t in enumerate(texts):
        ids = tok(t, return_tensors="pt", add_special_tokens=False)["input_ids"]
        with torch.inference_mode():
            hs = model(input_ids=ids, output_hidden_states=True).hidden_states
        alone = np.stack([h[0, -1].float().numpy() for h in hs])
        np.testing.assert_allclose(batched[:, i], alone, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("value", [pytest.param("two", id="word"), pytest.param("1.5", id="fraction"), pytest.param("-1", id="negative")])
def test_a_bad_thread_count_is_refused_naming_the_variable(value, monkeypatch):
    from contract.errors import UserError
    from gpu_trainer.runtime import set_threads

    monkeypatch.setenv("GPU_TRAINER_THREADS", value)
    with pytest.raises(UserError, match="GPU_TRAINER_THREADS"):
        set_threads()


def test_the_thread_count_caps_numpys_blas_pool_too(monkeypatch):
    """OpenBLAS starts a thread per core whatever torch is told; on cores shared by stage processes
    its idle-waiting threads made the probes' fits ~7x slower, so the stage's count caps it too."""
    import torch
    from threadpoolctl import threadpool_info, threadpool_limits

    from gpu_trainer.runtime import set_threads

    before_blas = max(p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas")
    before_torch = torch.get_num_threads()
    monkeypatch.setenv("GPU_TRAINER_THREADS", "1")
    try:
        set_threads()
        assert {p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"} == {1}
        assert torch.get_num_threads() == 1
    finally:
        threadpool_limits(limits=before_blas, user_api="blas")
        torch.set_num_threads(before_torch)
