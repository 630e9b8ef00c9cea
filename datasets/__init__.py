"""Procedural shape families: watertight solids from primitives, each determined by a seed and named parameters."""

from .families import FAMILIES, Family, build, generate, obj_bytes, sample_params

__all__ = ["FAMILIES", "Family", "build", "generate", "obj_bytes", "sample_params"]
