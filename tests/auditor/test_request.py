"""auditor/request.py: the request the CLI builds and a rank receives survives JSON exactly,
and builds the same workload and optimizer as the direct calls."""

from __future__ import annotations

import json

import pytest
import torch

from approx_audit.auditor.optimizers import OptimizerSpec, OptimizerSpecError, parse_optimizer
from approx_audit.auditor.request import AuditRequest, MethodRequest
from approx_audit.auditor.workloads import WorkloadRequest, get_workload, resolve
from approx_audit.bounds.errors import ApproxAuditError


def _request(**kw) -> AuditRequest:
    spec = parse_optimizer("sgd:lr=0.1,momentum=0.9", schedule="step:step_size=5,gamma=0.5")
    base = dict(workload=WorkloadRequest(name="logistic", options={"lam": 0.01}, seed=3,
                                         dtype="float64"),
                optimizer=spec, steps=7, batch_size=16, seeds=2, probes="loss,grad_norm",
                bounds=("sgd.smooth_convex.x",), assume={"L": 4.0}, out="/tmp/x",
                command="approx-audit run …", extra={"fail_on": "violated"}, cwd="/tmp",
                method=MethodRequest(name="dpsgd", mixing="ring", init_spread=0.5))
    base.update(kw)
    return AuditRequest(**base)


def test_the_request_round_trips_through_json():
    r = _request()
    back = AuditRequest.from_dict(json.loads(json.dumps(r.to_dict())))
    assert back == r
    assert back.optimizer.label() == r.optimizer.label()
    assert back.optimizer.lr_at(6) == r.optimizer.lr_at(6) == pytest.approx(0.05)
    assert back.seed == 3


@pytest.mark.parametrize("text", ["adam:lr=1e-3,beta2=0.99", "adamw:weight_decay=0.01",
                                  "rmsprop:alpha=0.9", "adagrad", "defossez-adam:lr=0.05",
                                  "sgd:nesterov=true,momentum=0.5"])
def test_every_optimizer_spec_round_trips(text):
    spec = parse_optimizer(text, schedule="1/sqrt(k)")
    back = OptimizerSpec.from_dict(json.loads(json.dumps(spec.to_dict())))
    assert back == spec and dict(back.hparams) == dict(spec.hparams)


def test_a_spec_record_without_lr_is_a_one_line_error():
    with pytest.raises(OptimizerSpecError, match="lacks name or lr"):
        OptimizerSpec.from_dict({"name": "sgd"})


def test_the_request_builds_the_workload_a_direct_call_builds():
    r = _request()
    w = r.build_workload("cpu")
    ref = get_workload("logistic", seed=3, dtype=torch.float64, lam=0.01)
    assert torch.equal(w.X, ref.X) and torch.equal(w.y, ref.y)
    m, m_ref = w.fresh_model(), ref.fresh_model()
    assert all(torch.equal(a, b) for a, b in zip(m.state_dict().values(),
                                                 m_ref.state_dict().values()))
    cfg = r.audit_config(w, nproc=2)
    assert cfg.seed == 3 and cfg.steps == 7 and cfg.bounds == ["sgd.smooth_convex.x"]
    assert cfg.extra == {"fail_on": "violated", "nproc": 2}


@pytest.mark.parametrize("req, match", [
    (WorkloadRequest(), "give --workload NAME"),
    (WorkloadRequest(name="logistic", model="m:f", data="m:g"), "not both"),
    (WorkloadRequest(model="m:f"), "go together"),
    (WorkloadRequest(name="logistic", loss="mse"), "--loss applies to --model"),
    (WorkloadRequest(name="logistic", dtype="float16"), "float32 or float64"),
])
def test_bad_workload_requests_are_one_line_errors(req, match):
    with pytest.raises(ApproxAuditError, match=match):
        resolve(req)
