"""Probes against plain-autograd recomputations and known constants, on tiny float64 problems.

Contexts come from real optimizer steps on built-in workloads (quadratic, logistic) or a tiny
MLP; costs are checked by counting calls of the loss function (forwards) and of
``torch.autograd.grad`` (reverse passes).
"""

from __future__ import annotations


import pytest
import torch
from torch import nn

from approx_audit.auditor import measure as M
from approx_audit.auditor import probes as P
from approx_audit.auditor.workloads import get_workload
from approx_audit.bounds.errors import ApproxAuditError

DT = torch.float64


class Counted:
    """Counts calls of a loss function (one forward each)."""

    def __init__(self, f):
        self.f, self.n = f, 0

    def __call__(self, *args):
        self.n += 1
        return self.f(*args)


@pytest.fixture
def count_grad(monkeypatch):
    """Counts calls of torch.autograd.grad (each one reverse pass)."""
    calls = {"n": 0}
    real = torch.autograd.grad

    def counting(*a, **k):
        calls["n"] += 1
        return real(*a, **k)

    monkeypatch.setattr(torch.autograd, "grad", counting)
    return calls


def take_step(model, f, X, y, opt, step, *, workload=None, memory=None, full=None):
    """One real optimizer step; the context the run loop would build for it."""
    before = P.snapshot(model)
    leaves = {k: v.clone().requires_grad_(True) for k, v in before.items()}
    loss = f(leaves, X, y)
    g = torch.autograd.grad(loss, list(leaves.values()))
    grad = {k: t.detach() for k, t in zip(leaves, g)}
    opt.zero_grad()
    for (name, p) in model.named_parameters():
        p.grad = grad[name].clone()
    opt.step()
    lr = opt.param_groups[0]["lr"]
    fX, fy = full if full is not None else (None, None)
    return P.ProbeContext(step=step, model=model, f=f, X=X, y=y, params_before=before,
                          params_after=P.snapshot(model), loss_before=float(loss.detach()),
                          grad_before=grad, lr=lr, optimizer=opt, workload=workload,
                          full_X=fX, full_y=fy, memory={} if memory is None else memory)


def workload_ctx(name="quadratic", *, lr=0.1, batch=32, step=0, opt="sgd", seed=0, **options):
    w = get_workload(name, seed=seed, **options)
    model = w.model
    o = (torch.optim.SGD(model.parameters(), lr=lr) if opt == "sgd"
         else torch.optim.Adam(model.parameters(), lr=lr))
    f = w.functional_loss()
    ctx = take_step(model, f, w.X[:batch], w.y[:batch], o, step, workload=w, full=(w.X, w.y))
    return w, ctx


def grad_at(f, params, X, y):
    leaves = {k: v.clone().requires_grad_(True) for k, v in params.items()}
    loss = f(leaves, X, y)
    gs = torch.autograd.grad(loss, list(leaves.values()))
    return float(loss.detach()), torch.cat([g.reshape(-1) for g in gs])


def flat(d):
    return torch.cat([t.reshape(-1) for t in d.values()])


def tiny_mlp(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).to(DT)


def tiny_data(n=8, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, generator=g, dtype=DT), torch.randint(0, 2, (n,), generator=g)


# ---------------------------------------------------------------------------------------------
# Free probes
# ---------------------------------------------------------------------------------------------

def test_free_probes_match_recomputation(count_grad):
    w, ctx = workload_ctx("quadratic")
    f = Counted(ctx.f)
    ctx.f = f
    count_grad["n"] = 0
    out = {}
    for name in ("loss", "grad_norm", "update_norm", "distance_from_start"):
        p = P.PROBES[name]()
        assert p.free and p.cost == M.Cost()
        out.update(p.measure(ctx))
        assert p.last_cost == M.Cost()
    assert f.n == 0 and count_grad["n"] == 0
    loss, g = grad_at(w.functional_loss(), ctx.params_before, ctx.X, ctx.y)
    dx = flat(ctx.params_after) - flat(ctx.params_before)
    assert out["loss"] == pytest.approx(loss, rel=1e-12)
    assert out["grad_norm"] == pytest.approx(float(g.norm()), rel=1e-12)
    assert out["update_norm"] == pytest.approx(float(dx.norm()), rel=1e-12)
    assert out["effective_lr"] == pytest.approx(0.1, rel=1e-10)   # plain SGD
    assert out["distance_from_start"] == pytest.approx(float(dx.norm()), rel=1e-12)


