"""The Bound API and catalogue queries on known values."""

from __future__ import annotations

import json

import numpy as np
import pytest
import sympy as sp

from approx_audit.bounds import (ApproxAuditError, InvalidValueError, MissingValueError,
                                 Quantity, UnknownBoundError, UnknownSymbolError,
                                 UnreachableTargetError, catalogue, parse_expression)
from approx_audit.bounds import symbols as S

DT = "gd.smooth_convex.drori_teboulle_2014"


def test_evaluate_known_values_and_broadcasting():
    b = catalogue.get(DT)
    assert b.evaluate(L=1, R=1, eta=1, K=1) == pytest.approx(1 / 6)
    ks = np.arange(1, 6)
    np.testing.assert_allclose(b.evaluate(L=1, R=1, eta=1, K=ks), 1 / (4 * ks + 2))
    grid = b.evaluate(L=np.array([[1.0], [2.0]]), R=1, eta=0.5, K=ks)
    assert grid.shape == (2, 5)
    np.testing.assert_allclose(grid[1], 2 / (4 * ks + 2))


def test_evaluate_errors_name_the_problem():
    b = catalogue.get(DT)
    with pytest.raises(MissingValueError, match="R"):
        b.evaluate(L=1, eta=1, K=1)
    with pytest.raises(InvalidValueError, match="L=-1 must be > 0"):
        b.evaluate(L=-1, R=1, eta=1, K=1)
    with pytest.raises(InvalidValueError, match="integer"):
        b.evaluate(L=1, R=1, eta=1, K=1.5)
    with pytest.raises(UnknownSymbolError, match="did you mean"):
        b.evaluate(L=1, R=1, eta=1, K=1, Rr=2)
    adam = catalogue.get("adam.nonconvex.defossez_2022")
    with pytest.raises(InvalidValueError, match="beta1=1.5 must be < 1"):
        adam.evaluate(beta1=1.5, beta2=0.999, eta=1e-3, K=10, L=1, d=2, eps=1e-8, G_inf=1,
                      Delta=1)


def test_conditions_report_slack_and_ratio():
    b = catalogue.get("gd.smooth_convex.beck_2017")
    (ok,) = b.conditions(eta=0.1, L=2)
    assert ok.holds and ok.slack == pytest.approx(0.4)
    (bad,) = b.conditions(eta=0.1, L=31.25)
    assert bad.holds is False
    assert bad.ratio == pytest.approx(3.125)  # eta exceeds 1/L by 3.125x
    (unknown,) = b.conditions(eta=0.1)
    assert unknown.holds is None and unknown.missing == ("L",)
    strict = catalogue.get("gd.smooth_nonconvex.beck_2017")
    (edge,) = strict.conditions(eta=2.0, L=1)  # eta < 2/L is strict
    assert edge.holds is False


def test_iterations_to_closed_form_and_search_agree():
    b = catalogue.get(DT)
    res = b.iterations_to_details(1e-3, L=1, R=1, eta=1)
    assert res.K == 250 and res.method == "closed_form"  # 1/(4K+2) <= 1e-3  <=>  K >= 249.5
    geo = catalogue.get("gd.smooth_strongly_convex.beck_2017")
    res = geo.iterations_to_details(1e-6, mu=0.1, eta=1, R=1, L=1)
    expected = int(np.ceil(np.log(1e-6) / np.log(0.9)))
    assert res.K == expected and res.method == "monotone_search"
    assert geo.iterations_to(1e-6, mu=0.1, eta=1, R=1) == expected


def test_iterations_to_errors():
    sgd = catalogue.get("sgd.nonconvex.bottou_2018")
    with pytest.raises(UnreachableTargetError, match="floor"):
        sgd.iterations_to(1e-3, L=1, sigma=1, Delta=1, eta=0.5)  # floor eta L sigma^2 = 0.5
    with pytest.raises(InvalidValueError):
        sgd.iterations_to(-1, L=1, sigma=1, Delta=1, eta=0.5)
    hb = catalogue.get("heavy_ball.quadratic.polyak_1964")
    with pytest.raises(ApproxAuditError, match="does not depend on K"):
        hb.iterations_to(0.5, beta=0.5)


