"""The microbatch gradient-noise estimator against exact per-sample variances, in float64.

The statistical test draws batches i.i.d. with replacement from sklearn's digits, so the
population σ² = (1/N) Σ‖g_i − ḡ‖² over all N examples (from per-sample gradients) is exactly
what the estimator is unbiased for; negative controls show the same test rejects a wrong
scaling, and the standard-error check rejects an error bar off by √m.
"""

from __future__ import annotations

import math
from contextlib import contextmanager

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from approx_audit.auditor import measure as M
from approx_audit.auditor.noise import MicrobatchNoise, microbatch_gradient_noise
from approx_audit.bounds.errors import InvalidValueError

DT = torch.float64


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny tensors: a second thread only spins on a shared 2-core machine (measured 15x)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def digits():
    """Digits (N = 1797, pixels scaled to [0, 1]), a fixed 64-32-10 tanh MLP and its loss."""
    from sklearn.datasets import load_digits
    d = load_digits()
    X = torch.tensor(d.data / 16.0, dtype=DT)
    y = torch.tensor(d.target)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 32), nn.Tanh(), nn.Linear(32, 10)).to(DT)
    return M.functional_loss(model, nn.CrossEntropyLoss()), M.params_of(model), X, y


def small(seed=0, n=24):
    """A 5-6-3 tanh MLP with n random examples: for the exact and plumbing checks."""
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(5, 6), nn.Tanh(), nn.Linear(6, 3)).to(DT)
    X = torch.randn(n, 5, dtype=DT)
    y = torch.randint(0, 3, (n,))
    return model, M.functional_loss(model, nn.CrossEntropyLoss()), M.params_of(model), X, y


def _flat_rows(grads: dict, n: int) -> torch.Tensor:
    return torch.cat([g.reshape(n, -1) for g in grads.values()], dim=1)


def test_unbiased_and_calibrated_against_population_variance(digits):
    f, p, X, y = digits
    N = len(X)
    G = _flat_rows(M.per_sample_grads(f, p, X, y).grads, N)
    pop = float(((G - G.mean(0)) ** 2).sum(1).mean())
    m, b, R = 8, 16, 150
    rng = np.random.default_rng(0)
    est, se, naive = [], [], []
    for _ in range(R):
        idx = torch.as_tensor(rng.integers(0, N, m * b))
        r = microbatch_gradient_noise(f, p, X[idx], y[idx], microbatches=m)
        est.append(r.sigma_sq)
        se.append(r.standard_error)
        naive.append(r.standard_error * math.sqrt(m))   # a wrong error bar, off by √m
    est, se, naive = np.array(est), np.array(se), np.array(naive)
    sd = est.std(ddof=1)

    def z(values):
        return (values.mean() - pop) / (values.std(ddof=1) / math.sqrt(R))

    assert abs(z(est)) <= 3.0
    assert 1 / 1.5 <= se.mean() / sd <= 1.5
    assert np.mean(np.abs(est - pop) <= 2 * se) >= 0.8
    # negative controls: the same checks reject a missing factor b, 1/m instead of 1/(m−1),
    # and an error bar √m too wide
    assert abs(z(est / b)) > 100
    assert abs(z(est * (m - 1) / m)) > 3.0
    assert not 1 / 1.5 <= naive.mean() / sd <= 1.5


def test_one_example_per_microbatch_equals_per_sample_variance():
    _, f, p, X, y = small(n=24)
    r = microbatch_gradient_noise(f, p, X, y, microbatches=24)
    ref = M.gradient_noise(f, p, X, y)
    assert r.microbatch_size == 1 and r.batch_size == 24
    assert r.sigma_sq == pytest.approx(ref.sigma_sq, rel=1e-10)
    assert r.grad_norm_sq == pytest.approx(ref.grad_norm_sq, rel=1e-10)
    for k in p:
        torch.testing.assert_close(r.mean_grad[k], ref.mean_grad[k], rtol=1e-10, atol=1e-13)


def test_standard_error_is_the_leave_one_out_jackknife():
    _, f, p, X, y = small(n=30)
    m, b = 6, 5
    r = microbatch_gradient_noise(f, p, X, y, microbatches=m)
    gs = [M.flatten(M.loss_and_grad(f, p, X[j * b:(j + 1) * b], y[j * b:(j + 1) * b]).grad)
          for j in range(m)]
    G = torch.stack(gs)
    theta = [b * float(((H - H.mean(0)) ** 2).sum()) / (m - 2)
             for H in (torch.cat([G[:j], G[j + 1:]]) for j in range(m))]
    jack = math.sqrt((m - 1) / m * sum((t - np.mean(theta)) ** 2 for t in theta))
    assert r.standard_error == pytest.approx(jack, rel=1e-9)
    assert r.sigma_sq == pytest.approx(b * float(((G - G.mean(0)) ** 2).sum()) / (m - 1),
                                       rel=1e-12)
    two = microbatch_gradient_noise(f, p, X, y, microbatches=2)
    assert two.standard_error == math.inf and math.isfinite(two.sigma_sq)