def test_distance_from_start_keeps_the_first_point():
    w = get_workload("quadratic")
    opt = torch.optim.SGD(w.model.parameters(), lr=0.2)
    f, memory, probe = w.functional_loss(), {}, P.DistanceFromStartProbe()
    start = flat(P.snapshot(w.model))
    for t in range(4):
        ctx = take_step(w.model, f, w.X[:16], w.y[:16], opt, t, memory=memory)
        d = probe.measure(ctx)["distance_from_start"]
        assert d == pytest.approx(float((flat(ctx.params_after) - start).norm()), rel=1e-12)
    assert memory["distance_from_start"]["start_step"] == 0


# ---------------------------------------------------------------------------------------------
# Local smoothness and convexity
# ---------------------------------------------------------------------------------------------

def test_local_smoothness_matches_autograd_and_costs_one_gradient(count_grad):
    model = tiny_mlp()
    X, y = tiny_data()
    f0 = M.functional_loss(model, nn.CrossEntropyLoss())
    ctx = take_step(model, f0, X, y, torch.optim.SGD(model.parameters(), lr=0.5), 0)
    f = Counted(f0)
    ctx.f = f
    count_grad["n"] = 0
    p = P.LocalSmoothnessProbe()
    out = p.measure(ctx)
    assert f.n == 1 and count_grad["n"] == 1
    assert p.last_cost == p.cost == p.cost_for(ctx) == M.Cost(forward=1, backward=1)

    la, ga = grad_at(f0, ctx.params_after, X, y)
    lb, gb = grad_at(f0, ctx.params_before, X, y)
    xa, xb = flat(ctx.params_after), flat(ctx.params_before)
    dx = xa - xb
    L = float((ga - gb).norm() / dx.norm())
    assert out["local_smoothness"] == pytest.approx(L, rel=1e-10)
    assert out["loss_after"] == pytest.approx(la, rel=1e-12)
    gap = la - lb - float(gb @ dx)
    assert out["convexity_gap"] == pytest.approx(gap, rel=1e-9, abs=1e-14)
    assert out["convexity_gap_reverse"] == pytest.approx(lb - la + float(ga @ dx), rel=1e-9,
                                                         abs=1e-14)
    assert out["convexity_numerator"] == pytest.approx(float(ga @ dx), rel=1e-10)
    assert out["convexity_denominator"] == pytest.approx(la - lb, rel=1e-10)
    assert out["convexity_ratio"] == pytest.approx(float(ga @ dx) / (la - lb), rel=1e-9)
    assert out["convexity_gap_normalized"] == pytest.approx(gap / (0.5 * L * float(dx @ dx)),
                                                            rel=1e-9)
    assert set(out) == set(p.keys)


def test_local_smoothness_on_quadratic_is_at_most_L():
    w, ctx = workload_ctx("quadratic", batch=200)   # the full batch: the Hessian is AᵀA/n
    out = P.LocalSmoothnessProbe().measure(ctx)
    L, mu = w.constants["L"].value, w.constants["mu"].value
    assert mu * (1 - 1e-9) <= out["local_smoothness"] <= L * (1 + 1e-9)
    assert -1.0 - 1e-9 <= out["convexity_gap_normalized"] <= 1.0 + 1e-9


def test_convexity_gap_nonnegative_on_logistic_along_sgd():
    w = get_workload("logistic")
    opt = torch.optim.SGD(w.model.parameters(), lr=0.5)
    f, memory, probe = w.functional_loss(), {}, P.LocalSmoothnessProbe()
    g = torch.Generator().manual_seed(0)
    for t in range(6):
        idx = torch.randperm(w.n, generator=g)[:64]
        out = probe.measure(take_step(w.model, f, w.X[idx], w.y[idx], opt, t, memory=memory))
        assert out["convexity_gap"] >= -1e-12
        assert out["convexity_gap_reverse"] >= -1e-12
        assert out["convexity_gap_normalized"] >= -1e-9


def test_local_smoothness_none_when_the_step_is_zero():
    w, ctx = workload_ctx("quadratic")
    ctx.params_after = P.snapshot(ctx.params_before)
    p = P.LocalSmoothnessProbe()
    out = p.measure(ctx)
    assert out["local_smoothness"] is None and "Δx = 0" in p.last_notes["local_smoothness"]
    assert out["loss_after"] is not None


