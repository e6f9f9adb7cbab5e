"""Which bounds speak of a run: the algorithm of an optimizer spec, and the hyper-parameters."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))   # the synthetic records beside this file
import judge_evidence as E  # noqa: E402

from approx_audit.auditor.judge import algorithm_of, hyper_values, select_bounds
from approx_audit.bounds import catalogue

ALGORITHMS = [
    ({"name": "sgd", "hparams": {}}, True, "gd"),
    ({"name": "sgd", "hparams": {}}, False, "sgd"),
    ({"name": "sgd", "hparams": {"momentum": 0.9}}, True, "heavy_ball"),
    ({"name": "sgd", "hparams": {"momentum": 0.9}}, False, None),
    ({"name": "sgd", "hparams": {"momentum": 0.9, "dampening": 0.1}}, True, None),
    ({"name": "sgd", "hparams": {"nesterov": True, "momentum": 0.9}}, True, None),
    ({"name": "sgd", "hparams": {"weight_decay": 0.1}}, True, None),
    ({"name": "defossez-adam", "hparams": {}}, False, "adam"),
    ({"name": "adam", "hparams": {}}, False, None),
    ({"name": "sgd", "hparams": {}, "distributed_method": "dpsgd"}, False, "dpsgd"),
    ({"name": "lbfgs", "hparams": {}}, True, None),
]


@pytest.mark.parametrize("spec,full_batch,algo", ALGORITHMS)
def test_algorithm_of(spec, full_batch, algo):
    got, why = algorithm_of(spec, full_batch)
    assert got == algo and why


def test_select_bounds():
    gd = select_bounds(catalogue, {"name": "sgd", "hparams": {}}, True)
    assert gd and all(b.algorithm == "gd" and b.kind == "upper" for b in gd)
    sgd = select_bounds(catalogue, {"name": "sgd", "hparams": {}}, False)
    assert all("stability" not in b.id for b in sgd)          # ruled by approx-audit stability
    # torch's Adam: its family's bounds, to be ruled not applicable with the reason
    assert {b.algorithm for b in select_bounds(catalogue, {"name": "adam"}, False)} == {"adam"}
    assert [b.id for b in select_bounds(catalogue, {}, True, [E.BECK, E.BECK])] == [E.BECK]


def test_hyper_values():
    assert hyper_values({"symbol_values": {"eta": 0.1, "weird": 1}}) == {"eta": 0.1}
    assert hyper_values({"symbol_values": {}, "schedule": "1/k", "lr": 2.0}) == {
        "c": 2.0, "gamma": 0.0}
