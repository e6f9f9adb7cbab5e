"""RunEvidence: one run's records and their accessors keyed by iterate k."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))   # the synthetic records beside this file
import judge_evidence as E  # noqa: E402

from approx_audit.auditor.judge import runs_from_records


def test_accessors_of_a_full_batch_run():
    [r] = runs_from_records(E.gd_run(lambda k: 1.0 / max(k, 1), steps=5))
    assert (r.run, r.n_steps, r.status, r.full_batch) == (0, 5, "completed", True)
    assert r.objective() == {0: 1.0, 1: 1.0, 2: 0.5, 3: 1 / 3, 4: 0.25, 5: 0.2}
    assert r.lrs() == [0.5] * 5 and r.values("grad_norm") == [(t, 1.0) for t in range(5)]


def test_status_and_runs_in_order():
    recs = E.gd_run(lambda k: 1.0, run=1, diverged="nan") + E.gd_run(lambda k: 1.0, run=0)
    a, b = runs_from_records(recs)
    assert (a.run, a.status, b.run, b.status) == (0, "completed", 1, "diverged")
    [c] = runs_from_records([x for x in E.gd_run(lambda k: 1.0) if x["record"] != "end"])
    assert c.status == "interrupted"


def test_minibatch_gradient_estimate_between_checkpoints():
    recs = E.sgd_run(lambda k: 4.0, steps=4)
    recs = [r if r["record"] != "step" or r["step"] != 2 else
            {k: v for k, v in r.items() if k != "full_grad_norm"} | {"gradient_noise_batch": 1.0}
            for r in recs]
    [r] = runs_from_records(recs)
    pts, kind, _ = r.grad_norm_sq_estimate()
    assert kind == "estimate" and pts[2] == 0.0 and pts[1] == pytest.approx(4.0)
