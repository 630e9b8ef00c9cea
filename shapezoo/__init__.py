"""shapezoo: trained neural networks as data. Fit occupancy fields of 3D shapes in batches, store them as zoos,
learn a latent space of their weights and move through it; image-classifier zoos use the same core
(``shapezoo.classifiers``).

The names below are the public API (README, "Python"); submodules load on first use, so ``import shapezoo`` and
the CLI's ``--help`` stay instant.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "shapezoo.errors": ["InputError", "ShapezooError"],
    "shapezoo.weights": ["ParamLayout"],
    "shapezoo.core.spec": ["NetworkSpec", "register_kind"],
    "shapezoo.core.zoo": ["Zoo", "ZooWriter", "load_zoo", "save_zoo"],
    "shapezoo.core.latents": ["interpolate", "load_latents", "read_latents", "save_latents"],
    "shapezoo.core.prior": ["LatentPrior", "PriorConfig", "draw_latents", "load_prior", "train_prior"],
    "shapezoo.fields.network": ["FieldModule", "FieldSpec", "FieldZoo", "field_forward", "init_params", "to_module"],
    "shapezoo.fields.meshes": ["Shape", "find_meshes", "load_mesh"],
    "shapezoo.fields.samples": ["SampleConfig", "sample_meshes"],
    "shapezoo.fields.fitting": ["FitConfig", "FitResult", "fit_fields"],
    "shapezoo.fields.fit_job": ["fit_zoo"],
    "shapezoo.fields.learned_init": ["InitConfig", "LearnedInit", "bundled_init", "learn_init", "load_init"],
    "shapezoo.fields.shift_base": ["BaseConfig", "learn_base"],
    "shapezoo.fields.extract": ["ExtractConfig", "export_mesh", "extract_meshes"],
    "shapezoo.fields.evaluation": ["evaluate_meshes", "evaluate_zoo"],
    "shapezoo.fields.generation": ["evaluate_generation"],
    "shapezoo.fields.space": [
        "Evidence",
        "GaussianPrior",
        "ModelConfig",
        "OptimizeConfig",
        "TrainConfig",
        "WeightSpace",
        "load_space",
        "optimize_latent",
        "train_space",
    ],
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'shapezoo' has no attribute '{name}'")
    value = getattr(importlib.import_module(_WHERE[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:
    from .core.latents import interpolate, load_latents, read_latents, save_latents
    from .core.prior import LatentPrior, PriorConfig, draw_latents, load_prior, train_prior
    from .core.spec import NetworkSpec, register_kind
    from .core.zoo import Zoo, ZooWriter, load_zoo, save_zoo
    from .errors import InputError, ShapezooError
    from .fields.evaluation import evaluate_meshes, evaluate_zoo
    from .fields.extract import ExtractConfig, export_mesh, extract_meshes
    from .fields.fit_job import fit_zoo
    from .fields.fitting import FitConfig, FitResult, fit_fields
    from .fields.generation import evaluate_generation
    from .fields.learned_init import InitConfig, LearnedInit, bundled_init, learn_init, load_init
    from .fields.meshes import Shape, find_meshes, load_mesh
    from .fields.network import FieldModule, FieldSpec, FieldZoo, field_forward, init_params, to_module
    from .fields.samples import SampleConfig, sample_meshes
    from .fields.shift_base import BaseConfig, learn_base
    from .fields.space import (
        Evidence,
        GaussianPrior,
        ModelConfig,
        OptimizeConfig,
        TrainConfig,
        WeightSpace,
        load_space,
        optimize_latent,
        train_space,
    )
    from .weights import ParamLayout