# ---------------------------------------------------------------------------------------------
# Full batch, PL ratio
# ---------------------------------------------------------------------------------------------

def test_full_batch_and_suboptimality(count_grad):
    w, ctx = workload_ctx("least-squares")
    count_grad["n"] = 0
    p = P.FullBatchProbe()
    out = p.measure(ctx)
    assert count_grad["n"] == 1 and p.last_cost == p.cost == M.Cost(forward=1, backward=1)
    loss, g = grad_at(w.functional_loss(), ctx.params_after, w.X, w.y)
    assert out["full_loss"] == pytest.approx(loss, rel=1e-12)
    assert out["full_grad_norm"] == pytest.approx(float(g.norm()), rel=1e-10)
    assert out["suboptimality"] == pytest.approx(loss - w.f_star, rel=1e-10)
    assert out["suboptimality"] > 0


def test_full_batch_without_f_star_notes_why():
    w, ctx = workload_ctx("mlp-digits", lr=0.1)
    p = P.FullBatchProbe()
    out = p.measure(ctx)
    assert out["suboptimality"] is None and "f*" in p.last_notes["suboptimality"]
    assert out["full_loss"] > 0


def test_pl_ratio_at_least_mu_on_quadratic():
    w = get_workload("quadratic")
    mu = w.constants["mu"].value
    f = w.functional_loss()
    p = P.PLRatioProbe()
    g = torch.Generator().manual_seed(3)
    opt = torch.optim.SGD(w.model.parameters(), lr=0.5)
    for t in range(5):
        with torch.no_grad():   # jump to random points, far and near the optimum
            w.model.weight.copy_(w.optimum["weight"]
                                 + 10.0 ** (-t) * torch.randn(w.model.weight.shape, generator=g,
                                                              dtype=DT))
        ctx = take_step(w.model, f, w.X[:32], w.y[:32], opt, t, workload=w, full=(w.X, w.y))
        out = p.measure(ctx)
        loss, gr = grad_at(f, ctx.params_after, w.X, w.y)
        assert out["pl_uses_f_star"] == 1.0
        assert out["pl_ratio"] == pytest.approx(float(gr @ gr) / (2 * (loss - w.f_star)),
                                                rel=1e-8)
        assert out["pl_ratio"] >= mu * (1 - 1e-6)


def test_pl_ratio_unavailable_and_lower_bound_only():
    _, ctx = workload_ctx("quadratic")
    ctx.workload = None
    p = P.PLRatioProbe()
    out = p.measure(ctx)
    assert out == {"pl_ratio": None, "pl_gap": None, "pl_uses_f_star": None}
    assert "f_lower" in p.last_notes["pl_ratio"] and p.last_cost == M.Cost()
    w, ctx = workload_ctx("mlp-digits")                 # f_lower = 0, no f*
    out = p.measure(ctx)
    assert out["pl_uses_f_star"] == 0.0 and out["pl_ratio"] > 0
    assert P.PLRatioProbe.direction_for(False) == "n/a"


# ---------------------------------------------------------------------------------------------
# Gradient noise
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("chunk", [None, 3])
def test_gradient_noise_matches_explicit_loop(chunk):
    model = tiny_mlp()
    X, y = tiny_data(n=8)
    f0 = M.functional_loss(model, nn.CrossEntropyLoss())
    ctx = take_step(model, f0, X, y, torch.optim.SGD(model.parameters(), lr=0.1), 0)
    f = Counted(f0)
    ctx.f = f
    p = P.GradientNoiseProbe(chunk_size=chunk)
    declared = p.cost_for(ctx)
    out = p.measure(ctx)
    gs = torch.stack([grad_at(f0, ctx.params_before, X[i:i + 1], y[i:i + 1])[1]
                      for i in range(8)])
    mean = gs.mean(0)
    sigma2 = float(((gs - mean) ** 2).sum() / 7)
    assert out["gradient_noise"] == pytest.approx(sigma2, rel=1e-10)
    assert out["gradient_noise_batch"] == pytest.approx(sigma2 / 8, rel=1e-10)
    assert out["gradient_snr"] == pytest.approx(float(mean @ mean) / (sigma2 / 8), rel=1e-10)
    calls = 1 if chunk is None else 3
    # the first measurement of method="auto" also checks the per-example gradients' mean
    # against one batch gradient (a layer mixing examples would fail it): one gradient more
    assert f.n == calls + 1
    assert p.last_cost == declared == M.Cost(forward=calls + 1, backward=calls + 1,
                                             per_sample=8, vmapped=calls)
    f.n = 0
    p.measure(ctx)
    assert f.n == calls and out["gradient_noise_microbatch"] == 1.0
    assert p.last_cost == p.cost_for(ctx) == M.Cost(forward=calls, backward=calls,
                                                    per_sample=8, vmapped=calls)


