"""Field architectures (SIREN, ReLU + Fourier features) and the one batched functional forward over B fields."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import ClassVar, Literal

import torch
from torch import nn

from ..core.measure import metric_summary
from ..core.spec import register_kind
from ..core.zoo import ENTRY, Zoo
from ..errors import InputError, ShapezooError
from ..schema import Opt, config_from_json
from ..weights import ParamLayout
from . import sine
from .meshes import Normalisation


@dataclass(frozen=True)
class FieldSpec:
    """An occupancy field MLP: ``in_dim -> width x depth hidden layers -> out_dim`` logits (a NetworkSpec)."""

    zoo_kind: ClassVar[str] = "field"
    in_dim: int = 3
    """Input coordinates (3 for shapes)."""
    width: int = 128
    """Hidden units per layer."""
    depth: int = 3
    """Hidden layers (linear layers = depth + 1)."""
    activation: Literal["sine", "relu_pe"] = "sine"
    """``sine``: SIREN; ``relu_pe``: ReLU MLP on Fourier features of the input."""
    omega0: float = 30.0
    """SIREN frequency ω0 of the hidden layers (Sitzmann et al. 2020, Sec. 3.2: 30 keeps activations spread)."""
    first_omega0: float = 18.0
    """SIREN frequency of the first layer, applied to domain coordinates in [-0.5, 0.5]. It sets the finest
    detail the initialisation favours; 18 fitted our occupancy data best (BENCHMARKS.md, fitting recipe)."""
    pe_freqs: int = 6
    """Fourier feature octaves for ``relu_pe``: sin/cos(2^k π x), k < pe_freqs."""
    out_dim: int = 1

    def __post_init__(self):
        if self.activation not in ("sine", "relu_pe"):
            raise ShapezooError(f"unknown activation '{self.activation}' (sine or relu_pe)")
        if self.width < 1 or self.depth < 1:
            raise ShapezooError(f"width and depth must be >= 1, got width={self.width} depth={self.depth}")

    @property
    def input_features(self) -> int:
        return self.in_dim * (1 + 2 * self.pe_freqs) if self.activation == "relu_pe" else self.in_dim

    @property
    def dims(self) -> list[int]:
        """Feature sizes through the network: [input_features, width, ..., width, out_dim]."""
        return [self.input_features] + [self.width] * self.depth + [self.out_dim]

    def layout(self) -> ParamLayout:
        d = self.dims
        entries = []
        for i in range(len(d) - 1):
            entries += [(f"layers.{i}.weight", (d[i + 1], d[i])), (f"layers.{i}.bias", (d[i + 1],))]
        return ParamLayout(tuple(entries))

    def modulation_mask(self, columns: int = 0) -> torch.Tensor:
        """(P,) bool, True at the entries a field of a shift base moves (``FitConfig.trainable='biases'``): every
        bias (Functa's shift modulation) and the first ``columns`` input columns of each hidden -> hidden weight, a
        rank-``columns`` weight delta whose input side is fixed, so a space reads it exactly and linearly (a field
        of one hidden layer has no such weight: its biases alone)."""
        if not 0 <= columns <= self.width:
            raise ShapezooError(f"modulated columns must be in [0, width={self.width}], got {columns}")
        parts = []
        for i, (name, shape) in enumerate(self.layout().entries):
            hidden = name.endswith(".weight") and 0 < i // 2 < self.depth
            flags = torch.full(shape, name.endswith(".bias"))
            if hidden:
                flags[:, :columns] = True
            parts.append(flags.reshape(-1))
        return torch.cat(parts)

    def bias_mask(self) -> torch.Tensor:
        """(P,) bool, True at the biases (``modulation_mask`` with no columns)."""
        return self.modulation_mask(0)

    @classmethod
    def from_arch(cls, arch: str, width: int = 128, depth: int = 3) -> FieldSpec:
        """The spec the CLI's ``--arch siren|relu_pe --width --depth`` name."""
        activation = {"siren": "sine", "relu_pe": "relu_pe"}.get(arch)
        if activation is None:
            raise ShapezooError(f"unknown --arch '{arch}' (siren or relu_pe)")
        return cls(width=width, depth=depth, activation=activation)  # type: ignore[arg-type]

    def forward(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """``field_forward`` of this architecture."""
        return field_forward(self, params, x)

    def module(self, flat: torch.Tensor) -> FieldModule:
        """``to_module`` of this architecture."""
        return to_module(self, flat)

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> FieldSpec:
        """The spec stored as JSON, each key checked against its type; unknown keys are refused (an architecture
        this version cannot build)."""
        unknown = sorted(set(data) - {f.name for f in fields(cls)}) if isinstance(data, dict) else []
        if unknown:
            raise ShapezooError(f"unknown field spec keys {unknown}")
        try:
            return config_from_json(cls, data, "", "spec")
        except InputError as exc:
            raise ShapezooError(exc.problem) from None


CODE_WEIGHT_LR = 0.25
"""Learning rate of a modulation's weight entries (``FieldSpec.modulation_mask`` columns) relative to its biases'
(BENCHMARKS.md, "Real meshes in the space")."""


def modulation_lr(spec: FieldSpec, columns: int) -> torch.Tensor:
    """(P,) each entry's learning rate relative to the peak when a shift base's field (or the base) learns its code:
    1 at the biases, ``CODE_WEIGHT_LR`` at the modulated columns, 0 at the shared weights."""
    return spec.modulation_mask(columns).float() * torch.where(spec.bias_mask(), 1.0, CODE_WEIGHT_LR)


@dataclass(frozen=True)
class Moving:
    """The entries a fit of a shift base's fields moves: their flat ``index`` (K,), learning rates relative to the
    peak (K,) (``modulation_lr``), and per tensor holding some, in layout order, its name and their index in it."""

    index: torch.Tensor
    rates: torch.Tensor
    parts: tuple[tuple[str, torch.Tensor], ...]

    @property
    def names(self) -> frozenset[str]:
        return frozenset(name for name, _ in self.parts)

    @classmethod
    def of(cls, spec: FieldSpec, columns: int, device: torch.device | str = "cpu") -> Moving:
        """The entries of a field of ``spec`` with ``columns`` modulated columns, on ``device``."""
        rates = modulation_lr(spec, columns)
        index = rates.nonzero().squeeze(1)
        local = {k: v[0].reshape(-1).nonzero().squeeze(1) for k, v in spec.layout().unflatten(rates[None]).items()}
        parts = tuple((k, i.to(device)) for k, i in local.items() if len(i))
        return cls(index.to(device), rates[index].to(device), parts)

    def gather(self, grads: dict[str, torch.Tensor]) -> torch.Tensor:
        """(B, K) the moving entries of per-tensor gradients (B, ...), in ``index`` order."""
        return torch.cat([grads[k].reshape(len(grads[k]), -1)[:, i] for k, i in self.parts], 1)


def init_params(spec: FieldSpec, seed: int = 0) -> torch.Tensor:
    """One seeded initial weight vector (P,) float32: SIREN init for sine, Kaiming-uniform for ReLU."""
    g = torch.Generator().manual_seed(seed)
    layout = spec.layout()
    parts = {}
    for i, (fan_in, fan_out) in enumerate(zip(spec.dims[:-1], spec.dims[1:])):
        if spec.activation == "sine":
            bound = 1.0 / fan_in if i == 0 else math.sqrt(6.0 / fan_in) / spec.omega0
        else:
            bound = math.sqrt(6.0 / fan_in) if i < spec.depth else math.sqrt(1.0 / fan_in)
        parts[f"layers.{i}.weight"] = (torch.rand(fan_out, fan_in, generator=g) * 2 - 1) * bound
        parts[f"layers.{i}.bias"] = (torch.rand(fan_out, generator=g) * 2 - 1) * (1.0 / math.sqrt(fan_in))
    return layout.flatten(parts)


def encode_input(spec: FieldSpec, x: torch.Tensor) -> torch.Tensor:
    """(..., in_dim) domain coordinates -> (..., input_features): as they are for SIREN, Fourier features for ReLU."""
    if spec.activation != "relu_pe":
        return x
    freqs = (2.0 ** torch.arange(spec.pe_freqs, device=x.device, dtype=x.dtype)) * math.pi
    xf = (x.unsqueeze(-1) * freqs).flatten(-2)
    return torch.cat([x, torch.sin(xf), torch.cos(xf)], dim=-1)


def field_forward(spec: FieldSpec, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """The batched forward used by fitting, decoding, evaluation and extraction.

    Args:
        params: (B, P) flat weights of B fields.
        x: (B, N, in_dim) query points, one set per field.

    Returns:
        (B, N, out_dim) logits.
    """
    if params.dim() != 2 or x.dim() != 3 or x.shape[0] != params.shape[0]:
        raise ShapezooError(
            f"field_forward expects params (B, P) and x (B, N, d); got {tuple(params.shape)}, {tuple(x.shape)}"
        )
    return layers_forward(spec, spec.layout().unflatten(params), x)


class _LayerFn(torch.autograd.Function):
    """One layer of a fit, ``baddbmm(bias, h, weight^T)`` and (``sine``) SIREN's sin, whose backward computes only
    what is asked, in the faster layout:
    - the sin's cos comes from the same pass as the sin (``sine.sin_cos_``, into the matmul's own output) and the
      backward scales it in place, so the graph takes one backward (autograd refuses a second);
    - a modulated-columns fit gets the weight gradient of the first ``columns`` input columns alone (the whole
      (out, in) gradient would cost as much as the forward's matmul again);
    - the 1-unit output layer's gradients are ``g^T h`` and ``g * W``, 8x and 5x faster than autograd's ``h^T g`` and
      ``bmm(g, W)`` (BENCHMARKS.md, "A sine kernel"). Other layers' matmuls are autograd's, bitwise."""

    @staticmethod
    def forward(ctx, bias, h, weight, columns, sine_layer):
        z = torch.baddbmm(bias, h, weight.transpose(1, 2))
        out, cos = sine.sin_cos_(z) if sine_layer else (z, None)
        ctx.save_for_backward(h, weight, cos)
        ctx.columns = columns
        return out

    @staticmethod
    def backward(ctx, grad):
        h, weight, cos = ctx.saved_tensors
        if cos is not None:
            grad = cos.mul_(grad)  # a second backward finds it modified: autograd's version check stops it
        thin, k = weight.shape[1] == 1, ctx.columns
        grad_h = grad_w = None
        if ctx.needs_input_grad[1]:
            grad_h = grad * weight if thin else torch.bmm(grad, weight)
        if ctx.needs_input_grad[2] and k:
            grad_w = torch.zeros_like(weight)
            grad_w[:, :, :k] = torch.bmm(h[:, :, :k].transpose(1, 2), grad).transpose(1, 2)
        elif ctx.needs_input_grad[2]:
            grad_w = torch.bmm(grad.transpose(1, 2), h) if thin else torch.bmm(h.transpose(1, 2), grad).transpose(1, 2)
        grad_b = grad.sum(1, keepdim=True) if ctx.needs_input_grad[0] else None
        return grad_b, grad_h, grad_w, None, None


def fold_omega(spec: FieldSpec, w: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The per-layer tensors with each SIREN layer's ω folded into its weight and bias (``sin(ω (h W^T + b))`` =
    ``sin(h (ωW)^T + ωb)``): what ``folded_forward`` takes, so a caller running many passes folds once."""
    if spec.activation != "sine":
        return w
    folded = dict(w)
    for i in range(spec.depth):
        omega = spec.first_omega0 if i == 0 else spec.omega0
        for part in ("weight", "bias"):
            folded[f"layers.{i}.{part}"] = w[f"layers.{i}.{part}"] * omega
    return folded


def layers_forward(spec: FieldSpec, w: dict[str, torch.Tensor], x: torch.Tensor, columns: int = 0) -> torch.Tensor:
    """``field_forward`` on the per-layer tensors (``layers.i.weight`` (B, out, in), ``layers.i.bias`` (B, out)):
    a bias-only fit passes biases that need gradients and weights that do not, so no weight gradient is computed;
    with ``columns`` (a modulated-columns fit) the hidden weights' gradients cover those columns only."""
    return folded_forward(spec, fold_omega(spec, w), x, columns)


def folded_forward(spec: FieldSpec, w: dict[str, torch.Tensor], x: torch.Tensor, columns: int = 0) -> torch.Tensor:
    """``layers_forward`` on tensors ``fold_omega`` has already scaled."""
    h = encode_input(spec, x)
    last = spec.depth
    sines = spec.activation == "sine"
    for i in range(last + 1):
        bias, weight = w[f"layers.{i}.bias"].unsqueeze(1), w[f"layers.{i}.weight"]
        if torch.is_grad_enabled() and (weight.requires_grad or bias.requires_grad or h.requires_grad):
            h = _LayerFn.apply(bias, h, weight, columns if 0 < i < last else 0, sines and i < last)
        else:  # nothing is saved: the activation runs in place
            h = torch.baddbmm(bias, h, weight.transpose(1, 2))
            h = sine.sin_(h) if sines and i < last else h
        if i < last and not sines:
            h = torch.relu_(h) if not torch.is_grad_enabled() else torch.relu(h)
    return h


class _Sine(nn.Module):
    def __init__(self, omega0: float):
        super().__init__()
        self.omega0 = omega0

    def forward(self, x):
        return torch.sin(self.omega0 * x)


class FieldModule(nn.Module):
    """A single field as a plain ``nn.Module``; its state_dict keys are exactly the ParamLayout names."""

    def __init__(self, spec: FieldSpec):
        super().__init__()
        self.spec = spec
        d = spec.dims
        self.layers = nn.ModuleList(nn.Linear(d[i], d[i + 1]) for i in range(len(d) - 1))
        if spec.activation == "sine":
            self.acts = nn.ModuleList(_Sine(spec.first_omega0 if i == 0 else spec.omega0) for i in range(spec.depth))
        else:
            self.acts = nn.ModuleList(nn.ReLU() for _ in range(spec.depth))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(..., in_dim) points -> (..., out_dim) occupancy logits."""
        h = encode_input(self.spec, x)
        for i, layer in enumerate(self.layers):
            h = layer(h)
            if i < len(self.layers) - 1:
                h = self.acts[i](h)
        return h


def to_module(spec: FieldSpec, flat: torch.Tensor) -> FieldModule:
    """A ready-to-use ``FieldModule`` holding the weights of one field (P,)."""
    module = FieldModule(spec)
    module.load_state_dict(spec.layout().to_state_dict(flat.detach().float().cpu()))
    return module


@dataclass
class FieldZoo(Zoo[FieldSpec]):
    """Fitted occupancy fields (entries also carry the source mesh and its sha256)."""

    entry: ClassVar[dict] = {**ENTRY, "normalisation?": Opt(Normalisation.SHAPE), "label?": Opt(str)}

    def info(self) -> dict:
        """Spec, counts, start point, recipe and held-out metric summary, as JSON."""
        return {
            **self.counts(),
            "init_seed": self.meta.get("init_seed"),
            "init": self.meta.get("init"),
            "fit": self.meta.get("fit"),
            "iou": metric_summary(self.entries, "iou"),
            "iou_near": metric_summary(self.entries, "iou_near"),
        }


register_kind("field", FieldSpec, FieldZoo)
