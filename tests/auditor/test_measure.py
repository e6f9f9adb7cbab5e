"""The probes' numerical kernels against plain-autograd references and known constants.

Tiny models in float64: a 3-4-2 tanh MLP (26 parameters) whose full Hessian comes from
``torch.autograd.functional.hessian``; quadratics ½xᵀAx with chosen eigenvalues; logistic
regression (convex). Costs are checked against a counter wrapped around the loss function.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest
import torch
from torch import nn

from approx_audit.auditor import measure as M
from approx_audit.bounds.errors import ApproxAuditError, InvalidValueError

DT = torch.float64


class Counted:
    """Wraps a loss function and counts its calls (each call is one forward pass)."""

    def __init__(self, f):
        self.f, self.n = f, 0

    def __call__(self, *args):
        self.n += 1
        return self.f(*args)


def mlp(seed=0, hidden=4):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(3, hidden), nn.Tanh(), nn.Linear(hidden, 2)).to(DT)


def data(n=8, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, generator=g, dtype=DT), torch.randint(0, 2, (n,), generator=g)


def explicit_hessian(f, params, X, y):
    flat = M.flatten(params)
    H = torch.autograd.functional.hessian(lambda v: f(M.unflatten(v, params), X, y), flat)
    return H.detach()


def quadratic(eigs, seed=0):
    """f(x) = ½ xᵀAx with A = Q diag(eigs) Qᵀ, as a loss f(params, X, y) ignoring the data."""
    eigs = torch.as_tensor(eigs, dtype=DT)
    g = torch.Generator().manual_seed(seed)
    Q, _ = torch.linalg.qr(torch.randn(len(eigs), len(eigs), generator=g, dtype=DT))
    A = Q @ torch.diag(eigs) @ Q.T
    A = 0.5 * (A + A.T)

    def f(params, X, y):
        x = params["x"]
        return 0.5 * x @ A @ x

    x0 = {"x": torch.randn(len(eigs), generator=g, dtype=DT)}
    return f, A, x0


@pytest.fixture(scope="module")
def mlp_problem():
    model = mlp()
    X, y = data()
    f = M.functional_loss(model, nn.CrossEntropyLoss())
    params = M.params_of(model)
    H = explicit_hessian(f, params, X, y)
    return model, f, params, X, y, H


# --------------------------------------------------------------------------- helpers, gradient

def test_flat_helpers_round_trip_and_reduce():
    params = M.params_of(mlp())
    flat = M.flatten(params)
    assert flat.numel() == 26
    back = M.unflatten(flat, params)
    assert all(torch.equal(back[k], params[k]) for k in params)
    assert float(M.dot(params, params)) == pytest.approx(float(flat @ flat), rel=1e-14)
    assert float(M.norm(params)) == pytest.approx(float(flat.norm()), rel=1e-14)
    with pytest.raises(InvalidValueError):
        M.unflatten(flat[:-1], params)


def test_loss_and_grad_matches_autograd(mlp_problem):
    model, f, params, X, y, _ = mlp_problem
    model.zero_grad()
    loss = nn.CrossEntropyLoss()(model(X), y)
    loss.backward()
    cf = Counted(f)
    r = M.loss_and_grad(cf, params, X, y)
    assert r.loss == pytest.approx(loss.item(), rel=1e-14)
    for name, p in model.named_parameters():
        torch.testing.assert_close(r.grad[name], p.grad, rtol=0, atol=1e-14)
    assert r.grad_norm_sq == pytest.approx(sum(float((p.grad ** 2).sum())
                                               for p in model.parameters()), rel=1e-12)
    assert r.cost == M.Cost(forward=1, backward=1) and cf.n == 1
    model.zero_grad()


def test_functional_loss_leaves_buffers_alone_and_refuses_sum():
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2)).to(DT)
    before = model[1].running_mean.clone()
    f = M.functional_loss(model, nn.CrossEntropyLoss())
    X, y = data()
    M.loss_and_grad(f, M.params_of(model), X, y)
    assert torch.equal(model[1].running_mean, before)
    with pytest.raises(InvalidValueError, match="reduction"):
        M.functional_loss(model, nn.CrossEntropyLoss(reduction="sum"))


# --------------------------------------------------------------------------- HVP

@pytest.mark.parametrize("method", ["double_backward", "forward_over_reverse"])
def test_hvp_equals_explicit_hessian(mlp_problem, method):
    _, f, params, X, y, H = mlp_problem
    g = torch.Generator().manual_seed(3)
    v = M.unflatten(torch.randn(H.shape[0], generator=g, dtype=DT), params)
    cf = Counted(f)
    r = M.hvp(cf, params, X, y, v, method=method)
    assert (M.flatten(r.value) - H @ M.flatten(v)).abs().max().item() < 1e-10
    assert r.cost == M.Cost(forward=1, backward=2, hvp=1) and cf.n == 1


def test_hessian_operator_shares_one_forward(mlp_problem):
    _, f, params, X, y, H = mlp_problem
    cf = Counted(f)
    op = M.HessianOperator(cf, params, X, y)
    for i in range(5):
        e = torch.zeros(H.shape[0], dtype=DT)
        e[i] = 1.0
        assert (op.matvec_flat(e) - H[:, i]).abs().max().item() < 1e-10
    assert op.cost == M.Cost(forward=1, backward=6, hvp=5) and cf.n == 1


# --------------------------------------------------------------------------- top eigenvalue

def test_lanczos_top_eigenvalue_of_mlp_hessian(mlp_problem):
    _, f, params, X, y, H = mlp_problem
    lam_max = torch.linalg.eigvalsh(H)[-1].item()
    cf = Counted(f)
    r = M.top_hessian_eigenvalue(cf, params, X, y, iters=26, tol=1e-10)
    assert r.value == pytest.approx(lam_max, rel=1e-8)
    assert r.converged and r.residual <= 1e-10
    # the residual is honest: recompute it from the explicit Hessian
    v = M.flatten(r.vector)
    assert float(v.norm()) == pytest.approx(1.0, rel=1e-12)
    assert float((H @ v - r.value * v).norm()) / abs(r.value) <= 1e-9
    assert r.cost == M.Cost(forward=1, backward=1 + r.n_hvp, hvp=r.n_hvp) and cf.n == 1
    assert r.value <= lam_max * (1 + 1e-12)  # Rayleigh quotient: a lower estimate


@pytest.mark.parametrize("method", ["lanczos", "power"])
def test_sharpness_of_quadratic_with_known_eigenvalues(method):
    eigs = np.concatenate([[10.0, 5.0], np.linspace(0.05, 4.0, 48)])
    f, _, x0 = quadratic(eigs)
    r = M.top_hessian_eigenvalue(f, x0, None, None, method=method, iters=40)
    assert r.converged
    assert r.value == pytest.approx(10.0, rel=1e-3)


@pytest.mark.parametrize("method", ["lanczos", "power"])
@pytest.mark.parametrize("eigs, top", [([-10.0, -4.0, 0.3, 1.0, 2.5], 2.5),
                                        ([-10.0, -5.0, -2.0, -1.0], -1.0)])
def test_negative_dominant_spectrum_reports_algebraic_max(method, eigs, top):
    # Shifted power iteration converges at rate (λ_2 − λ_min)/(λ_max − λ_min) = 0.88 here:
    # a residual of 1e-4 takes ~100 products; Lanczos gets to 1e-8 in at most 5.
    f, _, x0 = quadratic(eigs, seed=2)
    tol = 1e-8 if method == "lanczos" else 1e-4
    r = M.top_hessian_eigenvalue(f, x0, None, None, method=method, iters=300, tol=tol)
    assert r.converged
    assert r.value == pytest.approx(top, rel=1e-6)
    assert r.value <= top + 1e-12


@pytest.mark.parametrize("method", ["lanczos", "power"])
def test_warm_start_reduces_hvps(mlp_problem, method):
    _, f, params, X, y, _ = mlp_problem
    first = M.top_hessian_eigenvalue(f, params, X, y, method=method, iters=200, tol=1e-6)
    assert first.converged
    # the next point of a trajectory: slightly moved parameters
    g = torch.Generator().manual_seed(5)
    moved = {k: v + 1e-3 * torch.randn(v.shape, generator=g, dtype=DT) for k, v in params.items()}
    cold = M.top_hessian_eigenvalue(f, moved, X, y, method=method, iters=200, tol=1e-6)
    warm = M.top_hessian_eigenvalue(f, moved, X, y, method=method, iters=200, tol=1e-6,
                                    init=first.vector)
    assert warm.converged and cold.converged
    assert warm.n_hvp < cold.n_hvp
    assert warm.value == pytest.approx(cold.value, rel=1e-5)


def test_bad_arguments_raise_one_line_errors(mlp_problem):
    _, f, params, X, y, _ = mlp_problem
    for kwargs in ({"iters": 0}, {"tol": 0.0}, {"method": "arnoldi"}):
        with pytest.raises(ApproxAuditError) as info:
            M.top_hessian_eigenvalue(f, params, X, y, **kwargs)
        assert "\n" not in str(info.value)


# --------------------------------------------------------------------------- per-sample, noise

def loop_grads(model, X, y):
    rows = []
    for i in range(X.shape[0]):
        model.zero_grad()
        nn.CrossEntropyLoss()(model(X[i:i + 1]), y[i:i + 1]).backward()
        rows.append(torch.cat([p.grad.reshape(-1) for p in model.parameters()]).clone())
    model.zero_grad()
    return torch.stack(rows)


@pytest.mark.parametrize("chunk", [None, 3])
def test_per_sample_grads_equal_a_loop(mlp_problem, chunk):
    model, f, params, X, y, _ = mlp_problem
    cf = Counted(f)
    r = M.per_sample_grads(cf, params, X, y, chunk_size=chunk)
    G = torch.cat([r.grads[k].reshape(8, -1) for k in params], dim=1)
    torch.testing.assert_close(G, loop_grads(model, X, y), rtol=0, atol=1e-13)
    calls = 1 if chunk is None else 3
    assert r.cost == M.Cost(forward=calls, backward=calls, per_sample=8, vmapped=calls)
    assert cf.n == calls


@pytest.mark.parametrize("chunk", [None, 3])
def test_gradient_noise_equals_numpy_variance(mlp_problem, chunk):
    model, f, params, X, y, _ = mlp_problem
    G = loop_grads(model, X, y).numpy()
    cf = Counted(f)
    r = M.gradient_noise(cf, params, X, y, chunk_size=chunk)
    assert r.sigma_sq == pytest.approx(np.var(G, axis=0, ddof=1).sum(), rel=1e-12)
    mean = M.flatten(r.mean_grad).numpy()
    np.testing.assert_allclose(mean, G.mean(axis=0), rtol=0, atol=1e-14)
    assert r.grad_norm_sq == pytest.approx(float(mean @ mean), rel=1e-12)
    # the mean of per-example gradients is the batch gradient
    batch = M.loss_and_grad(f, params, X, y)
    np.testing.assert_allclose(M.flatten(batch.grad).numpy(), mean, rtol=0, atol=1e-14)
    calls = 1 if chunk is None else 3
    assert r.batch_size == 8 and r.cost.per_sample == 8 and r.cost.vmapped == calls == cf.n
    assert r.batch_mean_variance == pytest.approx(r.sigma_sq / 8)


def test_gradient_noise_needs_two_examples(mlp_problem):
    _, f, params, X, y, _ = mlp_problem
    with pytest.raises(InvalidValueError, match="at least 2"):
        M.gradient_noise(f, params, X[:1], y[:1])


def nested(layer):
    return nn.Sequential(OrderedDict(
        features=nn.Sequential(nn.Linear(3, 4), layer, nn.Tanh()),
        head=nn.Linear(4, 2))).to(DT)


@pytest.mark.parametrize("layer, kind", [(nn.BatchNorm1d(4), "BatchNorm1d"),
                                         (nn.Dropout(0.5), "Dropout")])
def test_sample_coupling_and_random_layers_are_named(layer, kind):
    model = nested(layer)
    with pytest.raises(M.UnsupportedLayerError) as info:
        M.check_per_sample_supported(model)
    msg = str(info.value)
    assert msg.startswith(f"model.features.1 ({kind} in train mode)")
    assert "model.eval()" in msg and "\n" not in msg
    assert isinstance(info.value, ApproxAuditError)
    model.eval()
    M.check_per_sample_supported(model)
    M.check_curvature_supported(model)


def test_batchnorm_without_running_stats_couples_even_in_eval():
    model = nested(nn.BatchNorm1d(4, track_running_stats=False)).eval()
    with pytest.raises(M.UnsupportedLayerError, match="without running statistics"):
        M.check_per_sample_supported(model)


def test_dropout_breaks_curvature_but_batchnorm_does_not():
    with pytest.raises(M.UnsupportedLayerError, match="model.features.1"):
        M.check_curvature_supported(nested(nn.Dropout(0.1)))
    M.check_curvature_supported(nested(nn.BatchNorm1d(4)))


@pytest.mark.parametrize("layer", [nn.Dropout(0.5), nn.BatchNorm1d(4)])
def test_kernels_without_the_check_still_raise_unsupported_layer(layer):
    model = nested(layer)
    f = M.functional_loss(model, nn.CrossEntropyLoss())
    X, y = data()
    with pytest.raises(M.UnsupportedLayerError, match="model.eval"):
        M.gradient_noise(f, M.params_of(model), X, y)


# --------------------------------------------------------------------------- Adam

def adam_run(steps=5, lr=0.05, betas=(0.9, 0.999), eps=1e-8):
    model = mlp(seed=4)
    X, y = data(seed=6)
    opt = torch.optim.Adam(model.parameters(), lr=lr, betas=betas, eps=eps)
    crit = nn.CrossEntropyLoss()
    for _ in range(steps):
        opt.zero_grad()
        crit(model(X), y).backward()
        opt.step()
    return model, opt, X, y


def test_preconditioned_sharpness_equals_explicit_eigvalsh():
    lr, (b1, b2), eps = 0.05, (0.9, 0.999), 1e-8
    model, opt, X, y = adam_run(lr=lr, betas=(b1, b2), eps=eps)
    f = M.functional_loss(model, nn.CrossEntropyLoss())
    params = M.params_of(model)
    H = explicit_hessian(f, params, X, y)
    t = 5
    P = torch.cat([((1 - b1 ** t) * ((opt.state[p]["exp_avg_sq"] / (1 - b2 ** t)).sqrt() + eps))
                   .reshape(-1) for p in model.parameters()])
    D = torch.diag(P.rsqrt())
    expected = torch.linalg.eigvalsh(D @ H @ D)[-1].item()
    # same as λ_max(P⁻¹H), which is not symmetric
    nonsym = torch.linalg.eigvals(torch.diag(1 / P) @ H).real.max().item()
    assert expected == pytest.approx(nonsym, rel=1e-8)

    cf = Counted(f)
    r = M.preconditioned_sharpness(cf, params, X, y, M.adam_state_by_name(opt, model), lr=lr,
                                   beta1=b1, beta2=b2, eps=eps, step=t, iters=26, tol=1e-10)
    assert r.value == pytest.approx(expected, rel=1e-8)
    assert r.converged and r.threshold == pytest.approx(38 / lr)
    assert r.ratio == pytest.approx(expected / (38 / lr))
    assert r.cost == M.Cost(forward=1, backward=1 + r.n_hvp, hvp=r.n_hvp) and cf.n == 1
    # the optimizer's own state_dict (integer ids) maps to the same names; step from the state
    r2 = M.preconditioned_sharpness(f, params, X, y, opt.state_dict(), lr=lr, beta1=b1,
                                    beta2=b2, eps=eps, iters=26, tol=1e-10)
    assert r2.value == pytest.approx(expected, rel=1e-8)


def test_adam_step_is_lr_times_inverse_preconditioner_times_ema_momentum():
    """The definition of P makes torch's Adam step exactly η·P⁻¹·m_t (m_t = exp_avg)."""
    lr, (b1, b2), eps = 0.05, (0.9, 0.999), 1e-8
    model, opt, X, y = adam_run(steps=3, lr=lr, betas=(b1, b2), eps=eps)
    before = {k: v.clone() for k, v in M.params_of(model).items()}
    opt.zero_grad()
    nn.CrossEntropyLoss()(model(X), y).backward()
    opt.step()
    P = M.adam_preconditioner(M.params_of(model), M.adam_state_by_name(opt, model), beta1=b1,
                              beta2=b2, eps=eps)
    for name, p in model.named_parameters():
        step = before[name] - p.detach()
        torch.testing.assert_close(step, lr * opt.state[p]["exp_avg"] / P[name],
                                   rtol=1e-10, atol=1e-15)


