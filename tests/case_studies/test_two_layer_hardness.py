"""Case study "hardness of small two-layer networks": exact MILP vs independent checks.

Every optimum the MILP reports is compared with something that does not share its code path:
the d = 2 exhaustive search (no margin, no solver), brute-force Set-Splitting, the weights of
Blum & Rivest's proof, the generic one-MILP formulation, and a plain-numpy re-evaluation
written out in this file.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from click.testing import CliRunner

from approx_audit.bounds.errors import ApproxAuditError
from approx_audit.case_studies.two_layer_hardness import (
    AND, FANO_PLANE, NAND, StudyInputError, StudyOptions, all_subsets_instance,
    blum_rivest_network, exact_train, exact_train_generic, exhaustive_train, planted_instance,
    random_set_splitting, reduction_instance, relaxed_train, run_study,
    set_splitting_brute_force)
from approx_audit.case_studies.two_layer_hardness.exhaustive import halfplane_dichotomies
from approx_audit.cli.main import cli


def plain_errors(X, y, W, b, table):
    """Errors of a hard 3-node network, written out without the package's Network class."""
    W, b = np.asarray(W, float), np.asarray(b, float)
    h1 = (X @ W[0] + b[0] > 0).astype(int)
    h2 = (X @ W[1] + b[1] > 0).astype(int)
    out = np.array([table[2 * a + c] for a, c in zip(h1, h2)])
    return int(np.sum(np.where(out == 1, 1, -1) != y))


def assert_verified(X, y, res):
    """The MILP's network, evaluated independently, has exactly the reported error count."""
    W, b = res.weights
    assert plain_errors(X, y, W, b, res.network.table) == res.errors
    assert res.verified
    assert 0 <= res.bound <= res.errors


# --------------------------------------------------------------------------- exact vs exhaustive

@pytest.mark.parametrize("n,seed,output", [(9, 0, "and"), (12, 1, "and"), (16, 2, "and"),
                                           (18, 3, "and"), (12, 4, "threshold"),
                                           (16, 5, "threshold"), (18, 6, "threshold")])
def test_milp_matches_exhaustive_search_in_the_plane(n, seed, output):
    inst = planted_instance(n, 2, noise=0.2, output=output, seed=seed)
    ex = exhaustive_train(inst.X, inst.y, output=output)
    res = exact_train(inst.X, inst.y, output=output, time_limit=30)
    assert res.status == "optimal"
    assert res.errors == ex.errors
    assert_verified(inst.X, inst.y, res)
    W, b = ex.network.W, ex.network.b
    assert plain_errors(inst.X, inst.y, W, b, ex.network.table) == ex.errors


def test_noisy_instances_have_positive_optimum_somewhere():
    # the comparison above must not be vacuous (all optima 0)
    opts = [exhaustive_train(planted_instance(n, 2, noise=0.2, seed=s).X,
                             planted_instance(n, 2, noise=0.2, seed=s).y).errors
            for n, s in ((12, 1), (16, 2), (18, 3))]
    assert max(opts) > 0


def test_exhaustive_lists_every_dichotomy_once():
    X = np.random.default_rng(0).standard_normal((11, 2))
    D, W, C = halfplane_dichotomies(X)
    assert D.shape[0] == 11 * 11 - 11 + 2  # Cover's count C(n, 3) = n² − n + 2 in the plane
    assert len({row.tobytes() for row in D}) == D.shape[0]
    assert np.array_equal(D, (X @ W.T + C > 0).T)  # each one realised by explicit weights


def test_threshold_output_is_min_of_and_on_y_and_minus_y():
    inst = planted_instance(14, 3, noise=0.2, output="threshold", seed=7)
    X, y = inst.X, inst.y
    thr = exact_train(X, y, output="threshold", time_limit=30)
    pos = exact_train(X, y, output="and", time_limit=30)
    neg = exact_train(X, -y, output="and", time_limit=30)
    gen = exact_train_generic(X, y, time_limit=60)
    assert {thr.status, pos.status, neg.status, gen.status} == {"optimal"}
    assert thr.errors == min(pos.errors, neg.errors) == gen.errors
    assert thr.network.table in (AND, NAND)
    assert_verified(X, y, thr)
    assert_verified(X, y, gen)


