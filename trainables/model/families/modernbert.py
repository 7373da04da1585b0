"""ModernBERT: pre-LN blocks (the first without an attention norm), fused Wqkv, rotary position
embeddings per attention type, alternating sliding-window / global attention, a gated FFN (Wi gives
[value | gate]; act(value)·gate then Wo) and a final norm of its own.

The whole backbone (``model``) is replaced: HF's forward builds the per-type masks and rotary tables
and then calls its blocks, so ours does the same around TicketLayers. The embeddings, blocks, final
norm and rotary tables are HF's modules under their own names (``model.layers.3.attn.Wqkv.weight``).
The masks follow HF's bidirectional ones: padding keys are hidden everywhere, and a sliding layer sees
keys within ``config.sliding_window`` (= local_attention // 2) positions either side.
"""

from __future__ import annotations

from functools import partial

import torch
import transformers
from torch import nn
from transformers import PreTrainedConfig
from transformers.modeling_outputs import BaseModelOutput
from transformers.models.modernbert.modeling_modernbert import apply_rotary_pos_emb

from ..encoder import BlockSpec, TicketEncoder, TicketLayer
from .base import Family, Size, bert_like


class ModernBertBlock(BlockSpec):
    qkv = "attn.Wqkv"
    attn_p = "attn.attention_dropout"
    o, o_drop = "attn.Wo", "attn.out_drop"
    ffn_in, act, ffn_out, ffn_drop = "mlp.Wi", "mlp.act", "mlp.Wo", "mlp.drop"
    ffn_drop_before_out = True
    gated = True
    ln_att, ln_ffn = "attn_norm", "mlp_norm"
    rotary = True


class ModernTicketEncoder(TicketEncoder):
    """Stands where ModernBertModel stood: embeddings -> blocks -> final norm."""

    def __init__(self, backbone: nn.Module, layers: list[TicketLayer]):
        config = backbone.config
        super().__init__(
            layers, config.hidden_size, pre_ln=True, eps=config.norm_eps, list_name="layers", final_norm=False
        )
        self.config = config
        self.embeddings = backbone.embeddings
        self.final_norm = backbone.final_norm
        self.rotary_emb = backbone.rotary_emb

    def get_input_embeddings(self) -> nn.Module:
        return self.embeddings.tok_embeddings

    def masks(self, attention_mask: torch.Tensor | None, t: int, device: torch.device) -> dict:
        keep = None if attention_mask is None else attention_mask[:, None, None, :].bool()
        idx = torch.arange(t, device=device)
        band = ((idx[:, None] - idx[None, :]).abs() <= self.config.sliding_window)[None, None]
        return {"full_attention": keep, "sliding_attention": band if keep is None else band & keep}

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        **_: object,
    ) -> BaseModelOutput:
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("pass exactly one of input_ids or inputs_embeds")
        hidden = self.embeddings(input_ids=input_ids, inputs_embeds=inputs_embeds)
        t = hidden.shape[1]
        if position_ids is None:
            position_ids = torch.arange(t, device=hidden.device)[None]
        masks = self.masks(attention_mask, t, hidden.device)
        types = [layer.attention_type for layer in self.blocks]
        rotary = {}
        for kind in set(types):
            cos, sin = self.rotary_emb(hidden, position_ids, kind)
            rotary[kind] = partial(apply_rotary_pos_emb, cos=cos, sin=sin)
        hidden = self.run_layers(hidden, [masks[k] for k in types], [rotary[k] for k in types])
        return BaseModelOutput(last_hidden_state=self.final_norm(hidden))


class ModernBert(Family):
    name = "ModernBERT"
    model_types = ("modernbert",)
    backbone_attr = "model"
    encoder_attr = "model"  # the whole backbone: see the module docstring
    layer_list = "layers"
    block = ModernBertBlock()
    native_pre_ln = True
    hf_template = "modernbert_layers.py"
    hf_layer_stack = "layers"  # the generated code keeps ModernBertModel, whose own forward runs .layers
    hf_pooler = False

    def eps(self, config) -> float:
        return float(config.norm_eps)

    def uses_token_types(self, config) -> bool:
        return False

    def head_config(self, head: str) -> dict:
        # HF's own masked-positions-only decoder (the SparseBertForMaskedLM idea)
        return {"sparse_prediction": True} if head == "mlm" else {}

    def random_config(
        self, model_type: str, size: Size, vocab_size: int, pad_id: int, cls_id: int, sep_id: int
    ) -> PreTrainedConfig:
        # the gated FFN gets 2/3 of the width beyond tiny sizes: about the same parameters as a plain one
        ffn = size.ffn * 2 // 3 if size.ffn > 64 else size.ffn
        return transformers.ModernBertConfig(
            **{**bert_like(size, vocab_size, pad_id), "intermediate_size": ffn},
            max_position_embeddings=size.max_positions,
            bos_token_id=cls_id,
            eos_token_id=sep_id,
            cls_token_id=cls_id,
            sep_token_id=sep_id,
            global_attn_every_n_layers=2,
            local_attention=8 if size.hidden <= 64 else 128,
        )

    def install(
        self, model: nn.Module, pre_ln: bool | None = None, heads_per_layer: list[int] | None = None
    ) -> nn.Module:
        if pre_ln is False:
            raise ValueError("ModernBERT blocks are pre-LN; they cannot be run post-LN (pre_ln=False)")
        old = getattr(model, self.backbone_attr, None)
        if old is None:
            raise TypeError(f"{type(model).__name__}: install works on ModernBERT head models (with .model)")
        if isinstance(old, TicketEncoder):
            return model
        layers = self.layers(old.config, old.layers, True, heads_per_layer)
        setattr(model, self.backbone_attr, ModernTicketEncoder(old, layers))
        return model
