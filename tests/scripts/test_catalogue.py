"""`make bench` (scripts/benchkit/catalogue.py): every benchmark and diagnostic is listed with its summary and the
time its docstring states, and every bench-* target of the Makefile runs a script that exists."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

from benchkit import catalogue

REPO = Path(__file__).resolve().parents[2]


def test_every_script_of_bench_and_diagnostics_is_listed_with_its_summary_and_time():
    sections = dict(catalogue.listing(REPO))
    listed = {e.name: e for title, entries in sections.items() if title.startswith("scripts/") for e in entries}
    on_disk = {f"{p.parent.name}/{p.name}" for room in catalogue.ROOMS for p in (REPO / "scripts" / room).glob("*.py")}
    assert set(listed) == on_disk and len(on_disk) >= 18
    for name, e in listed.items():
        doc = ast.get_docstring(ast.parse((REPO / "scripts" / name).read_text()))
        assert doc and e.about == " ".join(doc.split("\n\n")[0].split()), name
        assert "\nTime here: " in doc and e.time, name  # stated, even where it is "not timed"


def test_bench_targets_run_scripts_that_exist_and_are_phony():
    targets = catalogue.make_targets(REPO / "Makefile")
    assert {t.name for t in targets} >= {"make bench-time", "make bench-pretrain", "make bench-search"}
    phony = set(re.search(r"^\.PHONY:(.*)$", (REPO / "Makefile").read_text(), re.M).group(1).split())
    for t in targets:
        assert t.calls and (REPO / t.calls).is_file(), t
        assert t.about and t.name.removeprefix("make ") in phony, t
    assert "bench" in phony


def test_the_listing_runs_as_make_bench_runs_it():
    out = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "benchkit" / "catalogue.py")], capture_output=True, text=True, cwd=REPO
    )
    assert out.returncode == 0, out.stderr
    assert "make bench-time" in out.stdout and "runs scripts/bench/time_to_accuracy.py" in out.stdout
    assert "diagnostics/profile_step.py" in out.stdout and "time here: not timed" in out.stdout
