"""Mixed precision: which dtype the matmuls run in, and the autocast/grad-scaler that go with it.

Weights, optimizer state, slimming coefficients and losses stay fp32; only the autocast region (the
forward pass) computes in bf16/fp16. ``auto`` picks bf16 where the hardware runs it fast — CUDA with bf16
support, or a CPU with AMX-BF16 / AVX512-BF16 (measured here: a MiniLM train step at 0.55–0.62× of fp32)
— and fp32 elsewhere (bf16 emulated on an older CPU is slower than fp32). fp16 needs loss scaling and is
offered on CUDA only, as HF ``Trainer`` does.

``bf16-master`` (never picked by ``auto``): the transformer blocks' Linear weights themselves are bf16
during training and the optimizer keeps fp32 master weights and moments (optimizer.py), so the training
forward runs without autocast and its per-op casts; evaluation runs under bf16 autocast as ``bf16`` does.
"""

from __future__ import annotations

import contextlib
import functools
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

# bf16 matmuls on CPU go through oneDNN, which JIT-compiles a kernel per GEMM shape and keeps 1,024 of them.
# Length-grouped batches (a new sequence length every few steps) times a ticket's per-layer FFN widths make
# thousands of shapes: the cache thrashes and every step recompiles. Measured here (MiniLM, SST-2, bf16,
# 150 steps): ticket 175 -> 131-136 ms/step, dense 157 -> 136-142 ms/step with room for 8,192. oneDNN reads
# the variable when it first builds a kernel, so setting it here (before any bf16 matmul) is enough.
os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "8192")

PRECISIONS = ("auto", "fp32", "bf16", "fp16", "bf16-master")
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "bf16-master": torch.bfloat16}


@functools.lru_cache(maxsize=1)
def cpu_has_fast_bf16() -> bool:
    """True where the CPU has bf16 matmul instructions (AMX or AVX512-BF16): Linux /proc/cpuinfo flags."""
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def check(name: str) -> str:
    """`name` if it is a precision we know; a ValueError naming the bad value otherwise."""
    if name not in PRECISIONS:
        raise ValueError(f"precision={name!r}: expected one of {PRECISIONS}")
    return name


def resolve_precision(name: str, device: torch.device | str = "cpu") -> str:
    """`auto` -> bf16 or fp32 for `device`; an explicit choice is checked against what the device can do."""
    device = torch.device(device)
    check(name)
    cuda = device.type == "cuda"
    if name == "auto":
        fast = (torch.cuda.is_available() and torch.cuda.is_bf16_supported()) if cuda else cpu_has_fast_bf16()
        return "bf16" if fast else "fp32"
    if name == "fp16" and not cuda:
        raise ValueError(
            "precision='fp16' needs a CUDA device (fp16 on CPU has no fast kernels and needs loss "
            "scaling); use 'bf16' or 'auto' on CPU"
        )
    if name in ("bf16", "bf16-master") and cuda and not torch.cuda.is_bf16_supported():
        raise ValueError(f"precision={name!r}: this GPU does not support bf16; use 'fp16' or 'auto'")
    return name


@dataclass(frozen=True)
class Precision:
    """A resolved precision on one device type: the autocast context and, for fp16, a grad scaler."""

    name: str  # "fp32" | "bf16" | "fp16" | "bf16-master" (resolved, never "auto")
    device_type: str  # "cpu" | "cuda"

    @classmethod
    def of(cls, name: str, device: torch.device | str = "cpu") -> "Precision":
        device = torch.device(device)
        return cls(resolve_precision(name, device), device.type)

    @property
    def dtype(self) -> torch.dtype:
        return _DTYPES.get(self.name, torch.float32)

    @property
    def master(self) -> bool:
        """bf16 working weights + fp32 masters: the training forward needs no autocast."""
        return self.name == "bf16-master"

    def autocast(self) -> contextlib.AbstractContextManager:
        """The inference forward's context: matmuls in bf16/fp16, reductions and losses in fp32 (torch's
        lists); attention on SDPA's own choice (its CPU flash kernel in bf16, the faster one forward-only)."""
        if self.name == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)

    @contextlib.contextmanager
    def train_autocast(self):
        """The training forward's context: `autocast()` (none for bf16-master, whose weights are bf16
        already) with attention on the kernel `attention()` picks for forward + backward."""
        with contextlib.nullcontext() if self.master else self.autocast(), self.attention():
            yield

    def attention(self) -> contextlib.AbstractContextManager:
        """Training in bf16 on CPU: SDPA's math path. Without dropout (`dropout: 0`) SDPA picks its CPU flash
        kernel, whose backward in bf16 makes a step 3-12x slower than the math path at BERT's head size:
        32 x 12 heads x 32 dims, forward + backward, on an AVX512-BF16 EPYC with torch 2.13, flash 14.7 /
        17.4 / 37.2 ms against math 1.2 / 4.8 / 12.4 ms at 16 / 32 / 64 tokens. Forward only, flash is the
        faster (MiniLM, 64 rows, bf16: 121 / 238 ms against math 166 / 360 ms at 24 / 48 tokens), so
        evaluation and inference keep SDPA's choice; fp32's flash kernel is the faster one: left alone."""
        if self.device_type == "cpu" and self.dtype == torch.bfloat16:
            return sdpa_kernel([SDPBackend.MATH])
        return contextlib.nullcontext()

    def scaler(self) -> torch.amp.GradScaler | None:
        """fp16 gradients underflow without loss scaling; bf16 has fp32's exponent range and needs none."""
        return torch.amp.GradScaler(self.device_type) if self.name == "fp16" else None


def enable_tf32() -> None:
    """TF32 tensor-core matmuls for fp32 on Ampere+ GPUs (what `Trainer(tf32=True)` sets); no-op on CPU."""
    if torch.cuda.is_available():
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
