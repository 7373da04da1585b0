"""A ticket as ONNX: ``model.onnx`` beside the ticket's weights, for ONNX Runtime deployments.

The exporter is torch.onnx's TorchScript one (``dynamo=False``). With torch 2.13 it exports every family
(BERT block, DistilBERT, ModernBERT with its sliding-window layers) and every head with dynamic batch and
sequence axes, and ONNX Runtime then matches PyTorch to ~1e-6 at sequence lengths other than the one traced;
the dynamo exporter (onnxscript) was slower to export and drifted to ~1e-3 on a ModernBERT QA ticket.

The graph's inputs are the tokenizer's model inputs (``input_ids``, ``attention_mask``, and
``token_type_ids`` where the family reads token types), int64, shaped (batch, sequence); its outputs are the
head's: ``logits`` (classification, regression, MLM) or ``start_logits`` and ``end_logits`` (QA). Every
export is checked before it is put in place: ONNX Runtime's outputs on a padded batch of a length the trace
did not see must equal PyTorch's within `ATOL` (fp32). The file is written to a temporary name in the same
folder and renamed, so a reader never sees half a model.
"""

from __future__ import annotations

import importlib.util
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn
from transformers import PreTrainedTokenizerBase

ONNX_FILE = "model.onnx"
OPSET = 18
ATOL = 1e-4
EXTRA_HINT = "pip install 'tickettune[onnx]' (the optional extra 'onnx': onnx and onnxruntime)"
OUTPUTS = {"qa": ("start_logits", "end_logits")}  # every other head: ("logits",)


class MissingExtra(ValueError):
    """An optional dependency is not installed; the message says which extra brings it."""


def require_onnx() -> None:
    """Refuse (MissingExtra, one line) when onnx or onnxruntime is missing, before any work."""
    missing = [m for m in ("onnx", "onnxruntime") if importlib.util.find_spec(m) is None]
    if missing:
        raise MissingExtra(f"ONNX export needs {' and '.join(missing)}: {EXTRA_HINT}")


def output_names(head: str) -> tuple[str, ...]:
    return OUTPUTS.get(head, ("logits",))


class _Positional(nn.Module):
    """The model called with positional tensors (the ONNX inputs, in order), returning the head's outputs."""

    def __init__(self, model: nn.Module, inputs: tuple[str, ...], outputs: tuple[str, ...]):
        super().__init__()
        self.model, self.inputs, self.outputs = model, inputs, outputs

    def forward(self, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.model(**dict(zip(self.inputs, tensors)))
        return tuple(out[k] for k in self.outputs)


def input_names(tokenizer: PreTrainedTokenizerBase) -> tuple[str, ...]:
    """The tokenizer's model inputs (load_model has dropped token_type_ids where the family has none)."""
    return tuple(n for n in tokenizer.model_input_names if n in ("input_ids", "attention_mask", "token_type_ids"))


def sample_batch(tokenizer: PreTrainedTokenizerBase, texts: list[str]) -> dict[str, torch.Tensor]:
    enc = tokenizer(texts, padding=True, return_tensors="pt")
    return {k: enc[k] for k in input_names(tokenizer)}


TRACE_TEXTS = ["a short one", "a longer sentence, padded less, to trace the export with"]
CHECK_TEXTS = [
    "checked at another length",
    "and at another batch size than the trace",
    "with padding in one row, to check that the attention mask is a real input of the graph",
]


def run_onnx(path: str | os.PathLike, batch: dict[str, torch.Tensor], threads: int | None = None) -> list[np.ndarray]:
    """ONNX Runtime's outputs (CPU) on `batch`."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    return sess.run(None, {k: v.numpy() for k, v in batch.items()})


def export_onnx(
    model: nn.Module, tokenizer: PreTrainedTokenizerBase, head: str, out: str | os.PathLike, atol: float = ATOL
) -> dict:
    """Write `model` (fp32, eval) to `out` as ONNX with dynamic batch and sequence axes; check ONNX Runtime
    against PyTorch on a batch of another shape first (ValueError past `atol`). Returns the check's figures."""
    require_onnx()
    out = Path(out)
    model = model.float().eval()
    names, outputs = input_names(tokenizer), output_names(head)
    wrapped = _Positional(model, names, outputs).eval()
    trace = sample_batch(tokenizer, TRACE_TEXTS)
    per_token = head in ("qa", "mlm")  # outputs per position; a classifier's are per sequence
    axes = {n: {0: "batch", 1: "sequence"} for n in (*names, *(outputs if per_token else ()))}
    axes.update({} if per_token else {n: {0: "batch"} for n in outputs})
    fd, tmp_name = tempfile.mkstemp(prefix=f".{out.name}.tmp-", suffix=".onnx", dir=out.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # TracerWarnings on shape-dependent Python branches, checked below
            torch.onnx.export(
                wrapped,
                tuple(trace[n] for n in names),
                str(tmp),
                input_names=list(names),
                output_names=list(outputs),
                dynamic_axes=axes,
                opset_version=OPSET,
                dynamo=False,
            )
        check = sample_batch(tokenizer, CHECK_TEXTS)
        with torch.no_grad():
            expected = [t.float().numpy() for t in wrapped(*(check[n] for n in names))]
        got = run_onnx(tmp, check)
        diff = max(float(np.abs(g - e).max()) for g, e in zip(got, expected))
        if not diff <= atol:
            raise ValueError(
                f"{out}: ONNX Runtime's outputs differ from PyTorch's by {diff:.3g} (> {atol}); "
                "the export was not written"
            )
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return {
        "path": str(out),
        "inputs": list(names),
        "outputs": list(outputs),
        "max_abs_diff": diff,
        "check_shape": list(check["input_ids"].shape),
        "opset": OPSET,
    }


def export_ticket_onnx(ticket_dir: str | os.PathLike) -> dict:
    """`ticket_dir`/model.onnx from the ticket in it (tickettune's loader: every format and family)."""
    require_onnx()
    from .format import load_ticket

    model, tokenizer, info = load_ticket(ticket_dir)
    return export_onnx(model, tokenizer, info["head"], Path(ticket_dir) / ONNX_FILE)


__all__ = [
    "ATOL",
    "EXTRA_HINT",
    "MissingExtra",
    "ONNX_FILE",
    "export_onnx",
    "export_ticket_onnx",
    "input_names",
    "output_names",
    "require_onnx",
    "run_onnx",
    "sample_batch",
]
