"""Every reader of what shapezoo finds on disk against hypothesis-generated damage: a valid file with one part
replaced by arbitrary JSON (or a key removed), or tensors of arbitrary names, shapes, dtypes and values. Each reader
either accepts the file or answers with one ShapezooError that names the file; nothing else escapes."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shapezoo.core.latents import LATENTS_FILE, read_latents
from shapezoo.core.prior import PriorConfig, load_prior, train_prior
from shapezoo.core.zoo import load_zoo
from shapezoo.errors import ShapezooError
from shapezoo.fields.samples import read_index
from shapezoo.fields.space import load_space
from shapezoo.io import atomic_save_tensors

FUZZ = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=os.environ.get("FUZZ_SEED") is None,
    database=None,
)  # the same examples on every machine and run; FUZZ_SEED=N with --hypothesis-seed=N explores others

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.just(10**400)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=6)
)
JSON = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)


@st.composite
def damaged(draw, doc):
    """``doc`` with one node (the whole document included) replaced by arbitrary JSON, or one key removed."""
    doc = json.loads(json.dumps(doc))
    parent, key, node = None, None, doc
    while isinstance(node, (dict, list)) and node and draw(st.booleans()):
        keys = list(node) if isinstance(node, dict) else list(range(len(node)))
        parent, key = node, draw(st.sampled_from(keys))
        node = node[key]
    if parent is None:
        return draw(JSON)
    if isinstance(parent, dict) and draw(st.booleans()):
        del parent[key]
    else:
        parent[key] = draw(JSON)
    return doc


def _answers_in_one_line(read, folder: Path) -> None:
    """``read()`` succeeds or raises a ShapezooError naming ``folder`` (or a file in it)."""
    try:
        read()
    except ShapezooError as exc:
        assert str(folder) in str(exc) and "\n" not in str(exc), str(exc)


def _fuzz_json(source: Path, file: str, read) -> None:
    """Run ``read(copy)`` over damaged versions of ``file`` in a copy of the folder ``source``."""
    doc = json.loads((source / file).read_text())
    work = Path(tempfile.mkdtemp()) / source.name
    shutil.copytree(source, work, ignore=shutil.ignore_patterns(".shapezoo.lock"))

    @FUZZ
    @given(damaged(doc))
    def check(bad):
        (work / file).write_text(json.dumps(bad))
        _answers_in_one_line(lambda: read(work), work)

    check()
    shutil.rmtree(work.parent)


def test_zoo_json(tiny_zoo):
    _fuzz_json(Path(tiny_zoo), "zoo.json", load_zoo)


def test_space_json(trained):
    _fuzz_json(Path(trained[0]), "space.json", load_space)


def test_classifier_space_json(mlp_space):
    from shapezoo.classifiers.space import load_classifier_space

    _fuzz_json(Path(mlp_space[0]), "space.json", load_classifier_space)


@pytest.fixture(scope="module")
def prior(trained, tmp_path_factory):
    out = tmp_path_factory.mktemp("fuzz_prior") / "prior"
    train_prior(trained[0], out, PriorConfig(steps=10, batch=8, hidden=8, blocks=1, eval_every=5, sample_steps=2))
    return out


def test_prior_json(prior):
    _fuzz_json(prior, "prior.json", load_prior)


def test_samples_json(tmp_path):
    from space_zoo import write_meshes

    from shapezoo.fields.samples import SampleConfig, sample_meshes

    sample_meshes(write_meshes(tmp_path / "m", 2), tmp_path / "s", SampleConfig(points=200))
    _fuzz_json(tmp_path / "s", "samples.json", read_index)


def test_learned_init_json(tmp_path):
    from space_zoo import write_meshes

    from shapezoo.fields.learned_init import InitConfig, learn_init, load_init
    from shapezoo.fields.network import FieldSpec
    from shapezoo.fields.samples import SampleConfig, sample_meshes

    sample_meshes(write_meshes(tmp_path / "m", 2), tmp_path / "s", SampleConfig(points=200))
    config = InitConfig(outer_steps=1, inner_steps=1, batch=2, points_per_step=32, checkpoint_every=1)
    learn_init([tmp_path / "s"], tmp_path / "init", FieldSpec(width=8, depth=1), config)
    _fuzz_json(tmp_path / "init", "init.json", load_init)


DTYPES = st.sampled_from([torch.float32, torch.float16, torch.float64, torch.int32, torch.uint8])


@st.composite
def tensors(draw, names):
    """A dict of 0-3 tensors with names from ``names`` (or others), small random shapes, dtypes and values (NaN and
    inf included)."""
    out = {}
    for name in draw(st.lists(st.sampled_from([*names, "other"]), max_size=3, unique=True)):
        shape = draw(st.lists(st.integers(0, 4), max_size=3))
        value = draw(st.sampled_from([0.0, 1.0, float("nan"), float("inf"), -2.5]))
        out[name] = torch.full(shape, value).to(draw(DTYPES))
    return out


def _fuzz_tensors(folder: Path, file: str, names: list[str], read, metadata=None) -> None:
    @FUZZ
    @given(tensors(names), metadata if metadata is not None else st.just(None))
    def check(found, meta):
        path = folder / file
        if found:
            atomic_save_tensors(path, {k: v.contiguous() for k, v in found.items()}, meta)
        else:
            path.write_bytes(b"")  # no tensors at all: an empty (invalid) file
        _answers_in_one_line(lambda: read(folder), folder)

    check()


def test_zoo_weights_and_init_tensors(tiny_zoo, tmp_path):
    work = shutil.copytree(tiny_zoo, tmp_path / "zoo", ignore=shutil.ignore_patterns(".shapezoo.lock"))
    _fuzz_tensors(work, "weights-00000.safetensors", ["params"], load_zoo)
    shutil.copy(Path(tiny_zoo) / "weights-00000.safetensors", work)
    _fuzz_tensors(work, "init.safetensors", ["params"], load_zoo)


def test_prior_tensors(prior, tmp_path):
    work = shutil.copytree(prior, tmp_path / "prior")
    _fuzz_tensors(work, "prior.safetensors", ["mean", "basis", "model.blocks.0.weight"], load_prior)


def test_sample_file_tensors_and_metadata(tmp_path):
    from shapezoo.fields.samples import load_samples

    meta = st.dictionaries(st.sampled_from(["n_uniform", "name"]), st.text(max_size=4), max_size=2)
    _fuzz_tensors(tmp_path, "a.safetensors", ["points", "occupancy"], lambda f: load_samples(f / "a.safetensors"), meta)


def test_latents_tensors_and_metadata(tmp_path):
    meta = st.dictionaries(st.sampled_from(["names", "labels", "zoo"]), JSON.map(json.dumps), max_size=3)
    _fuzz_tensors(tmp_path, LATENTS_FILE, ["z"], lambda f: read_latents(f / LATENTS_FILE), meta)
