"""trainables/ is what a GPU machine without Ray, Optuna or W&B runs (scripts/gpu_check.sh): every one
of its modules imports, and a training step runs, with those packages made unimportable."""

import subprocess
import sys
import textwrap
from pathlib import Path

import tickettune.trainables as trainables

BLOCKED = ("ray", "optuna", "wandb")

# None in sys.modules: `import ray` raises ModuleNotFoundError and importlib.util.find_spec("ray") is None,
# as when it is not installed (libraries that probe for optional packages see it absent)
BLOCKER = f"import sys\nfor name in {BLOCKED!r}:\n    sys.modules[name] = None\n"

SCRIPT = BLOCKER + textwrap.dedent(f"""
    import importlib, pkgutil
    import tickettune.trainables as pkg
    names = sorted(m.name for m in pkgutil.walk_packages(pkg.__path__, "tickettune.trainables.")
                   if ".hf_templates" not in m.name)
    for name in names:
        importlib.import_module(name)

    import torch
    from transformers import BertConfig
    from tickettune.trainables.model.families import install
    from tickettune.trainables.model.build import head_class
    from tickettune.trainables.training.loop import TrainConfig, train
    torch.manual_seed(0)
    model = head_class("classification")(BertConfig(vocab_size=100, hidden_size=16, num_hidden_layers=1,
                                                    num_attention_heads=2, intermediate_size=32))
    install(model)
    ids = torch.randint(5, 100, (2, 8))
    res = train(model, [{{"input_ids": ids, "labels": torch.tensor([0, 1])}}],
                TrainConfig(max_steps=1, progress=False, precision="fp32"))
    real = [m for m, v in sys.modules.items() if m.split(".")[0] in {BLOCKED!r} and v is not None]
    assert not real, f"blocked packages got imported: {{real}}"
    print("imported", len(names), "modules; one step, loss", round(res.losses[0], 3))
""")


def test_every_trainables_module_imports_and_trains_without_ray_optuna_wandb():
    root = Path(trainables.__path__[0])
    expected = [p for p in root.rglob("*.py") if "hf_templates" not in p.parts and p != root / "__init__.py"]
    assert len(expected) > 40  # every module of every subpackage (and the subpackages themselves)
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr[-3000:]
    assert f"imported {len(expected)} modules; one step" in out.stdout


def test_the_blocker_blocks():
    """The check above can fail: the same blocker stops an import of Ray."""
    out = subprocess.run(
        [sys.executable, "-c", BLOCKER + "import ray.tune\n"], capture_output=True, text=True, timeout=60
    )
    assert out.returncode != 0 and "ModuleNotFoundError: No module named 'ray.tune'" in out.stderr