def test_gradient_noise_per_sample_refuses_batchnorm_in_train_mode_naming_the_layer():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2)).to(DT)
    model.train()
    X, y = tiny_data(n=8)
    f = M.functional_loss(model, nn.CrossEntropyLoss())
    ctx = take_step(model, f, X, y, torch.optim.SGD(model.parameters(), lr=0.1), 0)
    with pytest.raises(M.UnsupportedLayerError, match=r"model\.1 \(BatchNorm1d in train mode\)"):
        P.GradientNoiseProbe(method="per_sample").measure(ctx)


@pytest.mark.parametrize("layer", ["batchnorm", "custom"])
def test_gradient_noise_auto_uses_microbatches_when_layers_couple_samples(layer):
    """BatchNorm is seen by type; a custom layer mixing the examples is caught by the check of
    the per-example gradients' mean against the batch gradient. Either way: the microbatch
    estimator, said once in a note, and a finite σ² with its standard error."""
    torch.manual_seed(0)

    class MixBatch(nn.Module):            # adds the batch mean: examples interact
        def forward(self, x):
            return x + x.mean(dim=0, keepdim=True) ** 2

    mid = nn.BatchNorm1d(4) if layer == "batchnorm" else MixBatch()
    model = nn.Sequential(nn.Linear(3, 4), mid, nn.Tanh(), nn.Linear(4, 2)).to(DT)
    X, y = tiny_data(n=16)
    f = M.functional_loss(model, nn.CrossEntropyLoss(), mode="train")
    ctx = take_step(model, f, X, y, torch.optim.SGD(model.parameters(), lr=0.1), 0)
    p = P.GradientNoiseProbe(microbatches=4)
    out = p.measure(ctx)
    assert out["gradient_noise_microbatch"] == 4.0
    assert out["gradient_noise"] > 0 and out["gradient_noise_se"] > 0
    assert "microbatch" in p.last_notes["gradient_noise_microbatch"]
    if layer == "batchnorm":
        assert "model.1 (BatchNorm1d)" in p.last_notes["gradient_noise_microbatch"]
    else:
        assert "differs from the batch gradient" in p.last_notes["gradient_noise_microbatch"]
    p.measure(ctx)
    assert "gradient_noise_microbatch" not in p.last_notes          # said once
    assert p.last_cost == M.Cost(forward=4, backward=4)


# ---------------------------------------------------------------------------------------------
# Sharpness
# ---------------------------------------------------------------------------------------------

def test_sharpness_of_quadratic_equals_L_anywhere(count_grad):
    w = get_workload("quadratic")
    L = w.constants["L"].value
    f = w.functional_loss()
    opt = torch.optim.SGD(w.model.parameters(), lr=0.3)
    p = P.SharpnessProbe(on="full", iters=25, tol=1e-6)
    memory = {}
    g = torch.Generator().manual_seed(5)
    for t in range(3):
        with torch.no_grad():
            w.model.weight.add_(torch.randn(w.model.weight.shape, generator=g, dtype=DT))
        ctx = take_step(w.model, Counted(f), w.X[:16], w.y[:16], opt, t, workload=w,
                        memory=memory, full=(w.X, w.y))
        count_grad["n"] = ctx.f.n = 0
        out = p.measure(ctx)
        assert out["sharpness"] == pytest.approx(L, rel=1e-3)
        assert out["sharpness"] <= L * (1 + 1e-9)              # a lower estimate
        assert out["sharpness_2_over_lr"] == pytest.approx(2 / 0.3)
        assert out["sharpness_lr_ratio"] == pytest.approx(out["sharpness"] * 0.3 / 2)
        n = int(out["sharpness_n_hvp"])
        assert ctx.f.n == 1 and count_grad["n"] == 1 + n      # exact passes
        assert p.last_cost == M.Cost(forward=1, backward=1 + n, hvp=n)
        assert p.last_cost.backward <= p.cost_for(ctx).backward and p.cost_is_bound
    assert memory["sharpness"]["runs"] == 3


