"""Weight autoencoders: ``shift`` (fields of a shift base: exact, nothing to learn), ``neuron`` (hidden units as
tokens) and ``prep`` (the paper's 2-D weight grid + conv).

All map flat field weights (B, P) to latents (B, d) and back. Decoders end in a per-parameter scale and shift
initialised from zoo statistics, so an untrained decoder already outputs the zoo's mean field.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from ...core.nets import mlp
from ...errors import ShapezooError
from ..network import FieldSpec

Design = Literal["auto", "shift", "neuron", "prep", "pca"]
DESIGNS = ("shift", "neuron", "prep", "pca")


@dataclass(frozen=True)
class ModelConfig:
    """Sizes of a weight autoencoder."""

    design: Design = "auto"
    """``auto``: ``shift`` for a zoo fitted from a shift base, ``pca`` for image fields of a shared start, else
    ``neuron``. ``shift``: z = the field's standardised biases after aligning its hidden units to the base (exact and
    permutation invariant for such zoos; latent = the bias count); ``neuron``: permutation-invariant encoder over
    hidden units; ``prep``: the paper's conv baseline; ``pca``: z = the standardised weights' coordinates on the
    training fields' leading principal directions (linear, nothing to learn; for fields that share a start)."""
    latent: int = 512
    """Size of z (``shift``: set to the count of entries a field of the base moves; ``pca``: at most the training
    fields' count - 1, the directions they span)."""
    hidden: int = 64
    """Token width of the neuron encoder; the prep convs use hidden / 8 .. hidden channels."""
    rounds: int = 2
    """Message-passing rounds between adjacent layers (neuron encoder)."""
    trunk: int = 0
    """Width of the decoder's shared MLP before the per-layer heads (neuron decoder); 0: the heads read z
    directly, so decoded weights are affine in z."""
    columns: int = 0
    """``shift``: the modulated columns the base's fields move besides their biases (its zoo's ``fit.columns``), read
    into z with the biases."""

    def __post_init__(self):
        if self.latent < 1 or self.hidden < 1 or self.rounds < 0 or self.trunk < 0 or self.columns < 0:
            raise ShapezooError(
                f"latent and hidden must be >= 1, rounds, trunk and columns >= 0; got {self.latent}, {self.hidden}, "
                f"{self.rounds}, {self.trunk}, {self.columns}"
            )


class ParamStats(nn.Module):
    """Zoo statistics: per-parameter mean/std (decoder init, weight loss) and per-tensor mean/std (encoder input)."""

    mean: torch.Tensor
    std: torch.Tensor
    tensor_mean: torch.Tensor
    tensor_std: torch.Tensor

    def __init__(self, spec: FieldSpec, params: torch.Tensor | None = None):
        super().__init__()
        P, T = spec.layout().size, len(spec.layout().entries)
        self.register_buffer("mean", torch.zeros(P))
        self.register_buffer("std", torch.ones(P))
        self.register_buffer("tensor_mean", torch.zeros(T))
        self.register_buffer("tensor_std", torch.ones(T))
        if params is not None:
            self.mean.copy_(params.mean(0))
            layout = spec.layout()
            parts = torch.split(params, layout.numels, dim=1)
            tensor_std = torch.stack([p.std().clamp_min(1e-8) for p in parts])
            # Per-parameter std, floored at 5% of its tensor's std: parameters that barely moved from the shared
            # initialisation must not get huge weight in the normalised weight loss.
            floor = torch.repeat_interleave(0.05 * tensor_std, torch.tensor(layout.numels))
            self.std.copy_(torch.maximum(params.std(0) if len(params) > 1 else floor, floor))
            self.tensor_mean.copy_(torch.stack([p.mean() for p in parts]))
            self.tensor_std.copy_(tensor_std)

    def per_tensor(self, spec: FieldSpec, params: torch.Tensor) -> dict[str, torch.Tensor]:
        """(B, P) -> {name: normalised (B, *shape)} with one mean/std per tensor (permutation invariant)."""
        w = spec.layout().unflatten(params)
        return {k: (v - self.tensor_mean[i]) / self.tensor_std[i] for i, (k, v) in enumerate(w.items())}


