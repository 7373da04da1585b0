"""The training loop: read it top to bottom.

One loop serves plain fine-tuning, EarlyBERT's search phase, ticket training and MLM pre-training;
what differs comes in through callbacks (L1 penalty, PLD step, mask checks, reporting). It runs the
same inside a Ray Train worker, where the model arrives wrapped in DDP.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from ..model.dropout import problems as dropout_problems
from ..model.dropout import set_dropout
from . import word_embeddings
from .allocator import tune_malloc
from .callbacks import Callback, split_rows
from .device import to_device
from .optimizer import TrainOptimizer
from .precision import PRECISIONS, Precision
from .step_losses import LossLog, StepLogs


@dataclass
class TrainConfig:
    lr: float = 5e-5
    coef_lr: float | None = None  # slimming coefficients' own learning rate (None: same as lr)
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    epochs: float = 1.0
    max_steps: int | None = None  # overrides epochs when set
    schedule_steps: int | None = None  # horizon of warm-up/decay when longer than this run (a search phase)
    start_step: int = 0  # this run continues a run at that step: its lr schedule and data order go on from there
    grad_accum: int = 1
    max_grad_norm: float = 1.0
    seed: int = 0
    log_every: int = 20
    progress: bool = True
    fused: bool = True  # fused AdamW: one kernel for all parameters, far cheaper on the embedding
    precision: str = "auto"  # auto | fp32 | bf16 | fp16 | bf16-master (precision.py, optimizer.py)
    embeddings: str = "train"  # train | sparse | freeze: the word embedding's training (word_embeddings.py)
    dropout: float | None = None  # every dropout of the model (dropout.py); None: the model's own config
    compile: bool = False  # torch.compile the forward + backward (compile_step.py); shapes: pad_to_multiple_of
    compile_mode: str | None = None  # torch.compile's mode ("reduce-overhead": CUDA graphs)
    compile_cache_dir: str | None = None  # inductor's on-disk cache (shared by the trials of one search)
    sync_every: int | None = None  # losses read back every N steps (step_losses.py); None: 1 on CPU, log_every on GPU
    tune_malloc: bool = True  # CPU: glibc keeps freed memory, no page faults per step (allocator.py; process-wide)

    def __post_init__(self) -> None:
        problems = [
            f"{k}={getattr(self, k)!r} must be > 0" for k in ("lr", "epochs", "grad_accum") if not getattr(self, k) > 0
        ]
        if self.coef_lr is not None and not self.coef_lr > 0:
            problems.append(f"coef_lr={self.coef_lr!r} must be > 0")
        if self.start_step < 0:
            problems.append(f"start_step={self.start_step!r} must be >= 0")
        if self.max_steps is not None and self.max_steps < 1:
            problems.append(f"max_steps={self.max_steps!r} must be >= 1")
        if not 0 <= self.warmup_ratio < 1:
            problems.append(f"warmup_ratio={self.warmup_ratio!r} must be in [0, 1)")
        if self.weight_decay < 0 or self.max_grad_norm <= 0:
            problems.append(
                f"weight_decay={self.weight_decay!r} must be >= 0, max_grad_norm={self.max_grad_norm!r} > 0"
            )
        if self.sync_every is not None and self.sync_every < 1:
            problems.append(f"sync_every={self.sync_every!r} must be >= 1 (or None)")
        if self.precision not in PRECISIONS:
            problems.append(f"precision={self.precision!r}: expected one of {PRECISIONS}")
        if self.embeddings not in word_embeddings.EMBEDDINGS:
            problems.append(f"embeddings={self.embeddings!r}: expected one of {word_embeddings.EMBEDDINGS}")
        problems += dropout_problems(self.dropout)
        if problems:
            raise ValueError("bad TrainConfig: " + "; ".join(problems))


@dataclass
class TrainResult:
    steps: int
    seconds: float
    losses: list[float] = field(default_factory=list)
    stopped_early: bool = False
    samples: int = 0
    optimizer: torch.optim.Optimizer | None = None  # its state goes on into a `continue` ticket (carry.py)
    shapes: int = 0  # distinct input_ids shapes seen: what oneDNN / torch.compile build kernels for
    compile: dict | None = None  # compile_step.CompileStats when cfg.compile: graphs, recompiles, seconds


def unwrap(model: nn.Module) -> nn.Module:
    return model.module if hasattr(model, "module") else model


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """AdamW; no decay on biases, LayerNorms and slimming coefficients (their penalty is L1).

    The word embedding is first put in `cfg.embeddings`' mode (frozen: not in the optimizer). With
    `embeddings: sparse` or `precision: bf16-master` the result is a `TrainOptimizer` (optimizer.py),
    which casts the blocks' working weights to bf16 at once: build it before wrapping the model in DDP.
    """
    word_embeddings.apply(model, cfg.embeddings)
    sparse = word_embeddings.sparse_params(model)
    sparse_ids = {id(p) for p in sparse}
    decay, no_decay, coefs = [], [], []
    for name, p in model.named_parameters():
        if not p.requires_grad or id(p) in sparse_ids:
            continue
        if name.endswith(("head_coef", "ffn_coef")):
            coefs.append(p)
        elif p.ndim < 2:
            no_decay.append(p)
        else:
            decay.append(p)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if coefs:
        groups.append({"params": coefs, "weight_decay": 0.0, "lr": cfg.coef_lr or cfg.lr})
    kind = {"fused": True} if cfg.fused else {"foreach": True}
    groups = [g for g in groups if g["params"]]
    master = Precision.of(cfg.precision, _device_of(model)).master
    if not sparse and not master:
        return torch.optim.AdamW(groups, lr=cfg.lr, **kind)
    return TrainOptimizer(
        model,
        groups,
        cfg.lr,
        kind,
        sparse_groups=[{"params": sparse, "weight_decay": cfg.weight_decay}],
        working_dtype=torch.bfloat16 if master else None,
    )


def linear_schedule(
    optimizer: torch.optim.Optimizer, warmup: int, horizon: int, start: int = 0
) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up to the peak lr over `warmup` steps, then linear decay to 0 at `horizon` (BERT's, HF's
    default); `start` > 0 picks the schedule up at that step, for a run that continues another."""

    def factor(step: int) -> float:
        s = step + start
        if s < warmup:
            return s / max(1, warmup)
        return max(0.0, (horizon - s) / max(1, horizon - warmup))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def total_steps(cfg: TrainConfig, batches_per_epoch: int) -> int:
    if cfg.max_steps is not None:
        return cfg.max_steps
    return max(1, math.ceil(cfg.epochs * batches_per_epoch / cfg.grad_accum))


