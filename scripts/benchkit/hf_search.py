"""The HF arm of the search-against-search benchmark: `Trainer.hyperparameter_search(backend="optuna")`
over learning rate and warm-up, dense, as a user runs it, with every trial's settings, dev metric and
wall-clock read back from the Optuna study.

The study lives in an Optuna journal file that this module creates first, so that (a) points can be
enqueued before the search starts (`hyperparameter_search` passes its extra keyword arguments to
`optuna.create_study`, which loads the existing study), and (b) `jobs` > 1 runs that many processes on one
study, each with its own `Trainer` — the way Optuna parallelises. Threads inside one process
(`n_jobs`) would share the one Trainer (and model) `hyperparameter_search` trains every trial on, so they
are not offered.

HF at its strongest (`HFRecipe.pruner`): Optuna's `MedianPruner`, which `hyperparameter_search` passes on to
`optuna.create_study`. The Trainer reports every evaluation to the trial and stops it (`TrialPruned`) when the
pruner says so; so the trials evaluate at the fractions of the budget where tickettune's ASHA judges its trials
(searcher/scheduling.py `asha_rungs`: grace period `search.first_rung` of max_t, a quarter by default): every
`first_rung` of the trial's steps, and at its last step (whose metric is the trial's value).

Per trial (Optuna user attributes): `train_seconds` (Trainer.train, from its train-begin to train-end
callbacks, evaluations during training taken out: model loading and every dev evaluation excluded),
`eval_seconds` (all of them), `steps` (a pruned trial's: where it stopped), and the study's own start/complete
times (the whole trial).
"""

from __future__ import annotations

import math
import multiprocessing
import os
import tempfile
import time
from dataclasses import asdict, dataclass, field
from types import SimpleNamespace

STUDY = "hf-search"


@dataclass
class HFRecipe:
    """Everything one HF search process needs (plain data: it crosses a process boundary)."""

    model: str  # alias, local folder or hub id (AutoModelForSequenceClassification)
    task: str  # a GLUE task name
    epochs: float
    data_root: str | None = None
    train_samples: int | None = None  # None: the whole train split; else a subset seeded by `seed`
    eval_samples: int | None = None  # None: the whole dev split
    max_length: int = 64
    batch_size: int = 32
    seed: int = 0  # the data subset, Trainer's seed (model head init, batch order)
    precision: str = "auto"  # tickettune's auto: bf16 where the CPU/GPU runs it fast, else fp32
    compile: bool = False  # TrainingArguments(torch_compile=True)
    threads: int = 2
    lr_range: tuple[float, float] = (2e-5, 2e-4)  # log-uniform
    warmup_range: tuple[float, float] = (0.0, 0.2)  # uniform, a fraction of the training steps
    sampler: dict = field(default_factory=dict)  # TPESampler keyword arguments (seeded)
    pruner: dict | None = None  # MedianPruner keyword arguments; None: no pruner, one evaluation at the end
    first_rung: float = 0.25  # a pruned trial evaluates every first_rung of its steps (tickettune's search.first_rung)


def rung_grace(max_steps: int, first_rung: float = 0.25) -> int:
    """The steps between two evaluations of a pruned trial: ASHA's grace period in tickettune's search for the
    same `first_rung` (searcher/scheduling.py `asha_rungs`), so both searches judge at the same fractions."""
    from tickettune.spaces.settings import SearchSettings

    return SearchSettings(first_rung=first_rung).first_rung_steps(max_steps)


def rung_evaluations(first_rung: float = 0.25):
    """A `TrainerCallback` asking for a dev evaluation every `rung_grace` steps and at the last step (the
    trial's value: with evaluations during training, `hyperparameter_search` takes the last one)."""
    from transformers import TrainerCallback

    class RungEvaluations(TrainerCallback):
        def on_train_begin(self, args, state, control, **kw):
            self.grace = rung_grace(state.max_steps, first_rung)  # once per trial, not per step

        def on_step_end(self, args, state, control, **kw):
            step, last = state.global_step, state.max_steps
            if step % self.grace == 0 or step >= last:
                control.should_evaluate = True

    return RungEvaluations()


