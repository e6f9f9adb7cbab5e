"""``approx-audit run --nproc 2``: a real two-process DDP audit (gloo on CPU, torch.distributed.run).

The two distributed launches (~15 s each on two cores) are shared through module fixtures:
one normal run (with the ``APPROX_AUDIT_TEST_GATHER`` hook, which adds every rank's raw values
to each step record) and one run whose rank 1 crashes at step 5.
"""

from __future__ import annotations

import json
import math

import pytest
import torch
from click.testing import CliRunner

from approx_audit.auditor.distributed import (DIST_KEYS, LINEAR_KEYS, SAME_KEYS, check_split,
                                              dist_noise, pooled_gradient_noise, shard_bounds)
from approx_audit.auditor.trace import read_trace
from approx_audit.bounds.errors import InvalidValueError
from approx_audit.cli.main import cli

# real multi-process launches (torch.distributed.run): `make test-slow`, which CI runs
pytestmark = pytest.mark.slow

PROBES = "loss,grad_norm,update_norm,full_batch@5,gradient_noise@5,local_smoothness@5"
ARGS = ["-w", "quadratic", "-O", "sgd", "--lr", "0.1", "-B", "32", "-K", "20", "-p", PROBES,
        "--format", "none"]


def _run(args, env=None):
    return CliRunner().invoke(cli, ["run", *args], env=env)


def _steps(path):
    return [r for r in read_trace(path) if r["record"] == "step"]


def _close(a, b, rel=1e-9):
    return abs(a - b) <= rel * max(abs(a), abs(b), 1e-300)


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    out = tmp_path_factory.mktemp("single")
    r = _run([*ARGS, "-o", str(out)], env={"OMP_NUM_THREADS": "1"})
    assert r.exit_code == 0, r.output
    return out


@pytest.fixture(scope="module")
def ddp(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp")
    r = _run([*ARGS, "--nproc", "2", "-o", str(out)],
             env={"OMP_NUM_THREADS": "1", "APPROX_AUDIT_TEST_GATHER": "1",
                  "APPROX_AUDIT_FULL_DATA": "sharded"})
    log = out / ".distributed" / "launch.log"
    assert r.exit_code == 0, r.output + (log.read_text() if log.exists() else "")
    return out


@pytest.fixture(scope="module")
def crashed(tmp_path_factory):
    out = tmp_path_factory.mktemp("crash")
    r = _run([*ARGS, "--nproc", "2", "-o", str(out)],
             env={"OMP_NUM_THREADS": "1", "APPROX_AUDIT_TEST_CRASH_RANK": "1",
                  "APPROX_AUDIT_TEST_CRASH_STEP": "5", "APPROX_AUDIT_DIST_TIMEOUT": "20"})
    return out, r


# --------------------------------------------------------------------------- pure helpers

def test_check_split():
    check_split(32, 200, 2)
    check_split(None, 200, 3)            # full batch: shards may differ by one example
    check_split(33, 200, 1)
    for args in ((33, 200, 2), (None, 1, 2), (8, 200, 0)):
        with pytest.raises(InvalidValueError):
            check_split(*args)


def test_shard_bounds_cover_the_data_once():
    for n, world in ((10, 3), (9, 3), (5, 4)):
        bounds = [shard_bounds(n, r, world) for r in range(world)]
        assert bounds[0][0] == 0 and bounds[-1][1] == n
        assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))
        sizes = [hi - lo for lo, hi in bounds]
        assert max(sizes) - min(sizes) <= 1


def test_pooled_noise_equals_the_whole_batch_variance():
    g = torch.randn(12, 5, dtype=torch.float64)          # per-sample gradients, 3 "ranks"
    parts = [g[:4], g[4:7], g[7:]]
    gbar = g.mean(0)
    pooled = pooled_gradient_noise(
        [len(p) for p in parts],
        [float(((p - p.mean(0)) ** 2).sum() / (len(p) - 1)) for p in parts],
        [float(((p.mean(0) - gbar) ** 2).sum()) for p in parts])
    direct = float(((g - gbar) ** 2).sum() / (len(g) - 1))
    assert _close(pooled, direct, 1e-12)


