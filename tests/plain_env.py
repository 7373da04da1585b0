"""A Python that sees torch, transformers and their requirements, and nothing else (no tickettune).

The venv's editable install puts tickettune on every path of its interpreter (a finder hooked in by a
``.pth`` file in site-packages), and PYTHONPATH shims add it again. `plain_site` instead links, into an
empty folder, exactly the installed distributions that torch and transformers require (transitively,
extras left out): their top-level modules and their ``.dist-info`` (transformers checks its requirements'
versions through importlib.metadata). `run_plain` starts ``python -I -S`` on it: -I ignores PYTHONPATH,
the user site and the working directory, -S skips site-packages and so every ``.pth`` file; the folder
is then the only place outside the standard library that imports come from. The child asserts that
tickettune (and ray, which the venv has but transformers does not need) cannot be imported.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOTS = ("torch", "transformers")

PRELUDE = """
import importlib.util, sys
sys.path.insert(0, {site!r})
for name in ("tickettune", "ray"):
    assert importlib.util.find_spec(name) is None, f"{{name}} is importable: the environment is not plain"
"""


def closure(roots: tuple[str, ...] = ROOTS) -> list[metadata.Distribution]:
    """The installed distributions `roots` need, roots included."""
    seen: dict[str, metadata.Distribution] = {}
    todo = list(roots)
    while todo:
        name = canonicalize_name(todo.pop())
        if name in seen:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue  # a requirement for another platform or Python, or one the venv does without
        seen[name] = dist
        for spec in dist.requires or []:
            req = Requirement(spec)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name)
    return list(seen.values())


def plain_site(dest: Path, roots: tuple[str, ...] = ROOTS) -> Path:
    """`dest` filled with links to the top-level modules and metadata of `closure(roots)`."""
    dest.mkdir(parents=True, exist_ok=True)
    for dist in closure(roots):
        site = Path(dist.locate_file(""))
        tops = {Path(str(f)).parts[0] for f in dist.files or [] if not str(f).startswith("..")}
        for top in tops:
            src, link = site / top, dest / top
            if top.endswith(".pth") or top == "__pycache__" or not src.exists() or link.exists():
                continue
            link.symlink_to(src, target_is_directory=src.is_dir())
    return dest


def run_plain(code: str, args: list[str], tmp: Path, roots: tuple[str, ...] = ROOTS, timeout: int = 600) -> dict:
    """Run `code` (which writes JSON to its last argument) where only `roots` and their requirements can
    be imported; returns that JSON."""
    site = plain_site(tmp / "plain-site", roots)
    out = tmp / "plain-result.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "HF_", "TRANSFORMERS_"))}
    env.update(
        HF_HUB_OFFLINE="1",
        HF_HOME=str(tmp / "hf-home"),
        HF_MODULES_CACHE=str(tmp / "hf-modules"),
        TOKENIZERS_PARALLELISM="false",
        OMP_NUM_THREADS="1",
    )
    proc = subprocess.run(
        [sys.executable, "-I", "-S", "-B", "-c", PRELUDE.format(site=str(site)) + code, *args, str(out)],
        env=env,
        cwd=tmp,
        timeout=timeout,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
    )  # transformers asks on a terminal before running model code
    if proc.returncode:
        raise AssertionError(f"the plain-transformers child failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    return json.loads(out.read_text())
