"""Progressive Layer Dropping (PLD, Zhang & He 2020, arXiv 2010.13369) for the TicketEncoder.

Schedule
--------
With t the optimizer step, the global keep probability decays from 1 to θ̄::

    θ(t) = (1 − θ̄)·exp(−γ·t) + θ̄            θ(0) = 1
    p_l(t) = 1 − (l/L)·(1 − θ(t))            l = 1..L (l = 1 is the layer next to the embeddings)

so shallow layers are kept more often than deep ones and the last layer is kept with probability
θ(t). During a training forward pass layer l runs with probability p_l; when it runs, both residual
branches are scaled by 1/p_l (``x + Attn(LN(x))/p_l``, then ``x + FFN(LN(x))/p_l``); when it does
not, the block is the identity and costs nothing, forward or backward. Evaluation runs every layer
unscaled (the encoder only consults ``layer_drop`` in training mode).

Each residual branch is therefore unbiased on its own: E[keep/p · f(x)] = f(x). The composed block is
unbiased only to first order, because the FFN reads ``x + Attn/p`` rather than ``x + Attn``; this is
the form of the paper and of DeepSpeed's implementation, kept as is.

A bug in the reference example, deliberately not copied: its loop over layers started from a keep
probability of exactly 1 for the first layer and decremented the probability *before* using it for
the rescaling, so the first layer could never be dropped and every kept layer was divided by the
probability of the *next* depth rather than the one its gate was drawn with; the expectation of
the output was then no longer the full-depth output. Here one p_l is computed per layer and that
same number is both the gate's probability and the divisor.

On average a fraction mean_l p_l = 1 − (L+1)/(2L)·(1 − θ) of the layers runs; with θ̄ = 0.5 this
settles at 1 − (L+1)/(4L), 0.729 for L = 12 (`expected_layer_fraction`).

Gates and data parallelism
--------------------------
The gates of a forward pass are drawn from a private ``torch.Generator`` seeded by a hash of
(seed, step, micro-batch index). Every data-parallel rank that is told the same step therefore drops
the same layers, whatever its global RNG state (dropout, data order) — no reliance on identical
global seeding as in the reference code. `set_step` is called once per optimizer step (by
`PLDCallback`, or by hand) and resets the micro-batch counter, which advances at every `sample`, so
the micro-batches of one accumulated step get different (but rank-identical) gates.

With DDP, layers skipped on every rank leave their parameters unused: wrap the model with
``DistributedDataParallel(..., find_unused_parameters=True)``. Their ``.grad`` stays untouched (None
after ``zero_grad()``), so PyTorch optimizers skip them for that step — no weight decay and no
momentum step either. Gates that differed across ranks would *not* crash DDP (an unused parameter
contributes a zero gradient to the average) but would silently mix networks of different depths;
this is why they are derived from the step and not from a per-process RNG. Gradient checkpointing
combined with skipped layers under DDP is not supported (the reference pitfall).

Post-LN
-------
PLD is meant for pre-LN stacks. In a post-LN block the LayerNorm sits on the residual path, so
skipping a block also removes a normalisation, and the PLD and LayerDrop authors both report that
random layer dropping trains poorly there. `attach` warns on a post-LN encoder but does not refuse.
Of the supported families (families/), ModernBERT is pre-LN as published and is PLD's natural target;
the BERT-block families (BERT, RoBERTa, XLM-R, CamemBERT, ELECTRA) and DistilBERT are post-LN: they
can be run pre-LN (`load_model(..., pre_ln=True)`, one final LayerNorm added), but their pre-trained
weights were learnt post-LN, so that suits training from scratch or a long adaptation, not a short
fine-tune.

Interaction with EarlyBERT (slimming coefficients and early-bird detection)
---------------------------------------------------------------------------
A skipped layer does not enter the graph, so its head/FFN coefficients get no gradient from the task
loss in that micro-batch (``.grad`` stays None if nothing else in the loss reaches them). Masks are
still drawn from *all* coefficients; what changes is how far each layer's coefficients move per step.

* Plain SGD: the 1/p_l rescaling makes the expected task gradient of a kept-or-skipped layer equal
  to the full-depth one (to first order), only noisier, so coefficients drift at the usual speed.
* AdamW (what EarlyBERT and `train.make_optimizer` use) is roughly invariant to gradient scale, so
  the 1/p_l factor does not compensate. With nothing but the task loss, a skipped coefficient has no
  gradient and AdamW skips it: it takes a normal-size step on the steps its layer runs and none
  otherwise, ≈ p_l of the full-depth movement per optimizer step. With the L1 term over every layer
  (`slimming.l1_penalty`, added once per step by `SlimmingCallback`) a skipped coefficient still has a
  gradient (λ·sign c) and AdamW steps it every step, mostly along its momentum; the first moment then
  averages to the full-depth gradient while the second grows by 1/p_l, so the movement is
  ≈ √p_l of full depth (a scalar simulation with noisy gradients gives 0.54 and 0.68 at p = 0.5).
  Either way deep layers (small p_l) move least, and with the L1 term they are
  also shrunk on steps with no task gradient to oppose it.
* Early-bird detection compares successive masks and fires when their distance stays below ε.
  Coefficients that move less flip fewer mask bits between two draws, so the distance falls sooner
  in *steps* and the detector can fire earlier — without the mask being more converged: per update
  actually applied, the deep layers have had less training, not more. The gate noise pushes the
  other way (near-threshold coefficients jitter, and each step trains a network of a different
  depth), which keeps the distance up; which effect wins is empirical.
* A global FFN threshold adds a depth bias: coefficients start at 1.0 and, on the whole, shrink as
  training goes (the L1 term), so deep layers' less-updated coefficients stay nearer 1.0 and are
  kept preferentially, for a reason unrelated to importance. Per-layer head masks depend only on the
  order within a layer and are less affected.
* The effect is small in a short search: with γ = 0.001, θ(200) ≈ 0.91, and over the first 200
  steps even the deepest layer runs about 95% of the time. Comparing masks at intervals of equal
  *expected* updates (stretch the interval by 1/mean p_l) reduces the bias; simplest is to search for
  the ticket without PLD and turn PLD on for training the ticket.
"""

