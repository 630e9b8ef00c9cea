"""WeightSpace: a trained weight autoencoder bound to one field architecture, saved as space.json + safetensors."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch

from ...core.latents import LATENTS_FILE, check_latents, load_latents
from ...core.space_files import SPACE_JSON, load_space_state, read_space_header, write_space_folder
from ...core.spec import kind_classes
from ...core.zoo import Zoo
from ...errors import InputError, ShapezooError
from ...io import atomic_save_tensors, ensure_output_dir, load_tensors
from ...schema import check, config_from_json
from ..fitting import FitConfig
from ..network import FieldSpec, init_params
from ..pretrained import resolve_space
from ..samples import SampleConfig
from .designs import DESIGNS, EXACT_TOL, ModelConfig, ParamStats, ShiftEncoder, WeightAutoencoder

SPACE_FORMAT = "shapezoo.space/1"
INIT_FILE = "init.safetensors"


@dataclass
class WeightSpace:
    """A weight autoencoder for fields of ``spec`` (occupancy fields, or image fields: an ``ImageSpec``); ``meta``
    holds configs, splits and the training history."""

    spec: FieldSpec
    model: WeightAutoencoder
    meta: dict
    init: torch.Tensor | None = None
    """(P,) the shared initialisation of the zoo it was trained on (fields fitted for it start there); None for
    spaces saved before it was stored (then the seeded init of the zoo's recipe)."""

    @property
    def latent_size(self) -> int:
        return self.model.config.latent

    def check_spec(self, spec: FieldSpec, what: str | Path) -> None:
        """Raise InputError unless fields of ``spec`` belong to this space."""
        if spec != self.spec:
            raise InputError(
                what,
                f"fields of architecture {_describe(spec)} cannot be used with a space trained on "
                f"{_describe(self.spec)}",
            )

    def check_zoo(self, zoo: Zoo, what: str | Path) -> None:
        """Raise InputError unless ``zoo``'s fields belong to this space: its architecture and, for image fields, the
        image size they were fitted at (a field of 8 x 8 pixels and one of 28 x 28 are other functions)."""
        self.check_spec(zoo.spec, what)
        trained = ((self.meta.get("zoo", {}).get("meta") or {}).get("data") or {}).get("shape")
        if trained and (size := (zoo.meta.get("data") or {}).get("shape")) != trained:
            raise InputError(what, f"fields fitted to images of size {size} cannot be used with a space of {trained}")

    def check_shapes(self, what: str) -> None:
        """Raise ShapezooError unless the space's fields are shapes (occupancy fields): ``what`` writes meshes."""
        if (kind := type(self.spec).zoo_kind) != "field":
            raise ShapezooError(
                f"{what} writes meshes of shapes; this space holds {kind} fields (encode, decode, probe)"
            )

    def check_latents(self, z: torch.Tensor, what: str | Path) -> None:
        check_latents(z, self.latent_size, what)

    @torch.no_grad()
    def encode(self, params: torch.Tensor, batch: int = 256) -> torch.Tensor:
        """(N, P) field weights -> (N, latent), on the model's device."""
        self.spec.layout().check(params)
        if not torch.isfinite(params).all():
            raise ShapezooError("cannot encode field weights that contain NaN or inf")
        dev = next(self.model.parameters()).device
        self.model.eval()
        if not len(params):
            return torch.zeros(0, self.latent_size, device=dev)
        return torch.cat([self.model.encode(p.to(dev)) for p in params.split(batch)])

    @torch.no_grad()
    def exact(self, params: torch.Tensor) -> torch.Tensor:
        """(N,) bool: fields the encoder reads exactly (a ``shift`` space's fields of its base, however permuted),
        which refinement would not improve; False for every field of a learned encoder."""
        if self.model.config.design != "shift":
            return torch.zeros(len(params), dtype=torch.bool)
        encoder = self.model.encoder
        assert isinstance(encoder, ShiftEncoder)
        dev = next(self.model.parameters()).device
        return encoder.residual(params.to(dev), self.model.stats).cpu() < EXACT_TOL

    @torch.no_grad()
    def decode(self, z: torch.Tensor, batch: int = 256) -> torch.Tensor:
        """(N, latent) -> (N, P) field weights, on the model's device."""
        self.check_latents(z, "latents")
        dev = next(self.model.parameters()).device
        self.model.eval()
        return torch.cat([self.model.decode(b.to(dev)) for b in z.split(batch)])

    def field_init(self) -> torch.Tensor:
        """(P,) where fields for this space start: the zoo's stored init, else the seeded init of its recipe."""
        if self.init is not None:
            return self.init
        return init_params(self.spec, self.meta.get("zoo", {}).get("meta", {}).get("init_seed", 0))

    def info(self) -> dict:
        """Architecture, design, split sizes, best checkpoint and results, as JSON."""
        return {
            "spec": self.spec.to_json(),
            "model": self.model.config.__dict__,
            "fields": {k: len(v) for k, v in self.meta.get("split", {}).items()},
            "best": self.meta.get("best"),
            "results": self.meta.get("results", {}).get("results"),
        }

    def to(self, device) -> WeightSpace:
        self.model.to(device)
        return self

    def train_latents(self, path: str | Path) -> tuple[torch.Tensor, list[str]]:
        """The encoded training fields saved beside the model (for priors and nearest-neighbour reports)."""
        return load_latents(Path(path) / LATENTS_FILE)


def _describe(spec: FieldSpec) -> str:
    return f"{spec.activation} {spec.in_dim}->{spec.width}x{spec.depth}->{spec.out_dim}"


def build_model(spec: FieldSpec, config: ModelConfig, params: torch.Tensor | None = None) -> WeightAutoencoder:
    """A fresh autoencoder whose output affine starts at the statistics of ``params`` (N, P)."""
    if config.design == "auto":
        config = replace(config, design="neuron")  # no zoo to look at: the learned encoder
    if config.design not in DESIGNS:
        raise ShapezooError(f"unknown design '{config.design}' ({' or '.join(DESIGNS)})")
    if config.design == "shift":
        config = replace(config, latent=int(spec.modulation_mask(config.columns).sum()))
    if config.design == "pca" and params is not None:  # N centred fields span N - 1 directions, no more
        config = replace(config, latent=max(1, min(config.latent, len(params) - 1, spec.layout().size)))
    return WeightAutoencoder(spec, config, ParamStats(spec, params), params)


def save_space(path: str | Path, space: WeightSpace) -> None:
    """Write model.safetensors, then space.json (both atomic)."""
    header = {"format": SPACE_FORMAT, "spec": space.spec.to_json(), "model": asdict(space.model.config)}
    if (kind := type(space.spec).zoo_kind) != "field":  # spaces of occupancy fields keep the header they had
        header["kind"] = kind
    if space.init is not None:
        atomic_save_tensors(ensure_output_dir(path) / INIT_FILE, {"params": space.init.detach().float().cpu()})
    write_space_folder(path, space.model, header, space.meta)


def load_space(path: str | Path, device: str | torch.device = "cpu") -> WeightSpace:
    """Read and validate a space folder (``default``: the pretrained one shipped with shapezoo); problems raise
    InputError naming the file."""
    path = resolve_space(path)
    header = read_space_header(path, SPACE_FORMAT, "space")
    where = Path(path) / SPACE_JSON
    try:
        spec_cls: Any = kind_classes(check(header, {"kind?": str}, where).get("kind", "field"))[0]
        spec = spec_cls.from_json(check(header, {"spec": dict}, where)["spec"])
    except ShapezooError as exc:
        raise InputError(where, str(exc)) from None
    config = config_from_json(ModelConfig, header["model"], where, "model")
    recipe = check(header, {"zoo?": {"meta?": {"fit?": object, "samples?": {"config?": object}}}}, where)
    zoo_meta = recipe.get("zoo", {}).get("meta", {})
    if "fit" in zoo_meta:  # the recipe a mesh is fitted with on the fly (explore.fit_meshes)
        config_from_json(FitConfig, zoo_meta["fit"], where, "zoo.meta.fit")
    if "config" in zoo_meta.get("samples", {}):
        config_from_json(SampleConfig, zoo_meta["samples"]["config"], where, "zoo.meta.samples.config")
    model = build_model(spec, config)
    load_space_state(path, model)
    meta = {k: v for k, v in header.items() if k not in ("format", "kind", "spec", "model")}
    init = None
    if (Path(path) / INIT_FILE).exists():
        init = load_tensors(Path(path) / INIT_FILE, framework="pt")[0].get("params")
        if init is None or init.shape != (spec.layout().size,):
            raise InputError(Path(path) / INIT_FILE, f"needs 'params' of shape ({spec.layout().size},)")
    return WeightSpace(spec, model.to(device), meta, init)
