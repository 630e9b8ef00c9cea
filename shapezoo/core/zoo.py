"""Zoos on disk: many trained networks of one architecture (zoo.json + safetensors shards), written atomically.

Every modality uses the same format; ``kind`` in zoo.json (``field``, ``classifier``, or any kind registered
with ``core.spec.register_kind``) says which NetworkSpec reads the architecture. The format tag
``shapezoo.fieldzoo/1`` names the container for every kind (it predates the classifier zoos; kept so existing
zoos stay readable).
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

import torch

from ..errors import InputError, ShapezooError
from ..io import (
    atomic_save_tensors,
    atomic_write_bytes,
    atomic_write_json,
    ensure_output_dir,
    inside,
    load_tensors,
    locks,
    output_file,
    read_json,
    read_record,
)
from ..schema import MapOf, Num, Opt, check, check_tensor, plain_name
from .spec import NetworkSpec, kind_classes

S = TypeVar("S", bound=NetworkSpec)

ZOO_FORMAT = "shapezoo.fieldzoo/1"
ZOO_JSON = "zoo.json"
INIT_FILE = "init.safetensors"


SUPERSEDED = "superseded"
"""Status of an entry replaced by a later retry of the same name (kept in its shard, never loaded)."""


def _retryable(entry: dict) -> bool:
    """A field that failed before fitting (unreadable or unusable input): no metrics were recorded."""
    return entry.get("status") == "failed" and not entry.get("metrics")


def member_seed(seed: int, name: str) -> int:
    """A per-member seed from a base seed and the member's name, independent of batch composition."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{name}".encode()).digest()[:8], "little") >> 1


def shard_name(i: int) -> str:
    return f"weights-{i:05d}.safetensors"


ENTRY = {"name": str, "status": str, "shard": Num(lo=0, integer=True), "metrics?": Opt(MapOf(object))}
"""What ``load_zoo`` checks of every entry in zoo.json (a kind's zoo class may ask for more: ``Zoo.entry``)."""

HEADER = {
    "format": str,
    "kind?": str,
    "spec": dict,
    "param_count": int,
    "shards": [{"file": str, "count": Num(lo=0, integer=True)}],
    "fields": list,
}


@dataclass
class Zoo(Generic[S]):
    """Networks of one architecture: ``params`` (N, P) with one entry per row (name, status, metrics, ...)."""

    entry: ClassVar[dict] = ENTRY
    """The shape every entry of zoo.json must have (``schema.check``)."""

    spec: S
    params: torch.Tensor
    entries: list[dict]
    init: torch.Tensor
    meta: dict

    _rows: tuple[int, dict[str, int]] = field(default=(-1, {}), init=False, repr=False, compare=False)
    """(entries indexed, row of each name): built on the first lookup and again when entries are added, so a lookup
    by name is O(1); a list search per member made whole-zoo passes quadratic in a 10k-field zoo."""

    @property
    def names(self) -> list[str]:
        return [e["name"] for e in self.entries]

    def index(self, name: str) -> int:
        indexed, rows = self._rows
        if indexed != len(self.entries):  # reversed: a repeated name finds its first row, as a list search did
            rows = {e["name"]: i for i, e in reversed(list(enumerate(self.entries)))}
            self._rows = (len(self.entries), rows)
        try:
            return rows[name]
        except KeyError:
            raise ShapezooError(f"no field named '{name}' in the zoo ({len(self.entries)} fields)") from None

    def weights(self, name: str) -> torch.Tensor:
        """(P,) weights of one field."""
        return self.params[self.index(name)]

    def unusable(self, name: str) -> str | None:
        """Why a field cannot be meshed or scored (NaN/inf weights, or it failed to fit), or None if it can."""
        i = self.index(name)
        if not torch.isfinite(self.params[i]).all():
            return f"{name}: field weights contain NaN or inf"
        if self.entries[i].get("status") == "failed":
            return f"{name}: the field failed to fit ({self.entries[i].get('error', 'no error recorded')})"
        return None

    def nonfinite(self) -> list[str]:
        """Names of fields whose weights contain NaN or inf."""
        bad = ~torch.isfinite(self.params).all(dim=1)
        return [n for n, b in zip(self.names, bad.tolist()) if b]

    def counts(self) -> dict:
        """Spec, size and how many members fitted, failed or hold NaN weights, as JSON (the head of ``info``)."""
        return {
            "spec": self.spec.to_json(),
            "param_count": self.spec.layout().size,
            "fields": len(self.entries),
            "ok": sum(e["status"] == "ok" for e in self.entries),
            "failed": sum(e["status"] == "failed" for e in self.entries),
            "nonfinite": self.nonfinite(),
        }

    def module(self, name: str) -> torch.nn.Module:
        """One member as a ready-to-use ``nn.Module``."""
        return self.spec.module(self.weights(name))

    def select(self, names: list[str] | None) -> tuple[list[str], list[str]]:
        """(chosen, skipped): ``names`` (each must be usable, else ShapezooError), or with None every usable
        member, and one line per member left out saying why."""
        if names is None:
            problems = {n: self.unusable(n) for n in self.names}
            return [n for n, p in problems.items() if p is None], [p for p in problems.values() if p]
        for n in names:
            if problem := self.unusable(n):
                raise ShapezooError(problem)
        return list(names), []

    def stack(self, names: list[str]) -> torch.Tensor:
        """(len(names), P) weights of the named members."""
        if not names:
            return torch.zeros(0, self.spec.layout().size)
        return self.params[[self.index(n) for n in names]]


