"""Masked-LM heads that project onto the vocabulary only at masked positions.

With a 30k-word vocabulary (50k for RoBERTa, 250k for XLM-R) the decoder over every position costs more
than a small encoder, and PLD cannot shrink it; BERT pre-training code gathers the masked positions
first. Each class here is its family's stock ``*ForMaskedLM`` with only `forward` changed: same weights,
same names, same tying, so checkpoints load either way. Without labels the logits cover every position,
as HF's do; with labels, only the masked ones (``labels != -100``), and the loss is the same mean
cross-entropy. ModernBERT needs none of this: its own class does it (``config.sparse_prediction``).
Each family adapter names its classes (`Family.sparse_mlm`, families/).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from transformers import (
    BertForMaskedLM,
    CamembertForMaskedLM,
    DistilBertForMaskedLM,
    ElectraForMaskedLM,
    RobertaForMaskedLM,
    XLMRobertaForMaskedLM,
)
from transformers.modeling_outputs import MaskedLMOutput


class SparseMaskedLM(nn.Module):
    """Mixin: `mlm_logits(hidden)` is the family's prediction head; the backbone is `base_model_prefix`."""

    def mlm_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        **kwargs,
    ) -> MaskedLMOutput:
        if token_type_ids is not None:  # only families with token types get them (model.load_model)
            kwargs["token_type_ids"] = token_type_ids
        backbone = getattr(self, self.base_model_prefix)
        hidden = backbone(input_ids, attention_mask=attention_mask, return_dict=True, **kwargs).last_hidden_state
        if labels is None:  # plain inference: logits everywhere, as HF does
            return MaskedLMOutput(logits=self.mlm_logits(hidden))
        picked = labels != -100
        logits = self.mlm_logits(hidden[picked])  # (n_masked, vocab)
        loss = F.cross_entropy(logits, labels[picked]) if logits.numel() else hidden.sum() * 0.0
        return MaskedLMOutput(loss=loss, logits=logits)


class SparseBertForMaskedLM(SparseMaskedLM, BertForMaskedLM):
    def mlm_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.cls(hidden)


class _RobertaHead:
    def mlm_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.lm_head(hidden)


class SparseRobertaForMaskedLM(_RobertaHead, SparseMaskedLM, RobertaForMaskedLM):
    pass


class SparseXLMRobertaForMaskedLM(_RobertaHead, SparseMaskedLM, XLMRobertaForMaskedLM):
    pass


class SparseCamembertForMaskedLM(_RobertaHead, SparseMaskedLM, CamembertForMaskedLM):
    pass


class SparseElectraForMaskedLM(SparseMaskedLM, ElectraForMaskedLM):
    def mlm_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.generator_lm_head(self.generator_predictions(hidden))


class SparseDistilBertForMaskedLM(SparseMaskedLM, DistilBertForMaskedLM):
    def mlm_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        h = self.vocab_layer_norm(self.activation(self.vocab_transform(hidden)))
        return self.vocab_projector(h)
