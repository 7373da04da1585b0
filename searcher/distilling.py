"""Where a distilling search keeps its teacher cache: one folder in the experiment, known to every trial.

A search distills when its space ranges over `distill_weight` or fixes it above 0. With a dense baseline (trial 0
writes the cache after its training) or a fixed `teacher` (the first trial to start writes it), every trial gets
``teacher_cache: <experiment>/teacher_cache`` among its fixed keys, unless the config names one: so the spec saved
with the experiment holds it, and a resumed search finds the same cache (trainables/ticket/distill.py).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

TEACHER_CACHE_DIR = "teacher_cache"


def distills(spec) -> bool:
    return "distill_weight" in spec.space or (spec.fixed.get("distill_weight") or 0) > 0


def with_teacher_cache(spec, experiment_dir: Path):
    """`spec` with every trial pointed at the experiment's teacher cache, where the search distills and has
    something to write it (a baseline or a teacher)."""
    if not distills(spec) or "teacher_cache" in spec.fixed or "teacher_cache" in spec.space:
        return spec
    if not (spec.search.baseline or spec.fixed.get("teacher")):
        return spec  # the trials record that they had nothing to distill from
    cache = str(Path(experiment_dir).absolute() / TEACHER_CACHE_DIR)
    return replace(spec, fixed={**spec.fixed, "teacher_cache": cache})
