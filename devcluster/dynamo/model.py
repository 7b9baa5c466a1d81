"""A tiny local model card (tokenizer + config) for Dynamo's frontend and mocker workers.

The mocker simulates timing only, but the frontend still tokenizes prompts and detokenizes the
tokens the mocker returns, so it needs a real `tokenizer.json`. This one is a word-level
tokenizer over the words `w0 .. w4095`: a prompt of N words is exactly N tokens, which lets the
load generator send a trace's input lengths as they are. Generated locally, never downloaded.

    python -m devcluster.dynamo.model        # prints the directory
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

MODEL_NAME = "tiny-mocker"
VOCAB_SIZE = 4096
_SPECIAL = ("<unk>", "<s>", "</s>")
_CONFIG = {
    "architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": VOCAB_SIZE,
    "max_position_embeddings": 131072, "bos_token_id": 1, "eos_token_id": 2,
    "hidden_size": 64, "num_attention_heads": 4, "num_hidden_layers": 2, "num_key_value_heads": 4,
}
_TOKENIZER_CONFIG = {
    "tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "<s>", "eos_token": "</s>",
    "unk_token": "<unk>", "model_max_length": 131072,
    # the frontend refuses a model without one, even for plain completions
    "chat_template": "{% for m in messages %}{{ m['content'] }} {% endfor %}",
}


def word(token_id: int) -> str:
    """The text of a non-special token id (ids below len(_SPECIAL) are special)."""
    return f"w{token_id}"


def prompt_of(n_tokens: int, seed: int = 0) -> str:
    """A prompt that tokenizes to exactly `n_tokens` tokens; `seed` varies the words so that
    different requests do not share a KV-cache prefix by accident."""
    span = VOCAB_SIZE - len(_SPECIAL)
    return " ".join(word(len(_SPECIAL) + (seed * 7919 + i) % span) for i in range(n_tokens))


def _tokenizer_json() -> str:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    vocab = {tok: i for i, tok in enumerate(_SPECIAL)}
    vocab.update({word(i): i for i in range(len(_SPECIAL), VOCAB_SIZE)})
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.decoder = decoders.WordPiece(prefix="##")  # joins words with single spaces
    return tok.to_str()


def default_cache() -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(root) / "dynamo-scaling" / "dynamo-model"


def ensure_model(cache: Path | None = None) -> Path:
    """Write the model card once per content version; return its directory."""
    files = {"config.json": json.dumps(_CONFIG, indent=1),
             "tokenizer_config.json": json.dumps(_TOKENIZER_CONFIG, indent=1)}
    key = hashlib.sha256(json.dumps([files, VOCAB_SIZE, _SPECIAL]).encode()).hexdigest()[:12]
    target = (cache or default_cache()) / f"{MODEL_NAME}-{key}"
    if (target / "tokenizer.json").is_file():
        return target
    tmp = target.with_name(target.name + f".tmp{os.getpid()}")
    tmp.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (tmp / name).write_text(text)
    (tmp / "tokenizer.json").write_text(_tokenizer_json())
    try:
        os.replace(tmp, target)
    except OSError:  # another process won the race
        shutil.rmtree(tmp, ignore_errors=True)
        if not (target / "tokenizer.json").is_file():
            raise
    return target


if __name__ == "__main__":
    print(ensure_model())