def test_sharpness_batch_matches_dense_hessian_and_warm_starts():
    model = tiny_mlp()
    X, y = tiny_data()
    f = M.functional_loss(model, nn.CrossEntropyLoss())
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    p = P.SharpnessProbe(iters=26, tol=1e-8, cold_every=3)
    memory, colds = {}, []
    for t in range(4):
        ctx = take_step(model, f, X, y, opt, t, memory=memory)
        out = p.measure(ctx)
        colds.append(out["sharpness_cold_start"])
        names = list(ctx.params_after)
        shapes = [ctx.params_after[k].shape for k in names]
        sizes = [ctx.params_after[k].numel() for k in names]

        def fflat(v):
            parts = torch.split(v, sizes)
            return f({k: t_.view(s) for k, t_, s in zip(names, parts, shapes)}, X, y)

        H = torch.autograd.functional.hessian(fflat, flat(ctx.params_after))
        assert out["sharpness"] == pytest.approx(float(torch.linalg.eigvalsh(H)[-1]), rel=1e-6)
    assert colds == [1.0, 0.0, 0.0, 1.0]


# ---------------------------------------------------------------------------------------------
# Adam's preconditioned sharpness
# ---------------------------------------------------------------------------------------------

def test_adam_sharpness_none_for_sgd():
    _, ctx = workload_ctx("quadratic")
    p = P.AdamSharpnessProbe()
    out = p.measure(ctx)
    assert all(v is None for v in out.values()) and "SGD" in p.last_notes["adam_sharpness"]
    assert p.last_cost == M.Cost() == p.cost_for(ctx)


def test_adam_sharpness_matches_dense_recomputation():
    w, ctx = workload_ctx("quadratic", opt="adam", lr=0.01, batch=200, d=6, n=40)
    p = P.AdamSharpnessProbe(iters=10, tol=1e-9)
    out = p.measure(ctx)
    st = ctx.optimizer.state[w.model.weight]
    b1, b2 = ctx.optimizer.param_groups[0]["betas"]
    eps, t = ctx.optimizer.param_groups[0]["eps"], int(st["step"])
    Pdiag = ((1 - b1 ** t) * ((st["exp_avg_sq"] / (1 - b2 ** t)).sqrt() + eps)).reshape(-1)
    H = w.X.T @ w.X / w.n
    D = Pdiag.rsqrt()
    lam = float(torch.linalg.eigvalsh(D[:, None] * H * D[None, :])[-1])
    assert out["adam_sharpness"] == pytest.approx(lam, rel=1e-6)
    assert out["adam_threshold"] == pytest.approx((2 + 2 * b1) / ((1 - b1) * 0.01))
    assert out["adam_sharpness_ratio"] == pytest.approx(lam / out["adam_threshold"], rel=1e-6)
    n = int(out["adam_sharpness_n_hvp"])
    assert p.last_cost == M.Cost(forward=1, backward=1 + n, hvp=n)


# ---------------------------------------------------------------------------------------------
# Schedules, presets, registry, run_probes
# ---------------------------------------------------------------------------------------------

def test_schedule_respected():
    w = get_workload("quadratic")
    opt = torch.optim.SGD(w.model.parameters(), lr=0.1)
    f, memory = w.functional_loss(), {}
    probes = P.make_probes("loss,local_smoothness@3,full_batch@4")
    seen = {p.name: [] for p in probes}
    total = M.Cost()
    for t in range(9):
        ctx = take_step(w.model, f, w.X[:16], w.y[:16], opt, t, workload=w, memory=memory,
                        full=(w.X, w.y))
        values, cost, _ = P.run_probes(probes, ctx)
        total = total + cost
        for p in probes:
            if p.keys[0] in values:
                seen[p.name].append(t)
    # name@every measures after steps every-1, 2·every-1, …: at x_every, x_2every, …
    assert seen == {"loss": list(range(9)), "local_smoothness": [2, 5, 8],
                    "full_batch": [3, 7]}
    assert total == M.Cost(forward=5, backward=5)


