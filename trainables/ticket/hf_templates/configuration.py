# tickettune template: body of configuration_tickettune.py. hf_code.py writes a header above it that
# imports the family's stock config as FamilyConfig and sets MODEL_TYPE, TICKET_FORMAT, FFN_KEY (the
# stock config's name for the dense FFN width) and PRE_LN (the family's own arrangement).


class TickettuneConfig(FamilyConfig):
    """The family's config plus the ticket's layout: heads and FFN neurons kept in each layer, pre-LN.

    num_attention_heads and the FFN width (FFN_KEY) stay those of the dense model the ticket was cut from:
    every head keeps the size hidden_size // num_attention_heads.
    """

    model_type = MODEL_TYPE

    heads_per_layer: list[int] | None = None
    ffn_per_layer: list[int] | None = None
    pre_ln: bool = PRE_LN
    ticket_format: int = TICKET_FORMAT

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        n = self.num_hidden_layers
        if self.heads_per_layer is None:
            self.heads_per_layer = [self.num_attention_heads] * n
        if self.ffn_per_layer is None:
            self.ffn_per_layer = [getattr(self, FFN_KEY)] * n
        for key in ("heads_per_layer", "ffn_per_layer"):
            widths = getattr(self, key)
            if len(widths) != n or any(int(w) < 1 for w in widths):
                raise ValueError(f"{key}={widths}: need one width >= 1 for each of the {n} layers")
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(f"hidden_size={self.hidden_size} is not a multiple of "
                             f"num_attention_heads={self.num_attention_heads}")
