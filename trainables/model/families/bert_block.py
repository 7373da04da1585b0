"""The BERT block (BERT, RoBERTa, XLM-RoBERTa, CamemBERT, ELECTRA): post-LN, separate Q/K/V, a plain
FFN; the families differ only in the backbone attribute, embeddings and heads."""
from __future__ import annotations

from ..encoder import BlockSpec
from .base import Family


class BertBlock(BlockSpec):
    q, k, v = "attention.self.query", "attention.self.key", "attention.self.value"
    attn_drop = "attention.self.dropout"
    o, o_drop = "attention.output.dense", "attention.output.dropout"
    ffn_in, act = "intermediate.dense", "intermediate.intermediate_act_fn"
    ffn_out, ffn_drop = "output.dense", "output.dropout"
    ln_att, ln_ffn = "attention.output.LayerNorm", "output.LayerNorm"


class Bert(Family):
    name = "BERT"
    model_types = ("bert",)
    backbone_attr = "bert"
    block = BertBlock()


class Roberta(Family):
    """RoBERTa and the models built on its code: XLM-RoBERTa, CamemBERT (token types unused: one type)."""

    name = "RoBERTa"
    model_types = ("roberta", "xlm-roberta", "camembert")
    backbone_attr = "roberta"
    block = BertBlock()


class Electra(Family):
    """ELECTRA discriminator (and generator) checkpoints; the embeddings may be projected up to hidden."""

    name = "ELECTRA"
    model_types = ("electra",)
    backbone_attr = "electra"
    block = BertBlock()