def test_dist_noise_from_two_local_gradients():
    m1, m2 = torch.tensor([1.0, 2.0], dtype=torch.float64), torch.tensor([3.0, -2.0],
                                                                         dtype=torch.float64)
    gbar = (m1 + m2) / 2
    spread = float(((m1 - gbar) ** 2).sum() + ((m2 - gbar) ** 2).sum())
    v = dist_noise(spread, world=2, local_batch=16)
    # unbiased sample variance of the two local means (sum over coordinates)
    direct = float(((m1 - gbar) ** 2 + (m2 - gbar) ** 2).sum() / (2 - 1))
    assert _close(v["dist_gradient_noise_local"], direct, 1e-14)
    assert _close(v["dist_gradient_noise_batch"], direct / 2, 1e-14)
    assert _close(v["dist_gradient_noise"], direct * 16, 1e-14)


# --------------------------------------------------------------------------- CLI errors

@pytest.mark.parametrize("extra, needle", [(["--nproc", "0"], "--nproc 0"),
                                            (["-B", "33", "--nproc", "2"], "--batch-size 33"),
                                            (["--nproc", "2", "ENV"], "APPROX_AUDIT_FULL_DATA")])
def test_cli_errors_are_one_line(tmp_path, extra, needle):
    env = None
    if "ENV" in extra:
        extra = [e for e in extra if e != "ENV"]
        env = {"APPROX_AUDIT_FULL_DATA": "halved"}
    args = [a for a in ARGS]
    if "-B" in extra:
        i = args.index("-B")
        del args[i:i + 2]
    r = _run([*args, *extra, "-o", str(tmp_path / "x")], env)
    assert r.exit_code == 2, r.output
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and needle in lines[0]
    assert not (tmp_path / "x" / ".distributed").exists()     # nothing was launched


# --------------------------------------------------------------------------- DDP vs one process

def test_ddp_trajectory_equals_single_process(single, ddp):
    a, b = _steps(single / "trace.jsonl"), _steps(ddp / "trace.jsonl")
    assert len(a) == len(b) == 20
    for ra, rb in zip(a, b):
        assert rb["batch_size"] == ra["batch_size"] == 32
        for k in ("loss", "grad_norm", "grad_inf_norm", "update_norm", "effective_lr",
                  "full_loss", "full_grad_norm", "gradient_noise", "gradient_noise_batch",
                  "gradient_snr", "loss_after", "convexity_gap", "convexity_gap_reverse",
                  "convexity_ratio", "local_smoothness", "convexity_gap_normalized"):
            if ra.get(k) is not None:
                assert _close(ra[k], rb[k], 1e-6), (ra["step"], k, ra[k], rb[k])
    ra_, rb_ = (json.loads((d / "results.json").read_text()) for d in (single, ddp))
    assert rb_["status"] == "completed" and rb_["config"]["nproc"] == 2
    fa, fb = ra_["runs"][0]["final"], rb_["runs"][0]["final"]
    assert _close(fa["full_loss"], fb["full_loss"], 1e-6)
    assert _close(fa["dist_sq"], fb["dist_sq"], 1e-6)
    start = read_trace(ddp / "trace.jsonl")[0]
    assert start["world_size"] == 2 and start["distributed"]["backend"] == "gloo"
    assert [v["verdict"] for v in ra_["verdicts"]] == [v["verdict"] for v in rb_["verdicts"]]


