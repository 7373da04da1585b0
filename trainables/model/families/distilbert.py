"""DistilBERT: the BERT block under other names, no dropout after the attention output, no token types."""
from __future__ import annotations

from ..encoder import BlockSpec
from .base import Family


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

    def eps(self, config) -> float:
        return 1e-12  # fixed in HF's DistilBERT blocks

    def uses_token_types(self, config) -> bool:
        return False
