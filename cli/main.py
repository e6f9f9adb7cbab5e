"""Entry point of the ``approx-audit`` command.

Exit codes: 0 success (nothing violated), 1 a bound violated, 2 usage or input error,
3 run or internal error. Results go to stdout, logs and errors to stderr.
"""

from __future__ import annotations

import os
import sys

import click

from .. import __version__
from ..bounds.errors import ApproxAuditError
from .config import CONFIG_FILE, ENV_PREFIX, check_config, load_config
from .exits import EXIT_INTERNAL, EXIT_USAGE, EXIT_VIOLATED

__all__ = ["CONFIG_FILE", "ENV_PREFIX", "EXIT_INTERNAL", "EXIT_USAGE", "EXIT_VIOLATED", "cli",
           "load_config", "main"]


class AuditGroup(click.Group):
    """A click group that turns user mistakes into one-line errors with exit code 2."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except click.exceptions.UsageError as exc:
            # one line, like every other input error (click prints usage, a hint and the error)
            where = exc.ctx.command_path if exc.ctx is not None else "approx-audit"
            click.echo(f"error: {exc.format_message()} (see {where} --help)", err=True)
            ctx.exit(EXIT_USAGE)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except KeyboardInterrupt:
            # Ctrl-C before the run holds anything (setup, the user's model import) or after
            # what it measured is written: exit 3 like any interrupted run, never click's
            # "Aborted!" with 1 (which means a bound was violated)
            click.echo("error: interrupted by the user", err=True)
            ctx.exit(EXIT_INTERNAL)
        except BrokenPipeError:  # `approx-audit bounds list | head`: not an error
            sys.stderr.close()
            ctx.exit(0)
        except ApproxAuditError as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(EXIT_USAGE)
        except Exception as exc:  # a bug or a failed run: never reported as a usage error
            if os.environ.get("APPROX_AUDIT_DEBUG"):
                raise
            click.echo(f"internal error: {type(exc).__name__}: {exc} "
                       "(set APPROX_AUDIT_DEBUG=1 for the traceback)", err=True)
            ctx.exit(EXIT_INTERNAL)


@click.group(cls=AuditGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="approx-audit")
def cli() -> None:
    """Which optimization guarantees apply to a run, and how far observation is from them."""


def _register_commands() -> None:
    from .bounds_cmd import bounds
    from .case_study_cmd import case_study
    from .certify_cmd import certify
    from .check_cmd import check
    from .compare_cmd import compare
    from .report_cmd import report
    from .run_cmd import run
    from .stability_cmd import stability
    from .verify_cmd import verify

    cli.add_command(bounds)
    cli.add_command(case_study)
    cli.add_command(certify)
    cli.add_command(check)
    cli.add_command(compare)
    cli.add_command(run)
    cli.add_command(report)
    cli.add_command(stability)
    cli.add_command(verify)


_register_commands()


def _check_config(default_map: dict, path: str | None) -> None:
    """Unknown commands or options in the configuration file are errors (see
    :func:`.config.check_config`)."""
    check_config(default_map, path, cli.commands)


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled like a Ctrl-C: the audit finishes the record it is writing, keeps
    every finished step, writes results.json and exits 3 (never the default death that loses
    everything, never exit 1)."""


def _on_sigterm(signum, frame) -> None:
    raise Terminated("terminated by SIGTERM")


def _interruptible() -> None:
    import signal
    import threading

    if threading.current_thread() is threading.main_thread():
        try:
            if signal.getsignal(signal.SIGINT) in (signal.SIG_IGN, None):
                signal.signal(signal.SIGINT, signal.default_int_handler)
            if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
                signal.signal(signal.SIGTERM, _on_sigterm)
        except (ValueError, OSError):
            pass


def main(argv: list[str] | None = None) -> None:
    """Command line over ``APPROX_AUDIT_<COMMAND>_<OPTION>`` environment variables over the
    configuration file over defaults (click's own precedence).

    SIGINT is made Python's default (KeyboardInterrupt) first: a command started with SIGINT
    inherited as ignored (a background job of a script, some CI runners) would otherwise never
    stop on Ctrl-C or ``kill -INT``; the audit then finishes the record it is writing, keeps
    every finished step and exits 3. SIGTERM does the same (:class:`Terminated`)."""
    _interruptible()
    try:
        default_map, path = load_config()
        _check_config(default_map, path)
    except ApproxAuditError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    cli.main(args=argv, prog_name="approx-audit", auto_envvar_prefix=ENV_PREFIX,
             default_map=default_map)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
