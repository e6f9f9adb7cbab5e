"""A hostile or careless user (issue 21): hand-edited traces, a reused --out folder, user code
that exits, interrupts or cannot be trained, and values out of range. Each gives its
documented exit code and one line, and keeps whatever was measured."""

from __future__ import annotations

import json
import textwrap
import uuid

import pytest
from click.testing import CliRunner

from approx_audit.auditor.trace import read_trace
from approx_audit.cli.main import cli

USER_CODE = '''
import sys
import torch
from torch import nn


def data():
    g = torch.Generator().manual_seed(0)
    X = torch.randn(20, 3, generator=g)
    return X, X.sum(1)


class Exits(nn.Module):
    """Calls sys.exit(code) in the forward of training step 5 (batches of 3 rows with
    gradients on are the training loop's; the loader's check uses 2 rows)."""

    def __init__(self, code):
        super().__init__()
        self.lin, self.code, self.calls = nn.Linear(3, 1), code, 0

    def forward(self, x):
        if torch.is_grad_enabled() and x.shape[0] == 3:
            self.calls += 1
            if self.calls > 5:
                sys.exit(self.code)
        return self.lin(x)


class NoParams(nn.Module):
    def forward(self, x):
        return x.sum(-1, keepdim=True)


class Detached(nn.Linear):
    def forward(self, x):
        return super().forward(x).detach()


def exit0():
    return Exits(0)


def exit7():
    return Exits(7)


def no_params():
    return NoParams()


def frozen():
    m = nn.Linear(3, 1)
    for p in m.parameters():
        p.requires_grad_(False)
    return m


def detached():
    return Detached(3, 1)


def good():
    return nn.Linear(3, 1)
'''


def run(*args):
    return CliRunner().invoke(cli, ["run", *args])


def one_error_line(r) -> str:
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.output
    assert "Traceback" not in r.output and "Aborted" not in r.output
    return lines[0]


@pytest.fixture
def user(tmp_path, monkeypatch):
    """A module of misbehaving user code under a fresh name (sys.modules cannot mix tests),
    in a folder on sys.path; returns its name."""
    name = f"aa_hostile_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(USER_CODE)
    (tmp_path / f"{name}_kbi.py").write_text("raise KeyboardInterrupt\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    return name


# ------------------------------------------------------------------ hand-edited traces

def _edit(trace, keep):
    recs = read_trace(trace)
    trace.write_text("".join(json.dumps(r) + "\n" for r in keep(recs)))


def _removed_duplicated_swapped(recs):
    steps = {r["step"]: r for r in recs if r["record"] == "step"}
    out = []
    for r in recs:
        if r["record"] != "step":
            out.append(r)
        elif r["step"] == 17:
            continue                                       # removed
        elif r["step"] == 23:
            out += [r, r]                                  # duplicated
        elif r["step"] in (39, 40):
            out.append(steps[79 - r["step"]])              # 40 before 39
        else:
            out.append(r)
    return out


def test_a_trace_with_steps_removed_duplicated_or_reversed_is_named_not_ruled(tmp_path):
    out = tmp_path / "a"
    r = run("-w", "quadratic", "-O", "sgd", "--lr", "0.5", "-K", "50", "--probes", "cheap",
            "--format", "none", "--out", str(out))
    assert r.exit_code == 0, r.output
    _edit(out / "trace.jsonl", _removed_duplicated_swapped)
    why = "run 0: steps not contiguous: 17 missing, 23 duplicated, 40 before 39"
    r = CliRunner().invoke(cli, ["report", str(out / "trace.jsonl"), "--format", "json"])
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["status"] == "error" and why in data["message"]
    assert data["verdicts"] and {v["verdict"] for v in data["verdicts"]} == {"error"}
    assert {v["reason"] for v in data["verdicts"]} == {why}
    r = CliRunner().invoke(cli, ["report", str(out / "trace.jsonl"), "--format", "md"])
    assert r.exit_code == 0, r.output                      # it rendered
    md = (out / "report.md").read_text(encoding="utf-8")
    assert why in md and "observed ≤ predicted" not in md and "status completed" not in md


# ------------------------------------------------------------------ a reused --out folder

def test_a_new_run_removes_the_old_audits_files_and_nothing_else(tmp_path):
    out = tmp_path / "a"
    base = ["-w", "quadratic", "-O", "sgd", "--lr", "0.5", "--probes", "cheap", "--out", str(out)]
    assert run(*base, "-K", "30").exit_code == 0
    plots = out / "report-plots"
    assert (out / "report.html").is_file() and (out / "report.md").is_file()
    assert any(plots.glob("*.svg"))
    (out / "notes.txt").write_text("mine")
    (plots / "mine.png").write_bytes(b"\x89PNG")
    r = run(*base, "-K", "3", "--format", "none")
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt", "report-plots",
                                                     "results.json", "trace.jsonl"]
    assert [p.name for p in plots.iterdir()] == ["mine.png"]
    assert (out / "notes.txt").read_text() == "mine"
    assert json.loads((out / "results.json").read_text())["config"]["steps"] == 3
    # report renders this run, not the old one
    r = CliRunner().invoke(cli, ["report", str(out), "--format", "json"])
    assert r.exit_code == 0 and json.loads(r.stdout)["runs"][0]["steps"] == 3


