"""`compile: true`: the training forward (and through AOTAutograd its backward) compiled by torch.compile.

Inductor fuses the elementwise work between the matmuls (bias + GELU, dropout masks, LayerNorm, the
autocast casts) into a few generated kernels: C++ compiled by the system's compiler on CPU, Triton on
GPU. Every new input shape is a new graph to compile, so the loop pads batches to a multiple
(`pad_to_multiple_of`, data.py) and compiles with static shapes; a ticket (new widths) is another
model, compiled once per shape. What it cost is counted, never hidden: `CompileStats` (graphs compiled,
recompiles, seconds inside the compiler) goes into the loop's result, and the loop's wall clock includes
the compilation because it happens inside the first step of each shape.

Inductor's on-disk cache (`cache_dir`: TORCHINDUCTOR_CACHE_DIR) is process-wide and read at each
compile; trials of one search share it (searcher puts it under the experiment), so only the first trial
that meets a shape pays the C++ compile; the rest load it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

# distinct (shape, model) pairs one process may compile before dynamo gives up and runs eagerly: bucketed
# lengths up to 512 in steps of 8 are 64 shapes, a short last batch doubles them, dense + ticket double again
CACHE_SIZE_LIMIT = 256


@dataclass
class CompileStats:
    graphs: int = 0  # graphs dynamo handed to inductor (per shape: one, more at graph breaks)
    graphs_first_shape: int = 0  # the graphs of the first shape: what one shape costs
    recompiles: int = 0  # graphs compiled after the first shape's (each a failed shape guard)
    shapes: int = 0  # distinct input shapes the compiled forward saw
    compile_seconds: float = 0.0  # inside dynamo + inductor (the C++/Triton build included)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _counters() -> tuple[int, float]:
    from torch._dynamo import utils

    graphs = int(utils.counters["stats"]["unique_graphs"])
    seconds = float(sum(utils.compilation_time_metrics.get("_compile.compile_inner", [])))
    return graphs, seconds


def use_cache_dir(cache_dir: str | os.PathLike | None) -> None:
    """Point inductor's on-disk cache at `cache_dir` (created); None leaves torch's default (/tmp/...)."""
    if cache_dir is None:
        return
    path = os.fspath(cache_dir)
    os.makedirs(path, exist_ok=True)
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = path


class CompiledForward:
    """`model(**batch)` through torch.compile, counting what it compiles from here on.

    `static`: compile each shape as it comes (the loop pads lengths to a multiple, so shapes are few);
    False lets torch mark the length dynamic after the first change (one graph, generic kernels).
    `mode` is torch.compile's (None, "reduce-overhead" for CUDA graphs, "max-autotune").
    """

    def __init__(
        self, model: nn.Module, static: bool = True, mode: str | None = None, cache_dir: str | os.PathLike | None = None
    ):
        import torch._dynamo

        use_cache_dir(cache_dir)
        cfg = torch._dynamo.config
        cfg.cache_size_limit = max(cfg.cache_size_limit, CACHE_SIZE_LIMIT)
        if hasattr(cfg, "accumulated_cache_size_limit"):
            cfg.accumulated_cache_size_limit = max(cfg.accumulated_cache_size_limit, 4 * CACHE_SIZE_LIMIT)
        self.model = model
        self.fn: Callable = torch.compile(model, dynamic=False if static else None, mode=mode)
        self._graphs0, self._seconds0 = _counters()
        self.shapes: set[tuple] = set()
        self._first: int | None = None

    def __call__(self, **batch: Any) -> Any:
        ids = batch.get("input_ids")
        if isinstance(ids, torch.Tensor):
            self.shapes.add(tuple(ids.shape))
        out = self.fn(**batch)
        if self._first is None:
            self._first = _counters()[0] - self._graphs0
        return out

    def stats(self) -> CompileStats:
        graphs, seconds = _counters()
        graphs -= self._graphs0
        first = self._first or 0
        return CompileStats(
            graphs=graphs,
            graphs_first_shape=first,
            recompiles=max(0, graphs - first),
            shapes=len(self.shapes),
            compile_seconds=seconds - self._seconds0,
        )
