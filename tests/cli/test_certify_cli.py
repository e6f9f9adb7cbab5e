"""``approx-audit certify`` (issue 19): the test-set certificate of one trained network, its
recorded split, and one-line input errors."""

from __future__ import annotations

import json
import textwrap

import pytest
from click.testing import CliRunner

from approx_audit.auditor.certify import permutation_sha256, split_indices
from approx_audit.bounds import risk
from approx_audit.cli.main import cli

QUICK = ["-w", "logistic", "-O", "sgd", "--lr", "0.1", "-K", "60", "-B", "16"]


def certify(*args):
    return CliRunner().invoke(cli, ["certify", *args])


def test_json_certificate_is_recomputable_from_what_it_records(tmp_path):
    out = tmp_path / "cert"
    r = certify(*QUICK, "--seed", "3", "--out", str(out), "--format", "json")
    assert r.exit_code == 0, r.output
    printed = json.loads(r.stdout)
    saved = json.loads((out / "certificate.json").read_text())
    assert printed == saved
    for key in ("method", "delta", "risk_bound", "relaxations", "test_error", "train_error",
                "n_bound", "seed", "permutation_sha256", "optimizer", "steps"):
        assert key in saved, key
    assert saved["method"] == "test-set" and saved["delta"] == 0.025 and saved["steps"] == 60
    assert saved["seed"] == 3 and saved["optimizer"]["name"] == "sgd"
    m, k = saved["n_bound"], saved["test_errors"]
    assert m == round(0.2 * 569) and saved["test_error"] == k / m
    # the bound is Bin̄(m, k, δ) of what is recorded, and the split hash reproduces
    assert saved["risk_bound"] == risk.binomial_tail_inversion(m, k, 0.025)
    assert saved["relaxations"]["kl"] == risk.kl_test_set_bound(m, k, 0.025)
    assert saved["relaxations"]["hoeffding"] == risk.hoeffding_bound(m, k, 0.025)
    assert saved["test_error"] <= saved["risk_bound"] <= saved["relaxations"]["kl"]
    assert saved["relaxations"]["kl"] <= saved["relaxations"]["hoeffding"]
    perm, _, _ = split_indices(569, 0.2, 3)
    assert saved["permutation_sha256"] == permutation_sha256(perm)


def test_the_same_command_gives_the_same_certificate(tmp_path):
    a = certify(*QUICK, "--out", str(tmp_path / "a"), "--format", "json")
    b = certify(*QUICK, "--out", str(tmp_path / "b"), "--format", "json")
    assert a.exit_code == b.exit_code == 0, a.output + b.output
    ja, jb = json.loads(a.stdout), json.loads(b.stdout)
    ja.pop("command"), jb.pop("command")
    assert ja == jb
    c = certify(*QUICK, "--seed", "1", "--out", str(tmp_path / "c"), "--format", "json")
    assert json.loads(c.stdout)["permutation_sha256"] != ja["permutation_sha256"]


def test_text_output_puts_the_bound_beside_the_errors(tmp_path):
    r = certify(*QUICK, "--delta", "0.05", "--out", str(tmp_path / "t"))
    assert r.exit_code == 0, r.output
    c = json.loads((tmp_path / "t" / "certificate.json").read_text())
    assert f"{c['risk_bound']:.4f}" in r.stdout and f"{c['test_error']:.4f}" in r.stdout
    assert "Thm 3.3" in r.stdout and "Cor. 3.7" in r.stdout and "Cor. 3.8" in r.stdout
    assert "0.95" in r.stdout


def test_mlp_digits_certificate_is_non_vacuous(tmp_path):
    r = certify("-w", "mlp-digits", "-K", "300", "--out", str(tmp_path / "d"), "--format",
                "json")
    assert r.exit_code == 0, r.output
    c = json.loads(r.stdout)
    assert c["n_bound"] == 359 and c["batch_size"] == 32
    assert c["optimizer"]["hparams"]["momentum"] == 0.9   # the default -O
    assert c["test_error"] <= c["risk_bound"] < 0.5


