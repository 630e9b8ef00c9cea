"""What every trainer in shapezoo shares: the batched elementwise Adam of zoos, the schedule of space training,
resumable checkpoints (model + optimiser + codes in safetensors, the loop's state in JSON) and the one epoch loop
both space trainers run (their batches, losses and selection rules stay theirs)."""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import torch

from ..errors import InputError, ShapezooError
from ..io import atomic_save_tensors, atomic_write_json, folder_lock, load_tensors, read_json

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
    train_limit: int = 0
    """Train on only this many of the training members (a random subset; 0: all), for learning curves; the
    validation and test members stay the same."""
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
        state = read_json(state_path, {"epoch": int, "step": int, "history": list, "best": object})
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


class BatchTerms(NamedTuple):
    """What a trainer's step gives the loop: its loss terms (``total`` among them), the rows this rank held, this
    rank's share factor (``Ranks.share``) and the size of the whole batch."""

    terms: dict[str, torch.Tensor]
    rows: int
    share: float
    size: int


@dataclass
class Loop:
    """A space trainer's state for ``train_loop``: output folder, model, optimiser, resumable state and ranks; the
    run's length in epochs and optimiser steps, the training members' count, the learned codes if any."""

    out: Path
    model: torch.nn.Module
    opt: torch.optim.Optimizer
    state: dict
    group: Ranks
    epochs: int
    total: int
    n_train: int
    codes: torch.Tensor | None = None


def train_loop(
    loop: Loop,
    config: Schedule,
    batches: Callable[[int, torch.Generator], Iterable[Any]],
    step_terms: Callable[[Any, torch.Generator], BatchTerms],
    record: Callable[[dict], None],
    on_eval: Callable[[dict], None] | None = None,
) -> tuple[int, int, float]:
    """Run the epochs ``loop.state`` has not run. Each epoch draws from one seeded generator: ``batches(epoch, g)``
    orders the batches, ``step_terms(batch, g)`` computes one batch's loss; the loop sets the scheduled learning
    rate (times a parameter group's ``scale``), steps AdamW with clipped gradients and stops on divergence. Every
    ``eval_every`` epochs (and the last) rank 0 builds the epoch's entry, ``record(entry)`` validates, logs and keeps
    the best, and the checkpoint is written. Returns the steps taken in all, members trained and seconds, this run."""
    state, group, opt = loop.state, loop.group, loop.opt
    started, step, trained = time.perf_counter(), state["step"], 0
    for epoch in range(state["epoch"], loop.epochs):
        loop.model.train()
        g = torch.Generator().manual_seed(config.seed * 100003 + epoch)
        sums: dict[str, float] = {}
        for batch in batches(epoch, g):
            terms, rows, share, size = step_terms(batch, g)
            for param_group in opt.param_groups:
                param_group["lr"] = learning_rate(config, step, loop.total) * param_group.get("scale", 1.0)
            opt.zero_grad(set_to_none=True)
            (terms["total"] * share if group.world > 1 else terms["total"]).backward()
            torch.nn.utils.clip_grad_norm_(loop.model.parameters(), config.grad_clip)
            opt.step()
            step, trained = step + 1, trained + size
            for k, v in terms.items():
                sums[k] = sums.get(k, 0.0) + float(v.detach()) * rows * (share > 0)
            if not math.isfinite(sums["total"]):
                raise ShapezooError(f"space training diverged at epoch {epoch + 1} (loss {sums['total']})")
        if (epoch + 1) % config.eval_every == 0 or epoch + 1 == loop.epochs:
            sums = group.sum(sums)
            if not group.lead:
                group.barrier()  # rank 0 validates and writes the checkpoint
                continue
            lr = learning_rate(config, step - 1, loop.total)
            entry = {
                "epoch": epoch + 1,
                "step": step,
                "lr": lr,
                "train": {k: v / loop.n_train for k, v in sums.items()},
            }
            record(entry)
            state.update(epoch=epoch + 1, step=step)
            save_checkpoint(loop.out, loop.model, opt, state, loop.codes)
            group.barrier()
            if on_eval is not None:
                on_eval(entry)
    return step, trained, time.perf_counter() - started


def parallel(objective: torch.nn.Module, group: Ranks, device: torch.device) -> torch.nn.Module:
    """The objective as every rank trains it: wrapped in DistributedDataParallel when there are several ranks
    (unused parameters allowed: some layers have no input in some batches), else itself."""
    if group.world == 1:
        return objective
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(objective, device_ids=ids, find_unused_parameters=True)


@dataclass(frozen=True)
class Ranks:
    """This process's place in a distributed run (torchrun + DistributedDataParallel): rank 0 of 1 when alone."""

    rank: int = 0
    world: int = 1

    @property
    def lead(self) -> bool:
        """Rank 0 writes the output folder (checkpoints, the space) and evaluates."""
        return self.rank == 0

    def share(self, batch: torch.Tensor) -> tuple[slice, float]:
        """This rank's rows of a global batch (contiguous chunks) and the factor on its mean loss that makes DDP's
        gradient average equal the single-process mean over the whole batch (0 for an empty share, which still
        runs one row so every rank joins the all-reduce)."""
        if self.world == 1:
            return slice(None), 1.0
        sizes = [len(c) for c in batch.tensor_split(self.world)]
        lo = sum(sizes[: self.rank])
        if sizes[self.rank] == 0:
            return slice(0, 1), 0.0
        return slice(lo, lo + sizes[self.rank]), sizes[self.rank] * self.world / len(batch)

    def lock(self, out: Path) -> AbstractContextManager:
        """The output folder's lock, held by the lead rank only."""
        return folder_lock(out) if self.lead else nullcontext()

    def barrier(self) -> None:
        if self.world > 1:
            import torch.distributed as dist

            dist.barrier()

    def sum(self, values: dict[str, float]) -> dict[str, float]:
        """Per-key sums over all ranks (each rank's share of an epoch's loss sums)."""
        if self.world == 1:
            return values
        import torch.distributed as dist

        keys = sorted(values)
        total = torch.tensor([values[k] for k in keys], dtype=torch.float64)
        dist.all_reduce(total)
        return dict(zip(keys, total.tolist()))


def ranks() -> Ranks:
    """The distributed run this process is part of (torch.distributed initialised), else a single process."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return Ranks(dist.get_rank(), dist.get_world_size())
    return Ranks()


@contextmanager
def distributed(device: torch.device) -> Iterator[torch.device]:
    """Be one rank of the process group torchrun describes (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT in the
    environment) for the duration: gloo on CPU, NCCL on CUDA. Yields this rank's device (``cuda:LOCAL_RANK`` on
    CUDA)."""
    import torch.distributed as dist

    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        raise ShapezooError("--distributed needs torchrun's environment (run under torchrun --nproc-per-node N)")
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    try:
        yield device
        _leave_together(device)
    finally:
        dist.destroy_process_group()


def _leave_together(device: torch.device) -> None:
    """Wait until every rank has finished before any tears the group down: a rank that destroys its gloo context
    while a peer is still working (rank 0's final evaluation and writes) can abort in gloo's teardown. On gloo the
    wait is a monitored barrier with a generous timeout of its own, so a long final evaluation is not mistaken for
    a hang."""
    import datetime

    import torch.distributed as dist

    if device.type == "cuda":
        dist.barrier()
    else:
        dist.monitored_barrier(timeout=datetime.timedelta(hours=2))
