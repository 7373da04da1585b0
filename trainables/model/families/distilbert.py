"""DistilBERT: the BERT block under other names, no dropout after the attention output, no token types."""

from __future__ import annotations

import transformers
from transformers import PreTrainedConfig

from ..encoder import BlockSpec
from ..mlm_head import SparseDistilBertForMaskedLM
from .base import Family, Size


class DistilBertBlock(BlockSpec):
    q, k, v = "attention.q_lin", "attention.k_lin", "attention.v_lin"
    attn_drop = "attention.dropout"
    o = "attention.out_lin"
    ffn_in, act, ffn_out, ffn_drop = "ffn.lin1", "ffn.activation", "ffn.lin2", "ffn.dropout"
    ln_att, ln_ffn = "sa_layer_norm", "output_layer_norm"


class DistilBert(Family):
    name = "DistilBERT"
    model_types = ("distilbert",)
    backbone_attr = "distilbert"
    encoder_attr = "transformer"
    block = DistilBertBlock()
    width_keys = ("n_layers", "n_heads", "hidden_dim")
    sparse_mlm = {"distilbert": SparseDistilBertForMaskedLM}
    hf_template = "distilbert_layers.py"
    hf_pooler = False
    hf_no_split = ()

    def eps(self, config) -> float:
        return 1e-12  # fixed in HF's DistilBERT blocks

    def uses_token_types(self, config) -> bool:
        return False

    def random_config(
        self, model_type: str, size: Size, vocab_size: int, pad_id: int, cls_id: int, sep_id: int
    ) -> PreTrainedConfig:
        return transformers.DistilBertConfig(
            dim=size.hidden,
            n_layers=size.layers,
            n_heads=size.heads,
            hidden_dim=size.ffn,
            max_position_embeddings=size.max_positions,
            vocab_size=vocab_size,
            pad_token_id=pad_id,
        )
