"""ClassifierSpace: one latent space over classifiers of one or several architectures (space.json + safetensors).

The architectures form an ordered list. Each kind (mlp, lenet, ...) has one encoder input layer and one decoder
head over its widest member's parameters; a narrower member is a leading slice of it (``superset_index``), so a
kind's widths share weights and a width never seen as an instance can still be decoded. The decoder also
predicts the architecture (a classification head), as in the paper's multi-architecture setting.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import cast

import torch
from torch import nn

from ..core.latents import check_latents
from ..core.nets import mlp
from ..core.space_files import SPACE_JSON, load_space_state, read_space_header, write_space_folder
from ..errors import InputError, ShapezooError
from ..schema import check, config_from_json
from .archs import ClassifierSpec, superset_index

SPACE_FORMAT = "shapezoo.classifier-space/1"


@dataclass(frozen=True)
class SpaceConfig:
    """Sizes of a classifier weight autoencoder."""

    latent: int = 64
    """Size of z."""
    hidden: int = 256
    """Width of the encoder and decoder MLPs (and of each kind's input layer / output head)."""
    basis: int = 256
    """0: each kind's input layer reads and its head writes every (normalised) parameter. R > 0: they read and
    write the coordinates of the R leading principal directions of the kind's normalised training weights (a
    fixed basis, so the large layers cannot memorise the few training models), and a linear path beside the MLPs
    starts the space as whitened PCA: z = the leading principal coordinates, decoded back exactly. Measured
    (BENCHMARKS.md): smaller held-out accuracy gaps, 9-36x fewer space parameters, 2-6x faster training."""


class ClassifierAutoencoder(nn.Module):
    """Encoder: a kind's normalised, zero-padded weights (or their coordinates in the kind's principal basis) + an
    architecture embedding -> MLP -> z. Decoder: z -> MLP trunk -> the kind's head (-> back from the basis) ->
    per-parameter scale and shift -> that architecture's slice, plus architecture logits from the trunk."""

    def __init__(self, archs: list[ClassifierSpec], config: SpaceConfig):
        super().__init__()
        self.archs, self.config = list(archs), config
        self.kinds = list(dict.fromkeys(a.kind for a in archs))
        self.widest = {k: max((a for a in archs if a.kind == k), key=lambda a: a.width) for k in self.kinds}
        for i, a in enumerate(archs):
            self.register_buffer(f"index_{i}", superset_index(a, self.widest[a.kind]), persistent=False)
        sizes = {k: s.layout().size for k, s in self.widest.items()}
        h, width = config.hidden, {k: config.basis or sizes[k] for k in self.kinds}
        self.enc_in = nn.ModuleDict({k: nn.Linear(width[k], h) for k in self.kinds})
        self.arch_embed = nn.Embedding(len(archs), h)
        self.encoder = mlp([h, h, config.latent])
        self.trunk = mlp([config.latent, h, h])
        heads = {k: nn.Linear(h, width[k]) for k in self.kinds}
        for head in heads.values():
            nn.init.normal_(head.weight, std=0.1 / math.sqrt(h))
            nn.init.zeros_(head.bias)
        self.heads = nn.ModuleDict(heads)
        self.arch_head = nn.Linear(h, len(archs))
        for k in self.kinds:
            self.register_buffer(f"mean_{k}", torch.zeros(sizes[k]))
            self.register_buffer(f"std_{k}", torch.ones(sizes[k]))
            self.register_parameter(f"shift_{k}", nn.Parameter(torch.zeros(sizes[k])))
            self.register_parameter(f"scale_{k}", nn.Parameter(torch.ones(sizes[k])))
        if config.basis:
            for k in self.kinds:
                self.register_buffer(f"basis_{k}", torch.zeros(config.basis, sizes[k]))
            self.skip_enc = nn.ModuleDict({k: nn.Linear(config.basis, config.latent, bias=False) for k in self.kinds})
            self.skip_dec = nn.ModuleDict({k: nn.Linear(config.latent, config.basis, bias=False) for k in self.kinds})
            last = cast(nn.Linear, self.encoder[-1])
            nn.init.zeros_(last.weight)  # z starts as the whitened principal coordinates
            nn.init.zeros_(last.bias)

    def index(self, arch: int) -> torch.Tensor:
        return getattr(self, f"index_{arch}")

    def set_statistics(self, params: dict[int, torch.Tensor], init: dict[int, torch.Tensor]) -> None:
        """Per-parameter mean/std of each kind's widest layout over the instances that have the parameter
        (std floored at 5% of its tensor's std); parameters no instance has fall back to the shared init's
        tensor statistics; with ``config.basis``, also the principal directions of the normalised, zero-padded
        instances. ``params``/``init``: arch index -> (N, P_arch) / (P_arch,)."""
        for k in self.kinds:
            layout = self.widest[k].layout()
            P = layout.size
            s, s2, n = torch.zeros(P, dtype=torch.float64), torch.zeros(P, dtype=torch.float64), torch.zeros(P)
            ref = torch.zeros(P)
            for a, spec in enumerate(self.archs):
                if spec.kind != k:
                    continue
                idx = self.index(a).cpu()
                if a in init:
                    ref[idx] = init[a].float()
                if a in params and len(params[a]):
                    x = params[a].double()
                    s[idx] += x.sum(0)
                    s2[idx] += (x**2).sum(0)
                    n[idx] += len(x)
            mean = torch.where(n > 0, s / n.clamp_min(1), 0.0).float()
            var = torch.where(n > 1, (s2 / n.clamp_min(1) - (s / n.clamp_min(1)) ** 2).clamp_min(0), 0.0).float()
            parts_ref = torch.split(ref, layout.numels)
            tensor_std = torch.repeat_interleave(
                torch.stack([p.std().clamp_min(1e-3) if p.numel() > 1 else p.abs().clamp_min(1e-3) for p in parts_ref]),
                torch.tensor(layout.numels),
            )
            std = torch.where(n > 1, torch.maximum(var.sqrt(), 0.05 * tensor_std), tensor_std)
            getattr(self, f"mean_{k}").copy_(mean)
            getattr(self, f"std_{k}").copy_(std)
            getattr(self, f"shift_{k}").data.copy_(mean)
            getattr(self, f"scale_{k}").data.copy_(std)
            if self.config.basis:
                basis, sigma = self._principal_directions(k, params, mean, std)
                getattr(self, f"basis_{k}").copy_(basis)
                d = self.config.latent
                q = min(int((sigma > 1e-5 * sigma.max()).sum()) if len(sigma) else 0, d)
                enc, dec = torch.zeros(d, self.config.basis), torch.zeros(self.config.basis, d)
                enc[range(q), range(q)] = 1 / sigma[:q]
                dec[range(q), range(q)] = sigma[:q]
                cast(nn.Linear, self.skip_enc[k]).weight.data.copy_(enc)
                cast(nn.Linear, self.skip_dec[k]).weight.data.copy_(dec)

    def _principal_directions(
        self, kind: str, params: dict[int, torch.Tensor], mean, std
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(R, P_kind) orthonormal leading right singular vectors of the kind's centred, normalised instances
        (zero rows where there are fewer instances than R) and the (<= R,) standard deviations along them."""
        rows = []
        for a, x in params.items():
            if self.archs[a].kind == kind and len(x):
                idx = self.index(a).cpu()
                full = torch.zeros(len(x), len(mean))
                full[:, idx] = (x.float() - mean[idx]) / std[idx]
                rows.append(full)
        out, sigma = torch.zeros(self.config.basis, len(mean)), torch.zeros(0)
        if rows:
            x = torch.cat(rows).double()
            _, sv, vt = torch.linalg.svd(x - x.mean(0), full_matrices=False)
            q = min(self.config.basis, len(vt))
            out[:q], sigma = vt[:q].float(), (sv[:q] / math.sqrt(max(len(x) - 1, 1))).float()
        return out, sigma

    def encode(self, arch: int, params: torch.Tensor) -> torch.Tensor:
        """(B, P_arch) weights of architecture ``arch`` -> (B, latent)."""
        k, idx = self.archs[arch].kind, self.index(arch)
        mean, std = getattr(self, f"mean_{k}"), getattr(self, f"std_{k}")
        x = params.new_zeros(params.shape[0], mean.shape[0])
        x[:, idx] = (params - mean[idx]) / std[idx]
        a = torch.full((params.shape[0],), arch, dtype=torch.long, device=params.device)
        if not self.config.basis:
            return self.encoder(torch.nn.functional.gelu(self.enc_in[k](x) + self.arch_embed(a)))
        c = x @ getattr(self, f"basis_{k}").T
        return self.encoder(torch.nn.functional.gelu(self.enc_in[k](c) + self.arch_embed(a))) + self.skip_enc[k](c)

    def trunk_features(self, z: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.gelu(self.trunk(z))

    def decode(self, arch: int, z: torch.Tensor, features: torch.Tensor | None = None) -> torch.Tensor:
        """(B, latent) -> (B, P_arch) weights of architecture ``arch``."""
        k = self.archs[arch].kind
        t = self.trunk_features(z) if features is None else features
        out = self.heads[k](t)
        if self.config.basis:
            out = (out + self.skip_dec[k](z)) @ getattr(self, f"basis_{k}")
        full = getattr(self, f"shift_{k}") + getattr(self, f"scale_{k}") * out
        return full[:, self.index(arch)]

    def arch_logits(self, z: torch.Tensor, features: torch.Tensor | None = None) -> torch.Tensor:
        """(B, latent) -> (B, n_archs) architecture logits."""
        return self.arch_head(self.trunk_features(z) if features is None else features)


@dataclass
class ClassifierSpace:
    """A trained classifier autoencoder over ``archs`` (ordered); ``meta`` holds configs, splits and history."""

    model: ClassifierAutoencoder
    meta: dict

    @property
    def archs(self) -> list[ClassifierSpec]:
        return self.model.archs

    @property
    def latent_size(self) -> int:
        return self.model.config.latent

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def arch_index(self, spec: ClassifierSpec, what: str | Path) -> int:
        """Position of ``spec`` in the space's architectures; another architecture raises InputError."""
        if spec not in self.archs:
            known = ", ".join(f"{a.name} {a.in_shape}" for a in self.archs)
            raise InputError(
                what, f"models of architecture {spec.name} {spec.in_shape} do not belong to this space ({known})"
            )
        return self.archs.index(spec)

    def check_latents(self, z: torch.Tensor, what: str | Path) -> None:
        check_latents(z, self.latent_size, what)

    def info(self) -> dict:
        """Architectures, sizes, data, best checkpoint and results, as JSON."""
        return {
            "archs": [a.name for a in self.archs],
            "latent": self.latent_size,
            "model": asdict(self.model.config),
            "data": self.meta.get("data"),
            "best": self.meta.get("best"),
            "results": self.meta.get("results"),
        }

    @torch.no_grad()
    def encode(self, spec: ClassifierSpec, params: torch.Tensor, batch: int = 256) -> torch.Tensor:
        """(N, P) weights of ``spec`` -> (N, latent)."""
        a = self.arch_index(spec, spec.name)
        spec.layout().check(params)
        if not torch.isfinite(params).all():
            raise ShapezooError("cannot encode weights that contain NaN or inf")
        self.model.eval()
        if not len(params):
            return torch.zeros(0, self.latent_size, device=self.device)
        return torch.cat([self.model.encode(a, p.to(self.device)) for p in params.split(batch)])

    @torch.no_grad()
    def predict_arch(self, z: torch.Tensor) -> torch.Tensor:
        """(N, latent) -> (N,) index of the predicted architecture."""
        self.check_latents(z, "latents")
        self.model.eval()
        return self.model.arch_logits(z.to(self.device)).argmax(-1)

    @torch.no_grad()
    def decode(self, z: torch.Tensor, arch: ClassifierSpec | None = None) -> tuple[ClassifierSpec, torch.Tensor]:
        """(N, latent) -> (spec, (N, P)) weights; ``arch`` None takes the architecture the decoder predicts,
        which must then be the same for all N latents."""
        self.check_latents(z, "latents")
        self.model.eval()
        z = z.to(self.device)
        if arch is None:
            found = sorted(set(self.predict_arch(z).tolist()))
            if len(found) != 1:
                names = [self.archs[i].name for i in found]
                raise ShapezooError(
                    f"the latents decode to several architectures ({', '.join(names)}); pick one with --arch"
                )
            a = found[0]
        else:
            a = self.arch_index(arch, arch.name)
        return self.archs[a], self.model.decode(a, z)

    def to(self, device) -> ClassifierSpace:
        self.model.to(device)
        return self


def build_space_model(archs: list[ClassifierSpec], config: SpaceConfig) -> ClassifierAutoencoder:
    if not archs:
        raise ShapezooError("a classifier space needs at least one architecture")
    if len(set(archs)) != len(archs):
        raise ShapezooError(f"architectures listed twice: {[a.name for a in archs]}")
    if len({(a.in_shape, a.classes) for a in archs}) != 1:
        raise ShapezooError("all architectures of a space must take the same images and classes")
    if config.latent < 1 or config.hidden < 1 or config.basis < 0:
        raise ShapezooError(
            f"latent and hidden sizes must be >= 1 and basis >= 0, got {config.latent}, {config.hidden}, {config.basis}"
        )
    return ClassifierAutoencoder(archs, config)


def save_classifier_space(path: str | Path, space: ClassifierSpace) -> None:
    """Write model.safetensors, then space.json (both atomic)."""
    header = {
        "format": SPACE_FORMAT,
        "archs": [a.to_json() for a in space.archs],
        "model": asdict(space.model.config),
    }
    write_space_folder(path, space.model, header, space.meta)


def load_classifier_space(path: str | Path, device: str | torch.device = "cpu") -> ClassifierSpace:
    """Read and validate a classifier space folder; problems raise InputError naming the file."""
    header = read_space_header(path, SPACE_FORMAT, "classifier space")
    where = Path(path) / SPACE_JSON
    config = config_from_json(SpaceConfig, {"basis": 0, **header["model"]}, where, "model")  # no basis: format 1.0
    try:
        archs = [ClassifierSpec.from_json(a) for a in check(header, {"archs": [dict]}, where)["archs"]]
        model = build_space_model(archs, config)
    except (KeyError, TypeError, ValueError, ShapezooError) as exc:
        raise InputError(where, f"invalid space description ({exc})") from None
    load_space_state(path, model)
    meta = {k: v for k, v in header.items() if k not in ("format", "archs", "model")}
    return ClassifierSpace(model.to(device), meta)
