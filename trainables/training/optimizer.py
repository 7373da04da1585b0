"""The optimizer behind two fast-path levers: bf16 working weights with fp32 masters, and sparse embedding rows.

``precision: bf16-master`` (the scheme large-model trainers use, instead of autocast's per-op casts): every
Linear of the transformer blocks holds a **bf16 working weight** (and bias), so the blocks compute in bf16
with no autocast; the optimizer holds an **fp32 master copy** of each and fp32 AdamW moments. A step
upcasts the bf16 gradients into the masters' ``.grad``, clips the fp32 gradients, steps AdamW on the
masters, and copies master → working (one fused foreach copy). Everything else stays fp32 and is stepped
as it is: the embeddings, the task head, the LayerNorms (bf16 activations, fp32 γ/β: torch's mixed-dtype
LayerNorm kernels, on CPU and CUDA, normalise in fp32 and return bf16), the slimming coefficients and their
L1 penalty, the loss. The residual stream enters the blocks cast to bf16 once and leaves cast to fp32 once
(`TicketEncoder.compute_dtype`).

``embeddings: sparse``: the word embedding is stepped by `word_embeddings.LazyAdamW` from its sparse
gradient; its squared norm enters the clipping norm (computed on coalesced rows).

`TrainOptimizer` is one `torch.optim.Optimizer` to the loop and the lr schedule (its `param_groups` are
its inner optimizers' group dicts). Its `state` is keyed by the *model's* parameters, so `carry` reads and
prunes the moments of a `continue` ticket by parameter name, as for plain AdamW. `release()` (the end of
`train`) turns the model back into fp32 holding exactly the master values (the working parameters then share
the masters' storage), which is what pruning, folding the coefficients and saving a ticket work on; the
next `engage()` casts the working copies again.
"""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping

import torch
from torch import nn

from ..model.encoder import encoder_of
from .word_embeddings import LazyAdamW, sparse_norm_sq


def working_params(model: nn.Module) -> list[nn.Parameter]:
    """The parameters that run in the low-precision dtype: every Linear's weight and bias in the blocks."""
    out: list[nn.Parameter] = []
    for layer in encoder_of(model).blocks:
        for module in layer.modules():
            if isinstance(module, nn.Linear):
                out += [p for p in (module.weight, module.bias) if p is not None]
    return out


