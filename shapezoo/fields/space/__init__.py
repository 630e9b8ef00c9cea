"""The latent space of fields: weight autoencoders, their training, and latent operations."""

from ...core.latents import interpolate, load_latents, save_latents, split_names
from .designs import DESIGNS, ModelConfig, ParamStats, PrepGrid, WeightAutoencoder
from .inference import Evidence, GaussianPrior, OptimizeConfig, optimize_latent
from .model import WeightSpace, build_model, load_space, save_space
from .objective import binary_kl, probe_points
from .train import TrainConfig, evaluate_split, losses, train_space

__all__ = [
    "DESIGNS",
    "Evidence",
    "GaussianPrior",
    "ModelConfig",
    "OptimizeConfig",
    "ParamStats",
    "PrepGrid",
    "TrainConfig",
    "WeightAutoencoder",
    "WeightSpace",
    "binary_kl",
    "build_model",
    "evaluate_split",
    "interpolate",
    "load_latents",
    "load_space",
    "losses",
    "optimize_latent",
    "probe_points",
    "save_latents",
    "save_space",
    "split_names",
    "train_space",
]