def test_remainder_dropped_cost_counted_and_dtype_kept():
    _, f, p, X, y = small(n=37)
    r = microbatch_gradient_noise(f, p, X, y, microbatches=4)
    same = microbatch_gradient_noise(f, p, X[:36], y[:36], microbatches=4)
    assert isinstance(r, MicrobatchNoise)
    assert (r.microbatches, r.microbatch_size, r.batch_size) == (4, 9, 36)
    assert r.sigma_sq == same.sigma_sq
    assert r.batch_mean_variance == pytest.approx(r.sigma_sq / 36)
    assert (r.cost.forward, r.cost.backward, r.cost.per_sample) == (4, 4, 0)
    p32 = {k: v.float() for k, v in p.items()}
    r32 = microbatch_gradient_noise(f, p32, X.float(), y, microbatches=4)
    assert all(r32.mean_grad[k].dtype == torch.float32 for k in p)
    assert r32.sigma_sq == pytest.approx(r.sigma_sq, rel=1e-4)


class KwargNet(nn.Module):
    """A model whose forward takes its input by keyword, as dict batches deliver it."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(5, 3)

    def forward(self, *, x):
        return self.lin(torch.tanh(x))


def test_dict_batch():
    torch.manual_seed(1)
    model = KwargNet().to(DT)
    X, y = torch.randn(20, 5, dtype=DT), torch.randint(0, 3, (20,))

    def f(params, batch, target):
        return F.cross_entropy(functional_call(model, params, (), batch), target)

    def g(params, x, target):
        return f(params, {"x": x}, target)

    p = M.params_of(model)
    r = microbatch_gradient_noise(f, p, {"x": X}, y, microbatches=5)
    ref = microbatch_gradient_noise(g, p, X, y, microbatches=5)
    assert r.microbatch_size == 4 and r.sigma_sq > 0
    assert r.sigma_sq == pytest.approx(ref.sigma_sq, rel=1e-12)


def test_draw_entered_once_per_microbatch_around_its_gradient():
    _, f0, p, X, y = small(n=12)
    events, active = [], []

    @contextmanager
    def draw(j):
        events.append(("enter", j))
        active.append(j)
        yield
        active.pop()
        events.append(("exit", j))

    seen = []

    def f(params, Xb, yb):
        seen.append((list(active), len(Xb)))
        return f0(params, Xb, yb)

    microbatch_gradient_noise(f, p, X, y, microbatches=3, draw=draw)
    assert events == [(e, j) for j in range(3) for e in ("enter", "exit")]
    assert seen == [([j], 4) for j in range(3)]


def test_batchnorm_in_train_mode_runs_and_leaves_buffers():
    torch.manual_seed(2)
    model = nn.Sequential(nn.Linear(5, 8), nn.BatchNorm1d(8), nn.Tanh(), nn.Linear(8, 3)).to(DT)
    model.train()
    X, y = torch.randn(32, 5, dtype=DT), torch.randint(0, 3, (32,))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    f = M.functional_loss(model, nn.CrossEntropyLoss())
    r = microbatch_gradient_noise(f, M.params_of(model), X, y, microbatches=4)
    assert math.isfinite(r.sigma_sq) and r.sigma_sq > 0 and math.isfinite(r.standard_error)
    after = model.state_dict()
    for k, v in before.items():
        assert torch.equal(after[k], v), k


@pytest.mark.parametrize("m", [1, 0, -3, 2.0, 4.5, True, "8", None])
def test_bad_microbatch_counts_refused(m):
    _, f, p, X, y = small(n=12)
    with pytest.raises(InvalidValueError):
        microbatch_gradient_noise(f, p, X, y, microbatches=m)


def test_batch_too_small_or_unbatched_refused():
    _, f, p, X, y = small(n=5)
    with pytest.raises(InvalidValueError, match="microbatches"):
        microbatch_gradient_noise(f, p, X, y, microbatches=8)
    with pytest.raises(InvalidValueError):
        microbatch_gradient_noise(f, p, torch.tensor(1.0, dtype=DT), y, microbatches=2)
