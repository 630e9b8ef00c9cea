import pytest
import torch

from shapezoo.errors import ShapezooError
from shapezoo.fields.network import FieldModule, FieldSpec, field_forward, init_params, to_module


@pytest.mark.parametrize("spec", [FieldSpec(width=16, depth=2), FieldSpec(width=8, depth=3, activation="relu_pe")])
def test_layout_round_trips_are_exact(spec):
    layout = spec.layout()
    flat = torch.randn(5, layout.size)
    parts = layout.unflatten(flat)
    assert parts["layers.0.weight"].shape == (5, spec.width, spec.input_features)
    assert torch.equal(layout.flatten(parts), flat)
    state = layout.to_state_dict(flat[2])
    module = FieldModule(spec)
    module.load_state_dict(state)  # strict: same keys and shapes as nn.Module's own
    assert list(module.state_dict()) == layout.names
    assert torch.equal(layout.flatten(module.state_dict()), flat[2])


def test_layout_mismatch_is_a_clear_error():
    layout = FieldSpec(width=16).layout()
    with pytest.raises(ShapezooError, match="needs"):
        layout.unflatten(torch.zeros(layout.size + 1))
    with pytest.raises(ShapezooError, match="missing"):
        layout.flatten({"layers.0.weight": torch.zeros(16, 3)})


@pytest.mark.parametrize("activation", ["sine", "relu_pe"])
def test_exported_module_reproduces_batched_forward(activation):
    spec = FieldSpec(width=16, depth=2, activation=activation)
    params = init_params(spec, 0) + 0.01 * torch.randn(
        3, spec.layout().size, generator=torch.Generator().manual_seed(0)
    )
    x = torch.rand(3, 100, 3) - 0.5
    batched = field_forward(spec, params, x)
    for b in range(3):
        single = to_module(spec, params[b])(x[b])
        torch.testing.assert_close(single, batched[b], rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(field_forward(spec, params[b : b + 1], x[b : b + 1])[0], batched[b])


def test_siren_initialisation_bounds():
    spec = FieldSpec(width=64, depth=3)
    w = spec.layout().unflatten(init_params(spec, 3))
    assert w["layers.0.weight"].abs().max() <= 1 / 3
    assert w["layers.1.weight"].abs().max() <= (6 / 64) ** 0.5 / 30
    assert torch.equal(init_params(spec, 3), init_params(spec, 3))
    assert not torch.equal(init_params(spec, 3), init_params(spec, 4))


def test_sine_backward_matches_autograd_reference():
    spec = FieldSpec(width=8, depth=2)
    params = init_params(spec).repeat(2, 1).requires_grad_(True)
    x = torch.rand(2, 50, 3) - 0.5
    (g,) = torch.autograd.grad(field_forward(spec, params, x).square().sum(), params)
    ref_params = params.detach().clone().requires_grad_(True)
    h = x
    w = spec.layout().unflatten(ref_params)
    for i in range(3):
        h = h @ w[f"layers.{i}.weight"].transpose(1, 2) + w[f"layers.{i}.bias"].unsqueeze(1)
        h = torch.sin((spec.first_omega0 if i == 0 else 30) * h) if i < 2 else h
    (g_ref,) = torch.autograd.grad(h.square().sum(), ref_params)
    torch.testing.assert_close(g, g_ref, rtol=1e-4, atol=1e-5)
