"""One rank of ``approx-audit run --nproc N``, started by ``torch.distributed.run``.

``python -m approx_audit.auditor.worker REQUEST.json``: the launcher's
:class:`~.request.AuditRequest` as JSON (values, never code). Exit status 0 when the audit
ran, 1 when this rank failed (its one-line error is in ``<out>/.distributed/rank<r>.error.json``).
"""

from __future__ import annotations

import json
import sys

from .decentralized import DECENTRALIZED, GossipSetup
from .distributed import DDPSetup, serve
from .request import AuditRequest


ENV_LAUNCHER = "APPROX_AUDIT_LAUNCHER_PID"


def _watch_launcher(poll_s: float = 0.5) -> None:
    """Die with the launcher: ranks run in their own session (so that one Ctrl-C reaches them
    together), so a SIGKILL of ``approx-audit run`` would leave them training for ever. A
    daemon thread checks the launcher's pid and leaves (exit 143, as SIGTERM) once it is gone;
    torch.distributed.run's agent then sees its workers exit and leaves too."""
    import os
    import threading
    import time

    try:
        pid = int(os.environ.get(ENV_LAUNCHER, ""))
    except ValueError:
        return

    def alive() -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    def watch() -> None:
        while alive():
            time.sleep(poll_s)
        sys.stderr.write(f"approx-audit rank: the launcher (pid {pid}) is gone; leaving\n")
        sys.stderr.flush()
        os._exit(143)

    threading.Thread(target=watch, name="approx-audit-launcher-watch", daemon=True).start()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    _watch_launcher()
    if len(args) != 1:
        print("usage: python -m approx_audit.auditor.worker REQUEST.json", file=sys.stderr)
        return 2
    with open(args[0], encoding="utf-8") as fh:
        request = AuditRequest.from_dict(json.load(fh))
    setup = GossipSetup if request.method.name in DECENTRALIZED else DDPSetup
    return serve(request, setup)


def _exit_after(rc: int) -> None:
    """Leave without interpreter finalization once the audit ran: the group is destroyed and
    results.json and the trace are closed by then, but under load gloo's C++ threads can
    still hold work objects whose teardown during finalization aborts the rank ("terminate
    called without an active exception", SIGABRT: seen in 2 of 3 gossip launches on a busy
    machine; see pytorch/pytorch#179291). The launcher would read that as a failed rank."""
    import os

    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(rc)


if __name__ == "__main__":  # pragma: no cover - run by torch.distributed.run
    _exit_after(main())
