"""Masked-LM that projects onto the vocabulary only at masked positions.

With a 30k-word vocabulary the decoder over every position costs more than a small encoder, and PLD
cannot shrink it; BERT pre-training code gathers the masked positions first. Same weights and names as
`BertForMaskedLM`, so checkpoints load either way.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from transformers import BertForMaskedLM
from transformers.modeling_outputs import MaskedLMOutput


class SparseBertForMaskedLM(BertForMaskedLM):
    def forward(self, input_ids: torch.Tensor | None = None, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None, labels: torch.Tensor | None = None,
                **kwargs) -> MaskedLMOutput:
        hidden = self.bert(input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
                           return_dict=True, **kwargs).last_hidden_state
        if labels is None:  # plain inference: logits everywhere, as HF does
            return MaskedLMOutput(logits=self.cls(hidden))
        picked = labels != -100
        logits = self.cls(hidden[picked])  # (n_masked, vocab)
        loss = F.cross_entropy(logits, labels[picked]) if logits.numel() else hidden.sum() * 0.0
        return MaskedLMOutput(loss=loss, logits=logits)
