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


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
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
