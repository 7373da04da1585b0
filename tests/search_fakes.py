"""An experiment folder as a search leaves it (Tune's state file, trial folders, reports, tickets),
written directly, so that export and report are tested without running Ray."""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch


def tiny_ticket(path: Path, seed: int, info: dict) -> Path:
    from tickettune.trainables.model.build import ScratchConfig, scratch_model
    from tickettune.trainables.ticket.format import save_ticket

    torch.manual_seed(seed)
    model, tok = scratch_model(ScratchConfig(layers=2, heads=2, hidden=32, ffn=64, dropout=0.0), head="classification")
    return save_ticket(model, tok, path, info)


def search_history(eps: float, bird: int | None, steps: int = 40, interval: int = 5) -> list[dict]:
    rows = []
    last = bird if bird is not None else steps
    for i, step in enumerate(range(interval, last + 1, interval)):
        d = math.exp(-0.08 * step)
        rows.append(
            {
                "phase": "search",
                "step": step,
                "loss": 0.7 - 0.01 * i,
                "mask_distance": d,
                "head_distance": d,
                "ffn_distance": d,
                "early_bird": bird is not None and step == bird,
                "val_metric": math.nan,
                "relative_cost": step / 100,
                "flow_done": False,
                "training_iteration": i + 1,
            }
        )
    return rows


def make_experiment(root: Path, trials: list[dict], metric="val_metric", mode="max", name="fake") -> Path:
    """trials: dicts with id, config, val (None: no ticket / unfinished), cost, bird, status, ticket (bool)."""
    exp = root / name
    exp.mkdir(parents=True)
    objective = "multi" if isinstance(metric, list) else "single"
    spec = {
        "name": name,
        "storage": str(root),
        "fixed": {"task": "sst2"},
        "search": {"num_samples": len(trials), "objective": objective, "metric": metric, "mode": mode},
        "space": {"head_ratio": {"low": 0.1, "high": 0.5}, "eps": {"low": 0.05, "high": 0.2}},
    }
    (exp / "tickettune_search.json").write_text(json.dumps({"spec": spec, "plan": {}}))
    trial_data = []
    for k, t in enumerate(trials):
        d = exp / f"trial_{t['id']}"
        d.mkdir()
        hist = search_history(t["config"].get("eps", 0.1), t.get("bird"))
        if t.get("val") is not None:
            bird = t.get("bird")
            hist.append(
                {
                    "phase": "done",
                    "step": hist[-1]["step"] + 10,
                    "val_metric": t["val"],
                    "relative_cost": t["cost"],
                    "converged": bird is not None,
                    "early_bird_step": -1 if bird is None else bird,
                    "search_steps": hist[-1]["step"],
                    "flow_done": True,
                    "training_iteration": len(hist) + 1,
                }
            )
            if t.get("ticket", True):
                tiny_ticket(d / "ticket", seed=k, info={"val_metric": t["val"], "relative_cost": t["cost"]})
        with open(d / "result.json", "w") as f:
            for r in hist:
                f.write(json.dumps(r) + "\n")
        (d / "params.json").write_text(json.dumps(t["config"]))
        status = t.get("status", "TERMINATED")
        trial_data.append(
            [
                json.dumps({"trial_id": t["id"], "status": status, "config": t["config"]}),
                json.dumps({"error_filename": None, "last_result": hist[-1]}),
            ]
        )
    (exp / "experiment_state-2026-01-01_00-00-00.json").write_text(json.dumps({"trial_data": trial_data}))
    return exp


FOUR = [
    {"id": "a", "config": {"head_ratio": 0.2, "eps": 0.1}, "val": 0.80, "cost": 0.60, "bird": 15},
    {"id": "b", "config": {"head_ratio": 0.4, "eps": 0.1}, "val": 0.85, "cost": 0.70, "bird": 20},  # best
    {"id": "c", "config": {"head_ratio": 0.3, "eps": 0.2}, "val": 0.78, "cost": 0.40, "bird": 10},
    {"id": "d", "config": {"head_ratio": 0.1, "eps": 0.1}, "val": 0.75, "cost": 0.65, "bird": None},  # dominated
    {"id": "e", "config": {"head_ratio": 0.5, "eps": 0.05}, "val": None, "status": "ERROR"},
]
