"""``approx-audit run``: train a model with an optimizer under audit, rule on the bounds."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from ..bounds import catalogue
from ..bounds import symbols as S
from ..bounds.errors import InvalidValueError
from .values import parse_assignments

FAIL_ON = ("violated", "inconclusive", "never")
DTYPES = ("float32", "float64")


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InvalidValueError(f"--device {device}: this torch build sees no CUDA device; use "
                                "--device cpu (or auto)")
    return device


def _option_value(text: str):
    for conv in (int, float):
        try:
            return conv(text)
        except ValueError:
            pass
    if "," in text:
        try:
            return [float(t) for t in text.split(",")]
        except ValueError:
            pass
    return text


def parse_workload_options(items) -> dict:
    out = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise InvalidValueError(f"--workload-option {item!r}: write KEY=VALUE, e.g. lam=1e-2")
        out[key.strip()] = _option_value(text.strip())
    return out


def parse_assume(items) -> dict[str, float]:
    values = parse_assignments(list(items))
    for name in values:
        if S.SYMBOLS[name].role != "problem":
            consts = ", ".join(n for n, s in S.SYMBOLS.items() if s.role == "problem")
            raise InvalidValueError(f"--assume {name}=…: only problem constants can be asserted "
                                    f"({consts}); {name} comes from the run's configuration")
    return {k: float(v) for k, v in values.items()}


def parse_bound_ids(text: str | None) -> list[str] | None:
    if text is None:
        return None
    ids = [t.strip() for t in text.split(",") if t.strip()]
    if not ids:
        raise InvalidValueError("--bounds is empty; give ID[,ID…] (see approx-audit bounds list)")
    for i in ids:
        catalogue.get(i)   # unknown ids: error with close matches
    return ids


def build_workload(name, model, data, loss, options, seed, dtype, device):
    import torch

    from ..auditor.workloads import get_workload, load_user_workload

    torch_dtype = None if dtype is None else getattr(torch, dtype)
    if model or data:
        if name:
            raise InvalidValueError("give either --workload or --model/--data, not both")
        if not (model and data):
            raise InvalidValueError("--model and --data go together (and optionally --loss)")
        if os.getcwd() not in sys.path:
            sys.path.insert(0, os.getcwd())   # so --model mymodule:fn finds ./mymodule.py
        return load_user_workload(model, data, loss or "mse", seed=seed, dtype=torch_dtype,
                                  device=device)
    if not name:
        raise InvalidValueError("give --workload NAME (quadratic, least-squares, logistic, "
                                "mlp-digits, cnn-digits, three-node) or --model/--data")
    if loss:
        raise InvalidValueError("--loss applies to --model/--data; a built-in workload has its own")
    return get_workload(name, seed=seed, dtype=torch_dtype, device=device, **options)


def optimizer_options(f):
    opts = [
        click.option("--optimizer", "-O", "optimizer", required=True,
                     help="sgd, adam, adamw, rmsprop, adagrad, defossez-adam, defossez-rmsprop, "
                          "defossez-adagrad; hyper-parameters inline: sgd:lr=0.1,momentum=0.9"),
        click.option("--lr", type=float, help="Learning rate (overrides the inline value)."),
        click.option("--momentum", type=float), click.option("--nesterov", is_flag=True, default=None),
        click.option("--beta1", type=float), click.option("--beta2", type=float),
        click.option("--eps", type=float), click.option("--alpha", type=float,
                                                        help="RMSprop's smoothing constant."),
        click.option("--weight-decay", type=float),
        click.option("--schedule", default=None,
                     help="constant, step[:step_size=100,gamma=0.1], 1/k, 1/sqrt(k)."),
    ]
    for o in reversed(opts):
        f = o(f)
    return f


def workload_option_decorator(with_steps: bool = True):
    """The workload options shared by ``run`` and ``compare`` (``compare`` has no --steps:
    its budget sets them)."""
    opts = [
        click.option("--workload", "-w", help="Built-in workload."),
        click.option("--workload-option", "workload_option", multiple=True,
                     help="KEY=VALUE option of the built-in workload, e.g. lam=1e-2."),
        click.option("--model", help="Your model: package.module:function returning an nn.Module."),
        click.option("--data", help="Your data: package.module:function returning (X, y) or a "
                                    "Dataset."),
        click.option("--loss", help="Loss for --model: mse, cross-entropy, bce-logits or "
                                    "package.module:function."),
        click.option("--seed", type=int, default=0, show_default=True,
                     help="Seed of the data and initial weights; runs use seed, seed+1, … for "
                          "sampling."),
        click.option("--dtype", type=click.Choice(DTYPES), default=None,
                     help="Default: float64 for quadratic/least-squares/logistic, else float32."),
        click.option("--device", default="auto", show_default=True,
                     help="auto (CUDA when available), cpu, cuda, cuda:N."),
    ]
    if with_steps:
        opts.append(click.option("--steps", "-K", type=click.IntRange(min=1), required=True))
    opts.append(click.option("--batch-size", "-B", type=click.IntRange(min=1), default=None,
                             help="Minibatch size (i.i.d. with replacement); omit for full "
                                  "batch (GD)."))

    def decorate(f):
        for o in reversed(opts):
            f = o(f)
        return f
    return decorate


workload_options = workload_option_decorator(with_steps=True)


def optimizer_spec(text, lr, momentum, nesterov, beta1, beta2, eps, alpha, weight_decay, schedule):
    from ..auditor.optimizers import parse_optimizer

    return parse_optimizer(text, schedule=schedule, lr=lr, momentum=momentum, nesterov=nesterov,
                           beta1=beta1, beta2=beta2, eps=eps, alpha=alpha,
                           weight_decay=weight_decay)


def command_line(ctx: click.Context) -> str:
    """The command as typed when run from a shell, else rebuilt from the parsed options (under
    click's test runner sys.argv belongs to another program)."""
    import shlex

    argv0 = Path(sys.argv[0]).name if sys.argv else ""
    if argv0 in ("approx-audit", "main.py", "__main__.py") and ctx.info_name in sys.argv[1:2]:
        return shlex.join(["approx-audit", *sys.argv[1:]])
    parts = ["approx-audit", ctx.info_name or ""]
    for param in ctx.command.params:
        value = ctx.params.get(param.name)
        if value is None or value == param.default or value == () or param.name == "help":
            continue
        flag = max(param.opts, key=len)
        if isinstance(value, bool):
            parts.append(flag if value else f"--no-{flag.lstrip('-')}")
        elif isinstance(value, tuple):
            for v in value:
                parts += [flag, str(v)]
        else:
            parts += [flag, str(value)]
    return shlex.join(parts)


def _config_file() -> str | None:
    from .main import load_config

    return load_config()[1]


def _short(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def summary_table(results: dict) -> str:
    lines = []
    c = results["counts"]
    w = results["workload"]["name"]
    lines.append(f"approx-audit: {w} with {results['optimizer']['label']}, "
                 f"{results['config']['steps']} steps × {results['config']['seeds']} seed(s) — "
                 f"status {results['status']}")
    lines.append("  " + ", ".join(f"{k.replace('_', ' ')}: {v}" for k, v in c.items()))
    g = results["gradient_evaluations"]
    ratio = g.get("overhead_ratio")
    lines.append(f"  gradient evaluations: training {g['train_grad_evals']}, audit "
                 f"{g['probe_grad_evals']}" + (f" ({ratio:.2f}× training)" if ratio is not None
                                               else ""))
    lines.append("")
    method = results["config"].get("method")
    if not results["verdicts"] and method in ("dpsgd", "local-sgd", "easgd"):
        lines.append(f"  --method {method}: no catalogue bound covers this method (their "
                     "constants are not confirmed); see the consensus probes in the trace")
    elif not results["verdicts"]:
        lines.append("  no catalogue bound matches this optimizer (see approx-audit bounds list)")
    width = max([len(v["id"]) for v in results["verdicts"]] + [5])
    if results["verdicts"]:
        lines.append(f"  {'bound':<{width}}  {'verdict':<14}  {'pred/obs':>9}  reason")
    for v in results["verdicts"]:
        loose = (v.get("looseness") or {}).get("final")
        ls = "—" if loose is None else f"{loose:.3g}"
        lines.append(f"  {v['id']:<{width}}  {v['verdict']:<14}  {ls:>9}  "
                     f"{_short(v['reason'], 110)}")
    if results.get("message"):
        lines.append("")
        lines.append(f"  {results['message']}")
    return "\n".join(lines)


def exit_code_for(status: str, counts: dict, fail_on: str) -> int:
    from .main import EXIT_INTERNAL, EXIT_VIOLATED

    if status in ("error", "interrupted", "diverged"):
        return EXIT_INTERNAL
    if fail_on != "never" and counts.get("violated"):
        return EXIT_VIOLATED
    if fail_on == "inconclusive" and counts.get("inconclusive"):
        return EXIT_VIOLATED
    return 0


@click.command("run")
@workload_options
@optimizer_options
@click.option("--seeds", type=click.IntRange(min=1), default=1, show_default=True,
              help="Runs with different minibatch orders (expectation bounds need ≥ 2).")
@click.option("--probes", "-p", default="standard", show_default=True,
              help="cheap, standard, full, or name[@every],… (e.g. loss,sharpness@25).")
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
def run(workload, workload_option, model, data, loss, seed, dtype, device, steps, batch_size,
        optimizer, lr, momentum, nesterov, beta1, beta2, eps, alpha, weight_decay, schedule,
        seeds, probes, bounds_, assume, out, fmt, fail_on, stability_pairs, nproc, method, mixing,
        local_steps, easgd_alpha, init_spread, init_along):
    """Train under audit; write trace.jsonl and results.json into --out; print the verdicts.

    \b
    approx-audit run --workload logistic --optimizer sgd --lr 0.1 --steps 300
    approx-audit run -w mlp-digits -O sgd --lr 0.1 -B 64 -K 500 --seeds 3
    approx-audit run --model mymodel:build --data mymodel:data --loss cross-entropy \\
        -O adam --lr 1e-3 -B 32 -K 200

    Exit codes: 0 nothing violated, 1 a bound violated (or inconclusive with --fail-on
    inconclusive), 2 usage or input error, 3 the run diverged, failed or was interrupted.
    """
    from ..auditor.audit import AuditConfig, run_audit
    from ..auditor.decentralized import check_method_options
    from ..auditor.distributed import check_devices, check_split, full_data_mode
    from ..auditor.probes import make_probes

    check_split(batch_size, None, nproc)      # --nproc 0: one-line error, exit 2
    method = check_method_options(method, nproc, mixing, local_steps, easgd_alpha, init_spread,
                                  init_along)
    spec = optimizer_spec(optimizer, lr, momentum, nesterov, beta1, beta2, eps, alpha,
                          weight_decay, schedule)
    make_probes(probes)                       # validate before any work
    ids = parse_bound_ids(bounds_)
    assumed = parse_assume(assume)
    dev = resolve_device(device)
    if nproc > 1 and device == "auto" and dev.startswith("cuda"):
        import torch
        if torch.cuda.device_count() < nproc:
            click.echo(f"--device auto: {torch.cuda.device_count()} GPU(s) for {nproc} ranks; "
                       "running on cpu with gloo", err=True)
            dev = "cpu"
    w = build_workload(workload, model, data, loss, parse_workload_options(workload_option),
                       seed, dtype, dev)
    config = AuditConfig(workload=w, optimizer=spec, steps=steps, batch_size=batch_size,
                         seeds=seeds, seed=seed, probes=probes, bounds=ids, assume=assumed,
                         out=out, device=dev, command=command_line(click.get_current_context()),
                         extra={"fail_on": fail_on, "config_file": _config_file(),
                                **_method_extra(method, nproc, mixing, local_steps, easgd_alpha,
                                                init_spread, init_along)})
    if nproc > 1:
        check_split(batch_size, w.n, nproc)   # before anything is launched
        check_devices(str(dev), nproc)
        full_data_mode()                      # APPROX_AUDIT_FULL_DATA, checked here
        return _run_distributed(config, nproc, fmt, fail_on, locals())
    click.echo(f"auditing {w.name} with {spec.label()} on {dev}: {steps} steps × {seeds} "
               f"seed(s), probes {probes} → {out}", err=True)
    try:
        result = run_audit(config)
    except KeyboardInterrupt as exc:
        result = getattr(exc, "audit_result", None)
        if result is None:
            raise
    except Exception as exc:  # noqa: BLE001
        result = getattr(exc, "audit_result", None)
        if result is None:
            raise
    if stability_pairs and result.status == "completed":
        _add_stability(result, w, spec, steps, batch_size, stability_pairs, seed, assumed, out,
                       dev)
    written = write_run_reports(result.results, out, fmt)
    if fmt == "json":
        click.echo(json.dumps(result.results, indent=1))
    elif fmt == "md":
        click.echo((out / "report.md").read_text(encoding="utf-8"))
    else:
        click.echo(summary_table(result.results))
    names = ", ".join(str(p) for p in [out / "trace.jsonl", out / "results.json", *written])
    click.echo(f"wrote {names}", err=True)
    sys.exit(exit_code_for(result.status, result.counts, fail_on))


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


def _run_distributed(config, nproc: int, fmt: str, fail_on: str, p: dict) -> None:
    """``run --nproc N``: the workers rebuild the workload and optimizer from the options as
    given (a JSON file, see auditor/distributed.py); one line on stderr when a rank fails."""
    from ..auditor.distributed import launch
    from .main import EXIT_INTERNAL

    options = {
        "workload": p["workload"], "workload_options": parse_workload_options(p["workload_option"]),
        "model": p["model"], "data": p["data"], "loss": p["loss"], "seed": p["seed"],
        "dtype": p["dtype"], "device": config.device, "steps": p["steps"],
        "batch_size": p["batch_size"], "seeds": p["seeds"], "probes": p["probes"],
        "bounds": None if config.bounds is None else list(config.bounds),
        "assume": dict(config.assume), "out": str(Path(p["out"]).resolve()),
        "command": config.command, "extra": dict(config.extra), "cwd": os.getcwd(),
        "method": p["method"], "mixing": p["mixing"], "local_steps": p["local_steps"],
        "easgd_alpha": p["easgd_alpha"], "init_spread": p["init_spread"],
        "init_along": p["init_along"],
        "optimizer": {"text": p["optimizer"], "lr": p["lr"], "momentum": p["momentum"],
                      "nesterov": p["nesterov"], "beta1": p["beta1"], "beta2": p["beta2"],
                      "eps": p["eps"], "alpha": p["alpha"], "weight_decay": p["weight_decay"],
                      "schedule": p["schedule"]}}
    out = Path(p["out"])
    w, spec = config.workload, config.optimizer
    how = "" if p["method"] == "ddp" else f" ({p['method']})"
    click.echo(f"auditing {w.name} with {spec.label()}{how} on {config.device} × {nproc} processes: "
               f"{config.steps} steps × {config.seeds} seed(s), probes {config.probes} → {out}",
               err=True)
    results, error = launch(options, nproc)
    if error is not None:
        if results is not None:
            click.echo(summary_table(results))
        click.echo(f"error: {error}", err=True)
        sys.exit(EXIT_INTERNAL)
    written = write_run_reports(results, out, fmt)
    if fmt == "json":
        click.echo(json.dumps(results, indent=1))
    elif fmt == "md":
        click.echo((out / "report.md").read_text(encoding="utf-8"))
    else:
        click.echo(summary_table(results))
    names = ", ".join(str(q) for q in [out / "trace.jsonl", out / "results.json", *written])
    click.echo(f"wrote {names}", err=True)
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


def write_run_reports(results: dict, out: Path, fmt: str) -> list[Path]:
    """report.html / report.md beside results.json as --format asks; the Markdown summary is
    appended to $GITHUB_STEP_SUMMARY when that is set. A failed render is reported on stderr
    and never loses the results already written."""
    from ..auditor.report import append_step_summary, write_reports

    formats = {"text": ("html", "md"), "json": ("html", "md"), "html": ("html",),
               "md": ("md",), "none": ()}[fmt]
    written: list[Path] = []
    try:
        if formats:
            written = [p for p in write_reports(results, out, formats)
                       if p.name in ("report.html", "report.md")]
        append_step_summary(results)
    except Exception as exc:  # noqa: BLE001 - the audit's results are already on disk
        click.echo(f"error: the report could not be rendered ({type(exc).__name__}: {exc}); "
                   f"results.json is intact — retry with approx-audit report {out}", err=True)
    return written
