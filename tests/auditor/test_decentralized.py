"""``approx-audit run --nproc N --method dpsgd|local-sgd|easgd``: real multi-process runs
(gloo on CPU through torch.distributed.run), one launch per module fixture (~8 s for two ranks,
~16 s for four on one core), plus pure checks of the mixing matrix.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from click.testing import CliRunner

from approx_audit.auditor.decentralized import (mixing_matrix, mixing_spectrum,
                                                slowest_direction, validate_mixing)
from approx_audit.auditor.results import validate_results
from approx_audit.auditor.trace import read_trace
from approx_audit.auditor.judge import algorithm_of, select_bounds
from approx_audit.bounds import catalogue
from approx_audit.bounds.errors import InvalidValueError
from approx_audit.cli.main import cli

# real multi-process launches (torch.distributed.run): `make test-slow`, which CI runs
pytestmark = pytest.mark.slow

ENV = {"OMP_NUM_THREADS": "1"}
BASE = ["-w", "quadratic", "-O", "sgd", "--lr", "0.1", "-B", "32", "--format", "none"]


def _run(args, env=None):
    return CliRunner().invoke(cli, ["run", *args], env={**ENV, **(env or {})})


def _launch(out, args, env=None):
    r = _run([*args, "-o", str(out)], env)
    log = out / ".distributed" / "launch.log"
    assert r.exit_code == 0, r.output + (log.read_text() if log.exists() else "")
    return read_trace(out / "trace.jsonl")


def _steps(records):
    return [r for r in records if r["record"] == "step"]


# --------------------------------------------------------------------------- fixtures (launches)

@pytest.fixture(scope="module")
def gossip(tmp_path_factory):
    """η = 0 (the zero-gradient hook): pure gossip on the 4-ring, disagreement along the
    slowest eigenvector."""
    out = tmp_path_factory.mktemp("gossip")
    recs = _launch(out, [*BASE, "-K", "20", "-p", "loss,full_batch@10", "--nproc", "4",
                         "--method", "dpsgd", "--mixing", "ring", "--init-spread", "1",
                         "--init-along", "slowest"], {"APPROX_AUDIT_TEST_ZERO_GRAD": "1"})
    return out, recs


@pytest.fixture(scope="module")
def dpsgd(tmp_path_factory):
    out = tmp_path_factory.mktemp("dpsgd")
    recs = _launch(out, [*BASE, "-K", "60", "-p", "loss,full_batch@10", "--nproc", "2",
                         "--method", "dpsgd", "--init-spread", "1"])
    return out, recs


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    """The one-process run: DDP's trajectory (test_distributed checks DDP == one process)."""
    out = tmp_path_factory.mktemp("single")
    return _launch(out, [*BASE, "-K", "20", "-p", "loss,update_norm,full_batch@5"])


@pytest.fixture(scope="module")
def local1(tmp_path_factory):
    out = tmp_path_factory.mktemp("local1")
    return _launch(out, [*BASE, "-K", "20", "-p", "loss,update_norm,full_batch@5", "--nproc",
                         "2", "--method", "local-sgd", "--local-steps", "1"])


@pytest.fixture(scope="module")
def local5(tmp_path_factory):
    out = tmp_path_factory.mktemp("local5")
    return out, _launch(out, [*BASE, "-K", "20", "-p", "loss,full_batch@5", "--nproc", "2",
                              "--method", "local-sgd", "--local-steps", "5"])


@pytest.fixture(scope="module")
def easgd(tmp_path_factory):
    out = tmp_path_factory.mktemp("easgd")
    recs = _launch(out, [*BASE, "-K", "40", "-p", "loss,full_batch@10", "--nproc", "2",
                         "--method", "easgd", "--easgd-alpha", "0.05", "--init-spread", "1"])
    return out, recs


@pytest.fixture(scope="module")
def elastic(tmp_path_factory):
    out = tmp_path_factory.mktemp("elastic")
    recs = _launch(out, [*BASE, "-K", "20", "-p", "loss", "--nproc", "2", "--method", "easgd",
                         "--easgd-alpha", "0.05", "--init-spread", "1"],
                   {"APPROX_AUDIT_TEST_ZERO_GRAD": "1"})
    return out, recs


# --------------------------------------------------------------------------- pure checks

