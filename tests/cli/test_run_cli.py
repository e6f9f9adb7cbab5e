"""``approx-audit run`` through click's CliRunner: files, summary, exit codes, input errors."""

from __future__ import annotations

import dataclasses
import json
import re
import textwrap
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from approx_audit.auditor.trace import read_trace
from approx_audit.bounds import catalogue
from approx_audit.cli.main import cli

README = Path(__file__).resolve().parents[2] / "README.md"


def run(*args):
    return CliRunner().invoke(cli, ["run", *args])


def test_the_newcomer_command(tmp_path):
    out = tmp_path / "audit"
    r = run("--workload", "logistic", "--optimizer", "sgd", "--lr", "0.1", "--steps", "300",
            "--out", str(out))
    assert r.exit_code == 0, r.output
    assert "gd.smooth_convex.drori_teboulle_2014" in r.stdout and "consistent" in r.stdout
    assert "gradient evaluations: training 300" in r.stdout
    data = json.loads((out / "results.json").read_text())
    assert data["schema_version"] and data["status"] == "completed"
    assert data["counts"]["violated"] == 0 and data["counts"]["consistent"] >= 5
    assert len([r for r in read_trace(out / "trace.jsonl") if r["record"] == "step"]) == 300
    prov = data["provenance"]
    assert prov["packages"]["torch"] and prov["device"] == "cpu" and "run" in prov["command"]
    # the default run's reports: one HTML file under 1 MB, Markdown under GitHub's limit
    assert (out / "report.html").stat().st_size < 1_000_000
    assert len((out / "report.md").read_text()) < 65_536


def test_json_format_and_minibatch_seeds(tmp_path):
    r = run("-w", "logistic", "-O", "sgd:lr=0.05", "-B", "32", "-K", "40", "--seeds", "2",
            "--probes", "loss,grad_norm,full_batch@10", "--format", "json", "--out", str(tmp_path))
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["config"]["seeds"] == 2 and len(data["runs"]) == 2
    assert all(v["algorithm"] == "sgd" for v in data["verdicts"])


@pytest.fixture
def too_small():
    good = catalogue.get("gd.smooth_convex.drori_teboulle_2014")
    bad = dataclasses.replace(good, id="gd.smooth_convex.cli_too_small", rhs=good.rhs / 10)
    catalogue.add(bad)
    yield bad.id
    catalogue.remove(bad.id)


def test_exit_codes_follow_the_verdicts(tmp_path, too_small):
    base = ["-w", "quadratic", "-O", "sgd", "--lr", "1", "-K", "30", "--probes", "loss,grad_norm",
            "--out", str(tmp_path)]
    r = run(*base, "--bounds", too_small)
    assert r.exit_code == 1 and "violated" in r.stdout
    assert run(*base, "--bounds", too_small, "--fail-on", "never").exit_code == 0
    # inconclusive: mu cannot be instantiated on a non-convex workload
    inc = ["-w", "mlp-digits", "-O", "sgd", "--lr", "0.1", "-B", "32", "-K", "10",
           "--probes", "loss,grad_norm,full_batch@5", "--bounds",
           "sgd.pl.karimi_2016.constant_step", "--out", str(tmp_path / "b")]
    assert run(*inc).exit_code == 0
    r = run(*inc, "--fail-on", "inconclusive")
    assert r.exit_code == 1 and "inconclusive" in r.stdout
    # diverged: exit 3, results still written
    r = run("-w", "quadratic", "-O", "sgd", "--lr", "10", "-K", "2000", "--probes", "cheap",
            "--out", str(tmp_path / "d"))
    assert r.exit_code == 3 and "diverged" in r.stdout
    assert json.loads((tmp_path / "d" / "results.json").read_text())["status"] == "diverged"


@pytest.mark.parametrize("args, words", [
    (["-w", "nope", "-O", "sgd", "-K", "5"], "unknown workload"),
    (["-w", "logistic", "-O", "sgdd", "-K", "5"], "sgd"),
    (["-w", "logistic", "-O", "sgd", "--lr", "-1", "-K", "5"], "lr"),
    (["-w", "logistic", "-O", "sgd", "-K", "5", "--assume", "eta=1"], "problem constants"),
    (["-w", "logistic", "-O", "sgd", "-K", "5", "--assume", "L=__import__('os')"], "not allowed"),
    (["-w", "logistic", "-O", "sgd", "-K", "5", "--assume", "L=-1"], "must be > 0"),
    (["-w", "logistic", "-O", "sgd", "-K", "5", "--assume", "mu=0"], "must be > 0"),
    (["-w", "logistic", "-O", "sgd", "-K", "5", "--bounds", "gd.nope"], "gd.nope"),
    (["-w", "logistic", "-O", "sgd", "-K", "5", "--probes", "sharpnes"], "unknown probe"),
    (["-w", "logistic", "-O", "sgd", "-K", "5", "--workload-option", "lam"], "KEY=VALUE"),
    (["-w", "logistic", "-O", "sgd", "-K", "5", "--workload-option", "width=3"], "no option"),
    (["--model", "x:y", "-O", "sgd", "-K", "5"], "go together"),
    (["-w", "logistic", "--model", "x:y", "--data", "x:z", "-O", "sgd", "-K", "5"], "not both"),
])
def test_input_errors_are_one_line_with_exit_2(args, words, tmp_path):
    r = run(*args, "--out", str(tmp_path))
    assert r.exit_code == 2, r.output
    err = r.stderr.strip().splitlines()
    assert len([e for e in err if e.startswith("error")]) == 1 and words in r.stderr
    assert not (tmp_path / "results.json").exists()