class _OutputAffine(nn.Module):
    """Per-parameter ``shift + scale * y``, initialised to the zoo mean and std."""

    def __init__(self, stats: ParamStats):
        super().__init__()
        self.scale = nn.Parameter(stats.std.clone())
        self.shift = nn.Parameter(stats.mean.clone())

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return self.shift + self.scale * y


class NeuronEncoder(nn.Module):
    """Hidden units are tokens; messages flow along the weights between adjacent layers; pooled per layer -> z.

    A hidden unit's token starts from its bias, the statistics of its incoming and outgoing weights, and (first
    and last hidden layer only) its weights to the fixed inputs/outputs. Each round adds ``W_k @ f(H_{k-1})`` and
    ``W_{k+1}^T @ g(H_{k+1})``; mean and max pooling over units make z invariant to permuting hidden units.
    """

    def __init__(self, spec: FieldSpec, config: ModelConfig):
        super().__init__()
        self.spec, d, L = spec, config.hidden, spec.depth
        dims = spec.dims
        feats = [5 + (dims[0] if k == 0 else 0) + (dims[-1] if k == L - 1 else 0) for k in range(L)]
        self.embed = nn.ModuleList(mlp([f, d, d]) for f in feats)
        # rounds x layers of modules (ModuleList of ModuleLists; typed Any: torch types an item as a plain Module)
        self.fwd: Any = nn.ModuleList(nn.ModuleList(nn.Linear(d, d) for _ in range(L)) for _ in range(config.rounds))
        self.bwd: Any = nn.ModuleList(nn.ModuleList(nn.Linear(d, d) for _ in range(L)) for _ in range(config.rounds))
        self.update: Any = nn.ModuleList(
            nn.ModuleList(mlp([3 * d, d, d]) for _ in range(L)) for _ in range(config.rounds)
        )
        self.norm: Any = nn.ModuleList(nn.ModuleList(nn.LayerNorm(d) for _ in range(L)) for _ in range(config.rounds))
        self.readout = nn.ModuleList(mlp([d, d]) for _ in range(L))
        self.head = mlp([2 * d * L + dims[-1], 2 * config.latent, config.latent])

    def forward(self, w: dict[str, torch.Tensor]) -> torch.Tensor:
        """Normalised per-tensor weights {name: (B, *shape)} -> (B, latent)."""
        L = self.spec.depth
        W = [w[f"layers.{i}.weight"] for i in range(L + 1)]
        b = [w[f"layers.{i}.bias"] for i in range(L + 1)]
        H = []
        for k in range(L):
            rows, cols = W[k], W[k + 1].transpose(1, 2)  # (B, n, fan_in), (B, n, fan_out)
            f = [b[k][..., None], rows.mean(-1, keepdim=True), rows.std(-1, keepdim=True)]
            f += [cols.mean(-1, keepdim=True), cols.std(-1, keepdim=True) if cols.shape[-1] > 1 else cols * 0]
            if k == 0:
                f.append(rows)
            if k == L - 1:
                f.append(cols)
            H.append(self.embed[k](torch.cat(f, -1)))
        for r in range(len(self.update)):
            new = []
            for k in range(L):
                zero = torch.zeros_like(H[k])
                m_in = W[k] @ self.fwd[r][k](H[k - 1]) / math.sqrt(W[k].shape[-1]) if k > 0 else zero
                m_out = (
                    W[k + 1].transpose(1, 2) @ self.bwd[r][k](H[k + 1]) / math.sqrt(W[k + 1].shape[1])
                    if k < L - 1
                    else zero
                )
                new.append(H[k] + self.update[r][k](torch.cat([self.norm[r][k](H[k]), m_in, m_out], -1)))
            H = new
        pooled = [torch.cat([(g := self.readout[k](h)).mean(1), g.amax(1)], -1) for k, h in enumerate(H)]
        return self.head(torch.cat(pooled + [b[L]], -1))