def test_presets_build_and_describe():
    names = {k: [p.name for p in P.make_probes(k)] for k in P.PRESETS}
    assert set(names["cheap"]) == {"loss", "grad_norm", "update_norm", "distance_from_start",
                                   "full_batch"}
    assert {"local_smoothness", "gradient_noise", "sharpness"} <= set(names["standard"])
    assert set(names["full"]) == set(P.PROBES)
    every = {p.name: p.every for p in P.make_probes("standard")}
    assert every["local_smoothness"] == 10 and every["gradient_noise"] == 50
    assert every["sharpness"] == 200 and every["full_batch"] == 50
    for p in P.make_probes("full"):
        d = p.describe()
        assert d["direction"] in P.DIRECTIONS and d["estimates"]
        assert all(v in P.DIRECTIONS for v in d["key_directions"].values())
        assert set(p.key_directions) <= set(p.keys)
    assert P.PROBES["gradient_noise"].direction == "unbiased"
    assert P.PROBES["sharpness"].direction == "lower"
    assert P.PROBES["local_smoothness"].direction == "lower"
    assert P.PROBES["pl_ratio"].direction == "upper"


def test_keys_are_unique_across_probes():
    keys = [k for c in P.PROBES.values() for k in c.keys]
    assert len(keys) == len(set(keys))


@pytest.mark.parametrize("spec, match", [
    ("nope", "unknown probe 'nope'"), ("loss,bogus", "unknown probe 'bogus'"),
    ("loss,", "empty probe name"), ("sharpness@0", "positive integer"),
    ("sharpness@x", "positive integer"), ("loss,loss@2", "given twice"), ("", "no probes"),
])
def test_make_probes_errors(spec, match):
    with pytest.raises(P.UnknownProbeError, match=match) as e:
        P.make_probes(spec)
    assert isinstance(e.value, ApproxAuditError)
    if "unknown" in match:
        assert "local_smoothness" in str(e.value) and "standard" in str(e.value)
        assert "\n" not in str(e.value)


def test_bad_every_rejected():
    with pytest.raises(ApproxAuditError, match="every"):
        P.SharpnessProbe(every=0)


@pytest.mark.parametrize("name", list(P.PROBES))
def test_declared_cost_equals_passes_made(name, count_grad):
    """Every probe on a real Adam step: forwards counted on f, reverse passes counted on
    torch.autograd.grad, both equal to last_cost, which equals the declared cost (or is within
    it, for Lanczos, whose declared cost is an upper bound)."""
    w = get_workload("mlp-digits", width=4)
    model = w.model
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    f0 = w.functional_loss()
    full = (w.X[:64], w.y[:64])
    take_step(model, f0, w.X[:16], w.y[:16], opt, 0, workload=w, full=full)   # Adam state
    ctx = take_step(model, f0, w.X[:16], w.y[:16], opt, 1, workload=w, full=full)
    f = Counted(f0)
    ctx.f = f
    count_grad["n"] = 0
    p = P.PROBES[name](iters=5) if name in ("sharpness", "adam_sharpness") else P.PROBES[name]()
    declared = p.cost_for(ctx)
    values = p.measure(ctx)
    assert set(values) == set(p.keys)
    assert f.n == p.last_cost.forward
    if name != "gradient_noise":         # vmap's per-sample backward is not autograd.grad
        assert count_grad["n"] == p.last_cost.backward
    if p.cost_is_bound:
        a, b = p.last_cost.as_dict(), declared.as_dict()
        assert all(a[k] <= b[k] for k in a)
        if name in ("sharpness", "adam_sharpness"):
            assert p.last_cost.hvp == values[f"{name}_n_hvp"] >= 1
        else:                            # pl_ratio alone pays its full pass
            assert p.last_cost == declared
    else:
        assert p.last_cost == declared
    if p.free:
        assert p.last_cost == M.Cost()


