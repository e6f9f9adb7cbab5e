"""Benchmark: approx_audit's PEP solver against PEPit on gradient descent.

Problem: gradient descent with step 1/L on L-smooth convex functions (L = 1), initial
condition ||x_0 - x*|| <= 1, metric f(x_N) - f*. The exact worst case is 1/(4N + 2)
(Drori & Teboulle 2014, Theorem 3.1), so both values are also checked against it.

* Ours: ``approx_audit.bounds.pep.worst_case(pep.gd(N, 1.0), "smooth-convex", "f-gap",
  {"distance": 1.0})`` with its default solver, Clarabel.
* Reference: PEPit, written the way its example
  ``PEPit/examples/unconstrained_convex_minimization/gradient_descent.py`` writes it, solved
  through ``problem.solve(wrapper="cvxpy", solver="CLARABEL")`` (PEPit's cvxpy wrapper would
  otherwise pick MOSEK, or SCS when MOSEK has no license). The solver cvxpy actually ran is
  read back from the solved problem and reported.

For every N, ours runs first, then the reference; each time is the wall time
(``time.perf_counter``) of one whole call: model building plus solve. Each reference solve
runs in its own ``multiprocessing`` process (spawn start method) so that it can be killed when
it exceeds ``--reference-timeout`` seconds; its row then says "timed out after T s". The
child imports PEPit and does one small warm-up solve (N = 1) *before* the clock starts, and ours
does the same warm-up once in this process, so neither time includes imports or first-call
set-up. The timeout clock also starts only after the child reports it is ready.

This script installs nothing. Without PEPit it says how to get it
(``pip install -e '.[bench]'``) and still times ours.

Usage::

    python benchmarks/pep_vs_reference.py [--sizes 10,20,30,50,100] [--reference-timeout 600]

It prints a Markdown table and writes it, with every measured field, as JSON to
``benchmarks/results/pep_vs_reference.json`` (``--output`` to change).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import importlib.metadata
import importlib.util
import json
import math
import multiprocessing as mp
import os
import platform
import sys
import time
import traceback
from pathlib import Path

L = 1.0          # smoothness constant
R = 1.0          # ||x_0 - x*|| <= R
AGREE_RTOL = 1e-6
STARTUP_LIMIT_S = 300.0   # for the reference child to import PEPit and warm up (not timed)
DEFAULT_SIZES = (10, 20, 30, 50, 100)
DEFAULT_OUTPUT = Path(__file__).resolve().parent / "results" / "pep_vs_reference.json"


def exact_value(N: int) -> float:
    """Tight worst case of f(x_N) - f* for GD with step 1/L: L R^2 / (4N + 2)."""
    return L * R * R / (4 * N + 2)


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def pepit_available() -> bool:
    try:
        import PEPit  # noqa: F401
        from PEPit.functions import SmoothConvexFunction  # noqa: F401
    except Exception:
        return False
    return True


# --------------------------------------------------------------------------------------------
# Ours
# --------------------------------------------------------------------------------------------

def run_ours(N: int) -> dict:
    from approx_audit.bounds import pep

    t0 = time.perf_counter()
    try:
        w = pep.worst_case(pep.gd(N, 1.0), "smooth-convex", "f-gap", {"distance": R})
    except Exception as exc:  # a failure is a result too: report it, go on
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}",
                "wall_time": time.perf_counter() - t0}
    wall = time.perf_counter() - t0
    return {
        "ok": True,
        "value": float(w.value),
        "status": w.status,
        "exact": bool(w.exact),
        "solver": getattr(w, "solver", None),
        "wall_time": wall,
        "total_time": float(w.total_time),
        "solve_time": float(w.solve_time),
        "rounds": int(w.rounds),
        "n_constraints": int(w.n_constraints),
    }


# --------------------------------------------------------------------------------------------
# Reference (PEPit), in a child process
# --------------------------------------------------------------------------------------------

def _pepit_gd(n: int, gamma: float, solver: str):
    """PEPit's gradient_descent example, minus its printing, with the solver forced."""
    from PEPit import PEP
    from PEPit.functions import SmoothConvexFunction

    problem = PEP()
    func = problem.declare_function(SmoothConvexFunction, L=L)
    xs = func.stationary_point()
    fs = func(xs)
    x0 = problem.set_initial_point()
    problem.set_initial_condition((x0 - xs) ** 2 <= R * R)
    x = x0
    for _ in range(n):
        x = x - gamma * func.gradient(x)
    problem.set_performance_metric(func(x) - fs)
    tau = problem.solve(wrapper="cvxpy", solver=solver, verbose=0)
    return tau, problem


