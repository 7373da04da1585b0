"""The tests of scripts/: scripts/ on sys.path, as every script's first lines put it there, so a test imports what a
script imports (`benchkit.<module>`) and the scripts themselves as `<room>.<name>` (e.g. `from bench import
fast_path`: the rooms are namespace packages, without __init__.py)."""

from __future__ import annotations

import sys
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"
if str(SCRIPTS) not in sys.path:
    sys.path.insert(0, str(SCRIPTS))