def test_ring_spectrum():
    W = mixing_matrix("ring", 4)
    s = mixing_spectrum(W)
    assert s["symmetric"] and math.isclose(s["lambda_2_abs"], 1 / 3, rel_tol=1e-12)
    assert math.isclose(s["spectral_gap"], 2 / 3, rel_tol=1e-12)
    assert math.isclose(s["sigma_2"], 1 / 3, rel_tol=1e-12)
    W6 = mixing_matrix("ring", 6)                       # λ₂ = 1/3 + 2/3 cos(2π/6) = 2/3
    assert math.isclose(mixing_spectrum(W6)["lambda_2_abs"], 2 / 3, rel_tol=1e-12)
    v = slowest_direction(W6)
    assert abs(v.sum()) < 1e-12 and math.isclose(float(np.linalg.norm(W6 @ v)), 2 / 3,
                                                 rel_tol=1e-9)
    assert mixing_spectrum(mixing_matrix("complete", 5))["spectral_gap"] == pytest.approx(1.0)


@pytest.mark.parametrize("W, needle", [
    ([[0.5, 0.5], [0.5, 0.5], [0, 1]], "not square"),
    ([[1.0]], "1×1 but --nproc is 2"),
    ([[1.5, -0.5], [-0.5, 1.5]], "negative"),
    ([[0.6, 0.6], [0.4, 0.4]], "row 0 sums to 1.2"),
    ([[0.5, 0.5], [0.0, 1.0]], "column 0 sums to 0.5"),
    ("abc", "not a matrix of numbers"),
])
def test_validate_mixing_errors(W, needle):
    with pytest.raises(InvalidValueError, match=needle):
        validate_mixing(W, 2)


def test_decentralized_methods_select_their_consensus_bound_only():
    own = {"dpsgd": "dpsgd.consensus.lian_2017", "local-sgd": "local_sgd.consensus.stich_2019",
           "easgd": "easgd.consensus.zhang_2015"}
    for m, bid in own.items():
        for name in ("sgd", "adam"):
            spec = {"name": name, "hparams": {}, "distributed_method": m}
            assert [b.id for b in select_bounds(catalogue, spec, True)] == [bid]
            algo, why = algorithm_of(spec, True)
            assert algo == bid.split(".")[0] and "consensus bound" in why and m in why
            assert "not confirmed" in why
    assert algorithm_of({"name": "sgd", "hparams": {}, "distributed_method": "ddp"}, True)[0] == "gd"


def _rule(out, bound_id, **hyper_override):
    """Re-rule one bound from the trace (optionally with a wrong hyper-parameter)."""
    from approx_audit.auditor.judge import (Facts, collect_constants, hyper_values, rule,
                                            runs_from_records)
    recs = read_trace(out / "trace.jsonl")
    start = recs[0]
    runs = runs_from_records(recs)
    facts = Facts.from_dict(start["facts"])
    spec = start["optimizer"]
    consts = collect_constants(runs, facts)
    hyper = {**hyper_values(spec), **hyper_override}
    return rule(catalogue.get(bound_id), runs, facts, spec, hyper, consts, runs[0].lrs())


def _verdict(out, bound_id):
    results = json.loads((out / "results.json").read_text())
    validate_results(results)
    return next(v for v in results["verdicts"] if v["id"] == bound_id)


@pytest.mark.parametrize("content, extra, needle", [
    ([[0.5, 0.5], [0.5, 0.5]], [], "is 2×2 but --nproc is 4"),
    ([[0.5, 0.5, 0, 0], [0.5, 0.6, 0, 0], [0, 0, 0.5, 0.5], [0, 0, 0.5, 0.5]], [],
     "row 1 sums to 1.1"),
    ([[1.2, -0.2, 0, 0], [-0.2, 1.2, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]], [], "negative"),
    ("not json", [], "not valid JSON"),
    (None, ["--method", "dpsgd", "--mixing", "nowhere.json"], "no such file"),
    (None, ["--method", "local-sgd"], "needs --local-steps"),
    (None, ["--method", "easgd", "--easgd-alpha", "1.5"], "0 < a < 1"),
    (None, ["--local-steps", "3"], "applies to --method local-sgd"),
    (None, ["--method", "ddp", "--init-spread", "1"], "--init-spread"),
])
def test_cli_method_errors_are_one_line(tmp_path, content, extra, needle):
    args = [*BASE, "-K", "5", "--nproc", "4", "-o", str(tmp_path / "x")]
    if content is not None:
        f = tmp_path / "W.json"
        f.write_text(content if isinstance(content, str) else json.dumps(content))
        args += ["--method", "dpsgd", "--mixing", str(f)]
    r = _run([*args, *extra])
    assert r.exit_code == 2, r.output
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and needle in lines[0], lines
    assert not (tmp_path / "x" / ".distributed").exists()     # nothing was launched


def test_dpsgd_needs_several_processes(tmp_path):
    r = _run([*BASE, "-K", "5", "--method", "dpsgd", "-o", str(tmp_path / "x")])
    assert r.exit_code == 2 and "needs --nproc 2 or more" in r.stderr


# --------------------------------------------------------------------------- D-PSGD