def test_adam_threshold_is_the_ema_momentum_stability_edge():
    """x_{t+1} = x_t − η m_t/p, m_t = β m_{t−1} + (1−β) λ x_t is stable iff λ/p < threshold."""
    lr, beta = 0.01, 0.9
    thr = M.adam_stability_threshold(lr, beta)
    assert thr == pytest.approx(38 / lr)

    def final_size(curv):  # curv = λ/p
        x, m = 1.0, 0.0
        for _ in range(300):
            m = beta * m + (1 - beta) * curv * x
            x = x - lr * m
        return abs(x)

    assert final_size(0.97 * thr) < 1e-5
    assert final_size(1.03 * thr) > 1e5
    with pytest.raises(InvalidValueError):
        M.adam_stability_threshold(0.0, 0.9)


def test_missing_adam_state_is_a_clear_error(mlp_problem):
    _, f, params, X, y, _ = mlp_problem
    with pytest.raises(InvalidValueError, match="no Adam state"):
        M.preconditioned_sharpness(f, params, X, y, {}, lr=0.1, beta1=0.9, beta2=0.999,
                                   eps=1e-8, step=1)


# --------------------------------------------------------------------------- trajectory

def test_local_smoothness_on_a_quadratic():
    eigs = [0.5, 2.0, 7.0]
    f, A, x0 = quadratic(eigs)
    g = torch.Generator().manual_seed(8)
    for _ in range(20):
        x, z = torch.randn(3, generator=g, dtype=DT), torch.randn(3, generator=g, dtype=DT)
        L = M.local_smoothness(A @ x, A @ z, x, z)
        assert 0.5 - 1e-12 <= L <= 7.0 + 1e-12
    w, V = torch.linalg.eigh(A)
    assert M.local_smoothness(A @ x0["x"], A @ (x0["x"] + V[:, 2]), x0["x"],
                              x0["x"] + V[:, 2]) == pytest.approx(7.0, rel=1e-12)
    assert M.local_smoothness(A @ x, A @ x, x, x.clone()) is None