class TrainOptimizer(torch.optim.Optimizer):
    """Dense AdamW (fused or foreach) + optional LazyAdamW, with optional fp32 masters of bf16 weights.

    Built by `train.make_optimizer`; the model's working weights are cast (`engage`) at construction, so
    build it before wrapping the model in DDP (DDP's buckets take the dtype the parameters have then).
    """

    def __init__(
        self,
        model: nn.Module,
        groups: list[dict],
        lr: float,
        kind: dict,
        sparse_groups: list[dict] = (),
        working_dtype: torch.dtype | None = None,
    ):
        self.working_dtype = working_dtype
        self._encoder = encoder_of(model) if working_dtype is not None else None
        working = {id(p) for p in working_params(model)} if working_dtype is not None else set()
        self.pairs: list[tuple[nn.Parameter, torch.Tensor]] = []  # (model's working param, fp32 master)
        dense_groups = []
        for g in groups:
            params = []
            for p in g["params"]:
                if id(p) in working:
                    master = p.detach().to(torch.float32, copy=True).requires_grad_(True)
                    self.pairs.append((p, master))
                    p = master
                params.append(p)
            dense_groups.append({**g, "params": params})
        self.dense = torch.optim.AdamW(dense_groups, lr=lr, **kind)
        self.sparse = (
            LazyAdamW([g for g in sparse_groups if g["params"]], lr=lr)
            if any(g["params"] for g in sparse_groups)
            else None
        )
        self.optimizers = [o for o in (self.dense, self.sparse) if o is not None]
        self.param_groups = [g for o in self.optimizers for g in o.param_groups]
        self.defaults = self.dense.defaults
        self._master_of = {id(p): m for p, m in self.pairs}
        self._param_of = {id(m): p for p, m in self.pairs}
        self._sparse_ids = {id(p) for g in (self.sparse.param_groups if self.sparse else []) for p in g["params"]}
        self._gathered = False
        self.engaged = False
        self.engage()

    # ------------------------------------------------------------------ working weights
    @torch.no_grad()
    def engage(self) -> None:
        """The working parameters become bf16 copies of the masters; the blocks compute in bf16."""
        if self.engaged or self.working_dtype is None:
            self.engaged = True
            return
        for p, m in self.pairs:
            p.data = m.detach().to(self.working_dtype)
            p.grad = None
        self._encoder.compute_dtype = self.working_dtype
        self.engaged = True

    @torch.no_grad()
    def release(self) -> None:
        """The model back in fp32, holding exactly the master weights (sharing their storage)."""
        if not self.engaged or self.working_dtype is None:
            self.engaged = False
            return
        for p, m in self.pairs:
            p.data = m.detach()
            p.grad = None
        self._encoder.compute_dtype = None
        self.engaged = False

    @torch.no_grad()
    def follow_device(self) -> None:
        """Masters and moments onto their parameters' device: the model may have been moved (Ray's
        prepare_model, `.to(device)`) after this optimizer was built. Tensors keep their identity."""
        for p, m in self.pairs:
            if m.device != p.device:
                m.data = m.data.to(p.device)
        for o in self.optimizers:
            for key, st in o.state.items():
                for k, v in st.items():
                    if torch.is_tensor(v) and v.device != key.device:
                        st[k] = v.to(key.device)

    def masters(self) -> dict[int, torch.Tensor]:
        """{id(model parameter): its fp32 master} (for tests and inspection)."""
        return dict(self._master_of)

    # ------------------------------------------------------------------ gradients and steps
    def _gather(self) -> None:
        """bf16 gradients of the working weights, upcast into the masters' gradients (once per step)."""
        if self._gathered:
            return
        for p, m in self.pairs:
            m.grad = None if p.grad is None else p.grad.to(torch.float32)
            p.grad = None
        self._gathered = True

    def _with_grads(self, optimizer: torch.optim.Optimizer | None) -> list[torch.Tensor]:
        if optimizer is None:
            return []
        return [p for g in optimizer.param_groups for p in g["params"] if p.grad is not None]

    @torch.no_grad()
    def clip_grad_norm_(self, max_norm: float) -> torch.Tensor:
        """torch's `clip_grad_norm_` over every gradient the step uses: fp32 dense ones and sparse rows."""
        self._gather()
        dense, sparse = self._with_grads(self.dense), self._with_grads(self.sparse)
        total = torch.nn.utils.get_total_norm([p.grad for p in dense]) if dense else torch.zeros(())
        sparse_sq = sparse_norm_sq(sparse)
        if sparse_sq is not None:
            total = (total.to(sparse_sq.device).pow(2) + sparse_sq).sqrt()
        if dense:
            torch.nn.utils.clip_grads_with_norm_(dense, max_norm, total)
        coef = torch.clamp(max_norm / (total + 1e-6), max=1.0)  # what clip_grads_with_norm_ multiplies by
        for p in sparse:
            p.grad = p.grad * coef.to(p.grad.dtype)
        return total

    @torch.no_grad()
    def step(self, closure=None):
        loss = closure() if closure is not None else None
        self._gather()
        for o in self.optimizers:
            o.step()
        if self.engaged and self.pairs:
            torch._foreach_copy_([p.data for p, _ in self.pairs], [m for _, m in self.pairs])
        self._gathered = False
        return loss

    def zero_grad(self, set_to_none: bool = True) -> None:
        for o in self.optimizers:
            o.zero_grad(set_to_none=set_to_none)
        for p, _ in self.pairs:
            p.grad = None
        self._gathered = False

    # ------------------------------------------------------------------ state, keyed by the model's params
    @property
    def state(self) -> _StateView:  # type: ignore[override]
        return _StateView(self)

    def _target(self, p: torch.Tensor) -> tuple[torch.optim.Optimizer, torch.Tensor]:
        master = self._master_of.get(id(p), p)
        return (self.sparse if id(p) in self._sparse_ids else self.dense), master

    def state_dict(self) -> dict:
        return {
            "optimizers": [o.state_dict() for o in self.optimizers],
            "masters": [m.detach().clone() for _, m in self.pairs],
        }

    @torch.no_grad()
    def load_state_dict(self, state_dict: dict) -> None:
        for o, sd in zip(self.optimizers, state_dict["optimizers"]):
            o.load_state_dict(sd)
        for (p, m), saved in zip(self.pairs, state_dict["masters"]):
            m.copy_(saved)
            if self.engaged:
                p.data.copy_(saved)


class _StateView(MutableMapping):
    """`optimizer.state` as plain AdamW has it: {model parameter: {"step", "exp_avg", "exp_avg_sq"}}."""

    def __init__(self, owner: TrainOptimizer):
        self.owner = owner

    def __getitem__(self, p: torch.Tensor) -> dict:
        opt, key = self.owner._target(p)
        if key not in opt.state:
            raise KeyError(p)
        return opt.state[key]

    def __setitem__(self, p: torch.Tensor, value: dict) -> None:
        opt, key = self.owner._target(p)
        opt.state[key] = value

    def __delitem__(self, p: torch.Tensor) -> None:
        opt, key = self.owner._target(p)
        del opt.state[key]

    def __iter__(self) -> Iterator[torch.Tensor]:
        for o in self.owner.optimizers:
            for key in list(o.state):
                yield self.owner._param_of.get(id(key), key)

    def __len__(self) -> int:
        return sum(len(o.state) for o in self.owner.optimizers)