def test_pure_gossip_shrinks_consensus_at_the_spectral_rate(gossip):
    out, recs = gossip
    start = recs[0]["decentralized"]
    assert start["method"] == "dpsgd" and start["transport"] == "isend/irecv"
    lam = start["lambda_2_abs"]
    assert math.isclose(lam, 1 / 3, rel_tol=1e-12)
    assert math.isclose(start["spectral_gap"], 1 - lam, rel_tol=1e-12)
    init = next(r for r in recs if r["record"] == "init")
    c0 = init["consensus_distance"]
    assert math.isclose(c0, 1.0, rel_tol=1e-9)          # --init-spread 1 along v: distance 1
    steps = _steps(recs)
    assert len(steps) == 20 and all(r["method"] == "dpsgd" for r in steps)
    cs = [r["consensus_distance"] for r in steps]
    for t, c in enumerate(cs, start=1):
        # float64 rounding of x ≈ 1 leaves ~1e-16 absolute disagreement
        assert c <= lam ** t * c0 * (1 + 1e-9) + 1e-14, (t, c, lam ** t * c0)
    rate = math.log(cs[-1] / c0) / 20
    assert abs(rate / math.log(lam) - 1) < 0.05, (rate, math.log(lam))
    # gossip keeps the average: f(x̄) is the same at every checkpoint
    avg = [r["avg_full_loss"] for r in recs if r.get("avg_full_loss") is not None]
    assert len(avg) >= 3 and max(avg) - min(avg) < 1e-12 * max(1.0, abs(avg[0]))
    results = json.loads((out / "results.json").read_text())
    validate_results(results)
    assert results["config"]["method"] == "dpsgd"
    # the consensus bound: no local steps (S_u = 0), so c_K <= rho_W^K C_0 with equality
    assert [v["id"] for v in results["verdicts"]] == ["dpsgd.consensus.lian_2017"]
    v = _verdict(out, "dpsgd.consensus.lian_2017")
    assert v["verdict"] == "consistent", v["reason"]
    assert v["constants"]["Su"]["value"] == 0.0 and v["constants"]["C0"]["kind"] == "exact"
    assert 1 - 1e-6 < v["looseness"]["min"] <= v["looseness"]["max"] < 1 + 1e-6
    # a constant too small by a square (Lian et al.'s rho is for the squared distance):
    # violated, and proven so (every constant exact)
    wrong = _rule(out, "dpsgd.consensus.lian_2017", rho_W=(1 / 3) ** 2)
    assert wrong.verdict == "violated", wrong.reason
    assert "every constant is exact or conservative" in wrong.reason


def test_dpsgd_with_gradients_keeps_consensus_bounded_and_learns(dpsgd):
    out, recs = dpsgd
    init = next(r for r in recs if r["record"] == "init")
    steps = _steps(recs)
    cs = [r["consensus_distance"] for r in steps]
    assert all(math.isfinite(c) for c in cs)
    assert max(cs) <= init["consensus_distance"] * 1.5 and cs[-1] < init["consensus_distance"]
    checkpoints = [init] + [r for r in steps if r.get("avg_full_loss") is not None]
    losses = [r["avg_full_loss"] for r in checkpoints]
    assert losses[-1] < 0.5 * losses[0], losses
    # mean over ranks of ‖x_i − x*‖² = ‖x̄ − x*‖² + consensus²
    for r in checkpoints:
        assert math.isclose(r["dist_sq"], r["avg_dist_sq"] + r["consensus_distance"] ** 2,
                            rel_tol=1e-9)
    results = json.loads((out / "results.json").read_text())
    validate_results(results)
    assert results["status"] == "completed" and results["config"]["nproc"] == 2
    # the per-step recursion c_{t+1} <= rho_W c_t + s_t along the real run (2 ranks:
    # W = [[2/3, 1/3], [1/3, 2/3]], rho_W = 1/3)
    rho = recs[0]["decentralized"]["sigma_2"]
    assert math.isclose(rho, 1 / 3, rel_tol=1e-12)
    prev = init["consensus_distance"]
    for r in steps:
        assert r["update_spread"] > 0
        assert r["consensus_distance"] <= rho * prev + r["update_spread"] + 1e-12
        prev = r["consensus_distance"]
    v = _verdict(out, "dpsgd.consensus.lian_2017")
    assert v["verdict"] == "consistent", v["reason"]
    assert v["constants"]["Su"]["value"] == pytest.approx(max(r["update_spread"] for r in steps))
    assert v["hyperparameters"]["rho_W"] == pytest.approx(1 / 3)
    # the same run against a bound that forgets the steps' spread (S_u = 0): violated
    wrong = _rule(out, "dpsgd.consensus.lian_2017", Su=0.0)
    assert wrong.verdict == "violated", wrong.reason