def logistic():
    g = torch.Generator().manual_seed(9)
    X = torch.randn(40, 5, generator=g, dtype=DT)
    y = (torch.rand(40, generator=g, dtype=DT) > 0.5).to(DT)

    def f(params, X, y):
        return nn.functional.binary_cross_entropy_with_logits(X @ params["w"], y)
    return f, X, y


def gaps(f, X, y, shape, n, scale, seed):
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        px = {k: scale * torch.randn(s, generator=g, dtype=DT) for k, s in shape.items()}
        py = {k: scale * torch.randn(s, generator=g, dtype=DT) for k, s in shape.items()}
        a, b = M.loss_and_grad(f, px, X, y), M.loss_and_grad(f, py, X, y)
        t = M.convexity_terms(a.loss, b.loss, a.grad, px, py)
        assert t.gap == pytest.approx(t.numerator - t.denominator, abs=1e-12)
        assert t.gap == M.convexity_gap(a.loss, b.loss, a.grad, px, py)
        out.append(t.gap)
    return np.array(out)


def test_convexity_gap_nonnegative_on_logistic_regression():
    f, X, y = logistic()
    assert gaps(f, X, y, {"w": (5,)}, 30, 2.0, 0).min() >= -1e-12


def test_convexity_gap_negative_somewhere_on_an_mlp():
    model = mlp(seed=3, hidden=3)
    f = M.functional_loss(model, nn.CrossEntropyLoss())
    X, y = data()
    shape = {k: tuple(v.shape) for k, v in M.params_of(model).items()}
    assert gaps(f, X, y, shape, 30, 2.0, 1).min() < 0


