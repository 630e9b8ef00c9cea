"""NetworkSpec: what a zoo needs to know about an architecture, and the registry of kinds ``load_zoo`` reads."""

from __future__ import annotations

import importlib
from typing import Any, ClassVar, Protocol, runtime_checkable

import torch

from ..errors import ShapezooError
from ..weights import ParamLayout


@runtime_checkable
class NetworkSpec(Protocol):
    """One architecture of a modality: its flat weight layout, its batched forward and a JSON round trip.

    ``zoo_kind`` names the modality in ``zoo.json`` (``field``, ``classifier``); specs are frozen dataclasses, so
    equal specs are the same architecture.
    """

    zoo_kind: ClassVar[str]

    def layout(self) -> ParamLayout: ...

    def forward(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """(B, P) weights of B networks and their inputs -> their outputs."""
        ...

    def module(self, flat: torch.Tensor) -> torch.nn.Module:
        """One network (P,) as a ready-to-use ``nn.Module``."""
        ...

    def to_json(self) -> dict: ...

    @classmethod
    def from_json(cls, data: dict) -> Any: ...


_KINDS: dict[str, tuple[type, type | None]] = {}
"""kind -> (spec class, zoo class or None for the plain Zoo) of the modalities registered so far."""

BUILTIN = {
    "field": "shapezoo.fields.network",
    "classifier": "shapezoo.classifiers.archs",
    "image": "shapezoo.images.network",
}
"""Modules that register the built-in kinds, imported on first use (so the core never imports a modality)."""


def register_kind(kind: str, spec_cls: type, zoo_cls: type | None = None) -> None:
    """Make ``load_zoo(path, kind)`` read zoos of ``kind`` as ``spec_cls`` (a NetworkSpec) into ``zoo_cls``."""
    if getattr(spec_cls, "zoo_kind", None) != kind:
        raise ShapezooError(f"{spec_cls.__name__}.zoo_kind must be '{kind}' to register it as that kind")
    _KINDS[kind] = (spec_cls, zoo_cls)


def kind_classes(kind: str) -> tuple[type, type | None]:
    """(spec class, zoo class or None) of a registered or built-in kind."""
    if kind not in _KINDS and kind in BUILTIN:
        importlib.import_module(BUILTIN[kind])
    if kind not in _KINDS:
        raise ShapezooError(f"unknown zoo kind '{kind}' (known: {', '.join(sorted(set(_KINDS) | set(BUILTIN)))})")
    return _KINDS[kind]
