"""What every benchmark script does after measuring: print its table, then write --json if asked."""
from __future__ import annotations

import json
from typing import Callable


def finish(res: dict, json_path, print_table: Callable[[dict], None]) -> dict:
    print_table(res)
    if json_path:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(res, indent=2))
    return res
