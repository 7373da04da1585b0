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
lists every problem found, each naming the offending key and value: the sections' pydantic models
(schema.py, settings.py, flow_keys.py, domain.py) type each value, then checks.py looks across them.
See spaces/README.md.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from .checks import cross_check
from .flow_keys import FLOW_HINTS
from .problems import problem_lines
from .schema import SearchSpec, SpecError, SpecFile

SECTIONS = ("search", "fixed", "space")


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
        sections = list(SpecFile.model_fields)
        raise SpecError(
            problems + [f"the config must be a mapping with sections {sections}, got {type(data).__name__}"], where
        )
    data.setdefault("name", default_name)
    raw_fixed = dict(data["fixed"]) if isinstance(data.get("fixed"), dict) else {}
    file, found, broken = _validate(data)
    fixed = file.fixed.model_dump(exclude_unset=True)
    space, more = cross_check(file.search, fixed, file.space, raw_fixed, broken)
    problems = list(dict.fromkeys(problems + found + more))
    if problems:
        raise SpecError(problems, where)
    return SearchSpec(file.name, file.storage, file.search, fixed, space, source=where)


def _validate(data: dict) -> tuple[SpecFile, list[str], set[str]]:
    """(the config as a SpecFile, its problems, the searched keys whose domain was rejected).

    Every rejected entry is dropped and the rest validated again, so that the checks across sections still
    see every valid part. Problems of the later rounds only follow from the dropping: not reported.
    """
    problems: list[str] = []
    broken: set[str] = set()
    for _ in range(5):
        try:
            return SpecFile.model_validate(data), problems, broken
        except ValidationError as e:
            problems = problems or problem_lines(e, SpecFile)
            for error in e.errors():
                section, *rest = error["loc"]
                if rest and section in SECTIONS and isinstance(data.get(section), dict):
                    data[section].pop(rest[0], None)
                    if section == "space" and rest[0] in FLOW_HINTS:
                        broken.add(rest[0])
                else:
                    data.pop(section, None)
    return SpecFile(), problems, broken
