"""The BERT block (BERT, RoBERTa, XLM-RoBERTa, CamemBERT, ELECTRA): post-LN, separate Q/K/V, a plain
FFN; the families differ only in the backbone attribute, embeddings and heads."""

from __future__ import annotations

import transformers
from transformers import PreTrainedConfig

from ..encoder import BlockSpec
from ..mlm_head import (
    SparseBertForMaskedLM,
    SparseCamembertForMaskedLM,
    SparseElectraForMaskedLM,
    SparseRobertaForMaskedLM,
    SparseXLMRobertaForMaskedLM,
)
from .base import Family, Size, bert_like


class BertBlock(BlockSpec):
    q, k, v = "attention.self.query", "attention.self.key", "attention.self.value"
    attn_drop = "attention.self.dropout"
    o, o_drop = "attention.output.dense", "attention.output.dropout"
    ffn_in, act = "intermediate.dense", "intermediate.intermediate_act_fn"
    ffn_out, ffn_drop = "output.dense", "output.dropout"
    ln_att, ln_ffn = "attention.output.LayerNorm", "output.LayerNorm"


class BertBlockFamily(Family):
    """A family built of BERT blocks: hf_templates/bert_layers.py fits them as they are."""

    block = BertBlock()
    hf_template = "bert_layers.py"


class Bert(BertBlockFamily):
    name = "BERT"
    model_types = ("bert",)
    backbone_attr = "bert"
    sparse_mlm = {"bert": SparseBertForMaskedLM}


class Roberta(BertBlockFamily):
    """RoBERTa and the models built on its code: XLM-RoBERTa, CamemBERT (token types unused: one type)."""

    name = "RoBERTa"
    model_types = ("roberta", "xlm-roberta", "camembert")
    backbone_attr = "roberta"
    sparse_mlm = {
        "roberta": SparseRobertaForMaskedLM,
        "xlm-roberta": SparseXLMRobertaForMaskedLM,
        "camembert": SparseCamembertForMaskedLM,
    }

    def random_config(
        self, model_type: str, size: Size, vocab_size: int, pad_id: int, cls_id: int, sep_id: int
    ) -> PreTrainedConfig:
        # positions start after the padding index
        return transformers.AutoConfig.for_model(
            model_type,
            **bert_like(size, vocab_size, pad_id),
            type_vocab_size=1,
            max_position_embeddings=size.max_positions + pad_id + 1,
        )


class Electra(BertBlockFamily):
    """ELECTRA discriminator (and generator) checkpoints; the embeddings may be projected up to hidden."""

    name = "ELECTRA"
    model_types = ("electra",)
    backbone_attr = "electra"
    sparse_mlm = {"electra": SparseElectraForMaskedLM}
    hf_pooler = False  # ElectraModel has no pooler

    def random_config(
        self, model_type: str, size: Size, vocab_size: int, pad_id: int, cls_id: int, sep_id: int
    ) -> PreTrainedConfig:
        # embeddings narrower than the blocks, projected up (as ELECTRA-small)
        return transformers.ElectraConfig(
            **bert_like(size, vocab_size, pad_id),
            embedding_size=size.hidden // 2,
            max_position_embeddings=size.max_positions,
        )
