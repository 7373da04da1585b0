"""What every family adapter answers: where the backbone and its encoder sit, what its blocks look
like (a `BlockSpec`), which head classes it has, and how a TicketEncoder is put in place."""
from __future__ import annotations

import transformers
from torch import nn
from transformers.models.auto import modeling_auto

from ..encoder import BlockSpec, TicketEncoder, TicketLayer
from ..mlm_head import SPARSE_MLM

HEADS = ("classification", "regression", "mlm", "qa")
_AUTO_NAMES = {  # head -> model_type -> HF class name (transformers' own Auto tables)
    "classification": modeling_auto.MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES,
    "regression": modeling_auto.MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES,
    "mlm": modeling_auto.MODEL_FOR_MASKED_LM_MAPPING_NAMES,
    "qa": modeling_auto.MODEL_FOR_QUESTION_ANSWERING_MAPPING_NAMES,
}


class Family:
    """One encoder family. Subclasses set the class attributes; most need no method of their own.

    `backbone_attr`: the head models' attribute holding the backbone (``bert``, ``roberta``...).
    `encoder_attr`: the backbone's attribute holding the encoder that a TicketEncoder replaces.
    `layer_list`: the encoder's attribute holding the block list. `native_pre_ln`: the family's
    blocks are pre-LN as published (then the TicketEncoder cannot make them post-LN).
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

    # ---------------------------------------------------------------- classes
    def head_class(self, head: str, model_type: str) -> type[nn.Module]:
        """transformers' class for `head`; for MLM the masked-positions-only variant where there is one."""
        if head not in HEADS:
            raise ValueError(f"unknown head {head!r}; expected one of {HEADS}")
        if head == "mlm" and model_type in SPARSE_MLM:
            return SPARSE_MLM[model_type]
        name = _AUTO_NAMES[head].get(model_type)
        if name is None:
            raise ValueError(f"model_type {model_type!r} has no {head} head in transformers")
        return getattr(transformers, name)

    # ---------------------------------------------------------------- placement
    def backbone(self, model: nn.Module) -> nn.Module:
        return getattr(model, self.backbone_attr) if hasattr(model, self.backbone_attr) else model

    def install(self, model: nn.Module, pre_ln: bool | None = None,
                heads_per_layer: list[int] | None = None) -> nn.Module:
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

    def layers(self, config, hf_layers: nn.ModuleList, pre_ln: bool,
               heads_per_layer: list[int] | None) -> list[TicketLayer]:
        n = config.num_hidden_layers
        head_dim = config.hidden_size // config.num_attention_heads
        heads = heads_per_layer or [config.num_attention_heads] * n
        if len(heads) != n:
            raise ValueError(f"heads_per_layer has {len(heads)} entries for {n} layers: {heads}")
        return [TicketLayer(hf, self.block, h, head_dim, pre_ln) for hf, h in zip(hf_layers, heads)]

    def make_encoder(self, backbone: nn.Module, old: nn.Module, layers: list[TicketLayer],
                     pre_ln: bool) -> TicketEncoder:
        # a post-LN family run pre-LN leaves the residual stream unnormalised: one LayerNorm after the stack
        return TicketEncoder(layers, backbone.config.hidden_size, pre_ln, self.eps(backbone.config),
                             list_name=self.layer_list, final_norm=pre_ln and not self.native_pre_ln)
