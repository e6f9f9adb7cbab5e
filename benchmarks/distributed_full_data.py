"""Benchmark: full-data probes of a DDP audit, sharded over the ranks against replicated.

``approx-audit run --nproc N`` evaluates F and ∇F on the full training set (checkpoints, the
PL ratio, averaged iterates) by sharding: each rank takes its contiguous 1/N of the data and one
all-reduce sums the shard-weighted values. The baseline, selected by the benchmark hook
``APPROX_AUDIT_FULL_DATA=replicated``, has every rank evaluate the whole data; ``auto`` (the
default) measures a full pass and a collective at the first evaluation and picks one. All give
the same values (the test suite checks DDP against one process).

Workload: ``mlp-digits`` (1,797 examples; MLP 64→32→10), SGD lr 0.1, batch 64, ``--steps``
steps, probes ``loss,full_batch@EVERY`` (a full-data checkpoint every EVERY steps), two ranks
on gloo (``--nproc``). A third configuration, ``none``, runs ``-p loss`` only, so the time the
full-data evaluations add can be read off: (t − t_none).

Timing: wall clock of the whole ``approx-audit run`` command (launch, start-up and
verdicts included), configurations alternating, ``--rounds`` rounds; medians reported, and
per-round ratios (replicated / sharded) whose median is the headline figure.

Usage::

    python benchmarks/distributed_full_data.py [--steps 200] [--every 1] [--rounds 3]
        [--nproc 2] [--out benchmarks/results/distributed_full_data.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def one(config: str, steps: int, every: int, nproc: int, workload: str = "mlp-digits",
        options: tuple[str, ...] = ()) -> float:
    probes = "loss" if config == "none" else f"loss,full_batch@{every}"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    if config != "none":
        env["APPROX_AUDIT_FULL_DATA"] = config        # auto | sharded | replicated
    with tempfile.TemporaryDirectory() as d:
        cmd = [sys.executable, "-m", "approx_audit.cli.main", "run", "-w", workload, "-O",
               "sgd", "--lr", "0.1", "-B", "64", "-K", str(steps), "-p", probes, "--nproc",
               str(nproc), "--format", "none", "-o", d]
        for o in options:
            cmd += ["--workload-option", o]
        t0 = time.perf_counter()
        r = subprocess.run(cmd, capture_output=True, text=True, env=env)
        t = time.perf_counter() - t0
        if r.returncode not in (0, 1):
            raise SystemExit(f"{config}: exit {r.returncode}\n{r.stderr}")
    return t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--every", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--nproc", type=int, default=2)
    ap.add_argument("--workload", default="mlp-digits")
    ap.add_argument("--workload-option", action="append", default=[])
    ap.add_argument("--out", type=Path, default=HERE / "results" / "distributed_full_data.json")
    a = ap.parse_args()
    configs = ("none", "auto", "sharded", "replicated")
    times: dict[str, list[float]] = {c: [] for c in configs}
    one("sharded", 5, 1, a.nproc)                       # warm-up: imports, file caches
    for _ in range(a.rounds):
        for c in configs:
            times[c].append(one(c, a.steps, a.every, a.nproc, a.workload,
                                tuple(a.workload_option)))
    med = {c: statistics.median(v) for c, v in times.items()}
    ratios = [r / s for r, s in zip(times["replicated"], times["sharded"])]
    extra = [(r - n) / (s - n) for r, s, n in zip(times["replicated"], times["sharded"],
                                                  times["none"]) if s > n]
    result = {"workload": a.workload, "workload_options": a.workload_option,
              "steps": a.steps, "every": a.every, "nproc": a.nproc, "rounds": a.rounds,
              "times_s": times, "median_s": med,
              "replicated_over_sharded_median": statistics.median(ratios),
              "full_data_time_replicated_over_sharded_median":
                  statistics.median(extra) if extra else None}
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"| configuration | median wall time (s) |\n|---|---|")
    for c in configs:
        print(f"| {c} | {med[c]:.2f} |")
    print(f"\nreplicated / sharded, whole command: {result['replicated_over_sharded_median']:.2f}x"
          f"; time the full-data probes add: "
          f"{result['full_data_time_replicated_over_sharded_median'] or float('nan'):.2f}x")


if __name__ == "__main__":
    main()