def test_a_users_classifier(tmp_path, monkeypatch):
    (tmp_path / "mymod.py").write_text(textwrap.dedent("""
        import torch
        def model():
            return torch.nn.Linear(2, 2)
        def data():
            g = torch.Generator().manual_seed(0)
            X = torch.randn(200, 2, generator=g)
            return X, (X[:, 0] > 0).long()
    """))
    monkeypatch.chdir(tmp_path)
    r = certify("--model", "mymod:model", "--data", "mymod:data", "--loss", "cross-entropy",
                "-K", "100", "--lr", "0.5", "--out", "c", "--format", "json")
    assert r.exit_code == 0, r.output
    c = json.loads(r.stdout)
    assert c["n_bound"] == 40 and c["test_error"] < 0.2 and c["risk_bound"] < 1


@pytest.mark.parametrize("args,words", [
    (["--delta", "0"], "--delta"),
    (["--delta", "1.5"], "--delta"),
    (["--test-fraction", "1"], "--test-fraction"),
    (["--test-fraction", "0.0001"], "--test-fraction"),
    (["--method", "nosuch"], "--method"),
    (["-w", "mlp-digits", "--method", "pac-bayes", "--prior-fraction", "1"],
     "--prior-fraction"),
    (["-w", "mlp-digits", "--method", "pac-bayes", "--prior-sigma", "0"], "--prior-sigma"),
    (["-w", "mlp-digits", "--method", "pac-bayes", "--delta-prime", "0.99"],
     "--delta-prime"),
    (["--method", "pac-bayes"], "cross-entropy"),
    (["-O", "nosuch"], "nosuch"),
])
def test_input_errors_are_one_line_with_exit_2(args, words, tmp_path):
    out = tmp_path / "x"
    r = certify(*QUICK, *args, "--out", str(out))
    assert r.exit_code == 2, r.output
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0], r.stderr
    assert not (out / "certificate.json").exists()


def test_a_regression_workload_is_refused_before_training(tmp_path):
    r = certify("-w", "least-squares", "-K", "5", "--out", str(tmp_path / "x"))
    assert r.exit_code == 2
    assert r.stderr.strip().splitlines() == [r.stderr.strip()]
    assert "classifier" in r.stderr


def test_pac_bayes_certificate_is_recomputable(tmp_path, monkeypatch):
    (tmp_path / "mymod2.py").write_text(textwrap.dedent("""
        import torch
        def model():
            return torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.Tanh(),
                                       torch.nn.Linear(8, 2))
        def data():
            g = torch.Generator().manual_seed(1)
            X = torch.randn(600, 2, generator=g)
            return X, (X[:, 0] + 0.5 * X[:, 1] > 0).long()
    """))
    monkeypatch.chdir(tmp_path)
    r = certify("--model", "mymod2:model", "--data", "mymod2:data", "--loss", "cross-entropy",
                "--method", "pac-bayes", "-K", "150", "--mc-samples", "200", "--out", "pb",
                "--format", "json")
    assert r.exit_code == 0, r.output
    c = json.loads(r.stdout)
    assert c["method"] == "pac-bayes" and c["n_bound"] == 240 and c["split"]["n_prior"] == 240
    assert c["kl"] >= 0 and c["hyperparameters_tried"] == 1 and c["union_bound_bits"] == 0
    again = risk.pac_bayes_monte_carlo(c["mc_error"], c["mc_samples"], c["kl"], c["n_bound"],
                                       c["delta"], c["delta_prime"])
    assert again["risk_bound"] == c["risk_bound"] and c["confidence"] == again["confidence"]
    assert c["mc_error"] <= c["emp_risk_upper"] <= c["risk_bound"] < 0.5
    assert c["risk_bound"] <= c["relaxations"]["classic"]
    perm, _, _ = split_indices(600, 0.2, 0)
    assert c["permutation_sha256"] == permutation_sha256(perm)
