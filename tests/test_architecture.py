"""The shape of the code: one folder per layer and every import arrow pointing down (foundation <- core <- fields |
classifiers <- apps <- cli, datasets beside the foundation, benchmarks on top), the two modalities never importing
each other, the field modules in one reading order, no import circles (lazy imports included), modules and functions
of a readable size; and the core's registry, batched Adam and the fixed correctness nits behave."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest
import torch

import shapezoo
from shapezoo.core.spec import BUILTIN, NetworkSpec, kind_classes, register_kind
from shapezoo.core.training import adam_step_
from shapezoo.errors import ShapezooError

REPO = Path(shapezoo.__file__).parents[1]
PACKAGES = {"shapezoo": "shapezoo", "cli": "shapezoo_cli", "datasets": "shapezoo_datasets", "benchmarks": "benchmarks"}
# Folder -> layer, with no default: a module in a folder not listed here fails test_every_module_has_a_layer.
LAYERS = {
    "shapezoo": "foundation",  # the package's own files: errors, io, runtime, schema, weights
    "shapezoo.core": "core",
    "shapezoo.fields": "fields",
    "shapezoo.fields.space": "fields",
    "shapezoo.classifiers": "classifiers",
    "shapezoo.images": "images",
    "shapezoo.apps": "apps",
    "shapezoo_datasets": "datasets",
    "shapezoo_cli": "cli",
    "benchmarks": "benchmarks",
}
ALLOWED = {
    "foundation": {"foundation"},
    "datasets": {"foundation", "datasets"},
    "core": {"foundation", "core"},
    "fields": {"foundation", "core", "fields"},
    "classifiers": {"foundation", "core", "classifiers"},
    # image fields: the field network over the classifiers' image datasets, so above both modalities
    "images": {"foundation", "core", "fields", "classifiers", "images"},
    "api": {"foundation", "core", "fields", "classifiers"},  # shapezoo/__init__.py: the public names, loaded lazily
    "apps": {"foundation", "datasets", "core", "fields", "classifiers", "images", "apps"},
    "cli": {"foundation", "datasets", "core", "fields", "classifiers", "images", "apps", "api", "cli"},
}
ALLOWED["benchmarks"] = ALLOWED["cli"] | {"benchmarks"}
# The field modality read top to bottom: each module imports only field modules listed before it.
FIELDS_ORDER = [
    "meshes",  # mesh files into the frame
    "training_points",  # which points a fit sees
    "sine",  # SIREN's sin and cos in one compiled pass on the CPU
    "network",  # architectures and the one batched forward
    "samples",  # occupancy samples of meshes
    "mesh_metrics",  # Chamfer, F-score, IoU
    "fitting",  # B fields fitted together
    "learned_init",  # where fits start
    "pretrained",  # the shipped default: base, space, prior
    "shift_base",  # shared weights, per-field biases
    "fit_job",  # the resumable zoo job
    "extract",  # field -> mesh
    "evaluation",  # fields and meshes against references
    "render",  # PNG renders
    "generation",  # are generated shapes good and new
    "probing",  # what latents and weights tell about a member
    "space.designs",  # weight autoencoders
    "space.model",  # a space on disk
    "space.objective",  # probe points, distillation loss, refinement
    "space.inference",  # latent optimisation against evidence
    "space.train",  # training a space
    "space.operations",  # encode meshes, interpolate, complete, sample
    "space.jobs",  # what the CLI runs
    "space",  # the space's public names
]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    parts[0] = PACKAGES[parts[0]]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


FILES = {module_name(p): p for top in PACKAGES for p in (REPO / top).rglob("*.py")}


def imports(path: Path) -> set[str]:
    """Project modules imported anywhere in the file (top level and inside functions)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] in PACKAGES.values()}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if mod.split(".")[0] in PACKAGES.values():
                # `from . import x` / `from .pkg import mod` may name submodules
                found |= {f"{mod}.{a.name}" if f"{mod}.{a.name}" in FILES else mod for a in node.names}
    return found - {name}


GRAPH = {name: imports(path) for name, path in FILES.items()}


def layer(module: str) -> str | None:
    """The layer of the folder the module's file lies in (a package's ``__init__`` lies in its own folder)."""
    if module == "shapezoo":
        return "api"
    path = FILES.get(module)
    return LAYERS.get(module if path is None or path.name == "__init__.py" else module.rsplit(".", 1)[0])


def field_rank(module: str) -> int | None:
    short = module.removeprefix("shapezoo.fields.")
    return FIELDS_ORDER.index(short) if short in FIELDS_ORDER else None


