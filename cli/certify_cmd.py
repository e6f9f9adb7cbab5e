"""``approx-audit certify``: a generalization certificate for one trained network (issue 19)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from .exits import EXIT_INTERNAL
from .options import (build_workload, check_out, command_line, cpu_threads, optimizer_options,
                      optimizer_spec, progress_bar, resolve_device, workload_option_decorator,
                      workload_request)

DEFAULT_OPTIMIZER = "sgd:lr=0.1,momentum=0.9"
DEFAULT_STEPS = 1000
DEFAULT_BATCH = 32


def _training_defaults(cmd: click.Command) -> click.Command:
    """``-O`` and ``-B`` as the shared options define them, but with defaults: a certificate
    needs some trained network, and ``certify -w mlp-digits`` alone should give one in
    seconds (full-batch training of cnn-digits takes minutes). The Option objects are this
    command's own (the shared decorators make new ones each time)."""
    for p in cmd.params:
        if p.name == "optimizer":
            p.required, p.default, p.show_default = False, DEFAULT_OPTIMIZER, True
        elif p.name == "batch_size":
            p.default, p.show_default = DEFAULT_BATCH, True
            p.help = ("Minibatch size (i.i.d. with replacement); a size ≥ the training part "
                      "trains full batch (GD).")
    return cmd


@_training_defaults
@click.command("certify")
@workload_option_decorator(with_steps=False)
@click.option("--steps", "-K", type=click.IntRange(min=1), default=DEFAULT_STEPS,
              show_default=True, help="Training steps on the training part.")
@optimizer_options
@click.option("--method", type=click.Choice(["test-set", "pac-bayes"]), default="test-set",
              show_default=True, help="test-set: Langford's binomial tail inversion on the "
                                      "held-out part; pac-bayes: a Gaussian posterior around "
                                      "a prior trained on --prior-fraction (Pérez-Ortiz et "
                                      "al. 2021).")
@click.option("--prior-fraction", type=float, default=0.5, show_default=True,
              help="pac-bayes: share of the non-held-out data that trains the prior.")
@click.option("--prior-sigma", type=float, default=0.03, show_default=True,
              help="pac-bayes: the prior's standard deviation around its trained weights.")
@click.option("--mc-samples", type=click.IntRange(min=1), default=1000, show_default=True,
              help="pac-bayes: weight samples that estimate the posterior's empirical risk.")
@click.option("--delta-prime", type=float, default=0.01, show_default=True,
              help="pac-bayes: confidence spent on the Monte-Carlo estimate.")
@click.option("--delta", type=float, default=0.025, show_default=True,
              help="The certificate holds with probability at least 1 − delta.")
@click.option("--test-fraction", type=float, default=0.2, show_default=True,
              help="Share of the data held out for the bound (never trained on).")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="torch CPU threads (default: $OMP_NUM_THREADS, else min(4, cores)).")
