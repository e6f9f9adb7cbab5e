"""``approx-audit run``: train a model with an optimizer under audit, rule on the bounds."""

from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path

import click

from .config import config_file
from .exits import EXIT_INTERNAL, exit_code_for
from .options import (FAIL_ON, build_sinks, build_workload, check_out, close_sinks,
                      command_line, cpu_threads, optimizer_options, optimizer_spec,
                      parse_assume, parse_bound_ids, resolve_device, workload_options,
                      workload_request)
from .output import echo_results, summary_table, write_run_reports


@click.command("run")
@workload_options
@optimizer_options
@click.option("--seeds", type=click.IntRange(min=1), default=1, show_default=True,
              help="Runs with different minibatch orders (expectation bounds need ≥ 2).")
@click.option("--probes", "-p", default="standard", show_default=True,
              help="cheap, standard, full, or name[@every],… (e.g. loss,sharpness@25).")
@click.option("--probe-mode", type=click.Choice(["train", "eval"]), default="train",
              show_default=True,
              help="The audited function: train (as trained: batch statistics, dropout with "
                   "common random numbers) or eval (running statistics, no dropout).")
@click.option("--bounds", "bounds_", help="Bound ids to rule on (default: all matching the "
                                          "optimizer).")
@click.option("--assume", multiple=True, help="Assert a constant, NAME=VALUE (e.g. L=4); marked "
                                              "as asserted in the verdicts.")
@click.option("--out", "-o", type=click.Path(file_okay=False, path_type=Path),
              default=Path("audit"), show_default=True)
@click.option("--format", "fmt", type=click.Choice(["text", "json", "html", "md", "none"]),
              default="text", show_default=True,
              help="text/json: summary or results on stdout, both reports written; html or md: "
                   "only that report (md also printed); none: no report file.")
@click.option("--fail-on", type=click.Choice(FAIL_ON), default="violated", show_default=True)
# --nproc: the distributed audit (auditor/distributed.py); 1 keeps the one-process path
@click.option("--nproc", type=int, default=1, show_default=True,
              help="Processes for a DistributedDataParallel audit through torch.distributed "
                   "(gloo on CPU, nccl on CUDA); -B must be a multiple of it.")
@click.option("--stability", "stability_pairs", type=click.IntRange(min=0), default=0,
              help="Also run a stability audit with this many pairs of neighbouring datasets "
                   "(same optimizer, steps and batch; see approx-audit stability).")
# --method …: decentralized and local methods (auditor/decentralized.py)
@click.option("--method", type=click.Choice(["ddp", "dpsgd", "local-sgd", "easgd"]),
              default=None, help="With --nproc N > 1: ddp (default), dpsgd (D-PSGD gossip), "
                                 "local-sgd (average every --local-steps) or easgd.")
@click.option("--mixing", default=None,
              help="dpsgd's doubly-stochastic mixing matrix: ring (default), complete or "
                   "FILE.json (N×N rows).")
@click.option("--local-steps", type=int, default=None, help="local-sgd: average every H steps.")
@click.option("--easgd-alpha", type=float, default=None,
              help="easgd: moving rate a = lr·rho of the elastic force.")
@click.option("--init-spread", type=float, default=None,
              help="Decentralized methods: start rank i at x_0 + S·ξ_i (experiments, tests).")
@click.option("--init-along", type=click.Choice(["random", "slowest"]), default=None,
              help="ξ_i random per rank, or along the mixing matrix's slowest eigenvector.")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="torch CPU threads (default: $OMP_NUM_THREADS, else min(4, cores)); "
                   "recorded in results.json's config.")
