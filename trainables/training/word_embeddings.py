"""What happens to the word-embedding matrix during training: `train | sparse | freeze`.

MiniLM's 30,522 × 384 word embedding is half of its 22.7M parameters, and a batch of 32 sentences of ~16
tokens touches a few hundred of its rows. Trained densely (``train``, HF's and the paper's way) every
step still builds a dense 30k-row gradient, clips it and runs AdamW over all of it.

* ``freeze``: the word-embedding weight gets ``requires_grad=False``: no gradient, no optimizer state.
  The position and token-type embeddings and the embedding LayerNorm still train. Where the MLM decoder
  is tied to the word embedding (one tensor), the decoder's weight is frozen with it (its bias trains).
* ``sparse``: ``nn.Embedding(sparse=True)`` gives a gradient over the rows the batch used only, and
  `LazyAdamW` steps those rows only. Semantics ("lazy Adam", as TensorFlow's LazyAdamOptimizer): a row's
  moments decay and its decoupled weight decay applies only at steps where the row is in the batch; the
  bias correction uses the optimizer's global step. On the first step the touched rows get exactly
  dense AdamW's update (every moment starts at 0); untouched rows stay bit-identical for ever, where dense
  AdamW would decay them and keep moving them on their old momentum. A tied MLM decoder makes the
  gradient dense (the decoder's matmul touches every row), so `sparse` is refused there, before compute.
"""

from __future__ import annotations

import math

import torch
from torch import nn

EMBEDDINGS = ("train", "sparse", "freeze")


def check(mode: str) -> str:
    if mode not in EMBEDDINGS:
        raise ValueError(f"embeddings={mode!r}: expected one of {EMBEDDINGS}")
    return mode


def word_embedding(model: nn.Module) -> nn.Embedding:
    """The model's word (token) embedding module, as HF's `get_input_embeddings` names it."""
    emb = model.get_input_embeddings()
    if not isinstance(emb, nn.Embedding):
        raise TypeError(f"{type(model).__name__}: input embeddings are a {type(emb).__name__}, not nn.Embedding")
    return emb


def is_tied(model: nn.Module) -> bool:
    """Whether an output projection (an MLM decoder) shares the word embedding's weight tensor."""
    out = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    return out is not None and getattr(out, "weight", None) is word_embedding(model).weight


def apply(model: nn.Module, mode: str) -> nn.Module:
    """Put the word embedding in `mode` (in place; idempotent: every mode sets both flags)."""
    check(mode)
    emb = word_embedding(model)
    if mode == "sparse" and is_tied(model):
        raise ValueError(
            "embeddings='sparse' cannot be used with a tied MLM decoder (it shares the word-embedding "
            "matrix, whose gradient is then dense); use 'train' or 'freeze'"
        )
    emb.sparse = mode == "sparse"
    emb.weight.requires_grad_(mode != "freeze")
    return model


def sparse_params(model: nn.Module) -> list[nn.Parameter]:
    """The parameters whose gradients come back sparse (the word embedding in `sparse` mode), else []."""
    emb = word_embedding(model)
    return [emb.weight] if emb.sparse and emb.weight.requires_grad else []


def coalesce_grads(params: list[torch.Tensor]) -> None:
    """Sparse gradients with each row once (repeated ids summed): what norms and row updates need."""
    for p in params:
        if p.grad is not None and p.grad.is_sparse and not p.grad.is_coalesced():
            p.grad = p.grad.coalesce()


def sparse_norm_sq(params: list[torch.Tensor]) -> torch.Tensor | None:
    """Σ‖grad‖² over sparse gradients (coalesced first: an uncoalesced gradient's values are not its rows)."""
    coalesce_grads(params)
    total = None
    for p in params:
        if p.grad is not None:
            sq = p.grad._values().float().pow(2).sum()
            total = sq if total is None else total + sq
    return total


class LazyAdamW(torch.optim.Optimizer):
    """AdamW over the rows present in a sparse gradient (see the module docstring for the semantics).

    Per-parameter state uses AdamW's names (``step``, ``exp_avg``, ``exp_avg_sq``: dense tensors of the
    weight's shape, ``step`` a float32 scalar tensor) so that `carry` prunes and moves it as AdamW's.
    """

    def __init__(
        self,
        params,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ):
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps, "weight_decay": weight_decay})

    @torch.no_grad()
    def step(self, closure=None):
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            lr, (b1, b2), eps, wd = group["lr"], group["betas"], group["eps"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad.coalesce() if p.grad.is_sparse else p.grad.to_sparse()
                st = self.state[p]
                if not st:
                    st["step"] = torch.zeros((), dtype=torch.float32, device=p.device)
                    st["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    st["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                st["step"] += 1
                t = float(st["step"])
                rows, g = grad._indices()[0], grad._values().to(p.dtype)
                m = st["exp_avg"].index_select(0, rows).mul_(b1).add_(g, alpha=1 - b1)
                v = st["exp_avg_sq"].index_select(0, rows).mul_(b2).addcmul_(g, g, value=1 - b2)
                st["exp_avg"].index_copy_(0, rows, m)
                st["exp_avg_sq"].index_copy_(0, rows, v)
                w = p.index_select(0, rows).mul_(1 - lr * wd)  # AdamW's decoupled decay, on these rows
                denom = (v.sqrt() / math.sqrt(1 - b2**t)).add_(eps)
                w.addcdiv_(m, denom, value=-lr / (1 - b1**t))
                p.index_copy_(0, rows, w)
        return loss
