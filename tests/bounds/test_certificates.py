"""Issue 18: exact certificates. A tight proven bound is never refuted; a too-small claim is
refuted by a counterexample that the solver-free verifier accepts; tampering is caught."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from fractions import Fraction

import pytest
from click.testing import CliRunner

from approx_audit.bounds import pep
from approx_audit.bounds.certify import decide
from approx_audit.bounds.verify import verify
from approx_audit.cli.main import cli


def _gd(K):
    return pep.solve_program(pep.gd(K, 1.0), "smooth-convex", "f-gap", {"distance": 1.0})


@pytest.mark.parametrize("K", [1, 10, 24, 40])
def test_drori_teboulle_is_never_refuted(K):
    ev = decide(_gd(K), 1 / (4 * K + 2))
    assert ev.outcome in ("proved", "inconclusive"), ev.summary
    if ev.outcome == "proved":
        assert ev.factor is not None and 1 <= ev.factor <= 1 + 1e-4
        assert verify(ev.document)[0] == "proved"
    else:
        assert "numeric worst case" in ev.summary and "solver" in ev.summary


def _refuted(K):
    ev = decide(_gd(K), 0.999 / (4 * K + 2))
    assert ev.outcome == "refuted", ev.summary
    assert verify(ev.document)[0] == "refuted"
    return ev


@pytest.mark.parametrize("K", [1, 7, 15])
def test_a_too_small_claim_is_refuted_by_a_verified_counterexample(K):
    _refuted(K)


@pytest.mark.slow
def test_a_too_small_claim_is_refuted_at_every_K_up_to_30():
    for K in sorted(set(range(1, 31)) - {1, 7, 15}):   # those three run by default
        _refuted(K)


def test_corrupting_one_number_is_rejected():
    ev = _refuted(3)
    doc = json.loads(json.dumps(ev.document))
    g = doc["counterexample"]["g"]
    g[1][0] = str(-2 * abs(Fraction(g[1][0])) - 1)      # exact: the file's numbers are rationals
    assert verify(doc)[0] == "malformed"
    proof = decide(_gd(3), 1 / 14).document
    bad = json.loads(json.dumps(proof))
    i, j, w = bad["proof"]["pairs"][0]
    bad["proof"]["pairs"][0] = [i, j, w + "1"]
    assert verify(bad)[0] == "malformed"
    bad = json.loads(json.dumps(proof))
    bad["problem"]["claim"] = "1/15"
    assert verify(bad)[0] == "malformed"


def test_verify_runs_where_cvxpy_cannot_be_imported(tmp_path):
    proof = decide(_gd(4), 1 / 18).document
    ce = _refuted(2).document
    (tmp_path / "p.json").write_text(json.dumps(proof))
    (tmp_path / "c.json").write_text(json.dumps(ce))
    code = textwrap.dedent(f"""
        import sys
        for name in ("cvxpy", "numpy", "scipy", "clarabel"):
            sys.modules[name] = None
        import importlib.util
        spec = importlib.util.spec_from_file_location("v", {str(pep.__file__).replace('pep.py', 'verify.py')!r})
        v = importlib.util.module_from_spec(spec); spec.loader.exec_module(v)
        print(v.verify_file({str(tmp_path / 'p.json')!r})[0], v.verify_file({str(tmp_path / 'c.json')!r})[0])
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["proved", "refuted"]


def test_cli_certificate_out_and_verify(tmp_path):
    runner = CliRunner()
    base = ["check", "--method", "gd", "--step", "1/L", "--class", "smooth-convex", "--metric",
            "f-gap", "--initial", "distance", "--horizon", "2", "L=1", "R=1"]
    r = runner.invoke(cli, base + ["--claim", "0.999*L*R**2/(4*K+2)", "--certificate-out",
                                   str(tmp_path)])
    assert r.exit_code == 1 and "REFUTED" in r.output, r.output
    files = sorted(tmp_path.glob("*.counterexample.json"))
    assert len(files) == 2
    v = runner.invoke(cli, ["verify", str(files[0])])
    assert v.exit_code == 1 and v.output.startswith("refuted"), v.output
    ok = runner.invoke(cli, base + ["--claim", "L*R**2/(4*K+2)", "--certificate-out", str(tmp_path)])
    assert ok.exit_code == 0 and "proved" in ok.output, ok.output
    v = runner.invoke(cli, ["verify", str(tmp_path / "claim.K2.proof.json")])
    assert v.exit_code == 0, v.output
    (tmp_path / "junk.json").write_text("{}")
    v = runner.invoke(cli, ["verify", str(tmp_path / "junk.json")])
    assert v.exit_code == 2
