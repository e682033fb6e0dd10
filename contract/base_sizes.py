"""Named sizes of the tiny base model ``make-base`` builds: pure data, read by the stage (which
shapes the model) and by the DAG forms (which offer the names).

Every size uses the same tokenizer (a byte-level BPE of ``vocab_size`` 1024, trained on the same
seeded corpus) and the same pre-training data, so in a sweep over sizes the model's width and
depth are the only variables. The parameter counts are those of the built model with tied
embeddings (measured; the tokenizer adds a few special tokens to the 1024, hence the odd digits);
``make-base`` records the exact count as its ``parameters`` metric.
"""

from __future__ import annotations

from typing import Literal

BaseSize = Literal["xs", "s", "m"]

#: name -> the tiny Llama's shape. ``s`` is make-base's default shape (hidden 128, 4 layers).
BASE_SIZES: dict[str, dict[str, int]] = {
    "xs": {"hidden_size": 64, "n_layers": 3, "n_heads": 4, "intermediate_size": 256},
    "s": {"hidden_size": 128, "n_layers": 4, "n_heads": 4, "intermediate_size": 512},
    "m": {"hidden_size": 256, "n_layers": 4, "n_heads": 8, "intermediate_size": 1024},
}

#: About how many parameters each size has (for forms and docs; the stage records the exact count).
APPROX_PARAMETERS: dict[str, str] = {"xs": "~0.26M", "s": "~1.2M", "m": "~4.5M"}

#: The size a sweep uses when its form names none (make-base's default shape).
DEFAULT_SIZE = "s"

SHAPE_FIELDS = ("hidden_size", "n_layers", "n_heads", "intermediate_size")