# --tensorboard, --wandb-project, --quiet: the sinks of auditor/sinks.py (issue 20)
@click.option("--tensorboard", "tensorboard_dir",
              type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Also write TensorBoard event files of the audit into DIR (one sub-folder "
                   "per seed, the verdicts in DIR/verdicts; needs approx-audit[tensorboard]).")
@click.option("--wandb-project", default=None,
              help="Also log the audit to this Weights & Biases project (needs "
                   "approx-audit[wandb]).")
@click.option("--quiet", is_flag=True,
              help="No progress bar (shown by default when stderr is a terminal).")
def run(workload, workload_option, model, data, loss, seed, dtype, device, steps, batch_size,
        optimizer, lr, momentum, nesterov, beta1, beta2, eps, alpha, weight_decay, schedule,
        seeds, probes, probe_mode, bounds_, assume, out, fmt, fail_on, stability_pairs, nproc,
        method, mixing, local_steps, easgd_alpha, init_spread, init_along, threads,
        tensorboard_dir, wandb_project, quiet):
    """Train under audit; write trace.jsonl and results.json into --out; print the verdicts.

    \b
    approx-audit run --workload logistic --optimizer sgd --lr 0.1 --steps 300
    approx-audit run -w mlp-digits -O sgd --lr 0.1 -B 64 -K 500 --seeds 3
    approx-audit run --model mymodel:build --data mymodel:data --loss cross-entropy \\
        -O adam --lr 1e-3 -B 32 -K 200

    Exit codes: 0 nothing violated, 1 a bound violated (or inconclusive with --fail-on
    inconclusive), 2 usage or input error, 3 the run diverged, failed or was interrupted.
    """
    from ..auditor.audit import run_audit
    from ..auditor.decentralized import check_method_options
    from ..auditor.distributed import check_devices, check_nproc, check_split, full_data_mode
    from ..auditor.probes import make_probes
    from ..auditor.request import AuditRequest, MethodRequest

    check_split(batch_size, None, nproc)      # --nproc 0: one-line error, exit 2
    crowded = check_nproc(nproc) if nproc > 1 else None   # --nproc 64 on 2 cores: exit 2
    _check_sink_options(nproc, tensorboard_dir, wandb_project)
    method = check_method_options(method, nproc, mixing, local_steps, easgd_alpha, init_spread,
                                  init_along)
    spec = optimizer_spec(optimizer, lr, momentum, nesterov, beta1, beta2, eps, alpha,
                          weight_decay, schedule)
    make_probes(probes)                       # validate before any work
    check_out(out)
    ids = parse_bound_ids(bounds_)
    assumed = parse_assume(assume)
    dev = _ranks_device(device, resolve_device(device), nproc)
    n_threads = cpu_threads(threads)
    wreq = workload_request(workload, workload_option, model, data, loss, seed, dtype)
    w = build_workload(wreq, dev)
    if batch_size is not None and batch_size >= w.n:
        click.echo(f"note: -B {batch_size} ≥ the {w.n} examples of {w.name}: every step uses the "
                   "full batch (gradient descent)", err=True)
    request = AuditRequest(
        workload=wreq, optimizer=spec, steps=steps, batch_size=batch_size, seeds=seeds,
        probes=probes, bounds=None if ids is None else tuple(ids), assume=assumed,
        out=str(out), device=dev, command=command_line(click.get_current_context()),
        extra={"fail_on": fail_on, "config_file": config_file(),
               # the ranks of --nproc N run with $OMP_NUM_THREADS (1 unless set)
               "threads": n_threads if nproc < 2 else int(os.environ.get("OMP_NUM_THREADS")
                                                          or 1),
               **_method_extra(method, nproc, mixing, local_steps, easgd_alpha, init_spread,
                               init_along)},
        cwd=os.getcwd(),
        method=MethodRequest(name=method, mixing=mixing, local_steps=local_steps,
                             easgd_alpha=easgd_alpha, init_spread=init_spread,
                             init_along=init_along),
        probe_mode=probe_mode)
    if nproc > 1:
        check_split(batch_size, w.n, nproc)   # before anything is launched
        if crowded:
            click.echo(crowded, err=True)
        check_devices(str(dev), nproc)
        full_data_mode()                      # APPROX_AUDIT_FULL_DATA, checked here
        return _run_distributed(request, w.name, nproc, fmt, fail_on)
    click.echo(f"auditing {w.name} with {spec.label()} on {dev}: {steps} steps × {seeds} "
               f"seed(s), probes {probes} → {out}", err=True)
    sinks = build_sinks(steps, seeds, tensorboard_dir, wandb_project, quiet)
    try:
        result = run_audit(dataclasses.replace(request.audit_config(w), sinks=sinks))
    except KeyboardInterrupt as exc:
        result = getattr(exc, "audit_result", None)
        if result is None:
            raise
    except Exception as exc:  # noqa: BLE001
        result = getattr(exc, "audit_result", None)
        if result is None:
            raise
    finally:
        close_sinks(sinks)
    if stability_pairs and result.status == "completed":
        _add_stability(result, w, spec, steps, batch_size, stability_pairs, seed, assumed, out,
                       dev)
    echo_results(result.results, out, fmt, write_run_reports(result.results, out, fmt))
    sys.exit(exit_code_for(result.status, result.counts, fail_on))


def _ranks_device(device: str, dev: str, nproc: int) -> str:
    """--device auto with fewer GPUs than ranks: the ranks run on the CPU (gloo)."""
    if nproc > 1 and device == "auto" and dev.startswith("cuda"):
        import torch
        if torch.cuda.device_count() < nproc:
            click.echo(f"--device auto: {torch.cuda.device_count()} GPU(s) for {nproc} ranks; "
                       "running on cpu with gloo", err=True)
            return "cpu"
    return dev


def _check_sink_options(nproc: int, tensorboard_dir, wandb_project) -> None:
    """The sinks follow one process's records: refuse them with --nproc > 1 before any work."""
    from ..bounds.errors import InvalidValueError

    if nproc > 1 and (tensorboard_dir is not None or wandb_project is not None):
        which = "--tensorboard" if tensorboard_dir is not None else "--wandb-project"
        raise InvalidValueError(f"{which} works with one process for now, not --nproc {nproc}; "
                                "drop it or use --nproc 1")


def _method_extra(method, nproc, mixing, local_steps, easgd_alpha, init_spread,
                  init_along) -> dict:
    """``config.method`` and the method's options (results.json), for --nproc > 1."""
    if nproc < 2:
        return {}
    extra: dict = {"method": method}
    if method == "dpsgd":
        from ..auditor.decentralized import mixing_matrix, mixing_spectrum

        extra["mixing"] = mixing or "ring"
        spectrum = mixing_spectrum(mixing_matrix(extra["mixing"], nproc))
        extra["spectral_gap"] = spectrum["spectral_gap"]
        if not spectrum["symmetric"]:
            click.echo(f"note: --mixing {extra['mixing']} is not symmetric; the consensus "
                       "distance may contract by up to sigma_2 (recorded) per step, not |lambda_2|",
                       err=True)
    if method == "local-sgd":
        extra["local_steps"] = local_steps
    if method == "easgd":
        extra["easgd_alpha"] = easgd_alpha
    if init_spread:
        extra["init_spread"] = init_spread
        extra["init_along"] = init_along or "random"
    return extra


def _run_distributed(request, name: str, nproc: int, fmt: str, fail_on: str) -> None:
    """``run --nproc N``: the workers receive the :class:`AuditRequest` (a JSON file, see
    auditor/distributed.py) and build the workload on their own device; one line on stderr
    when a rank fails."""
    from ..auditor.distributed import launch

    out = Path(request.out)
    m = request.method.name
    how = "" if m == "ddp" else f" ({m})"
    click.echo(f"auditing {name} with {request.optimizer.label()}{how} on {request.device} × "
               f"{nproc} processes: {request.steps} steps × {request.seeds} seed(s), probes "
               f"{request.probes} → {out}", err=True)
    results, error = launch(request, nproc)
    if error is not None:
        if results is not None:
            click.echo(summary_table(results))
        click.echo(f"error: {error}", err=True)
        sys.exit(EXIT_INTERNAL)
    echo_results(results, out, fmt, write_run_reports(results, out, fmt))
    sys.exit(exit_code_for(results["status"], results["counts"], fail_on))


def _add_stability(result, w, spec, steps, batch_size, pairs, seed, assumed, out, dev) -> None:
    """run --stability P: the stability audit's verdicts and section join results.json."""
    from ..auditor.results import write_json_atomic
    from ..auditor.stability import stability_audit
    from ..auditor.judge import summarize

    click.echo(f"stability: {pairs} pair(s) of neighbouring datasets × {steps} steps", err=True)
    st = stability_audit(w, spec, steps=steps, batch_size=batch_size, pairs=pairs, seed=seed,
                         assume=assumed, device=dev)
    result.verdicts.extend(st.verdicts)
    res = result.results
    res["verdicts"] = res["verdicts"] + st.results["verdicts"]
    res["counts"] = summarize(result.verdicts)
    res["stability"] = st.results["stability"]
    res["config"]["stability_pairs"] = pairs
    if out is not None:
        write_json_atomic(Path(out) / "results.json", res)
