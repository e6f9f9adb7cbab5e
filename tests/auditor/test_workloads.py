"""Built-in and user workloads: the facts each declares are checked independently.

f* of the convex workloads is re-derived with scipy minimising the workload's own *torch*
objective (autograd gradient and Hessian), sharing no code with ``bounds/optima.py``; the
quadratic's constants are checked with eigvalsh of the stored data; every user-loader error
path is exercised with small modules written to ``tmp_path``.
"""

from __future__ import annotations

import math
import uuid

import numpy as np
import pytest
import torch
from scipy import optimize

from approx_audit.auditor.workloads import (WORKLOADS, Known, ThreeNodeNet, UnknownWorkloadError,
                                            UserWorkloadError, Workload, WorkloadOptionError,
                                            get_workload, load_user_workload)
from approx_audit.bounds import ApproxAuditError
from approx_audit.bounds import optima

CONVEX = ("quadratic", "least-squares", "logistic")

# torch.func.hessian's forward mode registers decompositions through torch.jit.script on first
# use, which warns inside torch; nothing here calls it.
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")


@pytest.fixture(scope="module")
def convex_workloads() -> dict[str, Workload]:
    return {name: get_workload(name) for name in CONVEX}


def _set_params(model: torch.nn.Module, params) -> None:
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(params[name])


def _flat_objective(w: Workload):
    """The workload's objective as a function of one flat float64 vector (torch.func)."""
    f = w.functional_loss()
    names = [k for k, _ in w.model.named_parameters()]
    shapes = [p.shape for _, p in w.model.named_parameters()]
    sizes = [p.numel() for _, p in w.model.named_parameters()]

    def unflatten(t):
        return {k: c.reshape(s) for k, c, s in zip(names, torch.split(t, sizes), shapes)}

    return lambda t: f(unflatten(t), w.X, w.y), sum(sizes)


# -- registry and options -----------------------------------------------------------------------

def test_registry_and_unknown_names():
    assert set(WORKLOADS) == {"quadratic", "least-squares", "logistic", "mlp-digits", "cnn-digits",
                              "three-node"}
    with pytest.raises(UnknownWorkloadError, match="unknown workload 'mnist'; choose one of quadratic, "
                                                   "least-squares, logistic") as info:
        get_workload("mnist")
    assert isinstance(info.value, ApproxAuditError)


@pytest.mark.parametrize("name, options, match", [
    ("logistic", {"eta": 1}, r"workload 'logistic' takes no option eta; its options: lam=0.001"),
    ("logistic", {"lam": 0}, r"option lam=0 must be a finite number > 0"),
    ("quadratic", {"mu": 2.0, "L": 1.0}, r"mu=2 > L=1"),
    ("quadratic", {"n": 5, "d": 10}, r"option n=5 must be an integer >= 10"),
    ("quadratic", {"eigenvalues": [1.0, -1.0]}, r"must be finite and > 0"),
    ("three-node", {"noise": 0.7}, r"noise=0.7 must be a finite number >= 0 and <= 0.5"),
    ("mlp-digits", {"activation": "sine"}, r"activation='sine' is not one of tanh, relu, softplus"),
])
def test_bad_options(name, options, match):
    with pytest.raises(WorkloadOptionError, match=match):
        get_workload(name, **options)


def test_bad_dtype_and_seed():
    with pytest.raises(WorkloadOptionError, match="not a floating torch dtype"):
        get_workload("quadratic", dtype=torch.int64)
    with pytest.raises(WorkloadOptionError, match="seed=-1"):
        get_workload("quadratic", seed=-1)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message given without CUDA")
def test_cuda_without_cuda_is_a_clear_error():
    with pytest.raises(WorkloadOptionError, match="no usable CUDA device; use device='cpu'"):
        get_workload("quadratic", device="cuda")


def test_default_dtypes():
    for name in ("quadratic", "three-node"):
        assert get_workload(name).X.dtype == WORKLOADS[name].default_dtype
    assert WORKLOADS["logistic"].default_dtype == torch.float64
    assert WORKLOADS["mlp-digits"].default_dtype == torch.float32


# -- convex workloads: f* exact -------------------------------------------------------------------

