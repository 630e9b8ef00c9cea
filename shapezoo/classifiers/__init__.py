"""Image-classifier zoos: architectures, data, batched zoo training and their weight space."""

from .archs import KINDS, ClassifierModule, ClassifierSpec, accuracy, classifier_forward, init_params, parse_arch
from .data import DATASETS, ImageData, load_images
from .operations import (
    LatentOptConfig,
    encode_models,
    evaluate_decoded,
    generate_between,
    interpolation_path,
    optimize_latent,
)
from .space import ClassifierSpace, SpaceConfig, load_classifier_space, save_classifier_space
from .train import SpaceTrainConfig, distill_kl, train_classifier_space
from .zoo import ZooConfig, train_models, train_zoo

__all__ = [
    "DATASETS",
    "KINDS",
    "ClassifierModule",
    "ClassifierSpace",
    "ClassifierSpec",
    "ImageData",
    "LatentOptConfig",
    "SpaceConfig",
    "SpaceTrainConfig",
    "ZooConfig",
    "accuracy",
    "classifier_forward",
    "distill_kl",
    "encode_models",
    "evaluate_decoded",
    "generate_between",
    "init_params",
    "interpolation_path",
    "load_classifier_space",
    "load_images",
    "optimize_latent",
    "parse_arch",
    "save_classifier_space",
    "train_classifier_space",
    "train_models",
    "train_zoo",
]