def _batches(loader: Iterable) -> int:
    try:
        return len(loader)
    except TypeError:  # a streamed dataset has no length
        raise ValueError("the loader streams its data (no length): set max_steps instead of epochs") from None


def _forever(loader: Iterable) -> Iterator:
    epoch = 0
    while True:
        sampler = getattr(loader, "sampler", None)
        if hasattr(sampler, "set_epoch"):  # DistributedSampler: a new order each epoch
            sampler.set_epoch(epoch)
        yield from loader
        epoch += 1


def train(
    model: nn.Module,
    loader: Iterable,
    cfg: TrainConfig,
    callbacks: list[Callback] = (),
    optimizer: torch.optim.Optimizer | None = None,
) -> TrainResult:
    """Train until `max_steps`/`epochs` or until a callback asks to stop.

    `cfg.dropout` is set on the model first; `cfg.embeddings` and bf16-master act through the optimizer
    (`make_optimizer`: build it before wrapping the model in DDP and pass it in). A bf16-master model
    leaves in fp32, holding its master weights.
    """
    seed_everything(cfg.seed)
    steps = cfg.max_steps if cfg.max_steps is not None else total_steps(cfg, _batches(loader))
    device = _device_of(model)
    precision = Precision.of(cfg.precision, device)
    optimizer = optimizer or _own_optimizer(model, cfg, precision)
    _check_optimizer(model, optimizer, cfg, precision)
    set_dropout(unwrap(model), cfg.dropout)
    horizon = max(cfg.start_step + steps, cfg.schedule_steps or steps)
    schedule = linear_schedule(optimizer, int(cfg.warmup_ratio * horizon), horizon, cfg.start_step)
    params = [p for g in optimizer.param_groups for p in g["params"]]
    if cfg.tune_malloc and device.type == "cpu":
        tune_malloc()
    scaler = precision.scaler()  # fp16 only: scaled loss, unscaled grads before clipping
    batches = _forever(loader)
    for _ in range(cfg.start_step * cfg.grad_accum):  # the batches the continued run already saw
        next(batches)
    result = TrainResult(steps=0, seconds=0.0, optimizer=optimizer)
    losses = LossLog(cfg.sync_every or (1 if device.type == "cpu" else max(1, cfg.log_every)), result.losses)
    forward, shapes = _forward(model, cfg), set()
    bar = tqdm(total=steps, disable=not cfg.progress, desc="train", leave=False)
    start = time.perf_counter()
    model.train()
    for step in range(steps):
        for cb in callbacks:
            cb.before_step(step)
        # gradient accumulation: each micro-batch contributes loss/accum; the penalty is added once,
        # to the last micro-batch, so DDP sees exactly one backward per forward
        step_loss = torch.zeros((), device=device)
        for micro in range(cfg.grad_accum):
            last = micro == cfg.grad_accum - 1
            batch, rows = split_rows(next(batches))  # which rows: for callbacks, never the model; kept on the host
            batch = to_device(batch, device)
            result.samples += len(batch["input_ids"])
            shapes.add(tuple(batch["input_ids"].shape))
            with contextlib.nullcontext() if last or not hasattr(model, "no_sync") else model.no_sync():
                with precision.train_autocast():
                    outputs = forward(**batch)
                    loss = outputs.loss.float() / cfg.grad_accum
                step_loss += loss.detach()  # the task's loss: what the logs and the divergence check read
                whole = {**batch, **rows} if rows else batch
                terms = [t for cb in callbacks if (t := cb.batch_loss(outputs, whole)) is not None]
                if terms:  # per micro-batch terms (distillation): part of the loss DDP all-reduces
                    loss = loss + sum(terms) / cfg.grad_accum
                extra = None
                if last:  # the L1 penalty in fp32, outside autocast: coefficients are fp32 parameters
                    extra = sum(
                        (t for cb in callbacks if (t := cb.extra_loss(unwrap(model))) is not None),
                        torch.zeros((), device=device),
                    )
                    if not hasattr(model, "no_sync"):  # DDP: added after its all-reduce (_add_penalty_grads)
                        loss, extra = loss + extra, None
                (scaler.scale(loss) if scaler else loss).backward()
                if extra is not None and extra.requires_grad:
                    _add_penalty_grads(model, scaler.scale(extra) if scaler else extra)
        losses.add(step, step_loss)  # raises FloatingPointError at the read-back of a non-finite loss
        if scaler:
            scaler.unscale_(optimizer)
        if isinstance(optimizer, TrainOptimizer):  # fp32 master grads, sparse rows
            optimizer.clip_grad_norm_(cfg.max_grad_norm)
        else:
            torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
        if scaler:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)

        result.steps = step + 1
        bar.update(1)
        if cfg.progress and cfg.log_every and result.steps % cfg.log_every == 0:
            losses.flush()
            bar.set_postfix(loss=f"{np.mean(result.losses[-cfg.log_every :]):.4f}")
        logs = StepLogs(losses, lr=schedule.get_last_lr()[0])
        if any([cb.after_step(result.steps, logs) for cb in callbacks]):  # every callback sees the step
            result.stopped_early = result.steps < steps
            break
    losses.flush()
    bar.close()
    result.seconds = time.perf_counter() - start  # compile time included: it happens inside the steps
    result.shapes = len(shapes)
    if cfg.compile:
        result.compile = forward.stats().to_dict()
    if isinstance(optimizer, TrainOptimizer):
        optimizer.release()  # the model back in fp32: its master weights
    return result


