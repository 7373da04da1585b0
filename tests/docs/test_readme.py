"""README.md stays a guide a newcomer can trust: short, its links and docs/'s resolve, and its quick start runs.

The quick start is the README's section headed QUICK_START: every ```bash and ```python block in it is run in
order, as written, in one empty folder, on the shared data, with no network. A command the README shows that
breaks fails the test.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
QUICK_START = "## Quick start"
MAX_README_LINES = 300
RUNNABLE = ("bash", "python")
PROMISED = ("tickettune search", "tickettune report", "tickettune export", "tickettune predict", "from_pretrained")

FENCE = re.compile(r"^```([\w-]*)[ \t]*\n(.*?)^```[ \t]*$", re.S | re.M)
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
INLINE_CODE = re.compile(r"`[^`\n]*`")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.M)


def documents() -> list[Path]:
    return [README, *sorted((REPO / "docs").glob("*.md"))]


def prose(text: str) -> str:
    """The text without fenced blocks and inline code: links are only what a reader can click."""
    return INLINE_CODE.sub("", FENCE.sub("", text))


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped (not - or _), spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading anchors by its text
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    return {slug(h) for h in HEADING.findall(FENCE.sub("", path.read_text()))}


def section(text: str, heading: str) -> str:
    """From `heading` (a line of its own) to the next heading of the same level."""
    lines = text.splitlines()
    level = heading.split()[0]
    start = lines.index(heading)
    end = next(
        (i for i in range(start + 1, len(lines)) if lines[i].split(" ", 1)[0] == level),
        len(lines),
    )
    return "\n".join(lines[start:end]) + "\n"


def quick_start_blocks() -> list[tuple[str, str]]:
    blocks = FENCE.findall(section(README.read_text(), QUICK_START))
    return [(lang, code) for lang, code in blocks if lang in RUNNABLE]


def test_readme_is_short() -> None:
    n = len(README.read_text().splitlines())
    assert n <= MAX_README_LINES, f"README.md has {n} lines; a guide keeps to {MAX_README_LINES}: move detail to docs/"


def test_links_resolve() -> None:
    broken = []
    for doc in documents():
        for target in LINK.findall(prose(doc.read_text())):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto: ...: not checked offline
                continue
            file_part, _, anchor = target.partition("#")
            path = (doc.parent / file_part).resolve() if file_part else doc
            if not path.exists():
                broken.append(f"{doc.relative_to(REPO)}: {target} (no such file)")
            elif anchor and path.suffix == ".md" and anchor not in anchors(path):
                broken.append(f"{doc.relative_to(REPO)}: {target} (no heading #{anchor} in {path.name})")
    assert not broken, "broken links:\n" + "\n".join(broken)


def test_quick_start_shows_the_whole_path() -> None:
    blocks = quick_start_blocks()
    assert blocks, f"README.md has no ```bash or ```python block under {QUICK_START!r}"
    code = "\n".join(c for _, c in blocks)
    missing = [step for step in PROMISED if step not in code]
    assert not missing, f"the quick start no longer shows {missing}"


def _env(data: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("RAY_ADDRESS", None)  # a fresh local Ray, never a cluster that happens to be up
    env.update(
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",  # the venv's python, tickettune
        TICKETTUNE_DATA=str(data),
        WANDB_MODE="offline",
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        TOKENIZERS_PARALLELISM="false",
    )
    return env


@pytest.mark.slow
@pytest.mark.ray
def test_quick_start_runs_as_written(tmp_path: Path, shared_data: Path) -> None:
    env = _env(shared_data)
    timings = []
    for i, (lang, code) in enumerate(quick_start_blocks(), 1):
        cmd = ["bash", "-euo", "pipefail", "-c", code] if lang == "bash" else [sys.executable, "-c", code]
        start = time.perf_counter()
        proc = subprocess.run(
            cmd, cwd=tmp_path, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=1500
        )
        timings.append(f"block {i} ({lang}): {time.perf_counter() - start:.0f} s")
        assert proc.returncode == 0, (
            f"README quick start, block {i} ({lang}) exited {proc.returncode}:\n{code}\n"
            f"--- stdout (end) ---\n{proc.stdout[-3000:]}\n--- stderr (end) ---\n{proc.stderr[-3000:]}"
        )
    outs = re.findall(r"--out\s+(\S+)", "\n".join(c for lang, c in quick_start_blocks() if lang == "bash"))
    missing = [out for out in outs if not (tmp_path / out).exists()]
    assert not missing, f"the quick start's commands left no {missing}"
    print("\n".join(timings))