def _header(spec: NetworkSpec, meta: dict) -> dict:
    return {
        "format": ZOO_FORMAT,
        "kind": spec.zoo_kind,
        "spec": spec.to_json(),
        "layout": spec.layout().to_json(),
        "param_count": spec.layout().size,
        **meta,
        "shards": [],
        "fields": [],
    }


class ZooWriter:
    """Appends shards of fitted fields to a zoo directory; reopening the same directory resumes it.

    Each shard file is written atomically before ``zoo.json`` (also atomic) lists it, so a killed job leaves a
    valid zoo of the shards it finished; finished shards are never rewritten.
    """

    def __init__(self, path: str | Path, spec: NetworkSpec, init: torch.Tensor, meta: dict):
        self.path = ensure_output_dir(path)
        self.spec = spec
        meta = json.loads(json.dumps(meta))  # compare as stored (tuples become lists)
        manifest = self.path / ZOO_JSON
        if manifest.exists():
            self.header = read_json(manifest, HEADER)
            for key, want in (("format", ZOO_FORMAT), ("spec", json.loads(json.dumps(spec.to_json())))):
                if self.header.get(key) != want:
                    raise InputError(
                        manifest,
                        f"existing zoo has a different {key} ({self.header.get(key)}); "
                        "use another --out or the same options",
                    )
            for key, want in meta.items():
                if self.header.get(key) != want:
                    raise InputError(
                        manifest,
                        f"existing zoo was made with a different '{key}'; use another --out or the same options",
                    )
        else:
            self.header = _header(spec, meta)
            atomic_save_tensors(self.path / INIT_FILE, {"params": init.detach().float().cpu().contiguous()})
            atomic_write_json(manifest, self.header)

    def done(self) -> set[str]:
        """Names of fields already stored: fitted, or failed while fitting. Fields whose input could not be read
        (failed with no metrics) are not done: a rerun retries them, in case the file was mended."""
        return {e["name"] for e in self.header["fields"] if not _retryable(e) and e.get("status") != SUPERSEDED}

    def next_shard(self) -> int:
        """Index of the next shard to register."""
        return len(self.header["shards"])

    def append(self, params: torch.Tensor, entries: list[dict]) -> None:
        """Store a shard: (n, P) weights and their n entries (``write_shard``, then ``register``)."""
        self.spec.layout().check(params)
        i = self.next_shard()
        write_shard(self.path / shard_name(i), params, entries)
        self.register(i, entries)

    def register(self, i: int, entries: list[dict]) -> None:
        """List shard ``i`` (written already, by this process or a worker) and its entries in ``zoo.json``, in order.
        An earlier unreadable entry of the same name is marked superseded in the same atomic write (its row stays in
        its shard, unlisted by ``load_zoo``)."""
        if i != self.next_shard():
            raise ShapezooError(f"shard {i} registered out of order (next is {self.next_shard()})")
        again = {e["name"] for e in entries}
        for old in self.header["fields"]:
            if old["name"] in again and _retryable(old):
                old["status"] = SUPERSEDED
        self.header["shards"].append({"file": shard_name(i), "count": len(entries)})
        self.header["fields"].extend({**e, "shard": i} for e in entries)
        atomic_write_json(self.path / ZOO_JSON, self.header)


def write_shard(path: Path, params: torch.Tensor, entries: list[dict]) -> None:
    """A shard file: (n, P) weights and the names of its n entries, atomically (``ZooWriter.register`` lists it)."""
    if len(entries) != params.shape[0]:
        raise ShapezooError(f"{len(entries)} entries for {params.shape[0]} weight rows")
    atomic_save_tensors(
        path, {"params": params.detach().float().cpu().contiguous()}, {"names": ",".join(e["name"] for e in entries)}
    )


