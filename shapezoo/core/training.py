"""What every trainer in shapezoo shares: the batched elementwise Adam of zoos, the schedule of space training,
and resumable checkpoints (model + optimiser + codes in safetensors, the loop's state in JSON)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import InputError
from ..io import atomic_save_tensors, atomic_write_json, load_tensors, read_json

STATE_JSON = "train_state.json"
CHECKPOINT = "checkpoint.safetensors"


def adam_step_(
    p: torch.Tensor,
    grad: torch.Tensor,
    m: torch.Tensor,
    v: torch.Tensor,
    t: torch.Tensor | float,
    lr: torch.Tensor | float,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
) -> None:
    """One Adam update, in place, of stacked weights (B, P) of B networks, each with its own moments (B, P), step
    count ``t`` ((B, 1), counted from 1) and learning rate ``lr`` ((B, 1)). Adam is elementwise, so this is
    exactly B independent optimisers; a network whose ``lr`` is 0 does not move."""
    b1, b2 = betas
    m.mul_(b1).add_(grad, alpha=1 - b1)
    v.mul_(b2).addcmul_(grad, grad, value=1 - b2)
    denom = (v / (1 - b2**t)).sqrt_().add_(eps)
    p.addcdiv_(m * (lr / (1 - b1**t)), denom, value=-1.0)


@dataclass(frozen=True)
class Schedule:
    """What every weight-space trainer shares: the AdamW schedule, the split of the zoo, validation cadence."""

    lr: float = 1e-3
    """Peak AdamW learning rate (linear warm-up, then cosine to ``lr * lr_final``)."""
    lr_final: float = 0.05
    warmup: int = 100
    """Warm-up steps."""
    val: float = 0.1
    """Share of the zoo for validation (chooses the checkpoint kept)."""
    test: float = 0.2
    """Share of the zoo held out entirely (reported, never seen in training or selection)."""
    eval_every: int = 10
    """Validate and checkpoint every this many epochs."""
    grad_clip: float = 1.0
    seed: int = 0
    """Seed of the split, the model and the data order."""


def learning_rate(config: Schedule, step: int, total: int) -> float:
    """The learning rate of ``step`` of ``total``: linear warm-up, then cosine decay to ``lr * lr_final``."""
    if step < config.warmup:
        return config.lr * (step + 1) / config.warmup
    t = (step - config.warmup) / max(1, total - config.warmup)
    return config.lr * (config.lr_final + (1 - config.lr_final) * 0.5 * (1 + math.cos(math.pi * min(1.0, t))))


def open_state(out: Path, configs: dict, split: dict, sources: str) -> dict:
    """The training state of ``out``: resumed from its state file when the configs and split match (else
    InputError), or a fresh one."""
    state_path = out / STATE_JSON
    if state_path.exists():
        state = read_json(state_path)
        if state.get("configs") != json.loads(json.dumps(configs)) or state.get("split") != split:
            raise InputError(out, f"holds a space trained with other options or {sources}; use another --out")
        return state
    return {"configs": configs, "split": split, "epoch": 0, "step": 0, "history": [], "best": None}


def save_checkpoint(out: Path, model, opt, state: dict, codes=None) -> None:
    """Model, optimiser moments and codes to checkpoint.safetensors, then ``state`` to train_state.json."""
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    if codes is not None:
        tensors["codes"] = codes.detach().cpu().contiguous()
    for i, st in opt.state_dict()["state"].items():
        for k, v in st.items():
            tensors[f"opt.{i}.{k}"] = torch.as_tensor(v).detach().cpu().contiguous()
    atomic_save_tensors(out / CHECKPOINT, tensors)
    atomic_write_json(out / STATE_JSON, state)


def load_checkpoint(out: Path, model, opt, codes=None) -> None:
    """Restore what ``save_checkpoint`` wrote into ``model``, ``opt`` and ``codes``."""
    tensors, _ = load_tensors(out / CHECKPOINT, framework="pt")
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    if codes is not None:
        with torch.no_grad():
            codes.copy_(tensors["codes"])
    state: dict[int, dict] = {}
    for k, v in tensors.items():
        if k.startswith("opt."):
            _, i, name = k.split(".", 2)
            state.setdefault(int(i), {})[name] = v
    sd = opt.state_dict()
    opt.load_state_dict({"state": state, "param_groups": sd["param_groups"]})
