"""The pretrained default shipped inside the package (``--space default``): a shift base, its weight space and a
learned prior over its latents, with a model card. Nothing is downloaded: the files live under
``shapezoo/assets/default`` and ``benchmarks/build_default.py`` rebuilds them; ``card.json`` records every file's
SHA-256, which ``verify`` checks.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import InputError
from ..io import read_json, sha256_file
from ..schema import MapOf
from .learned_init import ASSETS

DEFAULT = "default"
"""The name that stands for the shipped space wherever a command takes ``--space`` (and for its base in ``fit``)."""
PRETRAINED = ASSETS / DEFAULT
CARD_JSON = "card.json"
CARD_MD = "MODEL_CARD.md"
REBUILD = "python3 -m benchmarks.build_default --capod CAPOD_FOLDER --work WORK"


def _folder(part: str) -> Path:
    folder = PRETRAINED / part
    if not folder.is_dir():
        raise InputError(
            folder, f"the pretrained default is not installed in this copy of shapezoo (rebuild: {REBUILD})"
        )
    return folder


def resolve_space(space: str | Path) -> Path:
    """A space folder from what a user typed: ``default`` is the shipped space, anything else a folder path."""
    return _folder("space") if str(space) == DEFAULT else Path(space)


def default_base() -> Path:
    """The folder of the shipped shift base (an init folder: ``load_init`` reads it)."""
    return _folder("base")


def fit_start(out: str | Path) -> str:
    """Where ``fit --init default`` starts when no architecture is asked: the shipped base (so the zoo's fields
    belong to the default space, and a space of them reads them exactly), unless ``out`` is a zoo begun from another
    start (a resumed zoo keeps its own: then ``learned``)."""
    from .learned_init import load_init

    manifest = Path(out) / "zoo.json"
    if manifest.exists():
        stored = read_json(manifest, dict).get("init") or {}
        if stored.get("sha256") != load_init(default_base()).sha256:
            return "learned"
    return str(default_base())


def resolve_prior(prior: str | Path, space: Path) -> str | Path:
    """The prior ``sample`` draws from: ``auto`` is the learned prior kept in the space folder (``SPACE/prior``, as
    the default space ships one), else the Gaussian over the training latents; ``default`` is the shipped prior;
    anything else is ``gaussian`` or a prior folder."""
    if str(prior) == "auto":
        return space / "prior" if (space / "prior").is_dir() else "gaussian"
    if str(prior) == DEFAULT:
        return _folder("space") / "prior"
    return prior


def card() -> dict:
    """The model card's record (data with SHA-256s, recipe, measured quality, limits, files)."""
    return read_json(_folder("") / CARD_JSON, dict)


def verify(root: Path = PRETRAINED) -> dict:
    """Check every file the card lists against its recorded SHA-256 (and that nothing unlisted was added); returns
    the card. A mismatch raises one InputError naming the file."""
    record = read_json(root / CARD_JSON, {"files": MapOf(str)})
    for rel, digest in record["files"].items():
        path = root / rel
        if not path.is_file():
            raise InputError(path, "listed in the model card but missing")
        if sha256_file(path) != digest:
            raise InputError(path, "differs from the SHA-256 its model card records (rebuilt without updating it?)")
    listed = set(record["files"]) | {CARD_JSON}
    extra = sorted(
        str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and str(p.relative_to(root)) not in listed
    )
    if extra:
        raise InputError(root / extra[0], "is not listed in the model card")
    return record
