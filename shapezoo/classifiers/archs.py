"""Image-classifier architectures and the one batched functional forward over B models.

Four kinds, each scaled by a width ``c``: ``mlp`` (two hidden layers of c), ``lenet`` (5x5 convs c, 2c with
max-pooling, fc 4c), ``cnn`` (four 3x3 convs c, c, 2c, 2c, two with stride 2, global average pool) and ``resnet``
(stem c, a residual block, a stride-2 conv to 2c, a residual block, global average pool; no BatchNorm, so a
model is exactly its weights). Every tensor's first axis is an output channel/unit and flattened features are
channel-major, so a narrower model of a kind is a leading slice of a wider one (what the multi-architecture
space uses to generate widths it never saw).

The forward keeps B models' activations side by side as channels, ``(N, B*C, H, W)``: a shared input batch runs
through each first layer as one convolution with B*C_out filters, later convolutions are grouped by model.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ..core.spec import register_kind
from ..errors import InputError, ShapezooError
from ..schema import Num, check
from ..weights import ParamLayout

KINDS = ("mlp", "lenet", "cnn", "resnet")
DEFAULT_WIDTH = {"mlp": 32, "lenet": 8, "cnn": 8, "resnet": 8}


@dataclass(frozen=True)
class ClassifierSpec:
    """One classifier architecture: ``kind`` at ``width`` for images of ``in_shape`` (C, H, W) and ``classes``
    (a NetworkSpec of zoo kind ``classifier``)."""

    zoo_kind: ClassVar[str] = "classifier"

    kind: str = "lenet"
    width: int = 8
    in_shape: tuple[int, int, int] = (1, 8, 8)
    classes: int = 10

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ShapezooError(f"unknown architecture '{self.kind}' (one of {', '.join(KINDS)}, optionally -WIDTH)")
        if self.width < 1 or self.classes < 2 or len(self.in_shape) != 3 or min(self.in_shape) < 1:
            raise ShapezooError(f"invalid classifier spec {self}")
        object.__setattr__(self, "in_shape", tuple(int(s) for s in self.in_shape))

    @property
    def name(self) -> str:
        """``kind-width``, the architecture's name in zoos, spaces and the CLI."""
        return f"{self.kind}-{self.width}"

    def layout(self) -> ParamLayout:
        c, (C, H, W), K = self.width, self.in_shape, self.classes

        def conv(name, o, i, k):
            return [(f"{name}.weight", (o, i, k, k)), (f"{name}.bias", (o,))]

        def fc(name, o, i):
            return [(f"{name}.weight", (o, i)), (f"{name}.bias", (o,))]

        if self.kind == "mlp":
            e = fc("fc1", c, C * H * W) + fc("fc2", c, c) + fc("out", K, c)
        elif self.kind == "lenet":
            e = conv("conv1", c, C, 5) + conv("conv2", 2 * c, c, 5) + fc("fc1", 4 * c, 2 * c * (H // 4) * (W // 4))
            e += fc("out", K, 4 * c)
        elif self.kind == "cnn":
            e = conv("conv1", c, C, 3) + conv("conv2", c, c, 3) + conv("conv3", 2 * c, c, 3)
            e += conv("conv4", 2 * c, 2 * c, 3) + fc("out", K, 2 * c)
        else:
            e = conv("stem", c, C, 3) + conv("block1.conv1", c, c, 3) + conv("block1.conv2", c, c, 3)
            e += (
                conv("down", 2 * c, c, 3)
                + conv("block2.conv1", 2 * c, 2 * c, 3)
                + conv("block2.conv2", 2 * c, 2 * c, 3)
            )
            e += fc("out", K, 2 * c)
        return ParamLayout(tuple(e))

    def with_width(self, width: int) -> ClassifierSpec:
        return ClassifierSpec(self.kind, width, self.in_shape, self.classes)

    def forward(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """``classifier_forward`` of this architecture: (B, P) models on images (N, C, H, W) -> (B, N, classes)."""
        return classifier_forward(self, params, x)

    def module(self, flat: torch.Tensor) -> ClassifierModule:
        """One model (P,) as a ``ClassifierModule``."""
        return ClassifierModule(self, flat)

    def to_json(self) -> dict:
        return {**asdict(self), "in_shape": list(self.in_shape)}  # as JSON stores it

    @classmethod
    def from_json(cls, data: dict) -> ClassifierSpec:
        count = Num(lo=1, integer=True)
        try:
            check(data, {"kind": str, "width": count, "in_shape": [count], "classes": count}, "", "spec")
        except InputError as exc:
            raise ShapezooError(exc.problem) from None
        return cls(data["kind"], data["width"], tuple(data["in_shape"]), data["classes"])


def parse_arch(name: str, in_shape: tuple[int, int, int], classes: int) -> ClassifierSpec:
    """``'lenet'`` or ``'lenet-12'`` -> a spec (default width per kind); unknown names raise one clear line."""
    m = re.fullmatch(r"([a-z]+)(?:-(\d+))?", name.strip())
    if not m or m.group(1) not in KINDS:
        raise ShapezooError(
            f"unknown architecture '{name}' (one of {', '.join(KINDS)}, optionally -WIDTH, e.g. lenet-8)"
        )
    kind = m.group(1)
    return ClassifierSpec(kind, int(m.group(2) or DEFAULT_WIDTH[kind]), in_shape, classes)


def init_params(spec: ClassifierSpec, seed: int) -> torch.Tensor:
    """(P,) He-uniform weights, zero biases, from ``seed``: the shared starting point of a zoo."""
    g = torch.Generator().manual_seed(seed)
    parts = []
    for name, shape in spec.layout().entries:
        if name.endswith(".bias"):
            parts.append(torch.zeros(math.prod(shape)))
            continue
        bound = math.sqrt(6.0 / math.prod(shape[1:]))
        if name.endswith("conv2.weight") and name.startswith("block"):
            bound *= 0.5  # residual branches start small: no BatchNorm keeps the skip sums in range
        parts.append((torch.rand(math.prod(shape), generator=g) * 2 - 1) * bound)
    return torch.cat(parts)


def _conv(h: torch.Tensor, w: torch.Tensor, b: torch.Tensor, shared: bool, stride: int = 1) -> torch.Tensor:
    """(N, B*C, H, W) or shared (N, C, H, W) -> (N, B*O, H', W') with per-model kernels w (B, O, C, k, k)."""
    models, out = w.shape[:2]
    k = w.shape[-1]
    kernels = w.reshape(models * out, *w.shape[2:])
    return F.conv2d(h, kernels, b.reshape(models * out), stride, k // 2, groups=1 if shared else models)


def _linear(h: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(N, B, D) or shared (N, D) -> (N, B, O) with per-model w (B, O, D)."""
    y = torch.einsum("nd,bod->nbo", h, w) if h.dim() == 2 else torch.einsum("nbd,bod->nbo", h, w)
    return y + b


def classifier_forward(spec: ClassifierSpec, params: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    """Logits of B models: params (B, P); images (N, C, H, W) shared by all, or (B, N, C, H, W) one batch each.

    Returns:
        (B, N, classes) logits.
    """
    w = spec.layout().unflatten(params)
    B = params.shape[0]
    if images.dim() == 5:
        if images.shape[0] != B:
            raise ShapezooError(f"{images.shape[0]} image batches for {B} models")
        N = images.shape[1]
        h, shared = images.transpose(0, 1).reshape(N, B * images.shape[2], *images.shape[3:]), B == 1
    elif images.dim() == 4:
        h, shared, N = images, True, images.shape[0]
    else:
        raise ShapezooError(f"images must be (N, C, H, W) or (B, N, C, H, W), got {tuple(images.shape)}")
    if tuple(images.shape[-3:]) != spec.in_shape:
        raise ShapezooError(f"images of shape {tuple(images.shape[-3:])}; {spec.name} expects {spec.in_shape}")

    def conv(name, x, shared=False, stride=1):
        return _conv(x, w[f"{name}.weight"], w[f"{name}.bias"], shared, stride)

    def per_model(x):  # (N, B*C, H, W) -> (N, B, C*H*W), channel-major per model
        return x.reshape(N, B, -1)

    if spec.kind == "mlp":
        x = h.reshape(N, -1) if shared else per_model(h)
        x = F.relu(_linear(x, w["fc1.weight"], w["fc1.bias"]))
        x = F.relu(_linear(x, w["fc2.weight"], w["fc2.bias"]))
    elif spec.kind == "lenet":
        x = F.max_pool2d(F.relu(conv("conv1", h, shared)), 2)
        x = F.max_pool2d(F.relu(conv("conv2", x)), 2)
        x = F.relu(_linear(per_model(x), w["fc1.weight"], w["fc1.bias"]))
    elif spec.kind == "cnn":
        x = F.relu(conv("conv1", h, shared))
        x = F.relu(conv("conv2", x, stride=2))
        x = F.relu(conv("conv3", x))
        x = F.relu(conv("conv4", x, stride=2))
        x = per_model(x.mean((2, 3)))
    else:
        x = F.relu(conv("stem", h, shared))
        x = F.relu(x + conv("block1.conv2", F.relu(conv("block1.conv1", x))))
        x = F.relu(conv("down", x, stride=2))
        x = F.relu(x + conv("block2.conv2", F.relu(conv("block2.conv1", x))))
        x = per_model(x.mean((2, 3)))
    return _linear(x, w["out.weight"], w["out.bias"]).transpose(0, 1)


def superset_index(small: ClassifierSpec, big: ClassifierSpec) -> torch.Tensor:
    """(P_small,) positions of a ``small`` model's parameters inside the flat vector of the wider ``big`` one."""
    if small.kind != big.kind or small.width > big.width or small.in_shape != big.in_shape:
        raise ShapezooError(f"{small.name} is not a slice of {big.name}")
    if small.classes != big.classes:
        raise ShapezooError(f"{small.name} and {big.name} have different class counts")
    layout = big.layout()
    full = layout.unflatten(torch.arange(layout.size))
    parts = []
    for name, shape in small.layout().entries:
        t = full[name]
        if name == "fc1.weight" and small.kind == "lenet":  # input features are (2c, h, w) channel-major
            t = t.reshape(t.shape[0], 2 * big.width, -1)[: shape[0], : 2 * small.width].reshape(shape[0], -1)
        else:
            t = t[tuple(slice(0, s) for s in shape)]
        parts.append(t.reshape(-1))
    return torch.cat(parts)


class ClassifierModule(nn.Module):
    """One model as a ready-to-use ``nn.Module`` (parameters named as in the layout; same forward)."""

    def __init__(self, spec: ClassifierSpec, params: torch.Tensor):
        super().__init__()
        self.spec = spec
        self.flat = nn.Parameter(params.detach().clone().reshape(1, -1))
        spec.layout().check(self.flat)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) -> (N, classes) logits."""
        return classifier_forward(self.spec, self.flat, images)[0]


@torch.no_grad()
def predictions(spec: ClassifierSpec, params: torch.Tensor, images: torch.Tensor, chunk: int = 2048) -> torch.Tensor:
    """(B, N) predicted classes of B models on N images, evaluated in chunks of images."""
    return torch.cat([classifier_forward(spec, params, x).argmax(-1) for x in images.split(chunk)], dim=1)


def accuracy(
    spec: ClassifierSpec, params: torch.Tensor, images: torch.Tensor, labels: torch.Tensor, chunk: int = 2048
) -> torch.Tensor:
    """(B,) accuracies of B models on a labelled image set, evaluated in chunks of images."""
    if not len(labels):
        return torch.zeros(params.shape[0], device=params.device)
    return (predictions(spec, params, images, chunk) == labels).float().mean(-1)


def disagreement(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(A, B) share of images on which models disagree, from predictions a (A, N) and b (B, N)."""
    return torch.stack([(row[None] != b).float().mean(-1) for row in a])


register_kind("classifier", ClassifierSpec)