def test_order_latex_mathml():
    b = catalogue.get(DT)
    assert b.order() == 1 / S.K
    assert catalogue.get("agd.smooth_convex.bubeck_2015").order() == S.K**-2
    assert r"\le" in b.latex() and "f(x_K)" in b.latex()
    assert b.mathml().startswith("<math") and "&#8804;" in b.mathml()
    assert r"\mathbb{E}" in catalogue.get("sgd.nonconvex.bottou_2018").latex()
    assert r"\ge" in catalogue.get("first_order.smooth_convex.nesterov_2018").latex()
    adagrad = catalogue.get("adagrad.nonconvex.defossez_2022")
    assert r"G_{\infty}" in adagrad.latex() and r"\epsilon" in adagrad.latex()
    assert "&#8734;" in adagrad.mathml() and "&#949;" in adagrad.mathml()
    assert "G_inf" in str(adagrad.rhs)  # the plain name, which the parser reads back


def test_substitute_numbers_and_expressions():
    b = catalogue.get(DT)
    at_one_over_l = b.substitute(eta=parse_expression("1/L"))
    assert sp.simplify(at_one_over_l.rhs - S.L * S.R**2 / (4 * S.K + 2)) == 0
    assert at_one_over_l.conditions_ == ()  # 1/L <= 1/L became True and was dropped
    assert dict(at_one_over_l.substituted) == {"eta": "1/L"}
    too_big = b.substitute(eta=parse_expression("3/L"))
    assert too_big.conditions_ == (sp.false,)
    assert too_big.conditions()[0].holds is False
    numeric = b.substitute(L=2, R=1)
    assert numeric.evaluate(eta=0.5, K=1) == pytest.approx(2 / 6)
    with pytest.raises(TypeError):
        b.substitute(eta="1/L")


def test_directions():
    b = catalogue.get(DT)
    assert b.direction("R") == "increasing"
    assert b.direction("K") == "decreasing"
    assert b.direction("mu") == "constant"
    sgd = catalogue.get("sgd.nonconvex.bottou_2018")
    assert sgd.direction("eta").endswith("non-monotone")  # floor grows, transient shrinks


def test_catalogue_queries_and_errors():
    gd = catalogue.query(algorithm="gd")
    assert gd and all(b.algorithm == "gd" for b in gd)
    pl = catalogue.query(assumption="pl")
    assert {b.id for b in pl} >= {"gd.pl.karimi_2016", "sgd.pl.karimi_2016"}
    dist = catalogue.query(quantity="last_iterate_dist_sq")
    assert all(b.quantity is Quantity.LAST_ITERATE_DIST_SQ for b in dist)
    assert catalogue.query(kind="lower")
    with pytest.raises(UnknownBoundError, match="gd.smooth_convex.beck_2017"):
        catalogue.get("gd.smooth_convex.beck")
    with pytest.raises(ApproxAuditError, match="unknown assumption"):
        catalogue.query(assumption="convexx")
    with pytest.raises(ApproxAuditError, match="did you mean"):
        catalogue.query(algorithm="sdg")
    with pytest.raises(ApproxAuditError, match="unknown quantity"):
        catalogue.query(quantity="loss")


def test_user_bound_can_be_added_and_removed():
    base = catalogue.get(DT)
    import dataclasses

    mine = dataclasses.replace(base, id="gd.smooth_convex.mine_2026", rhs=base.rhs / 10)
    catalogue.add(mine)
    try:
        assert catalogue.get("gd.smooth_convex.mine_2026").evaluate(L=1, R=1, eta=1, K=1) == \
            pytest.approx(1 / 60)
        with pytest.raises(ApproxAuditError):
            catalogue.add(mine)
    finally:
        catalogue.remove("gd.smooth_convex.mine_2026")
    assert "gd.smooth_convex.mine_2026" not in catalogue


def test_bound_rejects_malformed_definitions():
    base = catalogue.get(DT)
    import dataclasses

    with pytest.raises(ValueError, match="family.setting"):
        dataclasses.replace(base, id="Bad Id")
    with pytest.raises(ValueError, match="unknown assumptions"):
        dataclasses.replace(base, assumptions=("smoothness",))
    with pytest.raises(ValueError, match="verified"):
        dataclasses.replace(base, verified=("vibes",))
    with pytest.raises(UnknownSymbolError):
        dataclasses.replace(base, rhs=sp.Symbol("zeta") * base.rhs)


def test_to_dict_is_json():
    d = catalogue.get(DT).to_dict()
    json.dumps(d)
    assert d["citation"]["locator"] == "Theorem 3.1"
    assert d["tight"] is True and d["kind"] == "upper"
