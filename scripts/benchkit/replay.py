"""The K trial configs that bench/search_overhead.py and bench/earlybird_savings.py both run: sampled once up front
from a seeded TPE, then handed out in order to the searches compared."""

from __future__ import annotations


def sample_configs(k: int, seed: int, fixed: dict) -> list[dict]:
    """`k` configs: `fixed` plus TPE's draws of head_ratio, ffn_ratio, the two λs and ε (seeded)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=seed), direction="maximize")
    out = []
    for _ in range(k):
        t = study.ask()
        out.append(
            {
                **fixed,
                "head_ratio": t.suggest_float("head_ratio", 0.2, 0.5),
                "ffn_ratio": t.suggest_float("ffn_ratio", 0.2, 0.5),
                "lambda_head": t.suggest_float("lambda_head", 1e-5, 1e-3, log=True),
                "lambda_ffn": t.suggest_float("lambda_ffn", 1e-5, 1e-3, log=True),
                "eps": t.suggest_float("eps", 0.1, 0.3),
            }
        )
        study.tell(t, 0.0)
    return out


class Replay:
    """Define-by-run function handing out the K configs in order (picklable: Tune saves the searcher)."""

    def __init__(self, configs: list[dict]):
        self.configs = configs

    def __call__(self, trial) -> dict:
        cfg = self.configs[trial.number % len(self.configs)]
        trial.suggest_float("head_ratio", cfg["head_ratio"], cfg["head_ratio"])  # record it in the study
        return dict(cfg)