def test_convexity_ratio_and_normalised_gap_by_hand():
    x, y, g = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 0.0]), torch.tensor([2.0, 1.0])
    t = M.convexity_terms(3.0, 1.0, g, x, y)          # f(x)=3, f(y)=1, <g, x-y> = 2
    assert (t.numerator, t.denominator, t.gap, t.ratio) == (2.0, 2.0, 0.0, 1.0)
    assert M.convexity_ratio(1.0, 1.0, g, x, y) is None
    assert M.normalized_convexity_gap(0.5, 2.0, x, y) == pytest.approx(0.5)
    assert M.normalized_convexity_gap(0.5, 2.0, x, x) is None


def test_pl_ratio_at_least_mu_on_strongly_convex_quadratic():
    mu = 0.3
    f, A, _ = quadratic([mu, 1.0, 4.0, 9.0])
    g = torch.Generator().manual_seed(11)
    for _ in range(50):
        x = {"x": torch.randn(4, generator=g, dtype=DT)}
        r = M.loss_and_grad(f, x, None, None)
        assert M.pl_ratio(r.grad_norm_sq, r.loss, 0.0) >= mu * (1 - 1e-12)
    assert M.pl_ratio(1.0, 0.0, 0.0) is None
    assert M.pl_ratio(1.0, -1.0, 0.0) is None


# --------------------------------------------------------------------------- devices

@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_kernels_stay_on_cuda():
    model = mlp().cuda()
    X, y = (t.cuda() for t in data())
    f = M.functional_loss(model, nn.CrossEntropyLoss())
    params = M.params_of(model)
    r = M.top_hessian_eigenvalue(f, params, X, y, iters=26, tol=1e-10)
    assert all(v.is_cuda for v in r.vector.values())
    H = explicit_hessian(f, params, X, y)
    assert r.value == pytest.approx(torch.linalg.eigvalsh(H)[-1].item(), rel=1e-8)
    n = M.gradient_noise(f, params, X, y, chunk_size=3)
    assert all(v.is_cuda for v in n.mean_grad.values())
    h = M.hvp(f, params, X, y, r.vector)
    assert all(v.is_cuda for v in h.value.values())