def hp_space(recipe: HFRecipe):
    """The define-by-run space `hyperparameter_search` calls per trial: TrainingArguments names ->
    values. Optuna names the warm-up `warmup_ratio`; Trainer takes a fraction < 1 in `warmup_steps`."""

    def space(trial) -> dict:
        return {
            "learning_rate": trial.suggest_float("learning_rate", *recipe.lr_range, log=True),
            "warmup_steps": trial.suggest_float("warmup_ratio", *recipe.warmup_range),
        }

    return space


def _data(recipe: HFRecipe):
    from tickettune.trainables.tasks.data import as_tokenizer

    from .trainer_arm import first, loaders

    args = SimpleNamespace(
        data_root=recipe.data_root,
        max_length=recipe.max_length,
        batch_size=recipe.batch_size,
        train_samples=recipe.train_samples,
        eval_samples=recipe.eval_samples,
    )
    train_loader, dev = loaders(args, recipe.task, as_tokenizer(recipe.model), recipe.seed)
    return train_loader, first(dev)


def _worker(recipe: HFRecipe, journal: str, n_trials: int, sampler_seed_offset: int) -> None:
    """One process of the search: its own Trainer, `n_trials` trials on the shared study."""
    import optuna
    import torch
    from transformers import AutoModelForSequenceClassification, Trainer, TrainerCallback

    from tickettune.spaces.optuna_space import tpe_sampler
    from tickettune.trainables.model.build import model_path
    from tickettune.trainables.tasks import get_task
    from tickettune.trainables.tasks.glue import glue_metrics
    from tickettune.trainables.training.precision import Precision

    from .bench import hf_training_args

    torch.set_num_threads(recipe.threads)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    spec = get_task(recipe.task)
    key = f"eval_{spec.main_metric}"
    amp = Precision.of(recipe.precision, "cuda" if torch.cuda.is_available() else "cpu")
    train_loader, dev_loader = _data(recipe)
    current: dict = {}
    space = hp_space(recipe)

    def tracked_space(trial) -> dict:
        current["trial"] = trial
        return space(trial)

    class Clock(TrainerCallback):
        def on_train_begin(self, a, state, control, **kw):
            current.update(start=time.perf_counter(), training=True, eval_in_train=0.0, eval=0.0)

        def on_train_end(self, a, state, control, **kw):  # HF calls it before raising TrialPruned, too
            current["training"] = False
            seconds = time.perf_counter() - current["start"] - current["eval_in_train"]
            current["trial"].set_user_attr("train_seconds", seconds)
            current["trial"].set_user_attr("steps", state.global_step)

        def on_evaluate(self, a, state, control, metrics=None, **kw):
            runtime = float(metrics.get("eval_runtime", math.nan))
            current["eval"] += runtime
            if current["training"]:
                current["eval_in_train"] += runtime
            current["trial"].set_user_attr("eval_seconds", current["eval"])

    def model_init(trial=None):
        kwargs = {"num_labels": spec.num_labels}
        if spec.head == "regression":
            kwargs["problem_type"] = "regression"
        return AutoModelForSequenceClassification.from_pretrained(
            model_path(recipe.model), attn_implementation="sdpa", **kwargs
        )

    with tempfile.TemporaryDirectory() as out:
        targs = hf_training_args(
            out,
            batch_size=recipe.batch_size,
            lr=1e-4,  # each trial's learning rate comes from hp_space
            epochs=recipe.epochs,
            amp=amp,
            seed=recipe.seed,
            train_sampling_strategy="group_by_length",
            eval_strategy="no",  # a pruned search evaluates through rung_evaluations()
            torch_compile=recipe.compile,
        )
        callbacks = [Clock()] + ([rung_evaluations(recipe.first_rung)] if recipe.pruner is not None else [])
        trainer = Trainer(
            model_init=model_init,
            args=targs,
            train_dataset=train_loader.dataset,
            eval_dataset=dev_loader.dataset,
            data_collator=train_loader.collate_fn,
            compute_metrics=lambda pred: glue_metrics(recipe.task, pred.predictions, pred.label_ids),
            callbacks=callbacks,
        )
        sampler = tpe_sampler(**{**recipe.sampler, "seed": _offset(recipe.sampler.get("seed"), sampler_seed_offset)})
        extra = {} if recipe.pruner is None else {"pruner": optuna.pruners.MedianPruner(**recipe.pruner)}
        trainer.hyperparameter_search(
            hp_space=tracked_space,
            compute_objective=lambda m: m[key],
            n_trials=n_trials,
            direction="maximize",
            backend="optuna",
            sampler=sampler,
            study_name=STUDY,
            storage=_storage(journal),
            load_if_exists=True,
            **extra,
        )