@pytest.mark.parametrize("where", ["/", "", "file/sub", "file"])
def test_an_unusable_out_is_refused_before_any_work(where, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "file").write_text("not a folder")
    r = run("-w", "logistic", "-O", "sgd", "-K", "5", "--out", where)
    assert r.exit_code == 2, r.output
    assert len([e for e in r.stderr.splitlines() if e.startswith("error")]) == 1
    assert "auditing" not in r.stderr and not (tmp_path / "trace.jsonl").exists()
    assert (tmp_path / "file").read_text() == "not a folder"


def test_a_batch_at_least_the_data_says_it_is_full_batch(tmp_path):
    r = run("-w", "logistic", "-O", "sgd", "-K", "2", "-B", "100000", "--format", "none",
            "--out", str(tmp_path / "a"))
    assert r.exit_code == 0 and "full batch" in r.stderr


def test_stability_refuses_a_bad_holdout_before_any_progress(tmp_path):
    from approx_audit.cli.main import cli as _cli

    r = CliRunner().invoke(_cli, ["stability", "-w", "logistic", "-O", "sgd", "-K", "5",
                                  "--holdout", "1.5", "--out", str(tmp_path / "s")])
    assert r.exit_code == 2 and "--holdout 1.5" in r.stderr
    assert "stability audit of" not in r.stderr


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_device_without_cuda_is_a_usage_error(tmp_path):
    r = run("-w", "logistic", "-O", "sgd", "-K", "5", "--device", "cuda", "--out", str(tmp_path))
    assert r.exit_code == 2 and "--device cpu" in r.stderr


def test_a_users_model_from_the_current_folder(tmp_path, monkeypatch):
    (tmp_path / "my_audit_model.py").write_text(textwrap.dedent("""
        import torch
        from sklearn.datasets import load_iris

        def build():
            return torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.Tanh(),
                                       torch.nn.Linear(16, 3))

        def data():
            X, y = load_iris(return_X_y=True)
            return torch.tensor(X, dtype=torch.float32), torch.tensor(y)
    """))
    monkeypatch.chdir(tmp_path)
    r = run("--model", "my_audit_model:build", "--data", "my_audit_model:data", "--loss",
            "cross-entropy", "-O", "sgd", "--lr", "0.1", "-B", "16", "-K", "30",
            "--out", str(tmp_path / "out"))
    assert r.exit_code == 0, r.output
    data = json.loads((tmp_path / "out" / "results.json").read_text())
    assert data["workload"]["name"] == "user:my_audit_model:build"
    assert data["workload"]["convex"] is None          # unknown for a user's model
    assert data["verdicts"]


def test_the_readme_auditor_example_runs(tmp_path, monkeypatch):
    """The ten-line example in the README is code that works."""
    text = README.read_text()
    m = re.search(r"<!-- auditor-example -->\s*```python\n(.*?)```", text, re.S)
    assert m, "README lost its auditor example"
    code = m.group(1)
    assert len([ln for ln in code.splitlines() if ln.strip()]) <= 16
    monkeypatch.chdir(tmp_path)
    env: dict = {}
    exec(compile(code, "README-example", "exec"), env)  # the README's own code, not user input
    recs = read_trace(tmp_path / "audit-mine" / "trace.jsonl")
    assert recs[-1]["record"] == "end" and recs[-1]["status"] == "completed"
    assert sum(r["record"] == "step" for r in recs) > 10