def test_generic_formulation_allows_xor_only_when_asked():
    # XNOR of the two axes on points near and far from the origin: each class's convex hull
    # holds points of the other, so no threshold output fits, but an XNOR output does
    pos = np.array([(0.1, 0.1), (0.9, 0.9), (0.9, 0.1), (0.1, 0.9)])
    pos = np.vstack([pos, -pos])
    neg = pos * np.array([1, -1])
    X = np.vstack([pos, neg]) + np.random.default_rng(0).uniform(-0.02, 0.02, (16, 2))
    y = np.r_[np.ones(8), -np.ones(8)].astype(int)
    ltf = exact_train_generic(X, y, time_limit=60)
    xor = exact_train_generic(X, y, allow_xor=True, time_limit=60)
    assert ltf.status == xor.status == "optimal"
    assert xor.errors == 0 < ltf.errors
    assert ltf.errors == exhaustive_train(X, y, output="threshold").errors


# ------------------------------------------------------------------------- reduction instances

def _split_is_valid(k, subsets, s1):
    s1 = set(s1)
    return all(not set(c) <= s1 and not set(c) <= set(range(k)) - s1 for c in subsets)


def test_set_splitting_brute_force_on_known_instances():
    assert set_splitting_brute_force(5, all_subsets_instance(5, 3)) is None
    assert set_splitting_brute_force(7, FANO_PLANE) is None
    s = set_splitting_brute_force(4, all_subsets_instance(4, 3))
    assert s is not None and _split_is_valid(4, all_subsets_instance(4, 3), s)
    s = set_splitting_brute_force(3, [(0, 1), (1, 2)])  # Blum & Rivest's example
    assert s is not None and _split_is_valid(3, [(0, 1), (1, 2)], s)
    assert set_splitting_brute_force(3, [(0, 1), (1, 2), (0, 2)]) is None  # a triangle


def _reduction_cases():
    cases = [(5, all_subsets_instance(5, 3)), (7, FANO_PLANE), (4, all_subsets_instance(4, 3))]
    for k, m, seed in ((5, 6, 0), (6, 12, 1), (6, 15, 2), (6, 15, 3), (7, 17, 4), (7, 20, 5),
                       (8, 20, 6), (8, 24, 7)):
        cases.append((k, random_set_splitting(k, m, seed=seed)))
    return cases


def test_reduction_cases_include_both_answers():
    answers = [set_splitting_brute_force(k, s) is not None for k, s in _reduction_cases()]
    assert any(answers) and not all(answers)
    assert sum(answers) >= 3 and len(answers) - sum(answers) >= 3


@pytest.mark.parametrize("k,subsets", _reduction_cases())
def test_and_optimum_is_zero_iff_splittable(k, subsets):
    split = set_splitting_brute_force(k, subsets)
    inst = reduction_instance(k, subsets, gadget=False)
    res = exact_train(inst.X, inst.y, output="and", time_limit=30)
    assert res.status == "optimal"
    assert (res.errors == 0) == (split is not None)
    assert_verified(inst.X, inst.y, res)
    if split is not None:
        assert _split_is_valid(k, subsets, split)
        assert blum_rivest_network(k, split, gadget=False).errors(inst.X, inst.y) == 0


@pytest.mark.parametrize("k,subsets", _reduction_cases()[:7])
def test_any_threshold_output_with_gadget_is_zero_iff_splittable(k, subsets):
    split = set_splitting_brute_force(k, subsets)
    inst = reduction_instance(k, subsets, gadget=True)
    res = exact_train(inst.X, inst.y, output="threshold", time_limit=30)
    assert res.status == "optimal"
    assert (res.errors == 0) == (split is not None)
    assert_verified(inst.X, inst.y, res)
    if split is not None:
        net = blum_rivest_network(k, split, gadget=True)
        assert plain_errors(inst.X, inst.y, net.W, net.b, AND) == 0


def test_blum_rivest_weights_fail_without_a_split():
    # the certificate check can fail: a partition that leaves a subset monochromatic
    k, subsets = 4, all_subsets_instance(4, 3)
    inst = reduction_instance(k, subsets, gadget=True)
    assert blum_rivest_network(k, (0, 1, 2), gadget=True).errors(inst.X, inst.y) >= 1