@pytest.mark.parametrize("name", CONVEX)
def test_f_star_against_scipy_on_the_torch_objective(name, convex_workloads):
    w = convex_workloads[name]
    fun, p = _flat_objective(w)

    def value_and_grad(x):
        g, v = torch.func.grad_and_value(fun)(torch.tensor(x, dtype=torch.float64))
        return v.item(), g.numpy()

    def hess(x):
        return torch.func.hessian(fun)(torch.tensor(x, dtype=torch.float64)).numpy()

    res = optimize.minimize(value_and_grad, np.zeros(p), jac=True, hess=hess, method="trust-exact",
                            options={"gtol": 1e-12, "maxiter": 200})
    g = np.linalg.norm(value_and_grad(res.x)[1])
    mu = w.constants["mu"].value
    assert g**2 / (2 * mu) < 1e-12 * w.f_star, res   # the reference itself is certified
    assert w.f_star == pytest.approx(res.fun, rel=1e-9)
    assert w.convex and w.f_lower == w.f_star


@pytest.mark.parametrize("name", CONVEX)
def test_objective_at_optimum_equals_f_star_and_gradient_vanishes(name, convex_workloads):
    w = convex_workloads[name]
    model = w.fresh_model()
    _set_params(model, w.optimum)
    value = w.objective(model)
    value.backward()
    assert value.item() == pytest.approx(w.f_star, rel=1e-12)
    grad = torch.cat([p.grad.reshape(-1) for p in model.parameters()])
    assert grad.norm().item() < 1e-10
    # And the optimum is not a fluke of the evaluation: moving away increases the objective.
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1e-3)
        assert w.objective(model).item() > w.f_star


@pytest.mark.parametrize("name", ["least-squares", "logistic"])
def test_criterion_matches_the_optima_formula(name, convex_workloads):
    w = convex_workloads[name]
    loss = "least_squares" if name == "least-squares" else "logistic"
    X, y = w.X.numpy(), w.y.numpy()
    rng = np.random.default_rng(3)
    for scale in (0.0, 0.1, 1.0, 30.0):  # 30: margins far beyond softplus's linear switch at 20
        wv, b = scale * rng.standard_normal(X.shape[1]), scale * rng.standard_normal()
        model = w.fresh_model()
        _set_params(model, {"weight": torch.tensor(wv[None, :]),
                            "bias": torch.tensor([b], dtype=torch.float64)})
        with torch.no_grad():
            ours = w.objective(model).item()
        ref = optima.regularized_objective(loss, X, y, w.lam, wv, b)
        assert ours == pytest.approx(ref, rel=1e-12, abs=1e-300)


def test_logistic_criterion_is_exact_at_every_margin(convex_workloads):
    # softplus switches to x above 20 (off by log1p(e^-x) ~ 2e-9 near 20): the criterion must not.
    w = convex_workloads["logistic"]
    for margin in (-40.0, -22.0, -5.0, 0.0, 5.0, 22.0, 40.0):
        for label in (-1.0, 1.0):
            z = torch.tensor([margin * label], dtype=torch.float64)
            exact = max(-margin, 0.0) + math.log1p(math.exp(-abs(margin)))
            got = w.criterion(z, torch.tensor([label], dtype=torch.float64)).item()
            assert got == pytest.approx(exact, rel=1e-15, abs=1e-300)


def test_logistic_equals_bce_with_logits_on_01_labels(convex_workloads):
    w = convex_workloads["logistic"]
    with torch.no_grad():
        z = w.model(w.X).squeeze(-1) * 5.0
        bce = torch.nn.functional.binary_cross_entropy_with_logits(z, (w.y + 1) / 2)
        assert w.criterion(z, w.y).item() == pytest.approx(bce.item(), rel=1e-12)


def test_logistic_L_bounds_the_torch_hessian_and_mu_is_lam(convex_workloads):
    w = convex_workloads["logistic"]
    L, mu = w.constants["L"], w.constants["mu"]
    assert (L.kind, mu.kind) == ("exact", "exact") and mu.value == w.lam
    fun, p = _flat_objective(w)
    rng = np.random.default_rng(4)
    opt = torch.cat([w.optimum["weight"].reshape(-1), w.optimum["bias"]])
    points = [opt, torch.zeros(p, dtype=torch.float64)]
    points += [torch.tensor(s * rng.standard_normal(p)) for s in (0.1, 1.0, 10.0)]
    for t in points:
        ev = torch.linalg.eigvalsh(torch.func.hessian(fun)(t))
        assert ev[-1].item() <= L.value * (1 + 1e-12)
        assert ev[0].item() >= mu.value * (1 - 1e-12)
    top_at_zero = torch.linalg.eigvalsh(torch.func.hessian(fun)(points[1]))[-1].item()
    assert top_at_zero == pytest.approx(L.value, rel=1e-12)