def violations(graph: dict[str, set[str]]) -> list[str]:
    """Every arrow that points up or sideways: across layers against ALLOWED, inside fields/ against FIELDS_ORDER."""
    wrong = []
    for m, targets in graph.items():
        for i in targets:
            if layer(i) not in ALLOWED[layer(m)]:
                wrong.append(f"{m} ({layer(m)}) imports {i} ({layer(i)})")
            elif layer(m) == layer(i) == "fields" and m != "shapezoo.fields" and field_rank(i) >= field_rank(m):
                wrong.append(f"{m} imports {i}, which FIELDS_ORDER puts after it")
    return wrong


def test_every_module_has_a_layer_and_every_field_module_a_place():
    assert not [m for m in GRAPH if layer(m) is None]
    fields = {m.removeprefix("shapezoo.fields.") for m in GRAPH if m.startswith("shapezoo.fields.")}
    assert fields == set(FIELDS_ORDER)


def test_every_arrow_points_down():
    wrong = violations(GRAPH)
    assert not wrong, "\n".join(wrong)


def test_a_planted_upward_or_sideways_import_is_caught():
    """The checker itself: core importing a modality, a modality importing the other, a field module importing
    one read after it, the foundation importing the core."""
    for m, i in [
        ("shapezoo.core.zoo", "shapezoo.fields.network"),
        ("shapezoo.fields.network", "shapezoo.classifiers.archs"),
        ("shapezoo.fields.samples", "shapezoo.fields.fitting"),
        ("shapezoo.io", "shapezoo.core.zoo"),
        ("shapezoo.fields.extract", "shapezoo.apps.report"),
    ]:
        assert violations({m: {i}}), (m, i)
    assert not violations({"shapezoo.fields.fitting": {"shapezoo.fields.samples"}})


def test_the_kinds_the_core_loads_by_name_are_modality_modules_that_register_them():
    """core.spec imports each built-in kind's module by name (an arrow the AST cannot see): each one lies in a
    modality layer and registering is what importing it does."""
    for kind, module in BUILTIN.items():
        assert layer(module) in {"fields", "classifiers", "images"}, module
        importlib.import_module(module)
        assert kind_classes(kind)[0].__module__ == module


def test_no_import_circles():
    modules = {m: {i for i in deps if i in GRAPH and i != "shapezoo"} for m, deps in GRAPH.items() if m != "shapezoo"}
    # a package __init__ that re-exports its modules is not a circle with them
    modules = {m: {i for i in deps if not m.startswith(i + ".")} for m, deps in modules.items()}
    state: dict[str, int] = {}
    cycles = []

    def visit(m: str, stack: list[str]) -> None:
        state[m] = 1
        for n in modules.get(m, ()):
            if state.get(n) == 1:
                cycles.append(" -> ".join(stack[stack.index(n) :] + [n]))
            elif n not in state:
                visit(n, stack + [n])
        state[m] = 2

    for m in sorted(modules):
        if m not in state:
            visit(m, [m])
    assert not cycles, "\n".join(cycles)


def test_modules_and_functions_stay_readable():
    """No library or CLI module over 450 lines, no function over 80 (benchmarks are scripts, exempt)."""
    long = []
    for name, path in FILES.items():
        if name.startswith("benchmarks"):
            continue
        tree = ast.parse(path.read_text())
        lines = len(path.read_text().splitlines())
        if lines > 450:
            long.append(f"{path.relative_to(REPO)}: {lines} lines")
        long += [
            f"{path.relative_to(REPO)}:{n.lineno} {n.name}: {n.end_lineno - n.lineno + 1} lines"
            for n in ast.walk(tree)
            if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef) and n.end_lineno - n.lineno + 1 > 80
        ]
    assert not long, "\n".join(long)


def test_registry_reads_every_builtin_kind_and_refuses_unknown_ones():
    from shapezoo.classifiers.archs import ClassifierSpec
    from shapezoo.fields.network import FieldSpec, FieldZoo

    assert kind_classes("field") == (FieldSpec, FieldZoo)
    assert kind_classes("classifier")[0] is ClassifierSpec
    for spec in (FieldSpec(width=8, depth=1), ClassifierSpec("mlp", 4)):
        assert isinstance(spec, NetworkSpec)
        assert type(spec).from_json(spec.to_json()) == spec
        w = torch.randn(2, spec.layout().size) * 0.1
        x = torch.rand(2, 5, 3) - 0.5 if spec.zoo_kind == "field" else torch.rand(5, 1, 8, 8)
        module = spec.module(w[0])
        assert torch.allclose(module(x[0] if spec.zoo_kind == "field" else x), spec.forward(w, x)[0], atol=1e-5)
    with pytest.raises(ShapezooError, match="unknown zoo kind 'audio'"):
        kind_classes("audio")
    with pytest.raises(ShapezooError, match="zoo_kind must be 'audio'"):
        register_kind("audio", FieldSpec)