class NeuronDecoder(nn.Module):
    """Hypernetwork: a shared MLP trunk, then one linear head per layer producing that layer's weights and bias."""

    def __init__(self, spec: FieldSpec, config: ModelConfig, stats: ParamStats):
        super().__init__()
        width = config.trunk or config.latent
        self.trunk = mlp([config.latent, config.trunk, config.trunk]) if config.trunk else None
        self.heads = nn.ModuleList()
        for fan_in, fan_out in zip(spec.dims[:-1], spec.dims[1:]):
            head = nn.Linear(width, fan_out * (fan_in + 1))
            nn.init.normal_(head.weight, std=0.1 / math.sqrt(width))
            nn.init.zeros_(head.bias)
            self.heads.append(head)
        self.spec = spec
        self.affine = _OutputAffine(stats)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """(B, latent) -> (B, P) flat field weights."""
        t = F.gelu(self.trunk(z)) if self.trunk is not None else z
        parts = {}
        for i, (head, fan_in, fan_out) in enumerate(zip(self.heads, self.spec.dims[:-1], self.spec.dims[1:])):
            y = head(t).view(-1, fan_out, fan_in + 1)
            parts[f"layers.{i}.weight"], parts[f"layers.{i}.bias"] = y[..., :fan_in], y[..., fan_in]
        return self.affine(self.spec.layout().flatten(parts))


class PrepGrid:
    """The paper's layout: each layer's ``[W | b]`` rows stacked into one zero-padded (rows, cols) grid."""

    def __init__(self, spec: FieldSpec):
        self.rows = sum(spec.dims[1:])
        self.cols = max(spec.dims[:-1]) + 1
        pos, r = [], 0
        for fan_in, fan_out in zip(spec.dims[:-1], spec.dims[1:]):
            grid_rows = torch.arange(r, r + fan_out)[:, None] * self.cols
            pos += [(grid_rows + torch.arange(fan_in)).flatten(), (grid_rows[:, 0] + fan_in)]
            r += fan_out
        self.spec = spec
        self.position = torch.cat(pos)
        # Flat order is weight then bias per layer; ``pos`` was built in that order.

    def to_grid(self, flat: torch.Tensor) -> torch.Tensor:
        """(B, P) -> (B, 1, rows, cols)."""
        grid = flat.new_zeros(flat.shape[0], self.rows * self.cols)
        grid[:, self.position.to(flat.device)] = flat
        return grid.view(-1, 1, self.rows, self.cols)

    def from_grid(self, grid: torch.Tensor) -> torch.Tensor:
        """(B, 1, rows, cols) -> (B, P)."""
        return grid.reshape(grid.shape[0], -1)[:, self.position.to(grid.device)]


class PrepEncoder(nn.Module):
    """Conv + max-pool over the normalised weight grid (paper's baseline encoder)."""

    def __init__(self, spec: FieldSpec, config: ModelConfig):
        super().__init__()
        self.grid = PrepGrid(spec)
        c = config.hidden // 8
        chans = [1, c, 2 * c, 4 * c, 8 * c]
        blocks: list[nn.Module] = []
        for a, b in zip(chans[:-1], chans[1:]):
            blocks += [nn.Conv2d(a, b, 3, padding=1), nn.GELU(), nn.MaxPool2d(2, ceil_mode=True)]
        self.convs = nn.Sequential(*blocks)
        h, w = self.grid.rows, self.grid.cols
        for _ in range(4):
            h, w = math.ceil(h / 2), math.ceil(w / 2)
        self.head = nn.Linear(chans[-1] * h * w, config.latent)

    def forward(self, normalised: torch.Tensor) -> torch.Tensor:
        """(B, P) weights standardised per parameter -> (B, latent)."""
        return self.head(self.convs(self.grid.to_grid(normalised)).flatten(1))


