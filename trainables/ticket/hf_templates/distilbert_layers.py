# tickettune template: the layer stack of modeling_tickettune.py for DistilBERT (transformer.layer.N with
# attention.q_lin/k_lin/v_lin/out_lin, sa_layer_norm, ffn.lin1/lin2, output_layer_norm). hf_code.py
# writes the common imports above it and the model classes below it.
from transformers.modeling_outputs import BaseModelOutput

LAYER_NORM_EPS = 1e-12  # fixed in DistilBERT's blocks (its config has no layer_norm_eps)


class TickettuneAttention(nn.Module):
    """q_lin, k_lin and v_lin for this layer's heads only, scaled dot-product attention, out_lin."""

    def __init__(self, config, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = config.dim // config.n_heads
        width = num_heads * self.head_dim
        self.q_lin = nn.Linear(config.dim, width)
        self.k_lin = nn.Linear(config.dim, width)
        self.v_lin = nn.Linear(config.dim, width)
        self.out_lin = nn.Linear(width, config.dim)
        self.dropout = nn.Dropout(config.attention_dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        b, t, _ = x.shape
        q, k, v = (lin(x).view(b, t, self.num_heads, self.head_dim).transpose(1, 2)
                   for lin in (self.q_lin, self.k_lin, self.v_lin))
        p = self.dropout.p if self.training else 0.0
        context = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)
        return self.out_lin(context.transpose(1, 2).reshape(b, t, self.num_heads * self.head_dim))


class TickettuneFFN(nn.Module):
    """lin1 to this layer's FFN neurons, the activation, lin2 back to dim, then dropout."""

    def __init__(self, config, width: int):
        super().__init__()
        self.lin1 = nn.Linear(config.dim, width)
        self.lin2 = nn.Linear(width, config.dim)
        self.activation = ACT2FN[config.activation]
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.lin2(self.activation(self.lin1(x))))


class TickettuneLayer(GradientCheckpointingLayer):
    """One block with its own head count and FFN width; post-LN (DistilBERT's) or pre-LN."""

    def __init__(self, config, num_heads: int, ffn_width: int):
        super().__init__()
        self.attention = TickettuneAttention(config, num_heads)
        self.sa_layer_norm = nn.LayerNorm(config.dim, eps=LAYER_NORM_EPS)
        self.ffn = TickettuneFFN(config, ffn_width)
        self.output_layer_norm = nn.LayerNorm(config.dim, eps=LAYER_NORM_EPS)
        self.pre_ln = config.pre_ln

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if self.pre_ln:  # x + f(LN(x)): the residual stream is normalised once, after the last layer
            x = x + self.attention(self.sa_layer_norm(x), mask)
            return x + self.ffn(self.output_layer_norm(x))
        x = self.sa_layer_norm(x + self.attention(x, mask))
        return self.output_layer_norm(x + self.ffn(x))


class TickettuneEncoder(nn.Module):
    """Takes the place of DistilBertModel.transformer: the same parameter names, per-layer widths."""

    def __init__(self, config):
        super().__init__()
        self.layer = nn.ModuleList(TickettuneLayer(config, h, f)
                                   for h, f in zip(config.heads_per_layer, config.ffn_per_layer))
        self.final_layer_norm = nn.LayerNorm(config.dim, eps=LAYER_NORM_EPS) if config.pre_ln else None

    def forward(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None = None,
                **kwargs) -> BaseModelOutput:
        mask = attention_mask
        if mask is not None and mask.dtype != torch.bool:  # the model hands over a bool or additive mask
            mask = mask.to(hidden_states.dtype) if mask.is_floating_point() else mask.bool()
        for layer in self.layer:
            hidden_states = layer(hidden_states, mask)
        if self.final_layer_norm is not None:
            hidden_states = self.final_layer_norm(hidden_states)
        return BaseModelOutput(last_hidden_state=hidden_states)