def _own_optimizer(model: nn.Module, cfg: TrainConfig, precision: Precision) -> torch.optim.Optimizer:
    if hasattr(model, "module") and (precision.master or cfg.embeddings != "train"):
        raise ValueError(
            f"precision={cfg.precision!r} / embeddings={cfg.embeddings!r} change the model's parameters: "
            "build the optimizer with make_optimizer before wrapping the model in DDP, and pass it"
        )
    return make_optimizer(unwrap(model), cfg)


def _check_optimizer(
    model: nn.Module, optimizer: torch.optim.Optimizer, cfg: TrainConfig, precision: Precision
) -> None:
    """The levers that act through the optimizer need the one make_optimizer builds for them."""
    ours = isinstance(optimizer, TrainOptimizer)
    if precision.master and not (ours and optimizer.working_dtype is not None):
        raise ValueError("precision='bf16-master' needs the optimizer make_optimizer builds for it (fp32 masters)")
    if cfg.embeddings == "sparse" and not (ours and optimizer.sparse is not None):
        raise ValueError("embeddings='sparse' needs the optimizer make_optimizer builds for it (sparse rows)")
    if cfg.embeddings == "sparse" and hasattr(model, "no_sync"):
        raise ValueError(
            "embeddings='sparse' is not supported with data parallelism (DDP's gradient buckets are "
            "dense); use 'train' or 'freeze'"
        )
    if ours and not optimizer.engaged:
        if hasattr(model, "module"):
            raise ValueError(
                "this optimizer's model was released to fp32 and is now wrapped in DDP: build a new "
                "optimizer (make_optimizer) before wrapping"
            )
        optimizer.engage()
    if ours:
        optimizer.follow_device()