@pytest.mark.slow          # ≥ 10 s: make test-slow (CI runs it)
def test_configuration_file_and_environment_follow_the_precedence(tmp_path, monkeypatch):
    """Command line over APPROX_AUDIT_* variables over approx-audit.toml over defaults."""
    from approx_audit.cli.main import ENV_PREFIX, _check_config, load_config

    monkeypatch.chdir(tmp_path)
    (tmp_path / "approx-audit.toml").write_text('[run]\nsteps = 7\nprobes = "cheap"\n')
    default_map, path = load_config()
    assert path.endswith("approx-audit.toml")

    def go(*args, env=None):
        return CliRunner().invoke(cli, ["run", "-w", "quadratic", "-O", "sgd", "--lr", "0.5",
                                        "--out", str(tmp_path / "o"), *args],
                                  default_map=default_map, auto_envvar_prefix=ENV_PREFIX,
                                  env=env or {})

    def steps():
        return json.loads((tmp_path / "o" / "results.json").read_text())["config"]["steps"]

    assert go().exit_code == 0 and steps() == 7                          # the file
    assert go(env={"APPROX_AUDIT_RUN_STEPS": "9"}).exit_code == 0 and steps() == 9  # env
    assert go("--steps", "5", env={"APPROX_AUDIT_RUN_STEPS": "9"}).exit_code == 0
    assert steps() == 5                                                  # the command line
    data = json.loads((tmp_path / "o" / "results.json").read_text())
    assert data["config"]["probes"] == "cheap"
    assert data["config"]["config_file"].endswith("approx-audit.toml")
    # typos in the file are errors
    with pytest.raises(Exception, match="stpes"):
        _check_config({"run": {"stpes": 3}}, "approx-audit.toml")
    (tmp_path / "approx-audit.toml").write_text("[run\n")
    with pytest.raises(Exception, match="not valid TOML"):
        load_config()


def test_a_run_with_no_bound_says_why_and_claims_no_condition(tmp_path):
    """Never silent, never vacuous (issue 17 item 9): SGD with momentum and weight decay gets
    no bound today; the table and both reports name the feature and claim nothing holds."""
    out = tmp_path / "a"
    r = run("-w", "logistic", "-O", "sgd:momentum=0.9,weight_decay=5e-4", "-B", "32", "-K", "3",
            "--probes", "cheap", "--out", str(out))
    assert r.exit_code == 0, r.output
    assert "no catalogue bound matches this run: weight_decay" in r.stdout
    for name in ("report.md", "report.html"):
        text = (out / name).read_text(encoding="utf-8")
        assert "No catalogue bound matches this run: weight_decay" in text, name
        assert "No bound was selected, so no condition was checked." in text, name
        assert "Every condition of every selected bound holds" not in text, name


def test_a_ctrl_c_before_the_run_starts_exits_3_not_1(tmp_path, monkeypatch):
    """KeyboardInterrupt while the user's model module is imported (setup): exit 3 with one
    line; 1 would say a bound was violated (issue 21)."""
    (tmp_path / "kb_on_import.py").write_text("raise KeyboardInterrupt\n")
    monkeypatch.chdir(tmp_path)
    r = run("--model", "kb_on_import:f", "--data", "kb_on_import:g", "-O", "sgd", "-K", "2",
            "--out", str(tmp_path / "a"))
    assert r.exit_code == 3 and "interrupted" in r.stderr
    assert "Aborted" not in r.output


def test_threads_are_set_and_recorded(tmp_path):
    import torch as _torch

    before = _torch.get_num_threads()
    try:
        r = run("-w", "logistic", "-O", "sgd", "-K", "2", "--threads", "1", "--format", "none",
                "--out", str(tmp_path / "a"))
        assert r.exit_code == 0, r.output
        assert _torch.get_num_threads() == 1
        cfg = json.loads((tmp_path / "a" / "results.json").read_text())["config"]
        assert cfg["threads"] == 1
    finally:
        _torch.set_num_threads(before)


@pytest.mark.parametrize("workload, lr", [("quadratic", "1e4"), ("least-squares", "1e4"),
                                          ("logistic", "1e38"), ("mlp-digits", "1e38"),
                                          ("cnn-digits", "1e38"), ("three-node", "1e38")])
def test_a_diverged_run_still_gets_both_reports_saying_where(workload, lr, tmp_path):
    """Divergence is when a user needs the report most: values near 1e305 once overflowed
    matplotlib's log-axis ticks and no report was written (issue 21). Every built-in workload
    (the networks' bounded activations need a step near float32's range to overflow)."""
    out = tmp_path / "d"
    r = run("-w", workload, "-O", "sgd", "--lr", lr, "-K", "60", "--probes", "cheap",
            "--out", str(out))
    assert r.exit_code == 3 and "could not be rendered" not in r.stderr, r.stderr
    for name in ("report.html", "report.md"):
        text = (out / name).read_text(encoding="utf-8")
        assert "diverged" in text and re.search(r"(at|after) step \d+", text), name
    assert "RuntimeWarning" not in r.stderr
