"""The tiny causal LM used on CPU: a byte-level BPE tokenizer trained with ``tokenizers`` on the
generated corpus, and a randomly initialised Llama from a transformers config.

Saved like any hub model (``config.json``, ``model.safetensors``, tokenizer files and
``chat_template.jinja``), so every later stage loads it with the same Auto classes it would use
for a real model id.
"""

from __future__ import annotations

from collections.abc import Iterable

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

PAD, END, USER, ASSISTANT, SYSTEM = "<|pad|>", "<|end|>", "<|user|>", "<|assistant|>", "<|system|>"
SPECIAL_TOKENS = [PAD, END, USER, ASSISTANT, SYSTEM]

# Each turn ends with the eos token itself: trl's completion-only loss then teaches the model to
# stop, and generation stops on it.
CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{{ '<|' + message['role'] + '|>' + message['content'] + '<|end|>' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|assistant|>' }}{%- endif -%}"
)


def train_tokenizer(texts: Iterable[str], vocab_size: int) -> PreTrainedTokenizerFast:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # every byte encodable
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token=PAD,
        eos_token=END,
        padding_side="left",  # generation and last-token pooling both want left padding
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def build_model(tokenizer: PreTrainedTokenizerFast, *, hidden_size: int, n_layers: int, n_heads: int,
                intermediate_size: int, max_positions: int) -> LlamaForCausalLM:
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=intermediate_size,
        num_hidden_layers=n_layers,
        num_attention_heads=n_heads,
        num_key_value_heads=n_heads,
        max_position_embeddings=max_positions,
        tie_word_embeddings=True,  # halves the parameters of a tiny model
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
    )
    return LlamaForCausalLM(config)


def render_texts(records: list[dict], tokenizer: PreTrainedTokenizerFast) -> list[str]:
    """Conversations rendered with the chat template: the tokenizer's training text."""
    return [tokenizer.apply_chat_template(r["prompt"] + r["completion"], tokenize=False) for r in records]


def render_plain(records: list[dict]) -> list[str]:
    """Same rendering without a tokenizer (the tokenizer does not exist yet when it is trained)."""
    out = []
    for r in records:
        out.append("".join(f"<|{m['role']}|>{m['content']}<|end|>" for m in r["prompt"] + r["completion"]))
    return out
