# tickettune template: the blocks of modeling_tickettune.py for ModernBERT (layers.N with attn_norm,
# attn.Wqkv/Wo, mlp_norm, mlp.Wi/Wo). Only the block list is replaced: ModernBertModel's own forward
# still embeds, builds the full and sliding-window masks and the rotary tables of each attention type,
# calls every block with its own, and applies final_norm. hf_code.py writes the common imports above
# it and the model classes below it.
from transformers.models.modernbert.modeling_modernbert import apply_rotary_pos_emb


class TickettuneAttention(nn.Module):
    """Fused Wqkv for this layer's heads only (rows [q | k | v], each head-major), rotary q and k,
    scaled dot-product attention under the layer's (full or sliding-window) mask, then Wo."""

    def __init__(self, config, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = config.hidden_size // config.num_attention_heads
        width = num_heads * self.head_dim
        self.Wqkv = nn.Linear(config.hidden_size, 3 * width, bias=config.attention_bias)
        self.Wo = nn.Linear(width, config.hidden_size, bias=config.attention_bias)
        self.attention_dropout = config.attention_dropout
        self.out_drop = nn.Dropout(config.attention_dropout) if config.attention_dropout > 0.0 else nn.Identity()

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None, position_embeddings) -> torch.Tensor:
        b, t, _ = x.shape
        q, k, v = (p.view(b, t, self.num_heads, self.head_dim).transpose(1, 2)
                   for p in self.Wqkv(x).chunk(3, dim=-1))
        cos, sin = position_embeddings
        q, k = apply_rotary_pos_emb(q, k, cos, sin)
        p = self.attention_dropout if self.training else 0.0
        context = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)
        return self.out_drop(self.Wo(context.transpose(1, 2).reshape(b, t, self.num_heads * self.head_dim)))


class TickettuneMLP(nn.Module):
    """The gated FFN: Wi gives [value | gate] rows for this layer's neurons; Wo(act(value) * gate)."""

    def __init__(self, config, width: int):
        super().__init__()
        self.Wi = nn.Linear(config.hidden_size, 2 * width, bias=config.mlp_bias)
        self.act = ACT2FN[config.hidden_activation]
        self.drop = nn.Dropout(config.mlp_dropout)
        self.Wo = nn.Linear(width, config.hidden_size, bias=config.mlp_bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        value, gate = self.Wi(x).chunk(2, dim=-1)
        return self.Wo(self.drop(self.act(value) * gate))


class TickettuneLayer(GradientCheckpointingLayer):
    """One pre-LN block with its own head count and FFN width (the first has no attention norm)."""

    def __init__(self, config, index: int, num_heads: int, ffn_width: int):
        super().__init__()

        def norm() -> nn.LayerNorm:
            return nn.LayerNorm(config.hidden_size, eps=config.norm_eps, bias=config.norm_bias)
        self.attn_norm = nn.Identity() if index == 0 else norm()
        self.attn = TickettuneAttention(config, num_heads)
        self.mlp_norm = norm()
        self.mlp = TickettuneMLP(config, ffn_width)
        self.attention_type = config.layer_types[index]  # the mask and rotary table ModernBertModel hands over

    def forward(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None = None,
                position_embeddings: tuple[torch.Tensor, torch.Tensor] | None = None, **kwargs) -> torch.Tensor:
        mask = attention_mask
        if mask is not None and mask.dtype != torch.bool:  # the model hands over a bool or additive mask
            mask = mask.to(hidden_states.dtype) if mask.is_floating_point() else mask.bool()
        x = hidden_states + self.attn(self.attn_norm(hidden_states), mask, position_embeddings)
        return x + self.mlp(self.mlp_norm(x))


class TickettuneEncoder(nn.ModuleList):
    """Takes the place of ModernBertModel.layers: the same parameter names, per-layer widths."""

    def __init__(self, config):
        if not config.pre_ln:
            raise ValueError("ModernBERT blocks are pre-LN: a ticket of this family has pre_ln=True")
        super().__init__(TickettuneLayer(config, i, h, f)
                         for i, (h, f) in enumerate(zip(config.heads_per_layer, config.ffn_per_layer)))
