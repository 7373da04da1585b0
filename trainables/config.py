"""What one trial is told (FlowConfig) and what it hands back (FlowResult).

Its own light module: the search spec (spaces/) validates YAML against these fields without loading
the training stack.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from . import fast_path
from .budget import budget_problems
from .model.dropout import problems as dropout_problems
from .tasks import DataArgs, Task, get_task, task_problems
from .tasks.config_keys import unknown_keys
from .training.precision import PRECISIONS
from .training.word_embeddings import EMBEDDINGS

PLD_PHASES = ("search", "ticket", "both")


# compile's bucket when pad_to_multiple_of is unset: 9 shapes per SST-2 epoch instead of 56, at +24% tokens
# (bench_fast_path's unpadding_bound); without compile exact lengths are cheaper on every device measured
COMPILE_PAD = 8


@dataclass
class FlowConfig:
    # what to train on
    model: str = "minilm-l6"  # alias, local dir, hub id; ignored when `scratch` is given
    scratch: dict | None = None  # ScratchConfig fields: pre-training from random weights
    task: str | dict = "sst2"  # a task name (tasks.names()) or a dict describing own data (tasks/)
    data_root: str | None = None
    max_train_samples: int | None = 2000
    max_eval_samples: int | None = None
    max_length: int = 64
    batch_size: int = 32
    seed: int = 0
    group_by_length: bool = True  # train batches of similar lengths (sampler.py), as Trainer's option
    # the fast path's levers; unset (None): fast_path.py's choice when fine-tuning (bf16-master where bf16 is fast,
    # freeze, 0), the plain one (auto, train, the model's dropout) when pre-training or with fast_path: false
    fast_path: bool = True
    precision: str | None = None  # auto | fp32 | bf16 | fp16 | bf16-master (training/precision.py, optimizer.py)
    embeddings: str | None = None  # train | sparse | freeze: the word embedding (word_embeddings.py)
    dropout: float | None = None  # every dropout of the model (model/dropout.py); pre-training's None: the model's
    pad_to_multiple_of: int | None = None  # train batches padded to a multiple: few shapes (data.py); None: exact
    compile: bool = False  # torch.compile the training forward/backward (compile_step.py); pads to 8
    compile_cache_dir: str | None = None  # inductor's cache; a search puts it under its experiment folder
    # search phase (EarlyBERT)
    lr: float = 1e-4
    coef_lr: float | None = None
    head_ratio: float = 1 / 3
    ffn_ratio: float = 0.4
    head_scope: str = "layer"
    ffn_scope: str = "global"
    min_heads: int = 1
    min_ffn: int = 8
    ffn_multiple: int | None = 8  # kept FFN widths rounded to a multiple of 8: faster matmuls
    lambda_head: float = 1e-4
    lambda_ffn: float = 1e-4
    eps: float = 0.1
    window: int = 5
    mask_interval: int = 10  # a mask drawn (and the search phase reported) every N steps
    report_interval: int = 10  # the ticket and baseline phases report every N steps
    search_max_steps: int = 300
    detect: bool = True  # False: draw at search_max_steps (fixed budget, as the reference)
    unconverged: str = "stop"  # "stop": end the trial unconverged; "ticket": draw anyway
    # the dense run this trial stands in for (budget.py): at most one of the two; neither: the legacy
    # budget search_max_steps + ticket_steps
    budget_steps: int | None = None
    budget_epochs: float | None = None
    baseline: bool = False  # the dense reference: fine-tune the whole budget, no search, no pruning
    # ticket phase
    ticket_mode: str = "continue"  # "continue" (measured better, README): see budget.py; "rewind": the paper
    ticket_steps: int | None = None  # only without a budget (default 300); with one it is derived
    ticket_lr: float = 1e-4  # rewind's peak lr (continue goes on with `lr`'s schedule)
    eval_interval: int | None = None  # dev metric every N ticket steps too (ASHA's rungs); None: at the end
    # distillation from a cached teacher, ticket phases only (ticket/distill.py):
    # + weight · KL(teacher/T ‖ ticket/T) · T²
    distill_weight: float = 0.0  # 0: off
    distill_temperature: float = 2.0
    teacher: str | None = None  # a fine-tuned model or ticket folder whose logits are cached before training
    teacher_cache: str | None = None  # the cache folder (a distilling search: <experiment>/teacher_cache)
    # progressive layer dropping
    pld: bool = False
    pld_phase: str = "ticket"
    theta_bar: float = 0.5
    gamma: float = 0.001
    warmup_ratio: float = 0.1

    def __post_init__(self) -> None:
        problems = self.problems()
        if problems:
            raise ValueError("invalid trial config:\n  " + "\n  ".join(problems))

    def problems(self) -> list[str]:
        p = []
        p += task_problems(self.task)
        for name in ("head_ratio", "ffn_ratio"):
            v = getattr(self, name)
            if not 0 <= v < 1:
                p.append(f"{name}={v!r} must be in [0, 1)")
        for name in ("lambda_head", "lambda_ffn"):
            if getattr(self, name) < 0:
                p.append(f"{name}={getattr(self, name)!r} must be >= 0")
        for name in ("lr", "ticket_lr"):
            if not getattr(self, name) > 0:
                p.append(f"{name}={getattr(self, name)!r} must be > 0")
        for name in ("batch_size", "max_length", "mask_interval", "report_interval", "search_max_steps"):
            if getattr(self, name) < 1:
                p.append(f"{name}={getattr(self, name)!r} must be >= 1")
        p += budget_problems(self)
        if self.eval_interval is not None and self.eval_interval < 1:
            p.append(f"eval_interval={self.eval_interval!r} must be >= 1 (or null: only at the end)")
        if not 0 <= self.eps <= 1:
            p.append(f"eps={self.eps!r} must be in [0, 1]")
        if self.window < 2:
            p.append(f"window={self.window!r} must be >= 2")
        if self.pld_phase not in PLD_PHASES:
            p.append(f"pld_phase={self.pld_phase!r}: expected one of {PLD_PHASES}")
        if self.precision is not None and self.precision not in PRECISIONS:
            p.append(f"precision={self.precision!r}: expected one of {PRECISIONS}")
        if self.pad_to_multiple_of is not None and (
            isinstance(self.pad_to_multiple_of, bool)
            or not isinstance(self.pad_to_multiple_of, int)
            or self.pad_to_multiple_of < 1
        ):
            p.append(f"pad_to_multiple_of={self.pad_to_multiple_of!r} must be an integer >= 1 (or null)")
        if self.compile and self.pld:
            p.append(
                "compile=true with pld=true: PLD picks the layers each step, a new graph for each choice; "
                "use one or the other"
            )
        if self.embeddings is not None and self.embeddings not in EMBEDDINGS:
            p.append(f"embeddings={self.embeddings!r}: expected one of {EMBEDDINGS}")
        p += dropout_problems(self.dropout)
        if self.unconverged not in ("stop", "ticket"):
            p.append(f"unconverged={self.unconverged!r}: expected 'stop' or 'ticket'")
        if not 0 < self.theta_bar <= 1:
            p.append(f"theta_bar={self.theta_bar!r} must be in (0, 1]")
        if self.gamma < 0:
            p.append(f"gamma={self.gamma!r} must be >= 0")
        if not self.distill_weight >= 0:
            p.append(f"distill_weight={self.distill_weight!r} must be >= 0 (0: no distillation)")
        if not self.distill_temperature > 0:
            p.append(f"distill_temperature={self.distill_temperature!r} must be > 0")
        return p

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "FlowConfig":
        unknown, _ = unknown_keys(cls, d)
        if unknown:
            raise ValueError(f"unknown trial config keys: {unknown}")
        return cls(**d)

    @property
    def metric_mode(self) -> str:
        return get_task(self.task).mode

    @property
    def task_obj(self) -> Task:
        return get_task(self.task)

    def data_args(self) -> DataArgs:
        return DataArgs(
            root=self.data_root,
            max_length=self.max_length,
            batch_size=self.batch_size,
            max_train_samples=self.max_train_samples,
            max_eval_samples=self.max_eval_samples,
            seed=self.seed,
            group_by_length=self.group_by_length,
            pad_to_multiple_of=self.pad_to_multiple_of or (COMPILE_PAD if self.compile else None),
        )

    @property
    def pretraining(self) -> bool:
        """From random weights or on an MLM task: the word embedding must train (fast_path.py)."""
        return self.scratch is not None or self.task_obj.head == "mlm"

    def levers(self, device: str | None = None) -> dict[str, Any]:
        """The fast-path settings every TrainConfig of the trial gets, unset ones resolved for `device`."""
        lv = fast_path.resolve(
            self.precision,
            self.embeddings,
            self.dropout,
            plain=self.pretraining or not self.fast_path,
            device=device or fast_path.fast_device(),
        )
        return {
            "precision": lv.precision,
            "embeddings": lv.embeddings,
            "dropout": lv.dropout,
            "compile": self.compile,
            "compile_cache_dir": self.compile_cache_dir,
        }

    def pld_in(self, phase: str) -> bool:
        return self.pld and self.pld_phase in (phase, "both")


@dataclass
class FlowResult:
    val_metric: float
    metric_name: str
    converged: bool
    early_bird_step: int | None
    search_steps: int
    ticket_steps: int
    relative_cost: float
    seconds: dict = field(default_factory=dict)
    ticket_dir: str | None = None
    history: list[dict] = field(default_factory=list)
    teacher: dict | None = None  # distill.Teacher's record: the cache, whether the ticket phase used it, its cost
