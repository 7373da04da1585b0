"""The search: Optuna (TPE, one objective or several) on Ray Tune, one EarlyBERT/PLD flow per trial.

    from tickettune.searcher.search import run_search
    result = run_search("spaces/demo.yaml")          # or a SearchSpec / a dict
    result.exported                                   # the best ticket (or the Pareto-front folder)

The experiment folder is ``<spec.storage>/<spec.name>``: Tune's own state (trials, searcher state,
tuner.pkl, so that `resume.resume_search` continues it), one ``trial_<id>/`` per trial (see trial.py),
``tickettune_search.json`` (the spec and the resource plan), ``scheduler.state`` (ASHA's rungs and
early stops, stops.py), ``wandb/`` (W&B offline runs, if any),
and at the end ``best/`` (single objective) or ``pareto/<trial_id>/`` (several).
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from . import console
from .outcome import Outcome, outcome_of
from .ray_session import shutdown, start_driver
from .resources import ResourcePlan, plan_resources
from .state import STATE_FILE, write_state

BEST_DIR = "best"
PARETO_DIR = "pareto"


class ExperimentExists(FileExistsError):
    pass


@dataclass
class SearchResult:
    experiment_dir: str
    num_trials: int
    statuses: dict[str, int]
    finished: bool  # every sample ran to an end (TERMINATED or ERROR)
    exported: str | None = None  # best/ or pareto/
    selection: list[dict] = field(default_factory=list)  # the exported trials (id, metrics, config)
    plan: dict | None = None
    seconds: float = 0.0  # the whole call
    timings: dict[str, float] = field(default_factory=dict)  # connect / fit / export / shutdown
    outcome: Outcome | None = None  # finished / failed counts, the first failure, an export error


# ----------------------------------------------------------------------------------------- the pieces


def load(spec_or_path: Any):
    from ..spaces.spec import SearchSpec, load_spec

    return spec_or_path if isinstance(spec_or_path, SearchSpec) else load_spec(spec_or_path)


def experiment_dir_of(spec) -> Path:
    if "://" in spec.storage:
        raise ValueError(
            f"storage={spec.storage!r}: tickets are written to the trial folders, so storage must "
            f"be a path every node sees (local disk on one machine, NFS on a cluster)"
        )
    return Path(spec.storage) / spec.name


def _data_root(spec) -> str | None:
    from ..trainables.tasks.data import data_root

    try:
        return str(data_root(spec.fixed.get("data_root")))
    except FileNotFoundError:
        return None  # the flow raises its own clear error if it needs data


def _flow_fn_name(fn: Callable | None) -> str | None:
    if fn is None:
        return None
    return f"{getattr(fn, '__module__', '?')}:{getattr(fn, '__qualname__', repr(fn))}"


def make_searcher(spec, space: Callable | None = None):
    """OptunaSearch over the spec's space (or `space`, a define-by-run function), seeded TPE sampler;
    one metric, or several (multi-objective TPE) for ``objective: multi``."""
    from ray.tune.search.optuna import OptunaSearch

    from ..spaces.optuna_space import make_sampler, space_fn

    return OptunaSearch(
        space or space_fn(spec),
        metric=spec.search.metric,
        mode=spec.search.mode,
        sampler=make_sampler(spec),
        points_to_evaluate=points_to_evaluate(spec),
    )


def points_to_evaluate(spec) -> list[dict] | None:
    """`search.enqueue` for Optuna's queue. With a baseline, an empty point first: the baseline is trial 0
    (it suggests nothing), and an enqueued point handed to it would be lost."""
    points = [dict(p) for p in spec.search.enqueue or []]
    if not points:
        return None
    return ([{}] if spec.search.baseline else []) + points


def make_callbacks(spec, experiment_dir: Path) -> list:
    project = spec.search.wandb_project
    if not project:
        return []
    from .tracking import wandb_callback

    return [wandb_callback(project, group=spec.name, experiment_dir=experiment_dir)]


def close_callbacks(callbacks: list) -> None:
    """End what the callbacks started (W&B's logging actors) while Ray is still up; see wandb_callback.py."""
    if any(type(cb).__module__.endswith(".wandb_callback") for cb in callbacks):
        from .wandb_callback import close_all

        close_all(callbacks)


def trainable_for(settings: dict, plan: ResourcePlan):
    from ray import tune

    from .trial import driver

    return tune.with_resources(tune.with_parameters(driver, settings=settings), plan.trial_resources)


# --------------------------------------------------------------------------------------------- search


def _clear(exp_dir: Path, overwrite: bool) -> None:
    """Refuse to start in a folder that holds something (ExperimentExists), unless `overwrite` and it is
    a tickettune experiment (or what a search that failed to start leaves: its wandb/ folder)."""
    if not exp_dir.exists() or not any(exp_dir.iterdir()):
        return
    ours = (exp_dir / STATE_FILE).exists() or {p.name for p in exp_dir.iterdir()} <= {"wandb"}
    if not overwrite:
        raise ExperimentExists(
            f"{exp_dir} already holds a search: resume it (tickettune resume {exp_dir}), "
            f"pick another name, or overwrite it"
        )
    if not ours:
        raise ExperimentExists(f"{exp_dir} is not empty and is not a tickettune experiment: not deleting it")
    import shutil

    shutil.rmtree(exp_dir)


def run_search(
    spec: Any,
    *,
    address: str | None = None,
    num_cpus: int | None = None,
    executor: str | None = None,
    flow_fn: Callable | None = None,
    space: Callable | None = None,
    callbacks: list | None = None,
    export: bool = True,
    verbose: int = 1,
    overwrite: bool = False,
    auth: str | None = None,
) -> SearchResult:
    """Run a search end to end; returns a `SearchResult`.

    spec: a `SearchSpec`, a YAML path or a dict (validated by `spaces.spec.load_spec` first).
    address: None -> a new local Ray instance (`num_cpus` caps it); "HOST:PORT" or $RAY_ADDRESS -> join.
    executor: "auto" (inline for 1 worker per trial, Ray Train otherwise), "train" or "inline";
        default: the spec's `search.executor` if it has one, else "auto".
    flow_fn: the per-trial function (default `trainables.flow.run_flow`), same signature.
    space: a define-by-run function ``f(optuna_trial) -> dict`` instead of the spec's space (the spec's
        `fixed` values are then not merged in: return them from `space`).
    callbacks: extra Tune callbacks. export: copy the best ticket / the Pareto front at the end.
    verbose: 0 silent, 1 our lines and Tune's progress (the CLI's default), 2 also what Ray, transformers
        and Optuna log (``tickettune search -v``); see console.py.
    overwrite: delete an earlier experiment of the same name first (else ExperimentExists).
    auth: Ray token auth to join a cluster with ("token" / "disabled"); default $RAY_AUTH_MODE, else the
        cluster's own (cluster_auth.py).
    """
    start = time.time()
    console.prepare_driver(verbose)
    from .scheduling import with_rung_evaluations

    spec = with_rung_evaluations(load(spec))
    exp_dir = experiment_dir_of(spec)
    from .distilling import with_teacher_cache

    spec = with_teacher_cache(spec, exp_dir)  # a distilling search's cache, in the spec the experiment keeps
    _clear(exp_dir, overwrite)
    t0 = time.time()
    started = start_driver(spec, exp_dir, address, num_cpus, verbose, auth)
    console.quiet_optuna(verbose)
    timings = {"connect": time.time() - t0}
    tune_callbacks: list = []
    try:
        s = spec.search
        plan = plan_resources(
            None,
            workers_per_trial=s.workers_per_trial,
            cpus_per_worker=s.cpus_per_worker,
            max_concurrent=s.max_concurrent,
            gpus_per_trial=s.gpus_per_trial,
            executor=executor or getattr(s, "executor", None) or "auto",
        )
        if verbose:
            extra = " (one the dense baseline)" if s.baseline else ""
            print(f"[tickettune] {spec.name}: {s.total_trials} trials{extra}; {plan.describe()}", flush=True)
        settings = {
            "experiment_dir": str(exp_dir),
            "plan": plan.to_dict(),
            "max_failures": s.max_failures,
            "data_root": _data_root(spec),
            "flow_fn": flow_fn,
        }
        write_state(
            exp_dir,
            {
                "spec": spec.to_dict(),
                "plan": plan.to_dict(),
                "data_root": settings["data_root"],
                "flow_fn": _flow_fn_name(flow_fn),
                "created": time.time(),
                "source": spec.source,
                "tune_loggers": list(console.TUNE_LOGGERS),
            },
        )
        tune_callbacks = console.tune_loggers() + make_callbacks(spec, exp_dir) + list(callbacks or [])
        tuner = _tuner(spec, plan, settings, exp_dir, tune_callbacks, verbose, space)
        t0 = time.time()
        with console.scoped_env(console.NO_AUTO_LOGGERS):  # the CSV + JSON loggers above, no TensorBoard
            tuner.fit()
        timings["fit"] = time.time() - t0
        res = _finish(spec, exp_dir, plan, export, start, verbose)
    finally:
        close_callbacks(tune_callbacks)
        if started:
            t0 = time.time()
            shutdown()
            timings["shutdown"] = time.time() - t0
    res.timings = {**timings, **res.timings}
    res.seconds = time.time() - start
    return res


def _tuner(
    spec,
    plan: ResourcePlan,
    settings: dict,
    exp_dir: Path,
    callbacks: list,
    verbose: int,
    space: Callable | None = None,
):
    from ray import tune

    from .scheduling import make_scheduler
    from .trial import trial_dirname, trial_name

    tune_config = tune.TuneConfig(
        search_alg=make_searcher(spec, space),
        scheduler=make_scheduler(spec, exp_dir),  # scheduling.py: ASHA, the baseline spared, stops recorded
        num_samples=spec.search.total_trials,
        max_concurrent_trials=plan.max_concurrent_trials,  # Tune sees only the driver: never more than fit
        trial_dirname_creator=trial_dirname,
        trial_name_creator=trial_name,
        # no new trial process per trial (inline: torch & co. stay imported, too). Not with a scheduler:
        # a stopped trial's thread is still in fit()/run_flow, and Tune cannot reset that actor in time
        reuse_actors=spec.search.scheduler == "none",
    )
    run_config = tune.RunConfig(
        name=spec.name,
        storage_path=str(exp_dir.parent),
        callbacks=callbacks,
        failure_config=tune.FailureConfig(max_failures=spec.search.max_failures),
        checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
        verbose=console.tune_verbosity(verbose),
    )
    return tune.Tuner(trainable_for(settings, plan), tune_config=tune_config, run_config=run_config)


def _finish(spec, exp_dir: Path, plan: ResourcePlan, export: bool, start: float, verbose: int) -> SearchResult:
    """Count the trials' outcomes; when every sample has ended, export the best ticket (or the front)."""
    from .export import load_trials

    trials = load_trials(exp_dir)
    statuses: dict[str, int] = {}
    for t in trials:
        statuses[t.status] = statuses.get(t.status, 0) + 1
    ended = sum(n for st, n in statuses.items() if st in ("TERMINATED", "ERROR"))
    finished = ended >= spec.search.total_trials
    res = SearchResult(str(exp_dir), len(trials), statuses, finished, plan=plan.to_dict())
    res.outcome = outcome_of(trials, spec.search.total_trials)
    if not finished:
        print(
            f"[tickettune] {spec.name}: interrupted after {ended} of {spec.search.total_trials} trials; "
            f"continue with `tickettune resume {exp_dir}`",
            file=sys.stderr,
            flush=True,
        )
    elif export and res.outcome.finished:
        _export(spec, exp_dir, res, verbose)
    return res


def _export(spec, exp_dir: Path, res: SearchResult, verbose: int) -> None:
    """The best ticket (or the front) into best/ (pareto/), logged to W&B; a failure is kept in the outcome."""
    from .export import export_best

    t0 = time.time()
    pareto = spec.search.multi
    out = exp_dir / (PARETO_DIR if pareto else BEST_DIR)
    try:
        exported = export_best(exp_dir, out, pareto=pareto)
    except (LookupError, OSError, ValueError) as e:
        res.outcome.export_error = f"nothing to export: {e}" if isinstance(e, LookupError) else str(e)
        return
    res.exported, res.selection = str(out), exported
    if spec.search.wandb_project:
        from .tracking import log_ticket_artifact

        log_ticket_artifact(spec.search.wandb_project, spec.name, out, exp_dir, exported)
    if verbose:
        for e in exported:
            print(
                f"[tickettune] exported trial {e['trial_id']}: "
                + ", ".join(f"{k}={v:.4g}" for k, v in e["metrics"].items())
                + f" -> {e['path']}",
                flush=True,
            )
    res.timings["export"] = time.time() - t0
