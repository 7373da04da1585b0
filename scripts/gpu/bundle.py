"""The bundle that travels to a GPU machine with the working tree (scripts/gpu_check.sh; scripts/gpu/check.py's
docstring lists what it holds): `prepare` fills it here, online; `install` puts its missing wheels into a
temporary site folder there."""

from __future__ import annotations

import importlib.metadata as md
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

WHEELS = ("datasets", "dill", "multiprocess", "xxhash", "fsspec")  # what `datasets` needs beyond transformers
DATA_FILES = ("glue/SST-2/train.tsv", "glue/SST-2/dev.tsv", "wikitext-2/valid.txt", "wikitext-2/test.txt")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt")
BUNDLE_LIMIT = 48 << 20  # of the 64 MiB that travel with the working tree


def write_json(path: Path, obj: dict) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=str))
    os.replace(tmp, path)


def prepare(bundle: Path, data_root: Path | None) -> None:
    """Fill `bundle` (run on a machine with PyPI, the shared data and the MiniLM package)."""
    from tickettune.trainables.model.build import model_path
    from tickettune.trainables.tasks.data import data_root as find_data

    root = find_data(data_root)
    tmp = bundle.with_name(bundle.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "wheels").mkdir(parents=True)
    pins = {name: md.version(name) for name in WHEELS}  # the versions the test suite runs with here
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--only-binary=:all:",
            "--no-deps",
            "--python-version",
            "3.12",
            "--implementation",
            "cp",
            "--platform",
            "manylinux2014_x86_64",
            "--platform",
            "manylinux_2_17_x86_64",
            "--platform",
            "manylinux_2_28_x86_64",
            "-d",
            str(tmp / "wheels"),
            *[f"{k}=={v}" for k, v in pins.items()],
        ],
        check=True,
    )
    tok = Path(model_path("minilm-l6"))
    (tmp / "tokenizer").mkdir()
    for name in TOKENIZER_FILES:
        shutil.copy2(tok / name, tmp / "tokenizer" / name)
    for rel in DATA_FILES:
        (tmp / "data" / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / rel, tmp / "data" / rel)
    files = {str(p.relative_to(tmp)): p.stat().st_size for p in sorted(tmp.rglob("*")) if p.is_file()}
    total = sum(files.values())
    if total > BUNDLE_LIMIT:
        raise SystemExit(f"bundle is {total / 2**20:.1f} MiB, over the {BUNDLE_LIMIT / 2**20:.0f} MiB budget")
    write_json(
        tmp / "MANIFEST.json",
        {
            "wheels": pins,
            "python": "3.12",
            "files": files,
            "bytes": total,
            "data_root": str(root),
            "tokenizer_from": str(tok),
        },
    )
    shutil.rmtree(bundle, ignore_errors=True)
    os.replace(tmp, bundle)
    print(f"bundle {bundle}: {len(files)} files, {total / 2**20:.1f} MiB; wheels {pins}")


def _dist_of(wheel: Path) -> str:
    return wheel.name.split("-")[0].replace("_", "-").lower()


def _installed(dist: str) -> bool:
    try:
        md.distribution(dist)
        return True
    except md.PackageNotFoundError:
        return False


def _datasets_work(site: Path) -> str | None:
    """None if `datasets` imports and reads a CSV in a fresh interpreter with `site` first; else the error."""
    code = (
        "import sys, tempfile, os; sys.path.insert(0, sys.argv[1]); import datasets\n"
        "d = tempfile.mkdtemp(); p = os.path.join(d, 'a.csv'); open(p, 'w').write('x\\n1\\n2\\n')\n"
        "ds = datasets.load_dataset('csv', data_files=p, split='train', cache_dir=d)\n"
        "assert ds['x'] == [1, 2], ds['x']; print(datasets.__version__)"
    )
    out = subprocess.run([sys.executable, "-c", code, str(site)], capture_output=True, text=True, timeout=300)
    return None if out.returncode == 0 else (out.stderr.strip().splitlines() or ["?"])[-1]


def install(bundle: Path, site: Path) -> dict:
    """The bundle's wheels this interpreter lacks, into `site` (--no-deps, --no-index); all of them, shadowing
    the installed ones, if `datasets` does not work with the mix. SystemExit naming the error otherwise."""
    site.mkdir(parents=True, exist_ok=True)
    if _datasets_work(site) is None:  # nothing to add (a machine that has `datasets`)
        return {"present": ["datasets"], "installed": []}
    wheels = sorted((bundle / "wheels").glob("*.whl"))
    if not wheels:
        raise SystemExit(
            f"`datasets` is missing and {bundle}/wheels holds no wheels: run "
            f"`python scripts/gpu/check.py prepare {bundle}` on a machine with PyPI first"
        )
    missing = [w for w in wheels if not _installed(_dist_of(w))]
    report = {"present": sorted(_dist_of(w) for w in wheels if w not in missing), "installed": []}
    for attempt in (missing, wheels):
        if attempt:
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "--no-index",
                    "--no-deps",
                    "--upgrade",
                    "--target",
                    str(site),
                    *map(str, attempt),
                ],
                check=True,
            )
            report["installed"] = sorted(_dist_of(w) for w in attempt)
        error = _datasets_work(site)
        if error is None:
            return report
        report.setdefault("errors", []).append(error)
    raise SystemExit(f"`datasets` does not work here even with every bundled wheel: {report['errors']}")
