"""ParamLayout: the exact, invertible map between a flat weight vector and named per-layer tensors."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import torch

from .errors import ShapezooError


@dataclass(frozen=True)
class ParamLayout:
    """An ordered list of ``(name, shape)``; a network's weights are one flat vector of length ``size``.

    Names follow ``torch.nn.Module.state_dict`` keys, so a flat vector converts to a loadable state_dict and
    back without renaming. Batched tensors carry any leading batch dimensions: (..., P) <-> (..., *shape).
    """

    entries: tuple[tuple[str, tuple[int, ...]], ...]

    @property
    def names(self) -> list[str]:
        return [n for n, _ in self.entries]

    @property
    def numels(self) -> list[int]:
        return [math.prod(s) for _, s in self.entries]

    @property
    def size(self) -> int:
        """P, the length of the flat vector."""
        return sum(self.numels)

    def offsets(self) -> dict[str, tuple[int, int]]:
        """name -> (start, stop) in the flat vector."""
        out, start = {}, 0
        for (name, _), n in zip(self.entries, self.numels):
            out[name] = (start, start + n)
            start += n
        return out

    def unflatten(self, flat: torch.Tensor) -> dict[str, torch.Tensor]:
        """(..., P) -> {name: (..., *shape)} as views of ``flat`` (no copy)."""
        self.check(flat)
        lead = flat.shape[:-1]
        parts = torch.split(flat, self.numels, dim=-1)
        return {name: p.reshape(*lead, *shape) for (name, shape), p in zip(self.entries, parts)}

    def flatten(self, tensors: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """{name: (..., *shape)} -> (..., P); names and shapes must match the layout exactly."""
        missing = set(self.names) - set(tensors)
        extra = set(tensors) - set(self.names)
        if missing or extra:
            raise ShapezooError(
                f"weights do not match the layout: missing {sorted(missing)}, unexpected {sorted(extra)}"
            )
        parts = []
        for name, shape in self.entries:
            t = tensors[name]
            lead = t.shape[: t.dim() - len(shape)]
            if tuple(t.shape[len(lead) :]) != tuple(shape):
                raise ShapezooError(f"weight '{name}' has shape {tuple(t.shape)}, layout expects (..., {shape})")
            parts.append(t.reshape(*lead, -1))
        return torch.cat(parts, dim=-1)

    def to_state_dict(self, flat: torch.Tensor) -> dict[str, torch.Tensor]:
        """(P,) -> a state_dict of contiguous copies, loadable into the matching ``nn.Module``."""
        if flat.dim() != 1:
            raise ShapezooError(f"to_state_dict takes one network (P,), got shape {tuple(flat.shape)}")
        return {k: v.clone().contiguous() for k, v in self.unflatten(flat).items()}

    def check(self, flat: torch.Tensor) -> None:
        """Raise if the last dimension of ``flat`` is not P."""
        if flat.shape[-1] != self.size:
            raise ShapezooError(f"weight vector has {flat.shape[-1]} parameters, the architecture needs {self.size}")

    def to_json(self) -> list:
        return [[n, list(s)] for n, s in self.entries]

    @classmethod
    def from_json(cls, data: list) -> ParamLayout:
        return cls(tuple((str(n), tuple(int(x) for x in s)) for n, s in data))
