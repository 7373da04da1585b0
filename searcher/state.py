"""The experiment folder's own state file: the spec and resource plan a search started with (resume and
export read it back). Written atomically."""

from __future__ import annotations

import json
import os
from pathlib import Path

STATE_FILE = "tickettune_search.json"


def write_state(experiment_dir: Path, state: dict) -> None:
    experiment_dir.mkdir(parents=True, exist_ok=True)
    tmp = experiment_dir / f".{STATE_FILE}.tmp"
    tmp.write_text(json.dumps(state, indent=1, default=str))
    os.replace(tmp, experiment_dir / STATE_FILE)


def read_state(experiment_dir: str | os.PathLike) -> dict:
    path = Path(experiment_dir) / STATE_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{experiment_dir} has no {STATE_FILE}: not a tickettune experiment folder")
    return json.loads(path.read_text())
