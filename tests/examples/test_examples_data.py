"""The examples/ models users copy: their data and models have the shapes, dtypes and layers
their docstrings promise, so ``approx-audit run --model examples.X:model`` gets what it expects.

``examples`` imports from the repository root (``python -m pytest`` puts the working directory
on ``sys.path``; the CLI adds the user's folder the same way).
"""

from __future__ import annotations

import importlib

import pytest
import torch
from torch import nn

NAMES = ["cnn", "transformer", "regression"]
CLASSIFIERS = ["cnn", "transformer"]


def _module(name: str):
    return importlib.import_module(f"examples.{name}")


def _seeded_model(name: str, seed: int = 0, **kwargs) -> nn.Module:
    """The model as the CLI builds it: torch seeded just before ``model()``."""
    torch.manual_seed(seed)
    return _module(name).model(**kwargs)


def _loss(name: str):
    return nn.MSELoss() if name == "regression" else nn.CrossEntropyLoss()


def test_cnn_data_shapes_and_range():
    X, y = _module("cnn").data()
    assert X.shape == (1797, 1, 8, 8) and X.dtype == torch.float32
    assert y.shape == (1797,) and y.dtype == torch.long
    assert X.min() == 0.0 and X.max() == 1.0
    assert set(y.tolist()) == set(range(10))


def test_transformer_data_is_rows_as_tokens():
    X, y = _module("transformer").data()
    assert X.shape == (1797, 8, 8) and X.dtype == torch.float32
    assert y.shape == (1797,) and y.dtype == torch.long
    assert X.min() == 0.0 and X.max() == 1.0
    # the same pixels as the CNN's images, one row per token
    assert torch.equal(X, _module("cnn").data()[0].squeeze(1))


def test_regression_data_is_standardized():
    X, y = _module("regression").data()
    assert X.shape == (442, 10) and X.dtype == torch.float32
    assert y.shape == (442, 1) and y.dtype == torch.float32
    for t in (X, y):
        assert torch.allclose(t.mean(0), torch.zeros(t.shape[1]), atol=1e-5)
        assert torch.allclose(t.std(0, unbiased=False), torch.ones(t.shape[1]), atol=1e-4)


@pytest.mark.parametrize("name", NAMES)
def test_data_is_deterministic(name):
    X1, y1 = _module(name).data()
    torch.manual_seed(123)  # the global RNG must play no part
    X2, y2 = _module(name).data()
    assert torch.equal(X1, X2) and torch.equal(y1, y2)


@pytest.mark.parametrize("name", NAMES)
def test_forward_shape_and_finite_loss(name):
    X, y = _module(name).data()
    net = _seeded_model(name)
    out = net(X[:16])
    assert out.shape == ((16, 10) if name in CLASSIFIERS else y[:16].shape)
    loss = _loss(name)(out, y[:16])
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    grads = [p.grad for p in net.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize("name", NAMES)
def test_model_is_deterministic_given_the_seed(name):
    a, b, c = _seeded_model(name, 0), _seeded_model(name, 0), _seeded_model(name, 1)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)


@pytest.mark.parametrize("name", NAMES)
def test_parameter_count_is_small(name):
    n = sum(p.numel() for p in _seeded_model(name).parameters())
    assert 1_000 < n < 50_000


def _dropout_rates(net: nn.Module) -> list[float]:
    """p of every Dropout module and of every attention's own dropout."""
    rates = [m.p for m in net.modules() if isinstance(m, nn.Dropout)]
    rates += [m.dropout for m in net.modules() if isinstance(m, nn.MultiheadAttention)]
    return rates


@pytest.mark.parametrize("dropout", [0.0, 0.1, 0.3])
def test_transformer_dropout_keyword_reaches_every_dropout(dropout):
    rates = _dropout_rates(_seeded_model("transformer", dropout=dropout))
    assert len(rates) >= 4  # attention + the encoder layer's three Dropout modules
    assert rates == [dropout] * len(rates)


def test_transformer_default_dropout_is_0_1():
    rates = _dropout_rates(_seeded_model("transformer"))
    assert rates and rates == [0.1] * len(rates)


def test_transformer_without_dropout_is_deterministic_in_train_mode():
    X, _ = _module("transformer").data()
    net = _seeded_model("transformer", dropout=0.0).train()
    assert torch.equal(net(X[:8]), net(X[:8]))
    noisy = _seeded_model("transformer").train()
    assert not torch.equal(noisy(X[:8]), noisy(X[:8]))


def test_cnn_has_batchnorm():
    mods = list(_seeded_model("cnn").modules())
    assert sum(isinstance(m, nn.BatchNorm2d) for m in mods) == 2
    assert sum(isinstance(m, nn.Conv2d) for m in mods) == 2


def test_transformer_has_layernorm_and_attention():
    mods = list(_seeded_model("transformer").modules())
    assert sum(isinstance(m, nn.LayerNorm) for m in mods) >= 2
    assert sum(isinstance(m, nn.MultiheadAttention) for m in mods) == 1


def test_examples_import_nothing_from_approx_audit():
    """Users copy these files: they must stand alone (torch and scikit-learn only)."""
    for name in NAMES:
        source = open(_module(name).__file__, encoding="utf-8").read()
        assert "approx_audit" not in source