def test_without_plots_the_old_plots_folder_goes_too(tmp_path):
    out = tmp_path / "a"
    base = ["-w", "quadratic", "-O", "sgd", "--lr", "0.5", "--probes", "cheap", "--out", str(out)]
    assert run(*base, "-K", "5").exit_code == 0
    assert run(*base, "-K", "5", "--format", "html").exit_code == 0
    assert not (out / "report-plots").exists() and not (out / "report.md").exists()


# ------------------------------------------------------------------ user code that misbehaves

def _user_run(user, model, tmp_path, *extra):
    return run("--model", f"{user}:{model}", "--data", f"{user}:data", "-O", "sgd", "--lr",
               "0.01", "-K", "20", "-B", "3", "--probes", "cheap", "--format", "none",
               "--out", str(tmp_path / "out"), *extra)


def test_a_keyboard_interrupt_on_import_is_one_line_never_exit_1(user, tmp_path):
    """Exit 3 'interrupted' (cli/main.py, tests/cli/test_run_cli.py), never click's
    'Aborted!' with 1, which means a bound was violated."""
    r = run("--model", f"{user}_kbi:f", "--data", f"{user}_kbi:g", "-O", "sgd", "-K", "2",
            "--out", str(tmp_path / "out"))
    assert r.exit_code == 3
    assert one_error_line(r) == "error: interrupted by the user"


@pytest.mark.parametrize("model, code", [("exit0", 0), ("exit7", 7)])
def test_sys_exit_in_the_forward_is_a_failed_run_with_its_steps_kept(user, tmp_path, model,
                                                                     code):
    r = _user_run(user, model, tmp_path)
    assert r.exit_code == 3, r.output
    why = f"run 0 failed: the user's code called sys.exit({code}) during training"
    assert why in r.stdout and "Traceback" not in r.output
    data = json.loads((tmp_path / "out" / "results.json").read_text())
    assert data["status"] == "error" and data["message"] == why
    assert data["runs"][0]["steps"] == 5 and data["runs"][0]["status"] == "error"
    recs = read_trace(tmp_path / "out" / "trace.jsonl")
    assert [r["step"] for r in recs if r["record"] == "step"] == [0, 1, 2, 3, 4]
    assert recs[-1]["record"] == "end" and recs[-1]["status"] == "error"


@pytest.mark.parametrize("model, words", [
    ("no_params", "the NoParams has no parameters, so there is nothing to train"),
    ("frozen", "all 2 parameter tensors of the Linear are frozen (requires_grad=False)"),
    ("detached", "the loss has no gradient (no grad_fn): the model's output or the loss is "
                 "detached from the parameters"),
])
def test_a_model_that_cannot_be_trained_is_refused_before_training(user, tmp_path, model,
                                                                   words):
    r = _user_run(user, model, tmp_path)
    assert r.exit_code == 2
    assert one_error_line(r).startswith(f"error: --model {user}:{model}")
    assert words in r.stderr
    assert not (tmp_path / "out").exists()                  # nothing ran, nothing written


# ------------------------------------------------------------------ values out of range

@pytest.mark.parametrize("workload", [["-w", "quadratic"], None])
def test_a_seed_beyond_64_bits_is_an_input_error(user, tmp_path, workload):
    what = workload or ["--model", f"{user}:good", "--data", f"{user}:data"]
    r = run(*what, "-O", "sgd", "-K", "2", "--seed", "99999999999999999999999",
            "--out", str(tmp_path / "out"))
    assert r.exit_code == 2
    assert one_error_line(r) == ("error: option seed=99999999999999999999999 must be an "
                                 "integer <= 9223372036854775807")


@pytest.mark.parametrize("value, needle", [("1e400", "not a finite number"),
                                           ("nan", "not a finite number"),
                                           ("2.5", "give an integer")])
def test_a_bad_number_in_the_configuration_file_is_an_input_error(tmp_path, monkeypatch,
                                                                   capsys, value, needle):
    """steps = 1e400 reads as infinity (click then failed: exit 3); 2.5 was truncated to 2."""
    from approx_audit.cli.main import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "approx-audit.toml").write_text(textwrap.dedent(f"""
        [run]
        steps = {value}
    """))
    with pytest.raises(SystemExit) as info:
        main(["run", "-w", "quadratic", "-O", "sgd", "--out", str(tmp_path / "out")])
    assert info.value.code == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and needle in err[0] and "[run] steps" in err[0]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("value", ["L=-1", "L=0"])
def test_a_constant_that_is_not_positive_is_refused(tmp_path, value):
    r = run("-w", "quadratic", "-O", "sgd", "-K", "2", "--assume", value,
            "--out", str(tmp_path / "out"))
    assert r.exit_code == 2
    assert one_error_line(r) == (f"error: --assume {value} must be > 0 (smoothness: gradient "
                                 "Lipschitz constant)")


def test_a_meta_device_is_an_input_error(tmp_path):
    r = run("-w", "quadratic", "-O", "sgd", "-K", "2", "--device", "meta",
            "--out", str(tmp_path / "m"), "--format", "none")
    assert r.exit_code == 2, r.output
    err = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(err) == 1 and "--device 'meta'" in err[0]


def test_check_with_values_that_overflow_is_an_input_error():
    from click.testing import CliRunner

    from approx_audit.cli.main import cli

    r = CliRunner().invoke(cli, ["check", "gd.smooth_convex.drori_teboulle_2014", "--horizon",
                                 "2", "L=1e300", "R=1e300", "eta=1e-300", "--quiet"])
    assert r.exit_code == 2, r.output
    err = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(err) == 1 and "overflow" in err[0]