class PrepDecoder(nn.Module):
    """Latent -> small grid -> 4 x (upsample, conv) -> the weight grid, then per-parameter scale and shift."""

    def __init__(self, spec: FieldSpec, config: ModelConfig, stats: ParamStats):
        super().__init__()
        self.grid = PrepGrid(spec)
        c = config.hidden // 8
        self.h0, self.w0, self.c0 = math.ceil(self.grid.rows / 16), math.ceil(self.grid.cols / 16), 8 * c
        self.fc = nn.Linear(config.latent, self.c0 * self.h0 * self.w0)
        chans = [8 * c, 4 * c, 2 * c, c, c]
        blocks: list[nn.Module] = []
        for a, b in zip(chans[:-1], chans[1:]):
            blocks += [nn.Upsample(scale_factor=2), nn.Conv2d(a, b, 3, padding=1), nn.GELU()]
        last = nn.Conv2d(c, 1, 1)
        nn.init.normal_(last.weight, std=0.01)
        nn.init.zeros_(last.weight.new_zeros(0) if last.bias is None else last.bias)
        self.convs = nn.Sequential(*blocks, last)
        self.affine = _OutputAffine(stats)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.convs(self.fc(z).view(-1, self.c0, self.h0, self.w0))
        return self.affine(self.grid.from_grid(x[..., : self.grid.rows, : self.grid.cols]))


EXACT_TOL = 1e-5
"""Relative distance from the base below which a field counts as the base's (read exactly by the shift encoder)."""


def align_to_base(spec: FieldSpec, params: torch.Tensor, base: torch.Tensor, columns: int = 0) -> torch.Tensor:
    """(B, P) fields with their hidden units permuted to match ``base`` (P,) layer by layer, by the incoming weights
    (columns already in the base's order) the base shares with its fields (its ``columns`` modulated ones left out):
    the same function, in the base's unit order. A field of the shift base, however permuted, comes back exactly as
    the field; other fields get the best matching (Hungarian on distance)."""
    from scipy.optimize import linear_sum_assignment

    layout = spec.layout()
    w, ref = layout.unflatten(params), layout.unflatten(base[None])
    aligned, perm = {}, None
    for i in range(spec.depth + 1):
        weight, bias = w[f"layers.{i}.weight"], w[f"layers.{i}.bias"]
        if perm is not None:
            weight = torch.gather(weight, 2, perm[:, None, :].expand(-1, weight.shape[1], -1))
        if i < spec.depth:
            shared = columns if i > 0 else 0  # the columns a field of the base moves say nothing about its order
            ref_i = ref[f"layers.{i}.weight"][..., shared:].expand(len(weight), -1, -1)
            cost = torch.cdist(weight[..., shared:], ref_i)  # field x base rows
            perm = cost.argmin(1)  # per base unit, the field unit closest to it
            for k in range(len(perm)):
                if len(set(perm[k].tolist())) < perm.shape[1]:  # not a bijection: solve the assignment
                    rows, cols = linear_sum_assignment(cost[k].detach().cpu().numpy())
                    perm[k, torch.as_tensor(cols)] = torch.as_tensor(rows, device=perm.device)
            weight = torch.gather(weight, 1, perm[..., None].expand(-1, -1, weight.shape[2]))
            bias = torch.gather(bias, 1, perm)
        aligned[f"layers.{i}.weight"], aligned[f"layers.{i}.bias"] = weight, bias
    return layout.flatten(aligned)


