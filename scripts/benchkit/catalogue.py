"""`make bench`: what there is to run and how long it takes here, read from the Makefile's bench-* targets (their
comment and the script they call) and from each script's docstring (its summary paragraph and its "Time here:" one),
so the listing cannot drift from the scripts. Standard library only: it runs before `make setup`.

    python3 scripts/benchkit/catalogue.py
"""

from __future__ import annotations

import ast
import re
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ROOMS = {
    "bench": "the benchmarks: a figure against a target (README, Benchmarks)",
    "diagnostics": "probes that explain a figure",
}
NOT_TIMED = "not timed"


@dataclass
class Entry:
    name: str  # a make target or a script's path under scripts/
    about: str
    time: str
    calls: str | None = None  # a target's script


def script_entry(path: Path) -> Entry:
    """A script's docstring: its summary (first paragraph), and the paragraph that starts with "Time here:"."""
    doc = ast.get_docstring(ast.parse(path.read_text(), str(path))) or ""
    paragraphs = [" ".join(p.split()) for p in re.split(r"\n\s*\n", doc)]
    time = next((p.removeprefix("Time here:").strip() for p in paragraphs if p.startswith("Time here:")), NOT_TIMED)
    return Entry(f"{path.parent.name}/{path.name}", paragraphs[0] or "(no docstring)", time)


def make_targets(makefile: Path) -> list[Entry]:
    """The bench-* targets: the comment lines right above each, and the scripts/... file its recipe runs."""
    lines = makefile.read_text().splitlines()
    out = []
    for i, line in enumerate(lines):
        m = re.match(r"^(bench-[\w-]+):", line)
        if not m:
            continue
        k = i
        while k > 0 and lines[k - 1].startswith("#"):
            k -= 1
        comment = " ".join(c.lstrip("#").strip() for c in lines[k:i])
        recipe = []
        for r in lines[i + 1 :]:
            if not r.startswith("\t"):
                break
            recipe.append(r)
        called = re.search(r"scripts/\S+\.py", " ".join(recipe))
        out.append(Entry(f"make {m.group(1)}", comment, "", called.group(0) if called else None))
    return out


def listing(repo: Path = REPO) -> list[tuple[str, list[Entry]]]:
    targets = make_targets(repo / "Makefile")
    sections = [("make targets (the README's recorded runs; run each alone on the machine)", targets)]
    for room, about in ROOMS.items():
        scripts = sorted((repo / "scripts" / room).glob("*.py"))
        sections.append((f"scripts/{room}/: {about}", [script_entry(p) for p in scripts]))
    return sections


def show(sections: list[tuple[str, list[Entry]]], width: int = 118) -> str:
    out = []
    for title, entries in sections:
        out.append(title)
        for e in entries:
            out.append(f"  {e.name}")
            for text in (e.about, f"runs {e.calls}" if e.calls else None, f"time here: {e.time}" if e.time else None):
                if text:
                    out.extend(textwrap.wrap(text, width, initial_indent=" " * 6, subsequent_indent=" " * 8))
        out.append("")
    out.append("Each script: .venv/bin/python scripts/<room>/<name>.py --help (its docstring has the rest).")
    return "\n".join(out)


def main() -> int:
    print(show(listing()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