from __future__ import annotations

import hashlib
import math
import warnings
from dataclasses import dataclass

import torch
from torch import nn

from .model.encoder import encoder_of
from .training.callbacks import Callback

__all__ = [
    "PLDConfig",
    "ProgressiveLayerDrop",
    "PLDCallback",
    "theta",
    "keep_probs",
    "expected_layer_fraction",
    "gamma_for_steps",
    "attach",
    "detach",
    "dropper_of",
]


@dataclass(frozen=True)
class PLDConfig:
    """θ̄ (`theta_bar`, in (0, 1]; 1 disables dropping), γ (`gamma`, ≥ 0) and the gate seed."""

    theta_bar: float = 0.5
    gamma: float = 0.001
    seed: int = 0

    def __post_init__(self) -> None:
        tb, g = self.theta_bar, self.gamma
        if isinstance(tb, bool) or not isinstance(tb, (int, float)) or not 0.0 < tb <= 1.0:
            raise ValueError(f"PLDConfig.theta_bar must be in (0, 1], got {tb!r}")
        if isinstance(g, bool) or not isinstance(g, (int, float)) or not (0.0 <= g < math.inf):
            raise ValueError(f"PLDConfig.gamma must be a finite number >= 0, got {g!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ValueError(f"PLDConfig.seed must be an int, got {self.seed!r}")


def gamma_for_steps(total_steps: int | float, settle: float = 100.0) -> float:
    """The heuristic γ ≈ 100/T: θ is within e^-5 of θ̄ after 5% of the T steps of training."""
    if not total_steps > 0:
        raise ValueError(f"total_steps must be > 0, got {total_steps!r}")
    return settle / float(total_steps)


def theta(step: int, cfg: PLDConfig) -> float:
    """θ(t) = (1 − θ̄)·exp(−γ·t) + θ̄."""
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    return (1.0 - cfg.theta_bar) * math.exp(-cfg.gamma * step) + cfg.theta_bar


def keep_probs(num_layers: int, step: int, cfg: PLDConfig) -> list[float]:
    """[p_1, ..., p_L] with p_l = 1 − (l/L)·(1 − θ(t)); index i of the list is layer l = i + 1."""
    if num_layers < 1:
        raise ValueError(f"num_layers must be >= 1, got {num_layers}")
    drop = 1.0 - theta(step, cfg)
    return [1.0 - (l / num_layers) * drop for l in range(1, num_layers + 1)]


def expected_layer_fraction(num_layers: int, step: int, cfg: PLDConfig) -> float:
    """Expected fraction of the L layers computed per training forward pass at step t: mean_l p_l."""
    return sum(keep_probs(num_layers, step, cfg)) / num_layers


def _gate_seed(seed: int, step: int, micro_batch: int) -> int:
    """A 63-bit generator seed that depends only on (seed, step, micro-batch), identical on every rank."""
    digest = hashlib.blake2b(f"pld:{seed}:{step}:{micro_batch}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & ((1 << 63) - 1)


class ProgressiveLayerDrop:
    """The encoder's ``layer_drop`` (see encoder.LayerDropper): one gate per layer per forward pass.

    `set_step(t)` before every optimizer step (the training loop, through `PLDCallback`); `sample`
    is called by the encoder once per training forward pass (one micro-batch) and advances the
    micro-batch counter. `gates(step, micro_batch, L)` is the same draw as a pure function.
    """

    def __init__(self, cfg: PLDConfig | None = None, step: int = 0):
        self.cfg = cfg if cfg is not None else PLDConfig()
        self.step = 0
        self.micro_batch = 0
        self.last_gates: list[tuple[bool, float]] | None = None
        self._step_kept: list[list[bool]] = []  # one entry per micro-batch since the last set_step
        self.layers_computed = 0  # realised totals over every `sample` call (FLOP accounting)
        self.layers_seen = 0
        self.set_step(step)

    def set_step(self, step: int) -> None:
        step = int(step)
        if step < 0:
            raise ValueError(f"step must be >= 0, got {step}")
        self.step = step
        self.micro_batch = 0
        self._step_kept = []

    def theta(self) -> float:
        return theta(self.step, self.cfg)

    def keep_probs(self, num_layers: int) -> list[float]:
        return keep_probs(num_layers, self.step, self.cfg)

    def expected_fraction(self, num_layers: int) -> float:
        """mean_l p_l at the current step."""
        return expected_layer_fraction(num_layers, self.step, self.cfg)

    def realized_fraction(self) -> float:
        """Fraction of layers actually computed over all `sample` calls so far (1.0 before any)."""
        return self.layers_computed / self.layers_seen if self.layers_seen else 1.0

    def last_kept(self) -> list[bool] | None:
        """Which layers the most recent training forward pass ran (None before any)."""
        return None if self.last_gates is None else [keep for keep, _ in self.last_gates]

    def step_kept(self) -> list[list[bool]]:
        """Which layers ran, for each micro-batch since the last `set_step` (all of an accumulated step)."""
        return [list(k) for k in self._step_kept]

    def gates(self, step: int, micro_batch: int, num_layers: int) -> list[tuple[bool, float]]:
        """[(keep_l, p_l)] for a given (step, micro-batch); no state is read or changed but the config."""
        probs = keep_probs(num_layers, step, self.cfg)
        gen = torch.Generator(device="cpu")
        gen.manual_seed(_gate_seed(self.cfg.seed, step, micro_batch))
        u = torch.rand(num_layers, generator=gen, dtype=torch.float64).tolist()
        return [(ui < p, p) for ui, p in zip(u, probs)]  # u in [0, 1): p = 1 always keeps

    def sample(self, num_layers: int) -> list[tuple[bool, float]]:
        out = self.gates(self.step, self.micro_batch, num_layers)
        self.micro_batch += 1
        self.last_gates = out
        self._step_kept.append([keep for keep, _ in out])
        self.layers_computed += sum(keep for keep, _ in out)
        self.layers_seen += num_layers
        return out

    def __repr__(self) -> str:
        return (
            f"ProgressiveLayerDrop(theta_bar={self.cfg.theta_bar}, gamma={self.cfg.gamma}, "
            f"seed={self.cfg.seed}, step={self.step}, micro_batch={self.micro_batch})"
        )


def attach(model: nn.Module, cfg: PLDConfig | None = None, step: int = 0) -> ProgressiveLayerDrop:
    """Turn PLD on for `model`'s TicketEncoder (replacing any previous dropper); returns the dropper."""
    enc = encoder_of(model)
    if not enc.pre_ln:
        warnings.warn(
            "PLD on a post-LN encoder: random layer dropping is reported to train poorly "
            "without pre-LN (PLD and LayerDrop papers); build the model with pre_ln=True",
            UserWarning,
            stacklevel=2,
        )
    pld = ProgressiveLayerDrop(cfg, step=step)
    enc.layer_drop = pld
    return pld


def dropper_of(model: nn.Module) -> ProgressiveLayerDrop | None:
    """The ProgressiveLayerDrop attached to `model` (a DDP wrapper is looked through), or None."""
    model = model.module if isinstance(getattr(model, "module", None), nn.Module) else model
    dropper = encoder_of(model).layer_drop
    return dropper if isinstance(dropper, ProgressiveLayerDrop) else None


def detach(model: nn.Module) -> ProgressiveLayerDrop | None:
    """Turn layer dropping off; returns the dropper that was attached (or None)."""
    enc = encoder_of(model)
    old, enc.layer_drop = enc.layer_drop, None
    return old


class PLDCallback(Callback):
    """`train` hook: `before_step(step)` moves the schedule to optimizer step `step` (resetting the
    micro-batch counter); `after_step` adds ``pld_theta`` and ``pld_layer_fraction`` (expected fraction
    of layers computed at that step, mean p_l) to the step's logs. `offset` shifts the schedule, e.g.
    to resume a run at its global step."""

    def __init__(self, pld: ProgressiveLayerDrop, num_layers: int | None = None, offset: int = 0):
        self.pld = pld
        self.num_layers = num_layers
        self.offset = offset

    def before_step(self, step: int) -> None:
        self.pld.set_step(step + self.offset)

    def after_step(self, step: int, logs: dict) -> bool:
        logs["pld_theta"] = self.pld.theta()
        n = self.num_layers or (len(self.pld.last_gates) if self.pld.last_gates else 0)
        if n:  # L is known once the encoder has sampled (or when given)
            logs["pld_layer_fraction"] = self.pld.expected_fraction(n)
        return False
