"""The observables table (auditor/observables.py): every trace key is declared there, once.

* every key a probe, the run loop or a multi-process auditor can record is a row of the table
  (the probes' declared keys, and the records of a real audit with the ``full`` preset);
* no ``"key"`` literal of a table key anywhere else in the package's source (ast over every
  .py file; docstrings and ``__all__`` are not code that names a key), except the short
  allow-list below, each entry with its reason;
* the table imports no torch, nor anything of the package (the judge reads it).
"""

from __future__ import annotations

import ast
import functools
import subprocess
import sys
from pathlib import Path

import pytest

from approx_audit.auditor import decentralized, distributed, results
from approx_audit.auditor import observables as O
from approx_audit.auditor.audit import AuditConfig, run_audit
from approx_audit.auditor.judge.estimates import PATH_MAXIMA
from approx_audit.auditor.optimizers import parse_optimizer
from approx_audit.auditor.probes import PROBES, make_probes
from approx_audit.auditor.trace import read_trace
from approx_audit.auditor.workloads import get_workload

ROOT = Path(__file__).resolve().parents[2]
PACKAGE_DIRS = ("auditor", "bounds", "cli", "case_studies")
TABLE = ROOT / "auditor" / "observables.py"

# (file, key) pairs where the string is the same word but not a trace key.
ALLOWED = {
    # bounds/ sits below the auditor and never imports it: a bound's left-hand side is a
    # Quantity id, and Assumption.observable names the trace key that bears on an assumption
    # (test_every_assumption_names_a_declared_key checks each is in the table)
    ("bounds/quantities.py", "consensus_distance"),
    *(("bounds/assumptions.py", k) for k in (
        "local_smoothness", "convexity_gap", "pl_ratio", "loss", "gradient_noise", "sharpness",
        "grad_norm", "grad_inf_norm", "consensus_distance", "update_spread")),
    # the user's --loss spec among a workload's options
    ("auditor/workloads.py", "loss"),
    # a quality kind of `compare` (beside gap_to_lower_bound and objective)
    ("auditor/compare.py", "suboptimality"),
    # words of a plot's title and axis label
    ("auditor/report/plots.py", "loss"),
    ("auditor/report/plots.py", "suboptimality"),
    # the report's sharpness-plot section (plots.sharpness in the templates)
    ("auditor/report/context.py", "sharpness"),
    ("auditor/report/render.py", "sharpness"),
}


def _package_files() -> list[Path]:
    return [ROOT / "__init__.py"] + sorted(p for d in PACKAGE_DIRS
                                             for p in (ROOT / d).rglob("*.py"))


def _not_code(tree: ast.AST) -> set[int]:
    """ids of the string nodes that name no key in code: docstrings, ``__all__`` entries."""
    out: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                out.add(id(body[0].value))
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__"
                                                for t in node.targets):
            out |= {id(n) for n in ast.walk(node.value)}
    return out


@functools.cache
def key_literals() -> list[tuple[str, int, str]]:
    """(file, line, key) of every string constant equal to a table key outside the table."""
    found = []
    for path in _package_files():
        if path == TABLE:
            continue
        tree = ast.parse(path.read_text("utf-8"), filename=str(path))
        skip = _not_code(tree)
        rel = path.relative_to(ROOT).as_posix()
        for node in ast.walk(tree):
            if (isinstance(node, ast.Constant) and isinstance(node.value, str)
                    and node.value in O.OBSERVABLES and id(node) not in skip):
                found.append((rel, node.lineno, node.value))
    return sorted(found)


# ------------------------------------------------------------------ every key is declared

@pytest.mark.parametrize("name", sorted(PROBES))
def test_every_probe_key_is_a_row_of_its_probe(name):
    cls = PROBES[name]
    assert cls.keys and cls.keys == O.keys_of(name)
    assert cls.direction == O.OBSERVABLES[cls.keys[0]].direction
    for k in cls.keys:
        assert O.OBSERVABLES[k].probe == name and O.OBSERVABLES[k].origin == "probe"
        if len(cls.keys) > 1:
            assert cls.key_directions[k] == O.OBSERVABLES[k].direction


def test_the_multi_process_keys_are_rows():
    assert set(distributed.DIST_KEYS) == set(distributed.dist_noise(1.0, 2, 4))
    assert all(O.OBSERVABLES[k].origin == "distributed" for k in distributed.DIST_KEYS)
    for method in ("dpsgd", "local-sgd", "easgd"):
        desc = decentralized._dec_probe(method)
        assert set(desc["keys"]) <= set(decentralized.DEC_KEYS)
        assert set(desc["key_directions"]) == set(desc["keys"])
    assert len(decentralized._dec_probe("easgd")["keys"]) == len(decentralized.DEC_KEYS)
    # the derived sets partition the probe keys the DDP reducer meets with no overlap
    sets = (distributed.SAME_KEYS, distributed.LINEAR_KEYS, distributed._RECOMPUTED)
    assert sum(map(len, sets)) == len(frozenset().union(*sets))