def test_gadget_rules_out_or_output():
    # with the gadget even an OR-type output (AND on −y) cannot fit a splittable instance
    k, subsets = 4, all_subsets_instance(4, 3)
    inst = reduction_instance(k, subsets, gadget=True)
    assert exact_train(inst.X, -inst.y, output="and", time_limit=30).errors >= 1


# ---------------------------------------------------------------------------- limits and errors

def test_time_limit_returns_incumbent_and_bound():
    inst = planted_instance(160, 2, noise=0.1, seed=11)
    res = exact_train(inst.X, inst.y, output="and", time_limit=0.5)
    assert res.status == "time_limit"
    assert res.errors >= res.bound >= 0
    assert res.errors > res.bound  # not proven, so a gap remains
    assert inst.meta["teacher_errors"] >= res.bound  # the teacher is a network too
    W, b = res.weights
    assert plain_errors(inst.X, inst.y, W, b, res.network.table) == res.errors
    assert res.verified  # here: numpy errors ≤ MILP objective
    assert res.time < 10


def test_time_limit_before_any_incumbent_falls_back_to_a_constant_network():
    inst = planted_instance(300, 8, noise=0.1, seed=3)
    res = exact_train(inst.X, inst.y, output="and", time_limit=1e-3)
    assert res.status == "time_limit" and res.bound == 0
    if res.objective is None:  # HiGHS had no incumbent: never report the zeros cvxpy returns
        assert not res.verified
        assert res.errors == min(np.sum(inst.y == 1), np.sum(inst.y == -1))
    W, b = res.weights
    assert plain_errors(inst.X, inst.y, W, b, res.network.table) == res.errors


@pytest.mark.parametrize("call", [
    lambda: exact_train(np.zeros((3, 2)), np.array([0, 1, 1])),
    lambda: exact_train(np.zeros(3), np.array([1, -1, 1])),
    lambda: exact_train(np.zeros((3, 2)), np.array([1, -1])),
    lambda: exact_train(np.full((2, 2), np.nan), np.array([1, -1])),
    lambda: exact_train(np.zeros((2, 2)), np.array([1, -1]), time_limit=-1),
    lambda: exact_train(np.zeros((2, 2)), np.array([1, -1]), output="xor"),
    lambda: exact_train(np.zeros((2, 2)), np.array([1, -1]), eps=0),
    lambda: planted_instance(0, 2),
    lambda: planted_instance(5, 0),
    lambda: exhaustive_train(np.zeros((3, 3)), np.array([1, -1, 1])),
    lambda: exhaustive_train(np.array([[0., 0.], [1., 1.], [2., 2.]]), np.array([1, -1, 1])),
    lambda: reduction_instance(3, [(0,)]),
    lambda: reduction_instance(3, [(0, 5)]),
    lambda: relaxed_train(np.zeros((2, 2)), np.array([1, -1]), restarts=0),
    lambda: StudyOptions(sizes=(0,)).validate(),
    lambda: StudyOptions(dims=(2, 0)).validate(),
    lambda: StudyOptions(time_limit=-5).validate(),
])
def test_bad_input_is_a_one_line_user_error(call):
    with pytest.raises(ApproxAuditError) as info:
        call()
    assert isinstance(info.value, StudyInputError)
    assert "\n" not in str(info.value)


# ------------------------------------------------------------------------------- relaxation

def test_relaxation_is_deterministic_and_counts_gradients():
    inst = planted_instance(30, 3, noise=0.1, seed=2)
    a = relaxed_train(inst.X, inst.y, optimizer="sgd", restarts=3, steps=50, batch_size=8, seed=5)
    b = relaxed_train(inst.X, inst.y, optimizer="sgd", restarts=3, steps=50, batch_size=8, seed=5)
    assert a.checkpoint_errors == b.checkpoint_errors and a.errors == b.errors
    assert a.grad_evals == 3 * 50 * 8 and a.checkpoint_grad_evals[-1] == a.grad_evals
    assert a.network.errors(inst.X, inst.y) == a.errors == min(map(min, a.checkpoint_errors))
    opt = exact_train(inst.X, inst.y, time_limit=30)
    assert a.errors >= opt.errors  # a hard network can never beat the proven optimum


