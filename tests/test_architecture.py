"""The shape of the code: every import arrow points down (foundation <- core <- fields | classifiers <- apps <- cli),
the two modalities never import each other, there are no import circles (lazy imports included), and the core's
registry, batched Adam and the fixed correctness nits behave."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch

import shapezoo
from shapezoo.core.spec import NetworkSpec, kind_classes, register_kind
from shapezoo.core.training import adam_step_
from shapezoo.errors import ShapezooError

ROOT = Path(shapezoo.__file__).parent
FOUNDATION = {"shapezoo.errors", "shapezoo.io", "shapezoo.runtime", "shapezoo.schema", "shapezoo.weights"}
APPS = {"shapezoo", "shapezoo.demo", "shapezoo.report", "shapezoo.report_page"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """shapezoo modules imported anywhere in the file (top level and inside functions)."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("shapezoo.")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if mod == "shapezoo" or mod.startswith("shapezoo."):
                # `from . import x` / `from .pkg import mod` may name submodules
                for a in node.names:
                    sub = f"{mod}.{a.name}"
                    found.add(sub if (ROOT.parent / sub.replace(".", "/")).with_suffix(".py").exists() else mod)
    return found - {name}


GRAPH = {_module_name(p): _imports(p) for p in ROOT.rglob("*.py")}


def _layer(module: str) -> str:
    if module in FOUNDATION:
        return "foundation"
    if module.startswith("shapezoo.core"):
        return "core"
    if module.startswith("shapezoo.classifiers"):
        return "classifiers"
    if module in APPS:
        return "apps"
    return "fields"


ALLOWED = {
    "foundation": {"foundation"},
    "core": {"foundation", "core"},
    "fields": {"foundation", "core", "fields"},
    "classifiers": {"foundation", "core", "classifiers"},
    "apps": {"foundation", "core", "fields", "classifiers", "apps"},
}


def test_every_arrow_points_down():
    wrong = [
        f"{m} ({_layer(m)}) imports {i} ({_layer(i)})"
        for m, imports in GRAPH.items()
        for i in imports
        if _layer(i) not in ALLOWED[_layer(m)] and not (m == "shapezoo" and i.startswith("shapezoo."))
    ]
    assert not wrong, "\n".join(wrong)


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


def test_registry_reads_every_builtin_kind_and_refuses_unknown_ones():
    from shapezoo.classifiers.archs import ClassifierSpec
    from shapezoo.fields import FieldSpec, FieldZoo

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


def test_sine_backward_can_run_twice():
    """The SIREN activation's backward leaves its saved input intact: a second backward gives the same gradient."""
    from shapezoo.fields import FieldSpec, field_forward, init_params

    spec = FieldSpec(width=16, depth=2)
    params = init_params(spec, 0)[None].requires_grad_(True)
    out = field_forward(spec, params, torch.rand(1, 64, 3) - 0.5).sum()
    (g1,) = torch.autograd.grad(out, params, retain_graph=True)
    (g2,) = torch.autograd.grad(out, params)
    assert torch.equal(g1, g2)


def test_fitting_leaves_the_process_allocator_alone(monkeypatch):
    """fit_fields does not change process-wide settings (the CLI opts in to reuse_freed_memory for its process)."""
    from shapezoo import runtime
    from shapezoo.fields import FieldSpec, init_params
    from shapezoo.fit import FitConfig, fit_fields

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
    tree = ast.parse((ROOT / "__init__.py").read_text())
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
    from shapezoo.metrics import volume_iou

    empty = torch.zeros(2, 50, dtype=torch.bool)
    assert set_iou(empty, empty).tolist() == [1.0, 1.0]
    assert volume_iou(np.zeros(50, bool), np.zeros(50, bool)) == 1.0
    g = torch.Generator().manual_seed(0)
    a, b = torch.rand(3, 400, generator=g) > 0.5, torch.rand(3, 400, generator=g) > 0.3
    expected = (a & b).sum(1).double() / (a | b).sum(1).double()
    assert torch.allclose(set_iou(a, b, torch.float64), expected)
    assert volume_iou(a[0].numpy(), b[0].numpy()) == float(expected[0])