def _offset(seed: int | None, k: int) -> int | None:
    """Process k's sampler seed: processes with one seed would propose the same random start-up points."""
    return None if seed is None else seed + k


def _storage(journal: str):
    import optuna
    from optuna.storages.journal import JournalFileBackend

    return optuna.storages.JournalStorage(JournalFileBackend(journal))


def split_trials(n: int, jobs: int) -> list[int]:
    """`n` trials over `jobs` processes, as evenly as they go (the first ones take the remainder)."""
    return [n // jobs + (1 if k < n % jobs else 0) for k in range(jobs)]


def hf_search(recipe: HFRecipe, n_trials: int, enqueue: list[dict] | None = None, jobs: int = 1) -> dict:
    """Run the search; returns {"seconds": the whole search, "jobs", "trials": [{number, params, metric,
    train_seconds, eval_seconds, trial_seconds, state, pruned_at}], "best": the best finished trial, "pruned":
    how many the pruner stopped}. `enqueue`: points in
    Optuna's names (learning_rate, warmup_ratio) tried first. jobs > 1: that many processes (spawned, each
    `recipe.threads` torch threads), trials split between them."""
    import optuna

    if jobs < 1 or jobs > n_trials:
        raise ValueError(f"jobs={jobs}: must be between 1 and n_trials={n_trials}")
    with tempfile.TemporaryDirectory() as tmp:
        journal = os.path.join(tmp, "study.log")
        study = optuna.create_study(study_name=STUDY, storage=_storage(journal), direction="maximize")
        for p in enqueue or []:
            study.enqueue_trial(p)
        start = time.perf_counter()
        if jobs == 1:
            _worker(recipe, journal, n_trials, 0)
        else:
            from .bench import run_all

            ctx = multiprocessing.get_context("spawn")
            procs = [
                ctx.Process(target=_worker, args=(recipe, journal, n, k))
                for k, n in enumerate(split_trials(n_trials, jobs))
            ]
            run_all(procs, "HF search worker")
        seconds = time.perf_counter() - start
        study = optuna.load_study(study_name=STUDY, storage=_storage(journal))
        trials = [_record(t) for t in study.trials]
    done = [t for t in trials if t["state"] == "COMPLETE"]
    best = max(done, key=lambda t: t["metric"]) if done else None
    pruned = sum(t["state"] == "PRUNED" for t in trials)
    return {
        "seconds": seconds,
        "jobs": jobs,
        "recipe": asdict(recipe),
        "trials": trials,
        "best": best,
        "pruned": pruned,
    }


def _record(t) -> dict:
    whole = (
        (t.datetime_complete - t.datetime_start).total_seconds()
        if t.datetime_complete and t.datetime_start
        else math.nan
    )
    return {
        "number": t.number,
        "params": dict(t.params),
        "state": t.state.name,
        "metric": math.nan if t.value is None else float(t.value),
        "train_seconds": t.user_attrs.get("train_seconds", math.nan),
        "eval_seconds": t.user_attrs.get("eval_seconds", math.nan),
        "steps": t.user_attrs.get("steps"),
        "trial_seconds": whole,
        "pruned_at": t.last_step if t.state.name == "PRUNED" else None,  # its metric: the evaluation there
        "evaluations": {str(k): float(v) for k, v in sorted(t.intermediate_values.items())},
    }