def test_pl_ratio_reuses_the_full_batch_gradient_of_the_same_step():
    from approx_audit.auditor.run import Auditor, train
    from approx_audit.auditor.workloads import get_workload

    w = get_workload("logistic")
    model = w.fresh_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    a = Auditor(model, opt, workload=w, probes="full_batch@5,pl_ratio@5", full_batch=True)
    train(w, model, opt, a, steps=10, batch_size=None, sampling_seed=0)
    end = a.close()
    by = end["costs"]["by_probe"]
    assert by["full_batch"]["backward"] == 2 and "pl_ratio" not in by   # shared: no extra pass
    rec = [r for r in a.records if r.get("pl_ratio") is not None][0]
    assert rec["pl_ratio"] == pytest.approx(rec["full_grad_norm"] ** 2
                                            / (2 * rec["suboptimality"]), rel=1e-9)


def test_update_correlation_is_the_cosine_between_consecutive_steps():
    from approx_audit.auditor.run import Auditor, train

    w = get_workload("quadratic")            # L = 1: lr 1.9 oscillates, lr 0.5 creeps
    signs = {}
    for lr in (0.5, 1.9):
        model = w.fresh_model()
        opt = torch.optim.SGD(model.parameters(), lr=lr)
        xs = [torch.cat([p.detach().reshape(-1).clone() for p in model.parameters()])]
        a = Auditor(model, opt, workload=w, probes="update_norm", full_batch=True)
        opt.register_step_post_hook(lambda o, *_: xs.append(
            torch.cat([p.detach().reshape(-1).clone() for p in model.parameters()])))
        train(w, model, opt, a, steps=12, batch_size=None, sampling_seed=0)
        a.close()
        recs = [r for r in a.records if r["record"] == "step"]
        assert recs[0]["update_correlation"] is None and "previous" in recs[0]["notes"][
            "update_correlation"]
        for t in range(1, 12):                  # plain reimplementation from the iterates
            d1, d0 = xs[t + 1] - xs[t], xs[t] - xs[t - 1]
            cos = float(d1 @ d0 / (d1.norm() * d0.norm()))
            assert recs[t]["update_correlation"] == pytest.approx(cos, rel=1e-9, abs=1e-12)
        signs[lr] = recs[-1]["update_correlation"]
    assert signs[0.5] > 0.9 and signs[1.9] < -0.5


# --------------------------------------------------------------- declared needs (issue 15)

def test_probes_declare_the_work_they_need():
    from approx_audit.auditor.probes import PROBES, Need, due_needs, make_probes

    by_name = dict(PROBES)
    assert by_name["full_batch"].needs == by_name["pl_ratio"].needs == {Need.FULL_AT_AFTER}
    assert by_name["local_smoothness"].needs == {Need.BATCH_GRAD_AFTER}
    assert by_name["gradient_noise"].needs == {Need.PER_SAMPLE_GRADS}
    assert Need.HVP in by_name["sharpness"].needs and Need.HVP in by_name["adam_sharpness"].needs
    assert by_name["loss"].needs == frozenset()
    probes = make_probes("loss,full_batch@10,local_smoothness@3")
    due = {t: due_needs(probes, t) for t in range(30)}
    assert {t for t, d in due.items() if Need.FULL_AT_AFTER in d} == {
        t for t in range(30) if probes[1].due(t)}
    assert {t for t, d in due.items() if Need.BATCH_GRAD_AFTER in d} == {
        t for t in range(30) if probes[2].due(t)}


def test_the_loops_never_name_a_probe_to_decide_work():
    """The run loop and the multi-process auditors schedule shared work from declared needs:
    no PROBE.<name> of a real probe and no ``.name ==`` test in them (their own pseudo-probes,
    named for their trace entries, excepted)."""
    import ast
    from pathlib import Path

    from approx_audit.auditor.probes import PROBES

    root = Path(__file__).resolve().parents[2] / "auditor"
    own = {"run.py": set(), "distributed.py": {"dist_gradient_noise"},
           "decentralized.py": {"decentralized"}}
    for name, allowed in own.items():
        tree = ast.parse((root / name).read_text("utf-8"))
        used = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)
                and isinstance(n.value, ast.Name) and n.value.id == "PROBE"}
        assert used <= allowed, (name, used - allowed)
        for n in ast.walk(tree):
            if isinstance(n, ast.Compare) and isinstance(n.left, ast.Attribute) \
                    and n.left.attr == "name" and any(
                        isinstance(c, ast.Constant) and c.value in PROBES
                        for c in n.comparators):
                raise AssertionError(f"{name}:{n.lineno} decides by a probe's name")