class ShiftEncoder(nn.Module):
    """Fields of a shift base -> the entries they move (biases and modulated ``columns``), standardised per entry over
    the zoo (``stats``), after aligning hidden units to the base (so permuted copies of a field encode alike).
    Nothing in it is learned."""

    mask: torch.Tensor

    def __init__(self, spec: FieldSpec, columns: int = 0):
        super().__init__()
        self.spec, self.columns = spec, columns
        self.register_buffer("mask", spec.modulation_mask(columns), persistent=False)

    def forward(self, params: torch.Tensor, stats: ParamStats) -> torch.Tensor:
        aligned = align_to_base(self.spec, params, stats.mean, self.columns)
        return (aligned[:, self.mask] - stats.mean[self.mask]) / stats.std[self.mask]

    def residual(self, params: torch.Tensor, stats: ParamStats) -> torch.Tensor:
        """(B,) relative distance of the aligned fields' shared weights from the base's (0 for fields of the base)."""
        aligned = align_to_base(self.spec, params, stats.mean, self.columns)
        shared = ~self.mask
        return (aligned[:, shared] - stats.mean[shared]).norm(dim=1) / stats.mean[shared].norm()


class ShiftDecoder(nn.Module):
    """z -> the base's shared weights with the moved entries at ``mean + std * z`` (affine in z; the affine starts at
    the zoo statistics, whose shared-weight means are the base)."""

    mask: torch.Tensor

    def __init__(self, spec: FieldSpec, stats: ParamStats, columns: int = 0):
        super().__init__()
        self.register_buffer("mask", spec.modulation_mask(columns), persistent=False)
        self.affine = _OutputAffine(stats)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        y = z.new_zeros(len(z), len(self.mask)).masked_scatter(self.mask.expand(len(z), -1), z)
        return self.affine(y)


class PcaEncoder(nn.Module):
    """Standardised weights -> their coordinates on the ``latent`` leading principal directions of the training
    fields' (rows of ``basis``, orthonormal; zero rows past the training fields' rank). Only an SVD is fitted."""

    basis: torch.Tensor

    def __init__(self, size: int, latent: int, normalised: torch.Tensor | None = None):
        super().__init__()
        self.register_buffer("basis", torch.zeros(latent, size))
        if normalised is not None and len(normalised) > 1:
            directions = torch.linalg.svd(normalised - normalised.mean(0), full_matrices=False)[2][:latent]
            self.basis[: len(directions)] = directions

    def forward(self, normalised: torch.Tensor) -> torch.Tensor:
        return normalised @ self.basis.T


class WeightAutoencoder(nn.Module):
    """encode: (B, P) field weights -> (B, latent); decode: (B, latent) -> (B, P)."""

    def __init__(self, spec: FieldSpec, config: ModelConfig, stats: ParamStats, params: torch.Tensor | None = None):
        """``params``: the training fields (N, P), which a ``pca`` space takes its directions from."""
        super().__init__()
        self.spec, self.config = spec, config
        self.stats: ParamStats = stats
        if config.design == "shift":
            self.encoder: nn.Module = ShiftEncoder(spec, config.columns)
            self.decoder: nn.Module = ShiftDecoder(spec, stats, config.columns)
        elif config.design == "neuron":
            self.encoder = NeuronEncoder(spec, config)
            self.decoder = NeuronDecoder(spec, config, stats)
        elif config.design == "pca":
            normalised = None if params is None else (params - stats.mean) / stats.std
            self.encoder = PcaEncoder(len(stats.mean), config.latent, normalised)
            self.decoder = _OutputAffine(stats)
        elif config.design == "prep":
            self.encoder = PrepEncoder(spec, config)
            self.decoder = PrepDecoder(spec, config, stats)
        else:
            raise ShapezooError(f"unknown design '{config.design}' ({' or '.join(DESIGNS)})")

    def encode(self, params: torch.Tensor) -> torch.Tensor:
        if self.config.design == "shift":
            return self.encoder(params, self.stats)
        if self.config.design == "neuron":
            return self.encoder(self.stats.per_tensor(self.spec, params))
        return self.encoder((params - self.stats.mean) / self.stats.std)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        if isinstance(self.encoder, PcaEncoder):
            return self.decoder(z @ self.encoder.basis)
        return self.decoder(z)
