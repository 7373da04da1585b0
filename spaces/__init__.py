"""Search spaces as data: YAML configs, their validation, and the Optuna define-by-run function."""

from .optuna_space import make_sampler, space_fn
from .spec import SearchSpec, SpecError, load_spec

__all__ = ["SearchSpec", "SpecError", "load_spec", "make_sampler", "space_fn"]