def test_full_data_values_are_sharded_over_the_ranks(single, ddp):
    """Each rank evaluates F and ∇F on its half of the data (one all-reduce sums them): rank 0
    saw half the examples per full-data evaluation, and the values equal the one-process ones
    (checked in test_ddp_trajectory_equals_single_process)."""
    from approx_audit.auditor.distributed import shard_bounds

    recs = read_trace(ddp / "trace.jsonl")
    start, end = recs[0], recs[-1]
    n = start["facts"]["n"]
    checkpoints = [r for r in recs if r["record"] in ("init", "final")
                   or (r["record"] == "step" and "full_loss" in r)]
    # F and ∇F at each checkpoint, and F at the three averaged iterates where recorded
    evaluations = sum(1 + 3 * ("avg_loss_0" in r) for r in checkpoints)
    assert evaluations > len(checkpoints)
    lo, hi = shard_bounds(n, 0, 2)
    assert end["costs"]["full_data_examples_rank0"] == evaluations * (hi - lo)
    assert hi - lo < n and "sharded" in start["distributed"]["full_data"]
    assert end["costs"]["full_data"]["mode"] == "sharded"


def test_full_data_mode_auto_is_measured_and_recorded(crashed):
    """By default the mode is decided from a timed full pass and a timed collective (maxima
    over ranks), recorded with the rule in the end record."""
    out, _ = crashed
    end = [r for r in read_trace(out / "trace.jsonl") if r["record"] == "end"][-1]
    fd = end["costs"]["full_data"]
    assert fd["mode"] in ("sharded", "replicated")
    assert fd["full_pass_ms"] > 0 and fd["collective_ms"] > 0
    saved = 0.5 * fd["full_pass_ms"]
    assert (fd["mode"] == "sharded") == (saved > 20 * fd["collective_ms"])


def test_reduced_values_equal_the_gathered_rank_values(ddp):
    steps = _steps(ddp / "trace.jsonl")
    checked = set()
    for rec in steps:
        ranks = rec["rank_values"]
        assert len(ranks) == 2
        n = [r["n"] for r in ranks]
        assert n == [16, 16]
        for k, v in rec.items():
            vals = [r["values"].get(k) for r in ranks]
            if k in SAME_KEYS and vals[0] is not None:
                assert vals[0] == vals[1] == v, k          # identical on every rank
                checked.add(k)
            elif k in LINEAR_KEYS:
                if None not in vals:
                    mean = sum(ni * vi for ni, vi in zip(n, vals)) / sum(n)
                    assert _close(v, mean, 1e-12), k
                    checked.add(k)
        if rec.get("local_smoothness") is not None:
            # the global-batch secant (exact, recomputed) never exceeds the ranks' mean secant
            # (triangle inequality) — which is why that mean is not used as a lower bound on L
            own = [r["values"]["local_smoothness"] for r in ranks]
            assert rec["local_smoothness"] <= sum(own) / 2 * (1 + 1e-12)
            checked.add("local_smoothness")
        spreads = [r["spread"] for r in ranks]
        d = dist_noise(sum(spreads), 2, 16)
        for k in DIST_KEYS:
            assert _close(rec[k], d[k], 1e-12)
        if rec.get("gradient_noise") is not None:
            pooled = pooled_gradient_noise(n, [r["values"]["gradient_noise"] for r in ranks],
                                           spreads)
            assert _close(rec["gradient_noise"], pooled, 1e-12)
            assert _close(rec["gradient_noise_batch"], pooled / 32, 1e-12)
            checked.add("gradient_noise")
    assert {"loss", "update_norm", "full_loss", "loss_after", "gradient_noise",
            "local_smoothness"} <= checked


def test_rank_means_are_no_lower_estimate_of_L():
    """A full-batch multi-process run's per-shard curvature means (rank_mean_keys) must not
    become lower bounds on L; the same values from a one-process run do."""
    from approx_audit.auditor.judge import Facts, collect_constants, runs_from_records

    facts = Facts("toy", True, False, 0.0, None, {}, 10, 2, "float64")

    def records(section):
        start = {"record": "start", "run": 0, "full_batch": True}
        if section:
            start[section] = {"rank_mean_keys": ["sharpness", "local_smoothness"]}
        return [start, {"record": "step", "run": 0, "step": 0, "k": 1, "sharpness": 7.0,
                        "local_smoothness": 5.0}]

    one = collect_constants(runs_from_records(records(None)), facts)
    assert one["L"].lo == 7.0
    for section in ("distributed", "decentralized"):
        multi = collect_constants(runs_from_records(records(section)), facts)
        assert "L" not in multi