def _forward(model: nn.Module, cfg: TrainConfig):
    """The model's forward as the loop calls it: compiled (compile_step.py) when cfg.compile."""
    if not cfg.compile:
        return model
    from .compile_step import CompiledForward

    return CompiledForward(model, mode=cfg.compile_mode, cache_dir=cfg.compile_cache_dir)


def _add_penalty_grads(model: nn.Module, penalty: torch.Tensor) -> None:
    """A DDP model's penalty gradient, added to .grad after DDP has all-reduced the loss's.

    With PLD a dropped layer's coefficients are outside the forward graph, so DDP (find_unused_parameters)
    marks them ready itself; the penalty reaches every coefficient, and a backward through it would fire
    their DDP hooks too (during the loss's backward: "marked ready twice"; after it: counted as used in the
    next step). `autograd.grad` runs no hooks. The result is what adding the penalty to every rank's loss
    means: the averaged task gradient plus λ·sign(c), the same on every rank.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    for p, g in zip(params, torch.autograd.grad(penalty, params, allow_unused=True)):
        if g is not None:
            p.grad = g if p.grad is None else p.grad.add_(g)


def _device_of(model: nn.Module) -> torch.device:
    """Where the model's weights are: evaluation loaders are not prepared by Ray, their batches move here."""
    return next(model.parameters()).device


@torch.no_grad()
def predict(model: nn.Module, loader: Iterable, precision: str = "auto") -> tuple[np.ndarray, np.ndarray]:
    """(logits, labels) over the whole loader, full depth, no dropout; logits come back as fp32."""
    was_training = model.training
    model.eval()
    device = _device_of(model)
    amp = Precision.of(precision, device)
    logits, labels = [], []
    for batch in loader:
        labels.append(batch["labels"].cpu().numpy())
        inputs = to_device({k: v for k, v in batch.items() if k != "labels"}, device)
        with amp.autocast():
            out = model(**inputs).logits
        logits.append(out.float().cpu().numpy())
    model.train(was_training)
    return np.concatenate(logits), np.concatenate(labels)


def evaluate(
    model: nn.Module, loader: Iterable, metrics: Callable[[np.ndarray, np.ndarray], dict], precision: str = "auto"
) -> dict:
    """`metrics(logits, labels)` over the whole loader: the task supplies the metrics, the loop knows none."""
    logits, labels = predict(unwrap(model), loader, precision)
    return metrics(logits, labels)


@torch.no_grad()
def mlm_eval(model: nn.Module, loader: Iterable, precision: str = "auto") -> dict:
    """Mean masked-LM loss per masked token, and its perplexity (the loss taken in fp32)."""
    was_training = model.training
    model.eval()
    device = _device_of(model)
    amp = Precision.of(precision, device)
    total, count = 0.0, 0
    for batch in loader:
        n = int((batch["labels"] != -100).sum())
        if n:
            with amp.autocast():
                loss = unwrap(model)(**to_device(batch, device)).loss
            total += float(loss.float()) * n
            count += n
    model.train(was_training)
    loss = total / max(count, 1)
    return {"mlm_loss": loss, "perplexity": math.exp(min(loss, 50.0))}
