"""Randomly initialised models of every supported family, written as ordinary HF model directories.

The only real checkpoint on hand is MiniLM (BERT). Other families are exercised through random models
built from their transformers config classes, saved with `save_pretrained` (plus a tokenizer) and then
loaded back through the real path (`model.load_model(dir)`), as a downloaded checkpoint would be. Used by
the tests (tiny sizes) and by scripts/bench/ticket_speed.py (MiniLM-like size).
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
import transformers
from transformers import AutoTokenizer, PreTrainedConfig

from ..model.families import family_of


@dataclass(frozen=True)
class Size:
    hidden: int
    layers: int
    heads: int
    ffn: int
    max_positions: int = 512


SIZES = {
    "tiny": Size(hidden=32, layers=2, heads=4, ffn=64, max_positions=128),
    # MiniLM-L6's shape (ModernBERT's adapter gives its gated FFN 2/3 of the width)
    "minilm": Size(hidden=384, layers=6, heads=12, ffn=1536),
}


def config_for(
    model_type: str, size: Size, vocab_size: int, pad_id: int, cls_id: int = 101, sep_id: int = 102
) -> PreTrainedConfig:
    """A config of `model_type` at `size` (its family adapter's `random_config`); special-token ids are
    the tokenizer's. An unsupported model_type is refused with the list of supported ones."""
    return family_of(model_type).random_config(model_type, size, vocab_size, pad_id, cls_id, sep_id)


def write_random_model(
    model_type: str, out_dir: str | Path, size: str | Size = "tiny", tokenizer: str = "minilm-l6", seed: int = 0
) -> Path:
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