def test_derived_tables_come_from_the_rows():
    assert set(PATH_MAXIMA) == {"full_smoothness", "local_smoothness", "sharpness",
                                "grad_inf_norm"}
    for key, (const, kind, when, _) in PATH_MAXIMA.items():
        row = O.OBSERVABLES[key]
        assert (const, kind, when) == (row.estimates, row.direction, row.when)
    assert results._AT_AFTER == {k for k in O.OBSERVABLES
                                 if O.OBSERVABLES[k].at == "x_t+1"
                                 and (O.OBSERVABLES[k].origin == "probe"
                                      or O.OBSERVABLES[k].probe == O.PROBE.decentralized)}


def test_lookups_and_names():
    assert O.KEY.local_smoothness == "local_smoothness"
    assert O.PROBE.full_batch == "full_batch"
    assert "full_batch" not in O.OBSERVABLES          # a probe name, not a key
    with pytest.raises(AttributeError):
        O.KEY.no_such_key
    with pytest.raises(AttributeError):
        O.KEY.loss = "x"
    assert set(O.keys_where(ranks="same")) >= {"update_norm", "full_loss"}
    assert O.keys_of("no such probe") == ()
    with pytest.raises(TypeError):
        O.keys_where(colour="red")
    with pytest.raises(ValueError):
        O.Observable("x", None, "probe", "sideways", "x_t", "same", "1", "x")


def _record_keys(records) -> set[str]:
    return {k for r in records if r.get("record") in ("init", "step", "final") for k in r}


def test_a_full_audit_records_only_declared_keys(tmp_path):
    """A real minibatch audit with every probe of the ``full`` preset, each due at least once
    (sharpness@50), checkpoints and averaged iterates included: every key is declared."""
    w = get_workload("logistic")
    cfg = AuditConfig(workload=w, optimizer=parse_optimizer("sgd", lr=0.1), steps=50,
                      batch_size=32, probes="full", out=tmp_path)
    run_audit(cfg)
    recorded = _record_keys(read_trace(tmp_path / "trace.jsonl"))
    assert recorded - O.RECORD_FIELDS - set(O.OBSERVABLES) == set()
    every_probe_key = {k for p in make_probes("full") for k in p.keys}
    assert every_probe_key <= recorded
    assert {"dist_sq", "avg_loss_0", "avg_loss_1", "wavg_loss"} <= recorded


# ------------------------------------------------------------------ declared exactly once

def test_no_key_literal_outside_the_table():
    stray = [f"{f}:{line}: {key!r}" for f, line, key in key_literals()
             if (f, key) not in ALLOWED]
    assert stray == [], "use observables.KEY.<key> (or PROBE.<name>) instead:\n" + "\n".join(stray)


def test_the_allow_list_is_still_needed():
    seen = {(f, key) for f, _, key in key_literals()}
    assert sorted(ALLOWED - seen) == []


def test_the_grep_finds_a_literal():
    tree = ast.parse('"""local_smoothness"""\nx = {"local_smoothness": 1}\n'
                     '__all__ = ["local_smoothness"]\n')
    consts = [n for n in ast.walk(tree) if isinstance(n, ast.Constant)
              and n.value in O.OBSERVABLES and id(n) not in _not_code(tree)]
    assert len(consts) == 1


# ------------------------------------------------------------------ torch-free

def test_the_table_imports_no_torch_and_nothing_of_the_package():
    tree = ast.parse(TABLE.read_text("utf-8"))
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import)
                for a in n.names}
    imported |= {(n.module or "").split(".")[0] for n in ast.walk(tree)
                 if isinstance(n, ast.ImportFrom)}
    relative = [n for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level]
    assert "torch" not in imported and relative == []
    assert imported <= {"__future__", "collections", "dataclasses", "types"}


def test_importing_the_table_loads_no_torch():
    code = ("import sys, approx_audit.auditor.observables; "
            "sys.exit(1 if 'torch' in sys.modules else 0)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_every_assumption_names_a_declared_key():
    from approx_audit.bounds.assumptions import ASSUMPTIONS

    for a in ASSUMPTIONS.values():
        assert a.observable is None or a.observable in O.OBSERVABLES, (a.id, a.observable)