def test_dist_gradient_noise_is_a_sensible_estimate(ddp):
    steps = _steps(ddp / "trace.jsonl")
    per_sample = [r["dist_gradient_noise"] for r in steps]
    assert all(math.isfinite(v) and v > 0 for v in per_sample)
    exact = [r["gradient_noise"] for r in steps if r.get("gradient_noise") is not None]
    # one degree of freedom per step (two ranks): compare averages, loosely
    ratio = (sum(per_sample) / len(per_sample)) / (sum(exact) / len(exact))
    assert 0.2 < ratio < 5, ratio
    results = json.loads((ddp / "results.json").read_text())
    assert "dist_gradient_noise" in [p["name"] for p in results["probes"]]


# --------------------------------------------------------------------------- a rank crashes

def test_a_crashed_rank_ends_the_run_clearly(crashed):
    out, r = crashed
    assert r.exit_code == 3, r.output
    lines = r.stderr.strip().splitlines()
    err = [ln for ln in lines if ln.startswith("error:")]
    assert len(err) == 1 and "rank 1 failed at step 5" in err[0] and "injected crash" in err[0]
    steps = _steps(out / "trace.jsonl")
    assert [s["step"] for s in steps] == [0, 1, 2, 3, 4]
    results = json.loads((out / "results.json").read_text())
    assert results["status"] == "error" and "rank 1" in results["message"]
    assert results["runs"][0]["steps"] == 5