@click.option("--out", "-o", type=click.Path(file_okay=False, path_type=Path),
              default=Path("certificate"), show_default=True)
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              show_default=True)
@click.option("--quiet", is_flag=True, help="No progress bar (drawn only on a terminal).")
def certify(workload, workload_option, model, data, loss, seed, dtype, device, batch_size,
            steps, optimizer, lr, momentum, nesterov, beta1, beta2, eps, alpha, weight_decay,
            schedule, method, prior_fraction, prior_sigma, mc_samples, delta_prime, delta,
            test_fraction, threads, out, fmt, quiet):
    """Split the data by --seed, train on one part, and certify the 0-1 risk of the trained
    network from its errors on the held-out part (Langford 2005, Thm 3.3), with the kl and
    Hoeffding relaxations; the test and training errors beside it.

    \b
    approx-audit certify -w mlp-digits
    approx-audit certify -w logistic -O sgd --lr 0.1 -K 500 -B 32 --format json

    Writes certificate.json (bound, split seed, permutation hash, optimizer) into --out.
    Choosing settings by rerunning on the same split voids the bound unless delta is shared
    among the settings tried.
    """
    from ..auditor.certify import (TrainingDiverged, certify_pac_bayes, certify_test_set,
                                   require_classifier, require_cross_entropy, split_indices,
                                   three_way_split, write_certificate)

    spec = optimizer_spec(optimizer, lr, momentum, nesterov, beta1, beta2, eps, alpha,
                          weight_decay, schedule)
    from ..bounds.errors import InvalidValueError
    if not 0.0 < delta < 1.0:
        raise InvalidValueError(f"--delta {delta:g} must be in (0, 1), e.g. 0.025")
    if method == "pac-bayes" and not (0.0 < delta_prime < 1.0 and delta + delta_prime < 1.0):
        raise InvalidValueError(f"--delta-prime {delta_prime:g} must be in (0, 1) with "
                                "delta + delta-prime < 1, e.g. 0.01")
    if method == "pac-bayes" and not prior_sigma > 0.0:
        raise InvalidValueError(f"--prior-sigma {prior_sigma:g} must be > 0, e.g. 0.03")
    check_out(out)
    cpu_threads(threads)
    dev = resolve_device(device)
    request = workload_request(workload, workload_option, model, data, loss, seed, dtype)
    w = build_workload(request, dev)
    require_classifier(w)                            # both before any progress line
    split_indices(w.n, test_fraction, seed)
    if method == "pac-bayes":
        require_cross_entropy(w)
        three_way_split(w.n, test_fraction, prior_fraction, seed)
    B = DEFAULT_BATCH if batch_size is None else batch_size    # None: a config file's null
    click.echo(f"certify ({method}) {w.name} with {spec.label()}: {steps} steps, B={B}, "
               f"{test_fraction:g} held out → {out}", err=True)
    common = dict(steps=steps, batch_size=B, delta=delta, test_fraction=test_fraction,
                  seed=seed, request=request.to_dict(),
                  command=command_line(click.get_current_context()),
                  progress=progress_bar(steps, 2 if method == "pac-bayes" else 1, quiet))
    try:
        if method == "pac-bayes":
            cert = certify_pac_bayes(w, spec, prior_fraction=prior_fraction,
                                     prior_sigma=prior_sigma, mc_samples=mc_samples,
                                     delta_prime=delta_prime, **common)
        else:
            cert = certify_test_set(w, spec, **common)
    except TrainingDiverged as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_INTERNAL)
    path = write_certificate(cert, out)
    if fmt == "json":
        click.echo(json.dumps(cert, indent=1, allow_nan=False))
    else:
        click.echo(_text(cert, path) if method == "test-set" else _pac_bayes_text(cert, path))


def _text(c: dict, path: Path) -> str:
    """The certificate in a few aligned lines."""
    d = c["delta"]
    return "\n".join([
        f"test-set certificate of {c['workload']['name']} ({c['optimizer']['label']}, "
        f"{c['steps']} steps), split seed {c['seed']}",
        f"  held-out m = {c['n_bound']}: {c['test_errors']} errors, test error "
        f"{c['test_error']:.4f}",
        f"  training n = {c['n_train']}: {c['train_errors']} errors, training error "
        f"{c['train_error']:.4f}",
        f"  risk bound (Langford Thm 3.3, exact binomial inversion), prob. ≥ {1 - d:g}: "
        f"{c['risk_bound']:.4f}",
        f"    kl relaxation (Cor. 3.7):        {c['relaxations']['kl']:.4f}",
        f"    Hoeffding relaxation (Cor. 3.8): {c['relaxations']['hoeffding']:.4f}",
        f"  permutation sha256 {c['permutation_sha256'][:16]}…  → {path}",
    ])


def _pac_bayes_text(c: dict, path: Path) -> str:
    """The PAC-Bayes certificate and how its terms contribute."""
    return "\n".join([
        f"PAC-Bayes certificate of {c['workload']['name']} ({c['optimizer']['label']}, "
        f"{c['steps']} steps), split seed {c['seed']}",
        f"  prior N(w0, {c['prior']['sigma']:g}² I), w0 trained on {c['prior']['n_prior']} "
        f"examples (its test error {c['prior_test_error']:.4f})",
        f"  posterior: KL(Q‖Q0) = {c['kl']:.4g} nats; n_bound = {c['n_bound']}",
        f"  stochastic 0-1 error on the bound part ({c['mc_samples']} samples) "
        f"{c['mc_error']:.4f}, upper {c['emp_risk_upper']:.4f} (δ′ = {c['delta_prime']:g})",
        f"  test error of Q {c['test_error']:.4f} on {c['split']['n_test']} held out",
        f"  risk bound (Pérez-Ortiz et al. 2021 Thm 1 + §6.2), prob. ≥ "
        f"{c['confidence']:g}: {c['risk_bound']:.4f}",
        f"    classic relaxation: {c['relaxations']['classic']:.4f}",
        f"  permutation sha256 {c['permutation_sha256'][:16]}…  → {path}",
    ])