def _reference_worker(N: int, conn) -> None:
    try:
        _pepit_gd(1, 1.0 / L, "CLARABEL")   # warm-up: imports and first-call set-up, untimed
        conn.send(("ready", None))
        t0 = time.perf_counter()
        tau, problem = _pepit_gd(N, 1.0 / L, "CLARABEL")
        wall = time.perf_counter() - t0
        prob = problem.wrapper.prob
        stats = prob.solver_stats
        conn.send(("done", {
            "ok": tau is not None,
            "value": None if tau is None else float(tau),
            "primal_value": None if prob.value is None else float(prob.value),
            "status": prob.status,
            "wrapper": problem.wrapper_name,
            "solver": problem.wrapper.solver_name,
            "wall_time": wall,
            "solver_time": None if stats.solve_time is None else float(stats.solve_time),
            "n_constraints": len(prob.constraints),
            "error": None if tau is not None else "PEPit returned None (unbounded?)",
        }))
    except BaseException as exc:
        try:
            conn.send(("error", f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"))
        except Exception:
            pass
    finally:
        conn.close()


def run_reference(N: int, timeout: float) -> dict:
    ctx = mp.get_context("spawn")
    recv, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_reference_worker, args=(N, send), daemon=True)
    t_outer = time.perf_counter()
    proc.start()
    send.close()
    result: dict
    try:
        if not recv.poll(STARTUP_LIMIT_S):
            result = {"ok": False, "timed_out": False,
                      "error": f"reference process not ready after {STARTUP_LIMIT_S:.0f} s"}
        else:
            tag, payload = recv.recv()
            if tag != "ready":
                result = {"ok": False, "timed_out": False, "error": str(payload)}
            elif not recv.poll(timeout):
                result = {"ok": False, "timed_out": True,
                          "error": f"timed out after {timeout:g} s", "wall_time": None}
            else:
                tag, payload = recv.recv()
                if tag == "done":
                    result = dict(payload, timed_out=False)
                else:
                    result = {"ok": False, "timed_out": False, "error": str(payload)}
    except EOFError:
        proc.join(5)
        result = {"ok": False, "timed_out": False,
                  "error": f"reference process died (exit code {proc.exitcode})"}
    finally:
        if proc.is_alive():
            proc.kill()
        proc.join()
        recv.close()
    result["process_wall_time"] = time.perf_counter() - t_outer
    return result


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------

def _rel(value, exact):
    if value is None or not math.isfinite(value):
        return None
    return (value - exact) / exact


def _fmt_val(v):
    return "—" if v is None else f"{v:.10g}"


def _fmt_rel(r):
    return "—" if r is None else f"{r:+.1e}"


def _fmt_t(t):
    if t is None:
        return "—"
    return f"{t:.3f}" if t < 10 else f"{t:.1f}"


def make_row(N: int, ours: dict, ref: dict | None, ref_note: str | None) -> dict:
    ex = exact_value(N)
    row = {"N": N, "exact": ex, "ours": ours, "reference": ref}
    ov = ours.get("value") if ours.get("ok") else None
    rv = ref.get("value") if ref and ref.get("ok") else None
    row["ours_rel_err"] = _rel(ov, ex)
    row["reference_rel_err"] = _rel(rv, ex)
    ot = ours.get("wall_time") if ours.get("ok") else None
    rt = ref.get("wall_time") if ref and ref.get("ok") else None
    row["ratio_reference_over_ours"] = (rt / ot) if (rt is not None and ot) else None
    if ov is not None and rv is not None:
        diff = abs(ov - rv) / max(abs(ov), abs(rv))
        row["ours_vs_reference_rel_diff"] = diff
        row["agree"] = diff <= AGREE_RTOL
    else:
        row["ours_vs_reference_rel_diff"] = None
        row["agree"] = None
    row["reference_note"] = ref_note
    return row


def markdown(rows: list[dict]) -> str:
    head = ("| N | ours value | ours rel err | ours status/exact | ours time (s) | reference value "
            "| reference rel err | reference time (s) | ratio reference/ours "
            "| values agree to 1e-6 relative? |")
    lines = [head, "|" + "---|" * 10]
    for r in rows:
        o, ref = r["ours"], r["reference"]
        if o.get("ok"):
            o_val, o_se = _fmt_val(o["value"]), f"{o['status']} / {'exact' if o['exact'] else 'NOT exact'}"
            o_t = _fmt_t(o["wall_time"])
        else:
            o_val, o_se, o_t = "—", f"error: {o.get('error')}", "—"
        if ref is None:
            r_val, r_t = "—", r["reference_note"] or "not run"
        elif ref.get("ok"):
            r_val, r_t = _fmt_val(ref["value"]), _fmt_t(ref["wall_time"])
            if ref.get("status") != "optimal" or ref.get("solver") != "CLARABEL":
                r_val += f" ({ref.get('status')}, {ref.get('solver')})"
        else:
            r_val, r_t = "—", (ref.get("error") or "failed").splitlines()[0]
        ratio = r["ratio_reference_over_ours"]
        ratio_s = "—" if ratio is None else f"{ratio:.0f}×" if ratio >= 100 else f"{ratio:.1f}×"
        if r["agree"] is None:
            agree = "n/a"
        else:
            agree = f"{'yes' if r['agree'] else 'NO'} ({r['ours_vs_reference_rel_diff']:.1e})"
        lines.append(f"| {r['N']} | {o_val} | {_fmt_rel(r['ours_rel_err'])} | {o_se} | {o_t} "
                     f"| {r_val} | {_fmt_rel(r['reference_rel_err'])} | {r_t} | {ratio_s} | {agree} |")
    return "\n".join(lines)


def write_json(path: Path, meta: dict, rows: list[dict], table: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps({"meta": meta, "rows": rows, "table_markdown": table},
                              indent=2, allow_nan=True) + "\n")
    os.replace(tmp, path)


def _sizes(text: str) -> list[int]:
    try:
        sizes = [int(s) for s in text.replace(" ", "").split(",") if s]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--sizes wants comma-separated integers, got {text!r}")
    if not sizes or any(n < 1 for n in sizes):
        raise argparse.ArgumentTypeError("--sizes wants positive integers")
    return sizes


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=_sizes, default=list(DEFAULT_SIZES),
                    help="comma-separated horizons N (default: %(default)s)")
    ap.add_argument("--reference-timeout", type=float, default=600.0, metavar="SECONDS",
                    help="wall-clock limit per reference solve; the child is killed past it "
                         "(default: %(default)s)")
    ap.add_argument("--output", type=Path, default=DEFAULT_OUTPUT,
                    help="JSON file to write (default: benchmarks/results/pep_vs_reference.json)")
    args = ap.parse_args(argv)

    have_pepit = pepit_available()
    meta = {
        "problem": "gradient descent, step 1/L, L-smooth convex, L=1, ||x0-x*||<=1, metric f(x_N)-f*",
        "exact": "1/(4N+2) (Drori & Teboulle 2014, Thm 3.1)",
        "timing": "perf_counter wall time of one whole call (model building + solve); one "
                  "untimed warm-up solve (N=1) beforehand in each process; reference in a "
                  "spawned child, timeout clock started after the child's warm-up",
        "rel_err": "signed, (value - exact) / exact",
        "agree": f"|ours - ref| / max(|ours|, |ref|) <= {AGREE_RTOL:g}",
        "sizes": args.sizes,
        "reference_timeout_s": args.reference_timeout,
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "versions": {d: _version(d) for d in
                     ("approx-audit", "PEPit", "cvxpy", "clarabel", "numpy", "scipy")},
        "pepit_available": have_pepit,
    }
    print(f"approx-audit {meta['versions']['approx-audit']}, PEPit {meta['versions']['PEPit']}, "
          f"cvxpy {meta['versions']['cvxpy']}, clarabel {meta['versions']['clarabel']}, "
          f"Python {meta['python']}, {meta['cpu_count']} CPUs", flush=True)
    if not have_pepit:
        print("PEPit is not importable, so only ours is timed. To compare against the reference, "
              "install the bench extra:  pip install -e '.[bench]'", flush=True)

    run_ours(1)   # untimed warm-up (imports, first cvxpy/Clarabel call)

    rows: list[dict] = []
    for N in args.sizes:
        print(f"N={N}: ours ...", end=" ", flush=True)
        ours = run_ours(N)
        print(f"{_fmt_val(ours.get('value'))} in {_fmt_t(ours.get('wall_time'))} s", end="", flush=True)
        ref, note = None, None
        if have_pepit:
            print("; reference ...", end=" ", flush=True)
            ref = run_reference(N, args.reference_timeout)
            if ref.get("ok"):
                print(f"{_fmt_val(ref['value'])} in {_fmt_t(ref['wall_time'])} s "
                      f"(wrapper {ref['wrapper']}, solver {ref['solver']}, status {ref['status']})",
                      flush=True)
            else:
                print((ref.get("error") or "failed").splitlines()[0], flush=True)
        else:
            note = "PEPit not installed"
            print(flush=True)
        rows.append(make_row(N, ours, ref, note))
        write_json(args.output, meta, rows, markdown(rows))   # keep what is done if interrupted

    table = markdown(rows)
    print()
    print(table)
    solvers = sorted({r["reference"]["solver"] for r in rows
                      if r["reference"] and r["reference"].get("ok")})
    if solvers:
        print(f"\nReference solver actually used (cvxpy solver_stats): {', '.join(solvers)}")
    write_json(args.output, meta, rows, table)
    print(f"Wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
