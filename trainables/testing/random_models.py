"""Randomly initialised models of every supported family, written as ordinary HF model directories.

The only real checkpoint on hand is MiniLM (BERT). Other families are exercised through random models
built from their transformers config classes, saved with `save_pretrained` (plus a tokenizer) and then
loaded back through the real path (`model.load_model(dir)`), as a downloaded checkpoint would be. Used by
the tests (tiny sizes) and by scripts/bench_ticket_speed.py (MiniLM-like size).
"""
from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
import transformers
from transformers import AutoTokenizer, PreTrainedConfig

from ..model.families import FAMILIES, supported


@dataclass(frozen=True)
class Size:
    hidden: int
    layers: int
    heads: int
    ffn: int
    max_positions: int = 512


SIZES = {"tiny": Size(hidden=32, layers=2, heads=4, ffn=64, max_positions=128),
         # MiniLM-L6's shape; ModernBERT's gated FFN gets 2/3 of the width: about the same parameters
         "minilm": Size(hidden=384, layers=6, heads=12, ffn=1536)}


def config_for(model_type: str, size: Size, vocab_size: int, pad_id: int, cls_id: int = 101,
               sep_id: int = 102) -> PreTrainedConfig:
    """A config of `model_type` at `size`; special-token ids are the tokenizer's."""
    if model_type not in FAMILIES:
        raise ValueError(f"model_type {model_type!r} is not supported; supported families: {supported()}")
    common = dict(vocab_size=vocab_size, pad_token_id=pad_id)
    bert_like = dict(hidden_size=size.hidden, num_hidden_layers=size.layers, num_attention_heads=size.heads,
                     intermediate_size=size.ffn, **common)
    if model_type == "distilbert":
        return transformers.DistilBertConfig(dim=size.hidden, n_layers=size.layers, n_heads=size.heads,
                                             hidden_dim=size.ffn, max_position_embeddings=size.max_positions,
                                             **common)
    if model_type == "modernbert":
        return transformers.ModernBertConfig(
            **{**bert_like, "intermediate_size": size.ffn * 2 // 3 if size.ffn > 64 else size.ffn},
            max_position_embeddings=size.max_positions, bos_token_id=cls_id, eos_token_id=sep_id,
            cls_token_id=cls_id, sep_token_id=sep_id, global_attn_every_n_layers=2,
            local_attention=8 if size.hidden <= 64 else 128)
    if model_type in ("roberta", "xlm-roberta", "camembert"):  # positions start after the padding index
        return transformers.AutoConfig.for_model(model_type, **bert_like, type_vocab_size=1,
                                                 max_position_embeddings=size.max_positions + pad_id + 1)
    if model_type == "electra":  # embeddings narrower than the blocks, projected up (as ELECTRA-small)
        return transformers.ElectraConfig(**bert_like, embedding_size=size.hidden // 2,
                                          max_position_embeddings=size.max_positions)
    return transformers.AutoConfig.for_model(model_type, **bert_like, max_position_embeddings=size.max_positions)


def write_random_model(model_type: str, out_dir: str | Path, size: str | Size = "tiny",
                       tokenizer: str = "minilm-l6", seed: int = 0) -> Path:
    """Save a random `model_type` backbone and `tokenizer`'s files to `out_dir` (atomically); returns it.

    The MiniLM tokenizer (BERT WordPiece) serves every family: only its vocabulary size and special ids
    matter to a random model.
    """
    from ..model.build import model_path
    size = SIZES[size] if isinstance(size, str) else size
    tok = AutoTokenizer.from_pretrained(model_path(tokenizer))
    config = config_for(model_type, size, len(tok), tok.pad_token_id, tok.cls_token_id, tok.sep_token_id)
    torch.manual_seed(seed)
    model = transformers.AutoModel.from_config(config)
    out = Path(out_dir)
    if out.exists():
        raise FileExistsError(f"{out} already exists")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out