def test_batched_adam_is_independent_adams():
    """adam_step_ over stacked (B, P) weights with per-row lr and step counts equals torch.optim.Adam per row."""
    torch.manual_seed(0)
    p0, lrs = torch.randn(3, 7), [1e-2, 3e-3, 0.0]
    p, m, v = p0.clone(), torch.zeros(3, 7), torch.zeros(3, 7)
    refs = [p0[i].clone().requires_grad_(True) for i in range(3)]
    opts = [torch.optim.Adam([r], lr=lr) for r, lr in zip(refs, lrs)]
    for t in range(1, 6):
        grads = torch.randn(3, 7)
        adam_step_(p, grads, m, v, torch.full((3, 1), float(t)), torch.tensor(lrs)[:, None])
        for r, o, g in zip(refs, opts, grads):
            r.grad = g.clone()
            o.step()
    assert torch.allclose(p, torch.stack([r.detach() for r in refs]), atol=1e-6)
    assert torch.equal(p[2], p0[2])  # lr 0: does not move


@pytest.mark.parametrize("kernel", [True, False])
def test_the_fused_sine_layers_give_autograds_gradients_once(kernel):
    """field_forward's layers (sin and cos from one pass, cos scaled in place by the backward, the output layer's
    own gradient layout) give the gradients plain autograd gives the exported module; a second backward through the
    same graph is refused, not silently wrong."""
    from shapezoo.fields import sine
    from shapezoo.fields.network import FieldSpec, field_forward, init_params

    spec = FieldSpec(width=16, depth=2)
    params = init_params(spec, 0)[None].requires_grad_(True)
    x = torch.rand(1, 64, 3) - 0.5
    with sine.kernel_enabled(kernel):
        out = field_forward(spec, params, x).sum()
        (g1,) = torch.autograd.grad(out, params, retain_graph=True)
        with pytest.raises(RuntimeError, match="modified by an inplace operation"):
            torch.autograd.grad(out, params)
    module = spec.module(params[0].detach())
    module.zero_grad()
    ref = module(x[0]).sum()
    ref.backward()
    flat = spec.layout().flatten({k: v.grad for k, v in module.named_parameters()})
    assert torch.allclose(out, ref, rtol=1e-5, atol=1e-5)
    assert torch.allclose(g1[0], flat, rtol=1e-4, atol=1e-5), (g1[0] - flat).abs().max()


def test_fitting_leaves_the_process_allocator_alone(monkeypatch):
    """fit_fields does not change process-wide settings (the CLI opts in to reuse_freed_memory for its process)."""
    from shapezoo import runtime
    from shapezoo.fields.fitting import FitConfig, fit_fields
    from shapezoo.fields.network import FieldSpec, init_params

    calls = []
    monkeypatch.setattr(runtime, "reuse_freed_memory", lambda: calls.append(1))
    spec = FieldSpec(width=8, depth=1)
    x = torch.rand(2, 200, 3) - 0.5
    y = (x.norm(dim=-1) < 0.3).float()
    result = fit_fields(spec, init_params(spec, 0), x, y, 100, ["a", "b"], FitConfig(steps=5, points_per_step=64))
    assert result.status == ["ok", "ok"] and not calls


def test_public_api_resolves_and_matches_what_type_checkers_see():
    """Every name of ``shapezoo.__all__`` loads lazily from its module, and the TYPE_CHECKING imports (what mypy
    and editors see) list exactly the same names."""
    for name in shapezoo.__all__:
        assert getattr(shapezoo, name) is getattr(__import__(shapezoo._WHERE[name], fromlist=[name]), name)
    tree = ast.parse((REPO / "shapezoo" / "__init__.py").read_text())
    checked = {
        a.name
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and getattr(node.test, "id", "") == "TYPE_CHECKING"
        for imp in node.body
        if isinstance(imp, ast.ImportFrom)
        for a in imp.names
    }
    assert checked == set(shapezoo.__all__)
    with pytest.raises(AttributeError):
        shapezoo.not_a_name  # noqa: B018


def test_one_iou_everywhere_agrees_on_the_empty_case():
    """Fitting, evaluation and space validation share core.measure.set_iou: both sets empty is a perfect match."""
    import numpy as np

    from shapezoo.core.measure import set_iou
    from shapezoo.fields.mesh_metrics import volume_iou

    empty = torch.zeros(2, 50, dtype=torch.bool)
    assert set_iou(empty, empty).tolist() == [1.0, 1.0]
    assert volume_iou(np.zeros(50, bool), np.zeros(50, bool)) == 1.0
    g = torch.Generator().manual_seed(0)
    a, b = torch.rand(3, 400, generator=g) > 0.5, torch.rand(3, 400, generator=g) > 0.3
    expected = (a & b).sum(1).double() / (a | b).sum(1).double()
    assert torch.allclose(set_iou(a, b, torch.float64), expected)
    assert volume_iou(a[0].numpy(), b[0].numpy()) == float(expected[0])
