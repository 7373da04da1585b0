"""Search configs as data: the YAML format behind `tickettune search CONFIG.yaml`, and its validation.

A config has five top-level sections (all optional except that a search needs something to search)::

    name: sst2-minilm                 # experiment name (default: the file's stem)
    storage: runs                     # experiment folder; relative -> absolute (from the current dir)
    search: {num_samples: 8, objective: single, metric: val_metric, seed: 0, scheduler: asha, ...}
    fixed: {model: minilm-l6, task: sst2, max_train_samples: 2000}   # FlowConfig keys -> constants
    space:                            # FlowConfig keys -> domains
      head_ratio: {low: 0.2, high: 0.5}                      # float, uniform
      lambda_head: {low: 1.0e-5, high: 1.0e-3, log: true}    # float, log-uniform
      mask_interval: {low: 5, high: 20}                      # int (the FlowConfig field is an int)
      window: {choices: [3, 5]}                              # categorical
      theta_bar: {low: 0.5, high: 0.9, when: {pld: true}}    # sampled only when pld is true

`load_spec` checks everything before any trial starts and raises one `SpecError` (a ValueError) that
lists every problem found, each naming the offending key and value. See spaces/README.md.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import yaml

from .schema import TOP_LEVEL, SearchSpec, SpecError
from .validate import Validator


class _Loader(yaml.SafeLoader):
    """SafeLoader that records duplicate mapping keys (PyYAML silently keeps the last one)."""

    def __init__(self, stream):
        super().__init__(stream)
        self.duplicates: list[str] = []

    def construct_mapping(self, node, deep=False):
        seen: set = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                if key in seen:
                    self.duplicates.append(
                        f"line {key_node.start_mark.line + 1}: key {key!r} appears twice in the same mapping"
                    )
                seen.add(key)
            except TypeError:  # unhashable key: SafeLoader reports it itself
                pass
        return super().construct_mapping(node, deep=deep)


def read_yaml(path: str | os.PathLike) -> tuple[Any, list[str]]:
    """(data, problems): the parsed file, and its duplicate keys / syntax error as problems."""
    text = Path(path).read_text(encoding="utf-8")
    loader = _Loader(text)
    try:
        data = loader.get_single_data()
    except yaml.YAMLError as e:
        return None, [f"{path}: not valid YAML: {e}"]
    finally:
        loader.dispose()
    return data, list(loader.duplicates)


def load_spec(source: str | os.PathLike | dict) -> SearchSpec:
    """A validated SearchSpec from a YAML file or an already parsed dict.

    Raises `SpecError` (a ValueError) listing every problem; nothing is started before that.
    Relative paths (`storage`, `fixed.data_root`, a `fixed.model` that is a local folder) are made
    absolute against the current directory, since Ray trials run in their own working directories.
    """
    problems: list[str] = []
    where = None
    if isinstance(source, dict):
        data = copy.deepcopy(source)
        default_name = "search"
    else:
        where = str(source)
        path = Path(source)
        if not path.is_file():
            raise SpecError([f"no such config file: {where}"], where)
        data, problems = read_yaml(path)
        default_name = path.stem
        if data is None and not problems:
            data = {}
    if problems and data is None:
        raise SpecError(problems, where)
    if not isinstance(data, dict):
        raise SpecError(
            problems + [f"the config must be a mapping with sections {list(TOP_LEVEL)}, got {type(data).__name__}"],
            where,
        )
    v = Validator(problems)
    spec = v.spec(data, default_name, where)
    if v.problems:
        raise SpecError(v.problems, where)
    return spec