def test_least_squares_constants_are_the_hessian_eigenvalues(convex_workloads):
    w = convex_workloads["least-squares"]
    fun, p = _flat_objective(w)
    ev = torch.linalg.eigvalsh(torch.func.hessian(fun)(torch.zeros(p, dtype=torch.float64)))
    assert w.constants["L"].value == pytest.approx(ev[-1].item(), rel=1e-12)
    assert w.constants["mu"].value == pytest.approx(ev[0].item(), rel=1e-8)
    assert w.constants["L"].kind == w.constants["mu"].kind == "exact"


# -- quadratic ----------------------------------------------------------------------------------

def test_quadratic_eigenvalues_are_exact_and_f_star_solves_normal_equations(convex_workloads):
    w = convex_workloads["quadratic"]
    A, b = w.X.numpy(), w.y.numpy()
    n, d = A.shape
    assert (n, d) == (200, 20)
    ev = np.linalg.eigvalsh(A.T @ A / n)
    np.testing.assert_allclose(ev, np.geomspace(0.01, 1.0, 20), rtol=1e-12)
    assert w.constants["L"] == Known(pytest.approx(1.0, rel=1e-12), "exact", w.constants["L"].source)
    assert w.constants["mu"].value == pytest.approx(0.01, rel=1e-12)
    x = np.linalg.solve(A.T @ A, A.T @ b)
    assert w.f_star == pytest.approx(0.5 * np.mean((A @ x - b) ** 2), rel=1e-12)
    assert w.f_star > 0  # minibatch gradients at the optimum are really stochastic
    # The noise was made orthogonal to range(A), so the planted point is the minimiser.
    np.testing.assert_allclose(w.optimum["weight"].numpy()[0], w.info["w_planted"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(x, w.info["w_planted"], rtol=0, atol=1e-12)


def test_quadratic_custom_eigenvalues_and_float32_facts_are_of_the_stored_data():
    w = get_workload("quadratic", eigenvalues=[4.0, 1.0, 0.5], n=30, noise=0.0, dtype=torch.float32)
    A = w.X.double().numpy()
    ev = np.linalg.eigvalsh(A.T @ A / 30)
    assert w.constants["L"].value == pytest.approx(ev[-1], rel=1e-14)
    assert w.constants["mu"].value == pytest.approx(ev[0], rel=1e-14)
    np.testing.assert_allclose(ev, [0.5, 1.0, 4.0], rtol=1e-6)
    assert w.f_star < 1e-12  # noise 0: b is in range(A) up to float32 rounding
    assert w.options["eigenvalues"] == (0.5, 1.0, 4.0)


# -- determinism, functional loss, fresh model --------------------------------------------------

@pytest.mark.parametrize("name", list(WORKLOADS))
def test_deterministic_under_seed(name):
    state = torch.random.get_rng_state()
    a, b = get_workload(name, seed=3), get_workload(name, seed=3)
    assert torch.equal(torch.random.get_rng_state(), state)  # the global RNG is untouched
    assert torch.equal(a.X, b.X) and torch.equal(a.y, b.y)
    for (ka, pa), (kb, pb) in zip(a.model.named_parameters(), b.model.named_parameters()):
        assert ka == kb and torch.equal(pa, pb)
    c = get_workload(name, seed=4)
    differs = any(not torch.equal(pa, pc) for pa, pc in zip(a.model.parameters(), c.model.parameters()))
    assert differs


def test_functional_loss_matches_objective_and_vmaps_over_examples():
    w = get_workload("logistic", lam=0.05)
    f = w.functional_loss()
    params = {k: v.detach() for k, v in w.model.named_parameters()}
    assert f(params, w.X, w.y).item() == pytest.approx(w.objective().item(), rel=1e-14)
    per_example = torch.func.vmap(torch.func.grad(lambda p, x, t: f(p, x[None], t[None])),
                                  in_dims=(None, 0, 0))(params, w.X, w.y)
    full = torch.func.grad(f)(params, w.X, w.y)
    for k in params:
        torch.testing.assert_close(per_example[k].mean(0), full[k], rtol=1e-12, atol=1e-14)
    no_reg = w.functional_loss(include_regularization=False)(params, w.X, w.y)
    expected = w.objective().item() - 0.5 * 0.05 * sum(p.pow(2).sum().item() for p in params.values())
    assert no_reg.item() == pytest.approx(expected, rel=1e-12)


def test_fresh_model_restores_initial_parameters():
    w = get_workload("three-node")
    before = [p.detach().clone() for p in w.model.parameters()]
    with torch.no_grad():
        for p in w.model.parameters():
            p.add_(1.0)
    fresh = w.fresh_model()
    assert all(torch.equal(a, b) for a, b in zip(before, fresh.parameters()))
    assert fresh is not w.model


def test_regularization_zero_without_lam_and_facts_frozen():
    w = get_workload("mlp-digits")
    r = w.regularization(dict(w.model.named_parameters()))
    assert r.item() == 0.0 and r.dtype == torch.float32
    with pytest.raises(TypeError):
        w.constants["L"] = Known(1.0, "exact", "x")  # type: ignore[index]
    with pytest.raises(AttributeError):
        w.f_star = 0.0  # type: ignore[misc]
    with pytest.raises(ValueError, match="Known.kind"):
        Known(1.0, "approx", "x")  # type: ignore[arg-type]


# -- digits and three-node ----------------------------------------------------------------------

def test_digits_shapes():
    mlp, cnn = get_workload("mlp-digits"), get_workload("cnn-digits")
    assert mlp.X.shape == (1797, 64) and cnn.X.shape == (1797, 1, 8, 8)
    for w in (mlp, cnn):
        assert w.y.dtype == torch.long and set(w.y.unique().tolist()) == set(range(10))
        assert 0.0 <= w.X.min().item() and w.X.max().item() == 1.0
        assert w.X.dtype == torch.float32 and not w.convex and w.f_star is None and w.f_lower == 0.0
        with torch.no_grad():
            out = w.model(w.X[:5])
            assert out.shape == (5, 10)
            assert w.objective().item() >= 0.0
    assert torch.equal(mlp.X, cnn.X.reshape(1797, 64))


def test_three_node_planted_labels_match_the_teacher():
    w = get_workload("three-node", n=300, d=6)
    W, c = w.info["teacher_W"], w.info["teacher_b"]
    X = w.X.double().numpy()
    teacher = np.all(X @ W.T + c > 0, axis=1).astype(float)
    np.testing.assert_array_equal(teacher, w.y.numpy())
    assert w.info["labels_flipped"] == w.info["teacher_errors"] == 0
    assert 0.25 < w.y.mean().item() < 0.75  # the teacher bias keeps the classes balanced-ish
    # The student's threshold network with the teacher's weights and an AND output is consistent.
    net = ThreeNodeNet(6).double()
    with torch.no_grad():
        net.hidden.weight.copy_(torch.tensor(W))
        net.hidden.bias.copy_(torch.tensor(c))
        net.output.weight.copy_(torch.tensor([[1.0, 1.0]]))
        net.output.bias.fill_(-1.5)
    assert torch.equal(net.hard_forward(w.X.double()), w.y.long())


def test_three_node_noise_flips_labels_and_relaxation_tends_to_threshold_net():
    w = get_workload("three-node", noise=0.2, temperature=1e-3, dtype=torch.float64)
    W, c = w.info["teacher_W"], w.info["teacher_b"]
    teacher = np.all(w.X.numpy() @ W.T + c > 0, axis=1)
    mismatches = int(np.sum(teacher != w.y.numpy().astype(bool)))
    assert mismatches == w.info["labels_flipped"] == w.info["teacher_errors"] > 0
    with torch.no_grad():
        logits = w.model(w.X)
        assert logits.shape == (w.n,)
        # At a small temperature the relaxation's decisions are the threshold network's.
        pre = w.model.hidden(w.X)
        off_boundary = (pre.abs() > 1e-1).all(dim=1)
        np.testing.assert_array_equal((logits > 0).long()[off_boundary].numpy(),
                                      w.model.hard_forward(w.X)[off_boundary].numpy())
        assert w.objective().item() >= 0.0


# -- the user's own workload ----------------------------------------------------------------------

HELPER = '''
import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset, IterableDataset, TensorDataset

NOT_CALLABLE = 3

def _xy():
    g = torch.Generator().manual_seed(0)
    X = torch.randn(10, 3, generator=g, dtype=torch.float64)
    return X, X.sum(1)

def model():
    return nn.Linear(3, 1)

def classifier():
    return nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))

def wide_model():
    return nn.Linear(5, 1)

def data():
    return _xy()

def data_numpy():
    X, _ = _xy()
    return X.numpy(), (X[:, 0] > 0).long().numpy()

def data_classes():
    X, _ = _xy()
    return X, (X[:, 0] > 0).long()

def data_tensor_dataset():
    return TensorDataset(*_xy())

class Pairs(Dataset):
    def __len__(self):
        return 4
    def __getitem__(self, i):
        return torch.full((3,), float(i)), float(i)

class Singles(Pairs):
    def __getitem__(self, i):
        return torch.zeros(3)

class Empty(Pairs):
    def __len__(self):
        return 0

class Stream(IterableDataset):
    def __iter__(self):
        return iter([])

def data_pairs():
    return Pairs()

def data_singles():
    return Singles()

def data_empty_dataset():
    return Empty()

def data_stream():
    return Stream()

def data_mismatch():
    return torch.zeros(4, 3), torch.zeros(5)

def data_empty():
    return torch.zeros(0, 3), torch.zeros(0)

def data_dict():
    return {"X": torch.zeros(2, 3)}

def data_triple():
    X, y = _xy()
    return X, y, y

def data_lists():
    return [[0.0, 1.0, 2.0]], [1.0]

def boom():
    raise RuntimeError("kaboom")

def needs_arg(x):
    return x

def not_a_module():
    return "a string"

def loss_ok(out, y):
    return ((out.squeeze(-1) - y) ** 2).mean()

def loss_vector(out, y):
    return (out.squeeze(-1) - y) ** 2

def loss_boom(out, y):
    raise ValueError("bad loss")

class Nested:
    @staticmethod
    def model():
        return nn.Linear(3, 1)
'''


@pytest.fixture
def user_mod(tmp_path, monkeypatch):
    """A fresh helper module (unique name, so sys.modules caching cannot mix tests) on sys.path."""
    import importlib

    name = f"aa_user_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(HELPER)
    (tmp_path / f"{name}_broken.py").write_text("raise ValueError('bad import')\n")
    (tmp_path / f"{name}_missing_dep.py").write_text("import aa_no_such_dependency_xyz\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    return name


def test_user_workload_from_tuple(user_mod):
    w = load_user_workload(f"{user_mod}:model", f"{user_mod}:data", "mse", seed=5)
    assert w.X.shape == (10, 3) and w.X.dtype == torch.float32 and w.y.dtype == torch.float32
    assert w.loss_name == "mse" and w.f_lower == 0.0 and w.f_star is None and not w.convex
    assert w.name == f"user:{user_mod}:model"
    with torch.no_grad():
        expected = ((w.model(w.X).squeeze(-1) - w.y) ** 2).mean()
        assert w.objective().item() == pytest.approx(expected.item(), rel=1e-6)
    again = load_user_workload(f"{user_mod}:model", f"{user_mod}:data", seed=5)
    assert all(torch.equal(a, b) for a, b in zip(w.model.parameters(), again.model.parameters()))


def test_user_workload_other_data_forms_and_losses(user_mod):
    w = load_user_workload(f"{user_mod}:classifier", f"{user_mod}:data_classes", "cross-entropy")
    assert w.y.dtype == torch.long and w.objective().item() > 0
    w = load_user_workload(f"{user_mod}:model", f"{user_mod}:data_tensor_dataset", "bce-logits",
                           dtype=torch.float64)
    assert w.X.dtype == torch.float64 and next(w.model.parameters()).dtype == torch.float64
    w = load_user_workload(f"{user_mod}:Nested.model", f"{user_mod}:data_pairs", f"{user_mod}:loss_ok")
    assert w.X.shape == (4, 3) and w.y.tolist() == [0.0, 1.0, 2.0, 3.0] and w.f_lower is None
    w = load_user_workload(f"{user_mod}:classifier", f"{user_mod}:data_numpy", "torch.nn:CrossEntropyLoss")
    assert w.X.shape == (10, 3) and w.y.dtype == torch.int64 and w.objective().item() > 0


@pytest.mark.parametrize("model, data, loss, reason, match", [
    ("{m}.model", "{m}:data", "mse", "syntax", r"--model '\w+\.model' is not of the form package.module:fun"),
    ("{m}:model", "{m}:data:x", "mse", "syntax", "is not of the form"),
    ("{m}:model", "1bad:data", "mse", "syntax", "is not of the form"),
    ("{m}:model", "{m}:data", "hinge", "syntax", r"--loss 'hinge' is neither a built-in loss "
                                                 r"\(mse, cross-entropy, bce-logits\)"),
    ("aa_no_such_module_xyz:model", "{m}:data", "mse", "module_not_found",
     r"module 'aa_no_such_module_xyz' not found; check the spelling"),
    ("{m}_missing_dep:model", "{m}:data", "mse", "raised",
     r"raised ModuleNotFoundError: .*aa_no_such_dependency_xyz"),
    ("{m}_broken:model", "{m}:data", "mse", "raised", r"raised ValueError: bad import; fix the module"),
    ("{m}:nope", "{m}:data", "mse", "attribute_missing",
     r"has no attribute 'nope'; callables there: .*classifier"),
    ("{m}:NOT_CALLABLE", "{m}:data", "mse", "not_callable", r"'NOT_CALLABLE' is not callable \(type int\)"),
    ("{m}:boom", "{m}:data", "mse", "raised", r"--model \w+:boom raised RuntimeError: kaboom"),
    ("{m}:needs_arg", "{m}:data", "mse", "raised", r"raised TypeError: .*called with no arguments"),
    ("{m}:not_a_module", "{m}:data", "mse", "return_type", r"returned a str; return a torch.nn.Module"),
    ("{m}:model", "{m}:boom", "mse", "raised", r"--data \w+:boom raised RuntimeError: kaboom"),
    ("{m}:model", "{m}:data_dict", "mse", "return_type", r"returned a dict; return a map-style torch Dataset"),
    ("{m}:model", "{m}:data_triple", "mse", "return_type", r"returned a tuple of length 3; return a pair"),
    ("{m}:model", "{m}:data_lists", "mse", "return_type", r"returned X of type list; return torch tensors"),
    ("{m}:model", "{m}:data_singles", "mse", "return_type",
     r"dataset\[0\] is a Tensor, not an \(input, target\) pair"),
    ("{m}:model", "{m}:data_stream", "mse", "return_type", r"returned a Stream"),
    ("{m}:model", "{m}:data_mismatch", "mse", "length_mismatch", r"X has 4 examples but y has 5"),
    ("{m}:model", "{m}:data_empty", "mse", "empty", r"returned no examples"),
    ("{m}:model", "{m}:data_empty_dataset", "mse", "empty", r"returned an empty Dataset"),
    ("{m}:wide_model", "{m}:data", "mse", "raised", r"--model \w+:wide_model raised RuntimeError on inputs of "
                                                     r"shape \(2, 3\)"),
    ("{m}:model", "{m}:data", "{m}:loss_vector", "return_type", r"returned shape \(2,\); return a scalar"),
    ("{m}:model", "{m}:data", "{m}:loss_boom", "raised", r"--loss \w+:loss_boom raised ValueError on outputs "
                                                         r"\(2, 1\) and targets \(2,\): bad loss"),
    ("{m}:classifier", "{m}:data", "mse", "raised",
     r"outputs of shape \(2, 2\) do not match targets of shape \(2,\)"),
])
def test_user_workload_errors(user_mod, model, data, loss, reason, match):
    m = user_mod
    with pytest.raises(UserWorkloadError, match=match) as info:
        load_user_workload(model.format(m=m), data.format(m=m), loss.format(m=m))
    assert info.value.reason == reason
    assert isinstance(info.value, ApproxAuditError)
    assert "\n" not in str(info.value)


def test_user_loader_leaves_global_rng_alone(user_mod):
    state = torch.random.get_rng_state()
    load_user_workload(f"{user_mod}:model", f"{user_mod}:data")
    assert torch.equal(torch.random.get_rng_state(), state)