def test_relaxation_fits_a_separable_instance():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 2))
    keep = np.abs(X[:, 0] + 0.3) > 0.2  # a margin around one line
    X = X[keep]
    y = np.where(X[:, 0] + 0.3 > 0, 1, -1)
    for optimizer in ("sgd", "adam"):
        r = relaxed_train(X, y, output="threshold", optimizer=optimizer, restarts=4, steps=300,
                          seed=0)
        assert r.errors == 0, optimizer


def test_relaxation_is_recorded_through_the_auditor(tmp_path):
    # the study's loop runs under the library's Auditor: its steps are in the trace and its
    # gradient count is the auditor's
    inst = planted_instance(30, 3, noise=0.1, seed=2)
    r = relaxed_train(inst.X, inst.y, optimizer="adam", restarts=3, steps=20, batch_size=8,
                      seed=1, trace=tmp_path)
    assert r.audit["record"] == "end" and r.audit["status"] == "completed"
    assert r.audit["steps"] == 20
    costs = r.audit["costs"]
    assert costs["train_steps"] == 20 and costs["train_examples"] == 20 * 8
    assert r.grad_evals == 3 * costs["train_examples"] == 3 * 20 * 8
    records = [json.loads(line) for line in (tmp_path / "trace.jsonl").read_text().splitlines()]
    steps = [x for x in records if x["record"] == "step"]
    assert [x["step"] for x in steps] == list(range(20))
    assert all(x["batch_size"] == 8 and np.isfinite(x["loss"]) for x in steps)
    assert records[0]["record"] == "start" and records[0]["study"] == "two-layer-hardness"
    assert {"init", "final", "end"} <= {x["record"] for x in records}
    quiet = relaxed_train(inst.X, inst.y, optimizer="adam", restarts=3, steps=20, batch_size=8,
                          seed=1)
    assert quiet.checkpoint_errors == r.checkpoint_errors  # recording changes nothing


@pytest.mark.parametrize("output", ["and", "threshold"])
def test_relaxed_restarts_are_the_librarys_three_node_net(output):
    import torch

    from approx_audit.auditor.workloads import ThreeNodeNet
    from approx_audit.case_studies.two_layer_hardness.relaxation import (
        _hard_networks, _initial, restarts_model)

    inst = planted_instance(25, 3, noise=0.1, output=output, seed=4)
    gen = torch.Generator().manual_seed(0)
    init = _initial(torch, output, 4, 3, gen, torch.float64)
    model = restarts_model(torch, output, init)
    assert isinstance(model, ThreeNodeNet)
    X = torch.as_tensor(inst.X)
    logits, hard = model(X), model.hard_forward(X)
    assert logits.shape == hard.shape == (4, 25)
    for r, net in enumerate(_hard_networks(model, output)):
        single = ThreeNodeNet(3, output=output).double()
        single.load_state_dict({k: v[r] for k, v in init.items()})
        assert torch.allclose(single(X), logits[r], rtol=0, atol=1e-12)
        # the library's hard network and the study's numpy scorer agree point by point
        assert np.array_equal(np.where(hard[r].numpy() == 1, 1, -1), net.predict(inst.X))


# ------------------------------------------------------------------------------ the study

def test_tiny_study_writes_deterministic_report(tmp_path):
    opts = StudyOptions(sizes=(8, 12), dims=(2,), reps=1, time_limit=20, restarts=2, steps=20,
                        elements=(4,), reduction_reps=1, check_sizes=(6,), check_reps=1)
    res = run_study(opts, tmp_path / "a")
    assert [c["status"] for c in res["checks"]] == ["passed"] * len(res["checks"])
    files = sorted(os.listdir(tmp_path / "a"))
    assert files == sorted(["results.json", "report.md", "exact_time_vs_n.svg",
                            "ratio_vs_grad_evals.svg", "reduction_success.svg"])
    from approx_audit.case_studies.two_layer_hardness.report import render_report
    loaded = json.loads((tmp_path / "a" / "results.json").read_text())
    os.makedirs(tmp_path / "b")
    render_report(loaded, str(tmp_path / "b"))
    for name in files:
        if name.endswith((".svg", ".md")):
            assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