@pytest.mark.slow
@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
def test_ctrl_c_under_nproc_stops_every_rank_and_keeps_every_finished_step(tmp_path, sig):
    """A real signal to `approx-audit run --nproc 2` alone (the ranks run in their own process
    groups): the launcher passes it on, every rank stops, rank 0 closes the trace, results.json
    says interrupted, the command exits 3 with one line, and no process is left behind."""
    import os
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "audit"
    cmd = [sys.executable, "-m", "approx_audit.cli.main", "run", "-w", "logistic", "-O", "sgd",
           "--lr", "0.1", "-B", "16", "-K", "1000000", "--probes", "cheap", "--nproc", "2",
           "--out", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    trace = out / "trace.jsonl"
    deadline = time.time() + 180
    while time.time() < deadline:
        if trace.exists() and trace.read_text().count("\n") > 30:
            break
        time.sleep(0.2)
    proc.send_signal(getattr(signal, sig))
    stdout, stderr = proc.communicate(timeout=180)
    assert proc.returncode == 3, stderr
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("error: interrupted by the user after "), stderr
    recs = read_trace(trace)
    steps = [r["step"] for r in recs if r["record"] == "step"]
    assert len(steps) > 25 and steps == list(range(len(steps)))
    assert recs[-1]["record"] == "end" and recs[-1]["status"] == "interrupted"
    data = json.loads((out / "results.json").read_text())
    assert data["status"] == "interrupted" and data["runs"][0]["steps"] == len(steps)
    assert f"after {len(steps)} finished step(s)" in data["message"]
    cfg = str(out / ".distributed" / "config.json")
    left = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert cfg not in left, "a rank or the launcher's agent is still running"


def test_check_devices_one_gpu_per_rank():
    from approx_audit.auditor.distributed import check_devices

    check_devices("cpu", 8)                         # gloo: any number of processes
    check_devices("cuda", 2, available=2)
    check_devices("cuda", 1, available=0)           # one process: not distributed
    with pytest.raises(InvalidValueError, match="needs 4 GPUs .* this machine has 2"):
        check_devices("cuda", 4, available=2)
    with pytest.raises(InvalidValueError, match="give --device cuda"):
        check_devices("cuda:1", 2, available=2)


@pytest.mark.skipif(not torch.cuda.is_available() or torch.cuda.device_count() < 2,
                    reason="needs two CUDA devices (nccl: one GPU per rank)")
def test_nccl_ddp_trajectory_equals_single_process_on_gpus(tmp_path):
    """The same check as on gloo, on CUDA with nccl (rank r on cuda:r)."""
    args = [*ARGS, "--device", "cuda"]
    one, two = tmp_path / "one", tmp_path / "two"
    r1 = _run([*args, "-o", str(one)])
    r2 = _run([*args, "--nproc", "2", "-o", str(two)], env={"OMP_NUM_THREADS": "1"})
    log = two / ".distributed" / "launch.log"
    assert r1.exit_code == 0 and r2.exit_code == 0, r2.output + (
        log.read_text() if log.exists() else "")
    assert read_trace(two / "trace.jsonl")[0]["distributed"]["backend"] == "nccl"
    a, b = _steps(one / "trace.jsonl"), _steps(two / "trace.jsonl")
    for ra, rb in zip(a, b):
        for k in ("loss", "grad_norm", "update_norm", "full_loss", "local_smoothness"):
            if ra.get(k) is not None:
                assert _close(ra[k], rb[k], 1e-5), (ra["step"], k, ra[k], rb[k])


# --------------------------------------------------------------------------- issue 21: ranks

def test_an_nproc_far_above_the_cores_is_refused_and_a_crowded_one_noted():
    from approx_audit.auditor.distributed import check_nproc

    with pytest.raises(InvalidValueError, match="--nproc 64 on 2 core"):
        check_nproc(64, cores=2)
    assert "share 2 core" in check_nproc(4, cores=2)
    assert check_nproc(2, cores=2) is None


def test_the_rank_killed_by_a_signal_is_blamed_not_the_survivor(tmp_path):
    """A killed rank writes no error; the survivor's 'connection reset' is a consequence. The
    agent's root-cause summary in the launch log names the killed rank."""
    from approx_audit.auditor.distributed import _first_failure

    state = tmp_path / ".distributed"
    state.mkdir()
    (state / "rank0.error.json").write_text(json.dumps(
        {"rank": 0, "step": 12, "run": 0, "time": 5.0,
         "error": "RuntimeError: [gloo] Connection reset by peer"}))
    log = tmp_path / "launch.log"
    log.write_text("Root Cause (first observed failure):\n[1]:\n  time      : 2026-12-04\n"
                   "  host      : h\n  rank      : 1 (local_rank: 1)\n"
                   "  exitcode  : -9 (pid: 4242)\n  error_file: <N/A>\n")
    first = _first_failure(state, log)
    assert first["rank"] == 1 and "signal 9" in first["error"]
    (state / "rank1.error.json").write_text(json.dumps(
        {"rank": 1, "step": 11, "run": 0, "time": 4.0, "error": "ValueError: bad batch"}))
    assert _first_failure(state, log)["error"] == "ValueError: bad batch"   # its own error


@pytest.mark.slow
def test_ranks_die_with_a_killed_launcher(tmp_path):
    """SIGKILL of `approx-audit run --nproc 2` (no handler can run) used to leave both ranks
    training for ever; they now watch the launcher's pid and leave."""
    import os
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "audit"
    cmd = [sys.executable, "-m", "approx_audit.cli.main", "run", "-w", "quadratic", "-O", "sgd",
           "--lr", "0.01", "-B", "32", "-K", "1000000", "-p", "loss", "--nproc", "2",
           "--format", "none", "--out", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    trace = out / "trace.jsonl"

    def ranks() -> list[int]:
        found = []
        for d in os.listdir("/proc"):
            if d.isdigit():
                try:
                    with open(f"/proc/{d}/cmdline", "rb") as fh:
                        line = fh.read()
                except OSError:
                    continue
                if b"approx_audit.auditor.worker" in line and str(out).encode() in line:
                    found.append(int(d))
        return found
    try:
        deadline = time.time() + 600          # a cap against a hang; we wait on events
        while time.time() < deadline and proc.poll() is None:
            if trace.exists() and trace.read_text().count("\n") > 20:
                break
            time.sleep(0.2)
        assert ranks(), "no rank found running"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        while time.time() < deadline and ranks():
            time.sleep(0.2)
        assert ranks() == []
    finally:
        for pid in ranks():
            os.kill(pid, signal.SIGKILL)
        if proc.poll() is None:
            proc.kill()
