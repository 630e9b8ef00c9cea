"""WeightSpace: a trained weight autoencoder bound to one field architecture, saved as space.json + safetensors."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from ..errors import InputError, ShapezooError
from ..fields import FieldSpec, init_params
from ..io import atomic_save_tensors, atomic_write_json, ensure_output_dir, load_tensors, plain_name, read_json
from .designs import DESIGNS, ModelConfig, ParamStats, WeightAutoencoder

SPACE_FORMAT = "shapezoo.space/1"
SPACE_JSON = "space.json"
MODEL_FILE = "model.safetensors"
LATENTS_FILE = "train_latents.safetensors"
INIT_FILE = "init.safetensors"


@dataclass
class WeightSpace:
    """A weight autoencoder for fields of ``spec``; ``meta`` holds configs, splits and the training history."""

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

    def check_latents(self, z: torch.Tensor, what: str | Path) -> None:
        if z.dim() != 2 or z.shape[1] != self.latent_size:
            raise InputError(what, f"latents of shape {tuple(z.shape)}; this space needs (N, {self.latent_size})")
        if not torch.isfinite(z).all():
            bad = (~torch.isfinite(z).all(1)).nonzero().flatten().tolist()
            raise InputError(what, f"latent rows {bad[:5]} contain NaN or inf")

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
    if config.design not in DESIGNS:
        raise ShapezooError(f"unknown design '{config.design}' ({' or '.join(DESIGNS)})")
    if config.latent < 1:
        raise ShapezooError(f"latent size must be >= 1, got {config.latent}")
    return WeightAutoencoder(spec, config, ParamStats(spec, params))


def write_space_folder(path: str | Path, model: torch.nn.Module, header: dict, meta: dict) -> None:
    """Write model.safetensors (``model``'s state), then space.json (``header`` + the ``meta`` keys it lacks);
    both atomic. Shared by field and classifier spaces."""
    path = ensure_output_dir(path)
    atomic_save_tensors(path / MODEL_FILE, {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()})
    atomic_write_json(path / SPACE_JSON, {**header, **{k: v for k, v in meta.items() if k not in header}})


def read_space_header(path: str | Path, space_format: str, what: str) -> dict:
    """space.json of a space folder, checked to be of ``space_format``; problems raise InputError naming the file."""
    path = Path(path)
    if not path.is_dir():
        raise InputError(path, "space folder not found")
    header = read_json(path / SPACE_JSON)
    if header.get("format") != space_format:
        raise InputError(path / SPACE_JSON, f"not a shapezoo {what} (format {header.get('format')!r})")
    return header


def load_space_state(path: str | Path, model: torch.nn.Module) -> None:
    """Load model.safetensors of a space folder into ``model``; a mismatch raises InputError naming the file."""
    state, _ = load_tensors(Path(path) / MODEL_FILE, framework="pt")
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise InputError(Path(path) / MODEL_FILE, f"weights do not match space.json ({first})") from None


def save_space(path: str | Path, space: WeightSpace) -> None:
    """Write model.safetensors, then space.json (both atomic)."""
    header = {"format": SPACE_FORMAT, "spec": space.spec.to_json(), "model": asdict(space.model.config)}
    if space.init is not None:
        atomic_save_tensors(ensure_output_dir(path) / INIT_FILE, {"params": space.init.detach().float().cpu()})
    write_space_folder(path, space.model, header, space.meta)


def load_space(path: str | Path, device: str | torch.device = "cpu") -> WeightSpace:
    """Read and validate a space folder; problems raise InputError naming the file."""
    header = read_space_header(path, SPACE_FORMAT, "space")
    spec = FieldSpec.from_json(header["spec"])
    try:
        config = ModelConfig(**header["model"])
    except TypeError as exc:
        raise InputError(Path(path) / SPACE_JSON, f"invalid model config: {exc}") from None
    model = build_model(spec, config)
    load_space_state(path, model)
    meta = {k: v for k, v in header.items() if k not in ("format", "spec", "model")}
    split = meta.get("split", {})
    if not isinstance(split, dict) or not all(isinstance(v, list) for v in split.values()):
        raise InputError(Path(path) / SPACE_JSON, "'split' must map each split to a list of field names")
    for names in split.values():
        for name in names:
            plain_name(name, Path(path) / SPACE_JSON)
    init = None
    if (Path(path) / INIT_FILE).exists():
        init = load_tensors(Path(path) / INIT_FILE, framework="pt")[0].get("params")
        if init is None or init.shape != (spec.layout().size,):
            raise InputError(Path(path) / INIT_FILE, f"needs 'params' of shape ({spec.layout().size},)")
    return WeightSpace(spec, model.to(device), meta, init)


def save_latents(path: str | Path, z: torch.Tensor, names: list[str], extra: dict | None = None) -> None:
    """latents.safetensors: ``z`` (N, d) float32; names (and any extra JSON) in the metadata."""
    if len(names) != len(z):
        raise ShapezooError(f"{len(names)} names for {len(z)} latents")
    meta = {"names": json.dumps(names), **{k: json.dumps(v) for k, v in (extra or {}).items()}}
    atomic_save_tensors(path, {"z": z.detach().float().cpu().contiguous()}, meta)


def load_latents(path: str | Path) -> tuple[torch.Tensor, list[str]]:
    """(z (N, d), names) from a latents file; a bad file raises InputError."""
    tensors, meta = load_tensors(path, framework="pt")
    z = tensors.get("z")
    if z is None or z.dim() != 2:
        raise InputError(path, "holds no 'z' tensor of shape (N, d)")
    try:
        names = json.loads(meta.get("names", "null")) or [f"z{i:04d}" for i in range(len(z))]
    except json.JSONDecodeError:
        raise InputError(path, "the 'names' metadata is not valid JSON") from None
    if not isinstance(names, list) or len(names) != len(z):
        raise InputError(path, f"lists {len(names) if isinstance(names, list) else 'no'} names for {len(z)} latents")
    for name in names:
        plain_name(name, path)
    return z.float(), names


def split_names(names: list[str], val: float, test: float, seed: int) -> dict[str, list[str]]:
    """Deterministic train/val/test split by shape name (independent of order)."""
    if not (0 <= val < 1 and 0 <= test < 1 and val + test < 1):
        raise ShapezooError(f"validation ({val}) and test ({test}) fractions must be in [0, 1) and sum below 1")
    key = sorted(names, key=lambda n: hashlib.sha256(f"{seed}:{n}".encode()).hexdigest())
    n_test, n_val = round(test * len(key)), round(val * len(key))
    if len(key) - n_test - n_val < 1:
        raise ShapezooError(f"{len(names)} fields leave none for training after the validation/test split")
    split = {"test": key[:n_test], "val": key[n_test : n_test + n_val], "train": key[n_test + n_val :]}
    return {k: sorted(v, key=names.index) for k, v in split.items()}
