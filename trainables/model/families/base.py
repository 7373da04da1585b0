"""What every family adapter answers: where the backbone and its encoder sit, what its blocks look
like (a `BlockSpec`), which head classes it has, how a TicketEncoder is put in place, what the
generated ticket code needs to know of it (ticket/hf_code.py reads these plain names: model/ never
imports ticket/), and how a tiny random model of it is configured (testing/random_models.py)."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Protocol

import transformers
from torch import nn
from transformers import PreTrainedConfig
from transformers.models.auto import configuration_auto, modeling_auto

from ..encoder import BlockSpec, TicketEncoder, TicketLayer
from ..heads import HEADS

_AUTO_NAMES = {  # "config", "base" or a head -> model_type -> HF class name (transformers' own Auto tables)
    "config": configuration_auto.CONFIG_MAPPING_NAMES,
    "base": modeling_auto.MODEL_MAPPING_NAMES,
    "classification": modeling_auto.MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES,
    "regression": modeling_auto.MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES,
    "mlm": modeling_auto.MODEL_FOR_MASKED_LM_MAPPING_NAMES,
    "qa": modeling_auto.MODEL_FOR_QUESTION_ANSWERING_MAPPING_NAMES,
}


class Size(Protocol):
    """The widths of a random model (testing/random_models.Size)."""

    hidden: int
    layers: int
    heads: int
    ffn: int
    max_positions: int


def bert_like(size: Size, vocab_size: int, pad_id: int) -> dict:
    """Config entries under BERT's names (most families' configs take them)."""
    return dict(
        hidden_size=size.hidden,
        num_hidden_layers=size.layers,
        num_attention_heads=size.heads,
        intermediate_size=size.ffn,
        vocab_size=vocab_size,
        pad_token_id=pad_id,
    )


class Family:
    """One encoder family. Subclasses set the class attributes; most need no method of their own.

    `backbone_attr`: the head models' attribute holding the backbone (``bert``, ``roberta``...).
    `encoder_attr`: the backbone's attribute holding the encoder that a TicketEncoder replaces.
    `layer_list`: the encoder's attribute holding the block list. `native_pre_ln`: the family's
    blocks are pre-LN as published (then the TicketEncoder cannot make them post-LN).
    `sparse_mlm`: model_type -> the masked-positions-only MLM class (mlm_head.py) where there is one.

    The generated ticket code (ticket/hf_code.py) takes the stock class names from transformers' Auto
    tables (`stock_name`), the head models' backbone attribute from `backbone_attr`, the FFN width's
    config key from `width_keys` and the default arrangement from `native_pre_ln`, and besides these:
    `hf_template`, the layer template in ticket/hf_templates/ (``TickettuneLayer``, ``TickettuneEncoder``);
    `hf_layer_stack`, the stock base model's attribute that TickettuneEncoder replaces (default
    `encoder_attr`); `hf_pooler`, whether the stock base model takes ``add_pooling_layer``; `hf_no_split`,
    its ``_no_split_modules`` besides its layer class (``{prefix}``: the config class name less "Config").
    """

    name: str = ""
    model_types: tuple[str, ...] = ()
    backbone_attr: str = ""
    encoder_attr: str = "encoder"
    layer_list: str = "layer"
    block: BlockSpec = BlockSpec()
    native_pre_ln: bool = False
    # config.json keys of (layers, heads per layer, FFN width), for reading a layout without building
    width_keys: tuple[str, str, str] = ("num_hidden_layers", "num_attention_heads", "intermediate_size")
    sparse_mlm: Mapping[str, type[nn.Module]] = MappingProxyType({})
    hf_template: str = ""
    hf_layer_stack: str = ""
    hf_pooler: bool = True
    hf_no_split: tuple[str, ...] = ("{prefix}Embeddings",)

    def __deepcopy__(self, memo: dict) -> "Family":
        return self

    # ---------------------------------------------------------------- config
    def eps(self, config) -> float:
        return float(config.layer_norm_eps)

    def uses_token_types(self, config) -> bool:
        """Whether the embeddings read token_type_ids (tokenizers stop producing them otherwise)."""
        return int(getattr(config, "type_vocab_size", 0) or 0) > 1

    def widths(self, config_json: dict) -> dict:
        """{"heads": [...], "ffn": [...]} per layer, from a checkpoint's config.json as a dict."""
        n, h, f = (int(config_json[k]) for k in self.width_keys)
        return {"heads": [h] * n, "ffn": [f] * n}

    def head_config(self, head: str) -> dict:
        """Extra config entries a head needs in this family."""
        return {}

    def random_config(
        self, model_type: str, size: Size, vocab_size: int, pad_id: int, cls_id: int, sep_id: int
    ) -> PreTrainedConfig:
        """A config of `model_type` at `size` for a random model; special-token ids are the tokenizer's."""
        return transformers.AutoConfig.for_model(
            model_type, **bert_like(size, vocab_size, pad_id), max_position_embeddings=size.max_positions
        )

    # ---------------------------------------------------------------- classes
    def stock_name(self, what: str, model_type: str) -> str:
        """transformers' class name of `model_type` for `what`: "config", "base" (AutoModel) or a head."""
        name = _AUTO_NAMES[what].get(model_type)
        if name is None:
            raise ValueError(
                f"model_type {model_type!r} has no {what} "
                f"{'class' if what in ('config', 'base') else 'head'} in transformers"
            )
        return name

    def head_class(self, head: str, model_type: str) -> type[nn.Module]:
        """transformers' class for `head`; for MLM the masked-positions-only variant where there is one."""
        if head not in HEADS:
            raise ValueError(f"unknown head {head!r}; expected one of {HEADS}")
        if head == "mlm" and model_type in self.sparse_mlm:
            return self.sparse_mlm[model_type]
        return getattr(transformers, self.stock_name(head, model_type))

    # ---------------------------------------------------------------- placement
    def backbone(self, model: nn.Module) -> nn.Module:
        return getattr(model, self.backbone_attr) if hasattr(model, self.backbone_attr) else model

    def install(
        self, model: nn.Module, pre_ln: bool | None = None, heads_per_layer: list[int] | None = None
    ) -> nn.Module:
        """Replace the model's encoder (in place) by a TicketEncoder over the same weights.

        `heads_per_layer` describes layers whose projections were already sliced; by default every
        layer has the config's head count. pre_ln=None keeps the family's published arrangement.
        """
        backbone = self.backbone(model)
        old = getattr(backbone, self.encoder_attr)
        if isinstance(old, TicketEncoder):
            return model
        pre_ln = self.native_pre_ln if pre_ln is None else bool(pre_ln)
        if self.native_pre_ln and not pre_ln:
            raise ValueError(f"{self.name} blocks are pre-LN; they cannot be run post-LN (pre_ln=False)")
        layers = self.layers(backbone.config, getattr(old, self.layer_list), pre_ln, heads_per_layer)
        setattr(backbone, self.encoder_attr, self.make_encoder(backbone, old, layers, pre_ln))
        return model

    def layers(
        self, config, hf_layers: nn.ModuleList, pre_ln: bool, heads_per_layer: list[int] | None
    ) -> list[TicketLayer]:
        n = config.num_hidden_layers
        head_dim = config.hidden_size // config.num_attention_heads
        heads = heads_per_layer or [config.num_attention_heads] * n
        if len(heads) != n:
            raise ValueError(f"heads_per_layer has {len(heads)} entries for {n} layers: {heads}")
        return [TicketLayer(hf, self.block, h, head_dim, pre_ln) for hf, h in zip(hf_layers, heads)]

    def make_encoder(
        self, backbone: nn.Module, old: nn.Module, layers: list[TicketLayer], pre_ln: bool
    ) -> TicketEncoder:
        # a post-LN family run pre-LN leaves the residual stream unnormalised: one LayerNorm after the stack
        return TicketEncoder(
            layers,
            backbone.config.hidden_size,
            pre_ln,
            self.eps(backbone.config),
            list_name=self.layer_list,
            final_norm=pre_ln and not self.native_pre_ln,
        )