@pytest.mark.parametrize("args", [
    ["--sizes", "0"], ["--dims", "2,0"], ["--sizes", "ten"], ["--time-limit", "-1"],
    ["--restarts", "0"],
])
def test_cli_rejects_bad_options(args, tmp_path):
    res = CliRunner().invoke(cli, ["case-study", "two-layer-hardness", "--out",
                                   str(tmp_path / "o"), *args])
    assert res.exit_code == 2
    assert res.stderr.startswith("error: ") and res.stderr.count("\n") == 1


def test_cli_rejects_unwritable_out(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    res = CliRunner().invoke(cli, ["case-study", "two-layer-hardness", "--quick", "--out",
                                   str(blocker / "sub")])
    assert res.exit_code == 2
    assert "--out" in res.stderr and res.stderr.count("\n") == 1


@pytest.mark.slow
def test_cli_quick_end_to_end(tmp_path):
    out = tmp_path / "study"
    # the quick study with fewer planted instances and a shorter time limit (explicit options
    # override --quick): the largest size still times out, the checks all run; 34 s instead
    # of 79 s here, so that `make test` stays under 10 minutes on two busy cores
    res = CliRunner().invoke(cli, ["case-study", "two-layer-hardness", "--quick", "--sizes",
                                   "10,120", "--reps", "1", "--time-limit", "2", "--out",
                                   str(out)])
    assert res.exit_code == 0, res.output
    assert f"results: {out / 'results.json'}" in res.stdout
    assert "checks:" in res.stdout and "[planted" in res.stderr and "[planted" not in res.stdout

    data = json.loads((out / "results.json").read_text())
    prov = data["provenance"]
    assert prov["seed"] == 0 and prov["options"]["quick"] is True
    assert prov["start"] <= prov["end"] and prov["versions"]["cvxpy"]
    assert {c["name"] for c in data["checks"]} >= {
        "milp_vs_exhaustive_d2", "reduction_opt_zero_iff_splittable",
        "blum_rivest_certificate", "milp_verified_in_numpy"}
    for c in data["checks"]:
        assert c["status"] == "passed" and c["passed"] > 0, c

    opts = prov["options"]
    planted = data["planted"]
    assert len(planted) == len(opts["sizes"]) * len(opts["dims"]) * opts["reps"]
    for r in planted + data["reductions"] + data["exhaustive_checks"]:
        assert r["status"] in ("optimal", "time_limit")
    timeouts = [r for r in planted if r["status"] == "time_limit"]
    assert timeouts, "quick mode is sized to produce time-outs at its time limit"
    for r in timeouts:  # kept as rows, with an incumbent, a bound and a certified range
        assert r["exact"]["errors"] >= r["exact"]["bound"]
        assert r["opt_lower"] <= r["opt_upper"]
        for c in r["certified"].values():
            assert c["opt_proven"] is False and c["ratio"] is None
    assert sum(t["timeouts"] for t in data["summary"]["timing"]) == len(timeouts)
    splits = [r["splittable"] for r in data["reductions"]]
    assert any(splits) and not all(splits)

    report = (out / "report.md").read_text()
    for section in ("## The theorem", "## Agreement checks", "## Exact training time",
                    "## Approximate vs exact training", "## Reduction instances",
                    "## What the measurements show and do not show", "## Provenance"):
        assert section in report
    assert "time_limit" in report and "NP-complete" in report
    for name in ("exact_time_vs_n.svg", "ratio_vs_grad_evals.svg", "reduction_success.svg"):
        svg = (out / name).read_text()
        assert svg.lstrip().startswith("<?xml") and "<svg" in svg
        assert f"]({name})" in report


def test_cli_exits_3_when_an_agreement_check_fails(tmp_path, monkeypatch):
    from approx_audit.case_studies.two_layer_hardness import study

    real = study._checks

    def broken(*args):
        checks = real(*args)
        checks[0] = dict(checks[0], status="failed", failed=1, failures=["injected"])
        return checks

    monkeypatch.setattr(study, "_checks", broken)
    res = CliRunner().invoke(cli, ["case-study", "two-layer-hardness", "--quick", "--sizes", "8",
                                   "--dims", "2", "--reps", "1", "--elements", "4",
                                   "--restarts", "1", "--steps", "5", "--out", str(tmp_path)])
    assert res.exit_code == 3
    assert "agreement check failed" in res.stderr
    assert "NOT all passed" in (tmp_path / "report.md").read_text()
