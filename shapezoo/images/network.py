"""The image field architecture (a ``FieldSpec`` over 2-D pixel coordinates) and the zoo that holds image fields."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from ..core.measure import metric_summary
from ..core.spec import register_kind
from ..core.zoo import ENTRY, Zoo
from ..errors import ShapezooError
from ..fields.network import FieldSpec, field_forward
from ..fields.space.objective import Functional, register_functional
from ..schema import Opt


@dataclass(frozen=True)
class ImageSpec(FieldSpec):
    """A SIREN ``2 -> width x depth -> channels`` over pixel centres in [-1, 1]^2, the size the weight-space
    literature fits per image (32 x 3; Navon et al. 2023, DWSNets, section 7.1), with the one batched forward of
    ``fields.network``."""

    zoo_kind: ClassVar[str] = "image"
    in_dim: int = 2
    width: int = 32
    first_omega0: float = 30.0
    """SIREN's ω0 on [-1, 1] coordinates (Sitzmann et al. 2020, section 3.2)."""

    def __post_init__(self):
        super().__post_init__()
        if self.in_dim != 2 or self.activation != "sine" or self.out_dim not in (1, 3):
            raise ShapezooError(
                f"an image field is a sine network on 2-D pixel coordinates with 1 or 3 channels; got in_dim "
                f"{self.in_dim}, activation {self.activation}, out_dim {self.out_dim}"
            )


def pixel_grid(height: int, width: int) -> torch.Tensor:
    """(height * width, 2) pixel centres in [-1, 1]^2, row-major (y, x), the inputs every image field is fitted on."""
    ys = (torch.arange(height, dtype=torch.float32) + 0.5) / height * 2 - 1
    xs = (torch.arange(width, dtype=torch.float32) + 0.5) / width * 2 - 1
    return torch.cartesian_prod(ys, xs)


def psnr(mse: torch.Tensor) -> torch.Tensor:
    """Peak signal-to-noise ratio (dB) of pixel values in [0, 1] from their mean squared error."""
    return -10.0 * torch.log10(mse.clamp_min(1e-12))


@dataclass
class ImageZoo(Zoo[ImageSpec]):
    """Fitted image fields; each entry keeps its image's label, split and index in its dataset."""

    entry: ClassVar[dict] = {**ENTRY, "label?": Opt(str), "split?": Opt(str), "index?": Opt(int)}

    def info(self) -> dict:
        """Spec, counts, protocol and reconstruction PSNR summary, as JSON."""
        return {
            **self.counts(),
            "data": self.meta.get("data"),
            "fit": self.meta.get("fit"),
            "psnr": metric_summary(self.entries, "psnr"),
        }


register_kind("image", ImageSpec, ImageZoo)


def image_queries(
    spec: ImageSpec, params: torch.Tensor, n_uniform: int, n_more: int, seed: int, zoo_meta: dict | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, n_uniform + n_more, 2) pixel centres of the fields' images (drawn uniformly, with repeats; the size from
    their zoo's record: an image field was fitted there and nowhere between) and the (N, n, channels) pixel values
    the fields compute there."""
    shape = ((zoo_meta or {}).get("data") or {}).get("shape")
    if not shape:
        raise ShapezooError("image fields need their zoo's image size (zoo.json 'data.shape') to be compared")
    grid = pixel_grid(*shape[-2:])
    g = torch.Generator(device="cpu").manual_seed(seed)
    x = grid[torch.randint(0, len(grid), (len(params), n_uniform + n_more), generator=g)].to(params.device)
    with torch.no_grad():
        return x, torch.cat([field_forward(spec, p, xb) for p, xb in zip(params.split(64), x.split(64))])


PIXELS = Functional(
    "psnr",
    "PSNR",
    image_queries,
    lambda out, targets: (out - targets).square().mean(),
    lambda out, targets, n: psnr((out[:, :n] - targets[:, :n]).square().mean((1, 2))),
    pool=1024,
)
"""Image fields: their pixel values, compared by squared error, scored by PSNR (dB); pools of 1024 draws of pixel
centres (a 28 x 28 image has 784: more draws repeat them, and 60000 fields' pools of 8192 would take 6 GB)."""

register_functional("image", PIXELS)
