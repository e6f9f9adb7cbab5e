"""PEP worst cases: known tight answers, the formulation against the full reference program,
certificates, errors, the catalogue check and the `check` CLI."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from click.testing import CliRunner

from approx_audit.bounds import catalogue, pep
from approx_audit.bounds.bound import Bound
from approx_audit.bounds.certify import SPECS, check_bound, compare
from approx_audit.bounds.errors import ApproxAuditError
from approx_audit.cli.main import cli

REL = 2e-6   # Clarabel with the normalised second pass: ~1e-7 measured


def rel(a, b):
    return abs(a - b) / abs(b)


@pytest.mark.parametrize("N", [1, 2, 5, 10, 40])
def test_gd_smooth_convex_is_LR2_over_4N_plus_2(N):
    for L, R in ((1.0, 1.0), (3.0, 0.5)):
        w = pep.worst_case(pep.gd(N, 1.0), pep.FunctionClass("smooth-convex", L=L), "f-gap",
                           {"distance": R})
        assert w.ok, w.note
        assert rel(w.value, L * R**2 / (4 * N + 2)) < REL
        assert rel(w.primal_value, w.value) < 1e-5


@pytest.mark.parametrize("N", [1, 3, 8])
def test_gd_strongly_convex_distance_contracts_by_1_minus_mu_over_L(N):
    w = pep.worst_case(pep.gd(N, 1.0), "smooth-strongly-convex", "dist", {"distance": 2.0},
                       L=1.0, mu=0.1)
    assert w.ok
    assert rel(w.value, 0.9 ** (2 * N) * 4.0) < REL


@pytest.mark.parametrize("N", [1, 4, 10])
def test_fgm_is_2LR2_over_N2_5N_6(N):
    w = pep.worst_case(pep.fgm(N), "smooth-convex", "f-gap", {"distance": 1.0})
    assert w.ok
    assert rel(w.value, 2 / (N * N + 5 * N + 6)) < REL


@pytest.mark.parametrize("N", [1, 4, 10])
def test_ogm_is_LR2_over_2_thetaN2(N):
    w = pep.worst_case(pep.ogm(N), "smooth-convex", "f-gap", {"distance": 1.0})
    assert w.ok
    assert rel(w.value, 1 / (2 * pep.ogm_theta(N)[-1] ** 2)) < REL


@pytest.mark.parametrize("N", [1, 3, 10])
def test_gd_nonconvex_min_grad_is_4_over_3N(N):
    # PEPit's metric: min over x_0..x_N, given f(x_0) - f(x_N) <= 1 (L = 1)
    w = pep.worst_case(pep.gd(N, 1.0), "smooth-nonconvex", "min-grad", {"gap-last": 1.0})
    assert w.ok
    assert rel(w.value, 4 / (3 * N)) < REL


def test_sparse_formulation_equals_full_reference_program():
    # the constraint-generated, chordal program against every pair posed up front
    cases = [
        (pep.heavy_ball(5, 0.5, 0.5), "smooth-convex", "f-gap", {"distance": 1.0}, {}),
        (pep.gd(6, 1.5), "smooth-strongly-convex", "grad", {"distance": 1.0}, {"mu": 0.2}),
        (pep.fgm(5), "smooth-convex", "min-grad", {"distance": 1.0}, {}),
        (pep.gd(4, 0.7), "smooth-convex", "f-gap", {"gap": 0.3, "distance": 1.0}, {}),
    ]
    for method, cls, metric, init, kw in cases:
        a = pep.worst_case(method, cls, metric, init, **kw)
        b = pep.worst_case(method, cls, metric, init, full=True, **kw)
        assert a.ok and b.status == "optimal"
        assert rel(a.value, b.value) < 1e-5, (method.name, a.value, b.value)


def test_user_matrix_gives_the_same_answer_as_the_builtin():
    N = 4
    h = np.eye(N)   # Drori-Teboulle increments: x_{i+1} = x_i - g_i/L
    user = pep.FixedStepMethod.from_increments(h)
    assert np.allclose(user.coefficients, pep.gd(N, 1.0).coefficients)
    w = pep.worst_case(user, "smooth-convex", "f-gap", {"distance": 1.0})
    assert rel(w.value, 1 / 18) < REL
    # a method that skips its latest gradient uses the gradient basis and still works
    A = np.tril(np.ones((3, 3)), -1) + np.diag([1.0, 0.0, 1.0])
    w2 = pep.worst_case(pep.FixedStepMethod(A), "smooth-convex", "f-gap", {"distance": 1.0})
    assert w2.basis == "gradients" and w2.status == "optimal"


def test_certificate_lists_active_inequalities():
    w = pep.worst_case(pep.gd(3, 1.0), "smooth-convex", "f-gap", {"distance": 1.0})
    assert w.certificate
    pairs = {(dict(c)["i"], dict(c)["j"]) for c in w.certificate}
    assert all(dict(c)["multiplier"] > 0 for c in w.certificate)
    assert any("x*" in p for p in pairs)
    json.dumps(w.to_dict())


def test_unbounded_worst_case_is_reported():
    # a step of 2.5/L diverges on quadratics: the worst case is unbounded... under a gap bound
    # only; without any constraint linking x_N, nothing bounds ||grad f(x_N)|| in the
    # non-convex class with gap-last when N steps can increase f. Check a clear case:
    w = pep.worst_case(pep.gd(1, 1.0), "smooth-nonconvex", "min-grad", {"gap-last": 1.0})
    assert math.isfinite(w.value)
    wu = pep.worst_case(pep.gd(2, 3.0), "smooth-convex", "f-gap", {"gap": 1.0})
    assert wu.status in ("unbounded", "optimal")
    if wu.status == "optimal":
        assert wu.value > 1.0   # a step of 3/L can only make things worse


@pytest.mark.parametrize("kwargs, message", [
    (dict(function_class="smooth-strongly-convex", mu=0.0), "mu > 0"),
    (dict(function_class="smooth-strongly-convex", mu=1.0), "mu must be < L"),
    (dict(function_class="smooth-strongly-convex", mu=2.0, L=1.0), "mu must be < L"),
    (dict(function_class="smooth-convex", L=-1.0), "L must be"),
    (dict(function_class="nope"), "unknown function class"),
    (dict(metric="nope"), "unknown metric"),
    (dict(initial={}), "initial condition is needed"),
    (dict(initial={"distance": -1.0}), "> 0"),
    (dict(initial={"radius": 1.0}), "unknown initial condition"),
    (dict(function_class="smooth-nonconvex", metric="f-gap"), "needs a minimizer"),
    (dict(function_class="smooth-nonconvex", metric="grad"), "no minimizer"),
    (dict(solver="mosek"), "unknown solver"),
])
def test_degenerate_parameters_are_clear_errors(kwargs, message):
    args = dict(function_class="smooth-convex", metric="f-gap", initial={"distance": 1.0})
    args.update(kwargs)
    with pytest.raises(ApproxAuditError, match=message):
        pep.worst_case(pep.gd(2, 1.0), **args)


@pytest.mark.parametrize("make, message", [
    (lambda: pep.gd(0), "N must be an integer >= 1"),
    (lambda: pep.gd(3, -1.0), "> 0"),
    (lambda: pep.gd(3, [1.0, 1.0]), "N = 3"),
    (lambda: pep.heavy_ball(3, 1.0, 1.0), "momentum"),
    (lambda: pep.fgm_strongly_convex(3, 1.0), "mu/L"),
    (lambda: pep.FixedStepMethod(np.ones((2, 2))), "lower-triangular"),
    (lambda: pep.FixedStepMethod(np.ones((2, 3))), "square"),
])
def test_bad_methods_are_clear_errors(make, message):
    with pytest.raises(ApproxAuditError, match=message):
        make()


# ----------------------------------------------------------------------------------------------
# The catalogue check
# ----------------------------------------------------------------------------------------------

FAST = (1, 3, 10)


@pytest.mark.parametrize("bound_id", sorted(SPECS))
def test_catalogue_bound_is_above_the_worst_case(bound_id):
    b = catalogue.get(bound_id)
    r = check_bound(b, FAST)
    assert r.complete, [x.to_dict() for x in r.rows if not x.exact or x.solver_status != "optimal"]
    assert r.valid, [x.to_dict() for x in r.rows if x.status == "invalid"]
    if b.tight:
        assert r.tight_ok, [x.to_dict() for x in r.rows]
    # `pep` in verified exactly when the check passes through a certifying formulation
    assert ("pep" in b.verified) == (r.passed and r.certifies)


@pytest.mark.slow
@pytest.mark.parametrize("bound_id", sorted(SPECS))
def test_catalogue_bound_all_horizons_1_to_10(bound_id):
    b = catalogue.get(bound_id)
    r = check_bound(b, range(1, 11))
    assert r.passed


def test_no_bound_claims_pep_without_a_check():
    for b in catalogue:
        if "pep" in b.verified:
            assert b.id in SPECS and SPECS[b.id].certifies, b.id


def test_a_too_small_constant_is_caught():
    good = catalogue.get("gd.smooth_convex.drori_teboulle_2014")
    bad = Bound(**{**_fields(good), "id": "gd.smooth_convex.too_small_test",
                   "rhs": good.rhs * 0.99, "tight": False, "verified": ("derivation",)})
    SPECS_copy = SPECS[good.id]
    SPECS[bad.id] = SPECS_copy
    try:
        r = check_bound(bad, (1, 2))
    finally:
        del SPECS[bad.id]
    assert not r.valid
    assert all(x.status == "invalid" and x.ratio > 1 for x in r.rows)


def _fields(b):
    import dataclasses
    return {f.name: getattr(b, f.name) for f in dataclasses.fields(b) if f.init}


def test_compare_statuses():
    w = pep.worst_case(pep.gd(1, 1.0), "smooth-convex", "f-gap", {"distance": 1.0})
    assert compare(w, 1 / 6, tight=True)[0] == "tight"
    assert compare(w, 0.2, tight=True)[0] == "not-tight"
    assert compare(w, 0.16, tight=False)[0] == "invalid"
    assert compare(w, 1 / 6 * (1 - 1e-8), tight=False)[0] == "valid"   # within tolerance


# ----------------------------------------------------------------------------------------------
# CLI
# ----------------------------------------------------------------------------------------------


def run(args):
    return CliRunner().invoke(cli, args)


def test_cli_check_catalogue_json():
    r = run(["check", "gd.smooth_convex.drori_teboulle_2014", "--horizon", "3", "--format", "json"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    assert d["id"] == "gd.smooth_convex.drori_teboulle_2014" and d["valid"] is True
    assert {"K", "worst_case", "bound", "ratio", "status", "solver"} <= set(d["rows"][0])
    assert [row["K"] for row in d["rows"]][:3] == [1, 2, 3]
    assert all(row["status"] == "tight" for row in d["rows"])


def test_cli_check_claim_valid_and_invalid():
    base = ["check", "--method", "gd", "--step", "1/L", "--class", "smooth-convex",
            "--metric", "f-gap", "--initial", "distance", "--horizon", "3", "L=2", "R=1"]
    ok = run(base + ["--claim", "L*R**2/(4*K+2)"])
    assert ok.exit_code == 0, ok.output
    assert "valid" in ok.output
    bad = run(base + ["--claim", "L*R**2/(4*K+3)", "--format", "json"])
    assert bad.exit_code == 1, bad.output
    assert json.loads(bad.output)["valid"] is False


@pytest.mark.parametrize("args, message", [
    (["--claim", "1", "--method", "gd", "--step", "3/L", "--initial", "distance"], "out of range"),
    (["--claim", "1", "--method", "gd", "--step", "1/L", "--initial", "distance",
      "--class", "smooth-strongly-convex", "mu=0"], "mu"),
    (["--claim", "1", "--method", "gd", "--step", "1/L", "--initial", "distance",
      "--class", "smooth-strongly-convex", "mu=1"], "mu must be < L"),
    (["--claim", "__import__('os')", "--method", "gd", "--step", "1/L", "--initial", "distance"], ""),
    (["--claim", "1", "--method", "gd", "--initial", "distance"], "needs --step"),
    (["--claim", "1", "--method", "gd", "--step", "1/L"], "--initial"),
    (["sgd.nonconvex.bottou_2018"], "cannot be checked by PEP"),
    (["no.such.bound"], "unknown bound"),
    # outside the theorem's conditions it claims nothing: refused, not reported as invalid
    (["gd.smooth_convex.beck_2017", "L=1", "R=1", "eta=1.5"], "fails at"),
    (["gd.smooth_convex.beck_2017", "L=1", "R=1"], "needs eta"),
])
def test_cli_check_errors_are_one_line_exit_2(args, message):
    r = run(["check", "--horizon", "2", *args, "L=1", "R=1"] if "--claim" in args else
            ["check", *args, "--horizon", "2"])
    assert r.exit_code == 2, r.output
    lines = [ln for ln in r.output.strip().splitlines() if ln]
    assert len(lines) == 1 and lines[0].startswith("error:"), r.output
    assert message.lower() in lines[0].lower()


def test_scs_on_request_agrees_with_clarabel():
    w = pep.worst_case(pep.gd(5, 1.0), "smooth-convex", "f-gap", {"distance": 1.0}, solver="scs")
    assert w.solver == "scs" and w.status in ("optimal", "optimal_inaccurate")
    assert rel(w.value, 1 / 22) < 1e-4   # first-order solver: looser tolerance, stated
