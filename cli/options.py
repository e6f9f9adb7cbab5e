"""The options and parsers the commands share (``run``, ``compare``, ``stability``): the
workload and optimizer options, ``--assume``, ``--bounds``, the device, the command line as
typed. Text a user wrote is parsed here into values (never evaluated)."""

from __future__ import annotations

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
    import re

    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if not re.fullmatch(r"cpu|cuda(:\d+)?|mps", device or ""):
        # e.g. meta: tensors without data, on which no audit can run
        raise InvalidValueError(f"--device {device!r}: use cpu, cuda, cuda:N, mps or auto")
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
    from ..bounds.bound import validate_value

    out = {}
    for k, v in values.items():
        try:
            out[k] = float(validate_value(k, float(v)))   # L=0, L=-1: outside the domain
        except InvalidValueError as exc:
            raise InvalidValueError(f"--assume {exc}") from None
    return out


def parse_bound_ids(text: str | None) -> list[str] | None:
    if text is None:
        return None
    ids = [t.strip() for t in text.split(",") if t.strip()]
    if not ids:
        raise InvalidValueError("--bounds is empty; give ID[,ID…] (see approx-audit bounds list)")
    for i in ids:
        catalogue.get(i)   # unknown ids: error with close matches
    return ids


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


def workload_request(workload, workload_option, model, data, loss, seed, dtype):
    """The :class:`~approx_audit.auditor.workloads.WorkloadRequest` of the workload options."""
    from ..auditor.workloads import WorkloadRequest

    return WorkloadRequest(name=workload, model=model, data=data, loss=loss,
                           options=parse_workload_options(workload_option), seed=seed,
                           dtype=dtype)


def build_workload(request, device: str):
    """The workload a request names, on ``device``; ``--model mymodule:fn`` is looked up in
    the current folder first."""
    from ..auditor.workloads import resolve

    return resolve(request, device, os.getcwd())


def check_out(out: Path, option: str = "--out") -> Path:
    """The output folder, refused before any work when it cannot hold an audit: empty, the
    filesystem root, under a file, or not writable (one line, exit 2; nothing is written)."""
    text = str(out)
    if not text.strip() or text.strip() == ".":
        raise InvalidValueError(f"{option} {text!r}: give a folder for the audit's files, "
                                "e.g. --out audit")
    path = Path(out).expanduser()
    resolved = path.resolve()
    if resolved == Path(resolved.anchor):
        raise InvalidValueError(f"{option} {text}: the filesystem root cannot hold an audit; "
                                "give a folder of its own, e.g. --out audit")
    existing = next((p for p in [resolved, *resolved.parents] if p.exists()), None)
    if existing is not None and not existing.is_dir():
        raise InvalidValueError(f"{option} {text}: {existing} is a file, not a folder")
    if existing is not None and not os.access(existing, os.W_OK | os.X_OK):
        raise InvalidValueError(f"{option} {text}: {existing} is not writable")
    return path


def cpu_threads(threads: int | None) -> int:
    """torch's CPU threads for a command: ``--threads``, else ``$OMP_NUM_THREADS``, else
    min(4, cores). torch's own default (every core) oversubscribes a shared machine: a
    200-step CNN loop varied 0.83 s to 12.6 s on two busy cores."""
    import torch

    if threads is None:
        env = os.environ.get("OMP_NUM_THREADS", "")
        threads = int(env) if env.isdigit() and int(env) > 0 else min(4, os.cpu_count() or 1)
    torch.set_num_threads(threads)
    return threads


def build_sinks(steps: int, seeds: int, tensorboard_dir, wandb_project, quiet: bool) -> list:
    """The sinks the options ask for (a missing package: one-line error, exit 2); the
    progress bar unless --quiet (it draws only when stderr is a terminal)."""
    from ..auditor.sinks import ProgressSink, TensorBoardSink, WandbSink

    sinks: list = []
    if tensorboard_dir is not None:
        sinks.append(TensorBoardSink(tensorboard_dir))
    if wandb_project is not None:
        sinks.append(WandbSink(project=wandb_project))
    if not quiet:
        sinks.append(ProgressSink(steps, runs=seeds))
    return sinks


def close_sinks(sinks: list) -> None:
    """Close every sink (idempotent; the audit may have closed them); one that fails is a
    note, never a lost result."""
    for sink in sinks:
        try:
            sink.close()
        except Exception as exc:  # noqa: BLE001 - results.json is already written
            click.echo(f"note: the {type(sink).__name__} sink failed to close: "
                       f"{type(exc).__name__}: {exc}", err=True)


def progress_bar(steps: int, runs: int, quiet: bool):
    """A progress bar on stderr for a command's training loops (None with --quiet; it draws
    only when stderr is a terminal)."""
    if quiet:
        return None
    from ..auditor.sinks import ProgressSink

    return ProgressSink(steps, runs=runs)


def progress_callback(quiet: bool):
    """``progress(done, total)`` drawing a progress bar on stderr (for work counted in solved
    programs: ``check``'s worst cases); None with --quiet. Drawn only on a terminal."""
    if quiet:
        return None
    state: dict = {}

    def progress(done: int, total: int) -> None:
        bar = state.get("bar")
        if bar is None:
            from ..auditor.sinks import ProgressSink

            bar = state["bar"] = ProgressSink(total, runs=1)
            bar.write({"record": "start", "run": 0})
        bar.write({"record": "step", "run": 0, "k": done})
        if done >= total:
            bar.write({"record": "end", "run": 0})
    return progress