def export_member(zoo: Zoo, name: str, out: Path) -> dict:
    """Write one member as a state_dict: ``.safetensors``, or ``.pt`` (a torch pickle of tensors and strings only,
    which ``torch.load(path, weights_only=True)`` reads without running code); the spec JSON rides along."""
    output_file(out)
    if out.suffix not in (".safetensors", ".pt", ".pth"):
        raise ShapezooError(f"{out}: unsupported export format '{out.suffix}' (.safetensors or .pt)")
    if problem := zoo.unusable(name):
        raise ShapezooError(f"{problem}; not exported")
    state = zoo.spec.layout().to_state_dict(zoo.weights(name))
    spec_meta = {"spec": json.dumps(zoo.spec.to_json()), "name": name}
    if out.suffix == ".safetensors":
        atomic_save_tensors(out, state, spec_meta)
    else:
        buf = io.BytesIO()
        torch.save({"state_dict": state, **spec_meta}, buf)
        atomic_write_bytes(out, buf.getvalue())
    return {"name": name, "out": str(out), "spec": zoo.spec.to_json(), "parameters": zoo.spec.layout().size}


@locks("path")
def save_zoo(
    path: str | Path, spec: NetworkSpec, params: torch.Tensor, entries: list[dict], init: torch.Tensor, meta: dict
) -> None:
    """Write a whole zoo at once (e.g. decoded fields) as a single shard."""
    path = Path(path)
    if (path / ZOO_JSON).exists():
        raise InputError(path, "already holds a zoo; choose a new output folder")
    ZooWriter(path, spec, init, meta).append(params, entries)


def load_zoo(path: str | Path, kind: str | tuple[str, ...] = "field") -> Any:
    """Read and validate a zoo of ``kind`` (field, classifier or a registered kind; a tuple: any of them); any
    mismatch raises InputError naming the file and the problem. Returns the kind's zoo class (a FieldZoo for fields,
    else a Zoo)."""
    path = Path(path)
    manifest = path / ZOO_JSON
    header = read_record(path, ZOO_JSON, ZOO_FORMAT, "field zoo")
    check(header, HEADER, manifest)
    found = header.get("kind", "field")
    kinds = (kind,) if isinstance(kind, str) else kind
    if found not in kinds:
        article = "an" if found[0] in "aeiou" else "a"
        raise InputError(manifest, f"holds {article} {found} zoo; this needs a {' or '.join(kinds)} zoo")
    spec_cls: Any
    spec_cls, registered = kind_classes(found)
    zoo_cls: Any = registered or Zoo
    try:
        spec = spec_cls.from_json(header["spec"])
    except (KeyError, TypeError, ValueError, ShapezooError) as exc:
        raise InputError(manifest, f"invalid architecture spec ({exc})") from None
    P = spec.layout().size
    if header["param_count"] != P:
        raise InputError(manifest, f"param_count {header['param_count']} does not match the spec ({P})")
    shards, fields = header["shards"], header["fields"]
    check(fields, [zoo_cls.entry], manifest, "fields")
    seen: set[str] = set()
    for e in fields:
        name = plain_name(e["name"], manifest)
        if e["status"] == SUPERSEDED:
            continue
        if name in seen:
            raise InputError(manifest, f"lists the field name '{name}' twice")
        seen.add(name)
    rows: list[torch.Tensor] = []
    entries: list[dict] = []
    for i, shard in enumerate(shards):
        file = inside(path, shard["file"], manifest)
        tensors, shard_meta = load_tensors(file, framework="pt")
        params = check_tensor(tensors, "params", file, (shard["count"], P), finite=False)  # NaN rows: Zoo.unusable
        listed = [e for e in fields if e.get("shard") == i]
        stored = shard_meta.get("names")
        if stored is not None and stored.split(",") != [e["name"] for e in listed]:
            raise InputError(manifest, f"the names it lists for shard {shard['file']} differ from the shard's own")
        keep = [j for j, e in enumerate(listed) if e.get("status") != SUPERSEDED]
        rows.append(params[keep].float())
        entries.extend(listed[j] for j in keep)
    params = torch.cat(rows) if rows else torch.zeros(0, P)
    if len(entries) != params.shape[0]:
        raise InputError(manifest, f"lists {len(entries)} fields but the shards hold {params.shape[0]}")
    init = check_tensor(load_tensors(path / INIT_FILE, framework="pt")[0], "params", path / INIT_FILE, (P,))
    meta = {k: v for k, v in header.items() if k not in ("format", "spec", "layout", "param_count", "shards", "fields")}
    return zoo_cls(spec, params, entries, init.float(), meta)
