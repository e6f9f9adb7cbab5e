"""The signal tests, repeated under load: ``make signal-trials`` (N=20 LOAD=2).

Runs the real-signal tests — SIGINT and SIGTERM to ``approx-audit run`` (exit 3, the trace
contiguous, results.json written) and the Ctrl-C held during a step record's write — ``--trials``
times each while ``--load`` CPU burners (``yes``) keep the cores busy, and prints how many
passed. Issue 21's acceptance: 20 of 20 on two busy cores. Not part of ``make test`` (it takes
minutes); the tests themselves are in the suite.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

TESTS = [
    "tests/auditor/test_audit.py::test_ctrl_c_keeps_every_finished_step",
    "tests/auditor/test_audit.py::test_a_ctrl_c_during_a_step_record_is_held_until_it_is_written",
]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--load", type=int, default=2, help="CPU burners beside the tests")
    args = ap.parse_args()
    burners = [subprocess.Popen(["yes"], stdout=subprocess.DEVNULL) for _ in range(args.load)]
    passed = failed = 0
    t0 = time.time()
    try:
        for i in range(args.trials):
            r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                                *TESTS], capture_output=True, text=True)
            last = (r.stdout.strip().splitlines() or [""])[-1]
            ok = r.returncode == 0
            passed += ok
            failed += not ok
            print(f"trial {i + 1}/{args.trials}: {'pass' if ok else 'FAIL'} ({last})",
                  flush=True)
    finally:
        for b in burners:
            b.kill()
    print(f"{passed} of {args.trials} trials passed ({failed} failed) with {args.load} "
          f"burner(s), {time.time() - t0:.0f} s")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
