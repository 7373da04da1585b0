# tickettune template: the layer stack of modeling_tickettune.py for families whose blocks are laid out
# like BERT's (attention.self.query/key/value, attention.output.dense/LayerNorm, intermediate.dense,
# output.dense/LayerNorm). hf_code.py writes the common imports above it and the model classes below it.
from transformers.modeling_outputs import BaseModelOutputWithPastAndCrossAttentions


class TickettuneSelfAttention(nn.Module):
    """Q, K and V for this layer's heads only; scaled dot-product attention over them."""

    def __init__(self, config, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = config.hidden_size // config.num_attention_heads
        width = num_heads * self.head_dim
        self.query = nn.Linear(config.hidden_size, width)
        self.key = nn.Linear(config.hidden_size, width)
        self.value = nn.Linear(config.hidden_size, width)
        self.dropout = nn.Dropout(config.attention_probs_dropout_prob)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        b, t, _ = x.shape
        q, k, v = (lin(x).view(b, t, self.num_heads, self.head_dim).transpose(1, 2)
                   for lin in (self.query, self.key, self.value))
        p = self.dropout.p if self.training else 0.0
        context = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)
        return context.transpose(1, 2).reshape(b, t, self.num_heads * self.head_dim)


class TickettuneDenseNorm(nn.Module):
    """A projection back to hidden_size, its dropout, and the LayerNorm of that sublayer."""

    def __init__(self, config, width: int):
        super().__init__()
        self.dense = nn.Linear(width, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)


class TickettuneAttention(nn.Module):
    def __init__(self, config, num_heads: int):
        super().__init__()
        self.self = TickettuneSelfAttention(config, num_heads)
        self.output = TickettuneDenseNorm(config, num_heads * self.self.head_dim)


class TickettuneIntermediate(nn.Module):
    def __init__(self, config, width: int):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, width)
        self.intermediate_act_fn = ACT2FN[config.hidden_act]


class TickettuneLayer(GradientCheckpointingLayer):
    """One block with its own head count and FFN width; post-LN (BERT's) or pre-LN."""

    def __init__(self, config, num_heads: int, ffn_width: int):
        super().__init__()
        self.attention = TickettuneAttention(config, num_heads)
        self.intermediate = TickettuneIntermediate(config, ffn_width)
        self.output = TickettuneDenseNorm(config, ffn_width)
        self.pre_ln = config.pre_ln

    def attention_branch(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        out = self.attention.output
        return out.dropout(out.dense(self.attention.self(x, mask)))

    def ffn_branch(self, x: torch.Tensor) -> torch.Tensor:
        h = self.intermediate.intermediate_act_fn(self.intermediate.dense(x))
        return self.output.dropout(self.output.dense(h))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        ln_att, ln_ffn = self.attention.output.LayerNorm, self.output.LayerNorm
        if self.pre_ln:  # x + f(LN(x)): the residual stream is normalised once, after the last layer
            x = x + self.attention_branch(ln_att(x), mask)
            return x + self.ffn_branch(ln_ffn(x))
        x = ln_att(x + self.attention_branch(x, mask))
        return ln_ffn(x + self.ffn_branch(x))


class TickettuneEncoder(nn.Module):
    """Takes the place of the family's encoder: the same parameter names, per-layer widths."""

    def __init__(self, config):
        super().__init__()
        self.layer = nn.ModuleList(TickettuneLayer(config, h, f)
                                   for h, f in zip(config.heads_per_layer, config.ffn_per_layer))
        self.final_layer_norm = (nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
                                 if config.pre_ln else None)

    def forward(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None = None,
                **kwargs) -> BaseModelOutputWithPastAndCrossAttentions:
        mask = attention_mask
        if mask is not None and mask.dtype != torch.bool:  # the model hands over a bool or additive mask
            mask = mask.to(hidden_states.dtype) if mask.is_floating_point() else mask.bool()
        for layer in self.layer:
            hidden_states = layer(hidden_states, mask)
        if self.final_layer_norm is not None:
            hidden_states = self.final_layer_norm(hidden_states)
        return BaseModelOutputWithPastAndCrossAttentions(last_hidden_state=hidden_states)