# --------------------------------------------------------------------------- local SGD

def test_local_sgd_with_one_step_is_ddp(single, local1):
    a, b = _steps(single), _steps(local1)
    assert len(a) == len(b) == 20
    for ra, rb in zip(a, b):
        assert rb["batch_size"] == 32 and rb["local_batch_size"] == 16
        assert rb["consensus_distance"] <= 1e-13
        for k in ("loss", "update_norm", "full_loss"):
            if ra.get(k) is not None:
                assert math.isclose(ra[k], rb[k], rel_tol=1e-9, abs_tol=1e-12), (ra["step"], k)
        if ra.get("full_loss") is not None:
            assert math.isclose(ra["full_loss"], rb["avg_full_loss"], rel_tol=1e-9)


def test_local_sgd_agrees_right_after_each_average(local5):
    local5_out, local5 = local5
    steps = _steps(local5)
    for r in steps:
        if r["k"] % 5 == 0:
            assert r["consensus_distance"] <= 1e-13, r
        else:
            assert r["consensus_distance"] > 1e-8, r       # the ranks' batches differ
    assert local5[0]["decentralized"]["local_steps"] == 5
    # the drift bound: 0 at every averaging, (K mod H) S_u between; consistent
    v = _verdict(local5_out, "local_sgd.consensus.stich_2019")
    assert v["verdict"] == "consistent", v["reason"]
    assert v["hyperparameters"]["H"] == 5
    assert "looseness inf" not in v["reason"]      # observed 0 after an averaging: no ratio
    assert v["looseness"]["final"] is None and v["looseness"]["min"] >= 1
    pred = dict(zip(v["series"]["k"], v["series"]["predicted"]))
    assert all(pred[k] == 0.0 for k in pred if k % 5 == 0) and pred[3] > 0


# --------------------------------------------------------------------------- EASGD

def test_easgd_center_is_shared_and_loss_decreases(easgd):
    out, recs = easgd
    info = recs[0]["decentralized"]
    assert info["easgd_alpha"] == 0.05 and math.isclose(info["easgd_rho"], 0.5)
    steps = _steps(recs)
    assert all(r["center_disagreement"] == 0.0 for r in steps)
    init = next(r for r in recs if r["record"] == "init")
    centers = [init["center_full_loss"]] + [r["center_full_loss"] for r in steps
                                            if r.get("center_full_loss") is not None]
    assert len(centers) >= 4 and centers[-1] < 0.5 * centers[0], centers
    avg = [r["avg_full_loss"] for r in steps if r.get("avg_full_loss") is not None]
    assert avg[-1] < init["avg_full_loss"]
    # the workers' consensus recursion c_{t+1} <= (1 - a) c_t + s_t, and its verdict
    prev = init["consensus_distance"]
    for r in steps:
        assert r["consensus_distance"] <= 0.95 * prev + r["update_spread"] + 1e-12
        prev = r["consensus_distance"]
    v = _verdict(out, "easgd.consensus.zhang_2015")
    assert v["verdict"] == "consistent", v["reason"]
    assert v["hyperparameters"]["alpha_ea"] == 0.05


def test_easgd_elastic_pull_alone_contracts_by_exactly_one_minus_a(elastic):
    """No gradients (the zero-gradient hook): c_K = (1 - a)^K C_0, the bound with equality; the
    center's rate N a in place of a is refuted."""
    out, recs = elastic
    v = _verdict(out, "easgd.consensus.zhang_2015")
    assert v["verdict"] == "consistent", v["reason"]
    assert v["constants"]["Su"]["value"] == 0.0
    assert 1 - 1e-6 < v["looseness"]["min"] <= v["looseness"]["max"] < 1 + 1e-6
    wrong = _rule(out, "easgd.consensus.zhang_2015", alpha_ea=0.1)
    assert wrong.verdict == "violated", wrong.reason


def test_the_consensus_series_and_its_bound_share_their_steps(dpsgd):
    """consensus_distance is measured at x_{t+1}: its probe series sits at k = step + 1, the
    k of the consensus bound's observed series, value for value (they were one step apart)."""
    out, _ = dpsgd
    res = json.loads((out / "results.json").read_text())
    probe = next(p for p in res["probes"] if p["name"] == "decentralized")
    series = probe["series"]["consensus_distance"]
    by_k = dict(zip(series["k"], series["value"]))
    v = next(v for v in res["verdicts"] if "consensus" in v["id"])
    shared = [k for k in v["series"]["k"] if int(k) in by_k]
    assert len(shared) >= 5
    for k, obs in zip(v["series"]["k"], v["series"]["observed"]):
        if int(k) in by_k and obs is not None:
            assert by_k[int(k)] == pytest.approx(obs, rel=1e-12)
