"""What an audit is asked to do, as plain values: the request the CLI builds and a worker
process receives.

``run --nproc N`` used to ship the command's local variables to the ranks, which re-parsed
command-line text with the CLI's own helpers (so the engine imported the CLI). An
:class:`AuditRequest` is frozen and round-trips through JSON (:meth:`to_dict` /
:meth:`from_dict`); the workload is named by a :class:`~.workloads.WorkloadRequest` and
built where it runs (:meth:`AuditRequest.build_workload`, on that rank's device), the
optimizer travels as its validated :class:`~.optimizers.OptimizerSpec` record.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .audit import AuditConfig
from .optimizers import OptimizerSpec
from .workloads import Workload, WorkloadRequest, resolve

__all__ = ["AuditRequest", "MethodRequest"]


@dataclass(frozen=True)
class MethodRequest:
    """How the ranks of ``--nproc N`` train: ``ddp`` or a decentralized method and its
    options (see :mod:`.decentralized`)."""

    name: str = "ddp"
    mixing: str | None = None
    local_steps: int | None = None
    easgd_alpha: float | None = None
    init_spread: float | None = None
    init_along: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "mixing": self.mixing, "local_steps": self.local_steps,
                "easgd_alpha": self.easgd_alpha, "init_spread": self.init_spread,
                "init_along": self.init_along}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> MethodRequest:
        return cls(**{k: d.get(k) for k in ("mixing", "local_steps", "easgd_alpha",
                                             "init_spread", "init_along")},
                   name=d.get("name") or "ddp")


@dataclass(frozen=True)
class AuditRequest:
    """One audit: the workload to build, the optimizer, the run's length and sampling, the
    probes and bounds, the output folder and the provenance (command, configuration)."""

    workload: WorkloadRequest
    optimizer: OptimizerSpec
    steps: int
    batch_size: int | None = None
    seeds: int = 1
    probes: str = "standard"
    bounds: tuple[str, ...] | None = None
    assume: Mapping[str, float] = field(default_factory=dict)
    out: str | None = None
    device: str = "cpu"
    command: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    cwd: str | None = None
    method: MethodRequest = field(default_factory=MethodRequest)
    probe_mode: str = "train"

    @property
    def seed(self) -> int:
        return self.workload.seed

    def build_workload(self, device: str | None = None) -> Workload:
        """The workload on ``device`` (default: the request's), the user's folder searched
        for ``--model mymodule:fn``."""
        return resolve(self.workload, device or self.device, self.cwd)

    def audit_config(self, workload: Workload, **extra: Any) -> AuditConfig:
        """The :class:`~.audit.AuditConfig` of this request over a built ``workload``;
        ``extra`` joins the recorded configuration (e.g. ``nproc``)."""
        return AuditConfig(workload=workload, optimizer=self.optimizer, steps=self.steps,
                           batch_size=self.batch_size, seeds=self.seeds, seed=self.seed,
                           probes=self.probes,
                           bounds=None if self.bounds is None else list(self.bounds),
                           assume=dict(self.assume),
                           out=None if self.out is None else Path(self.out),
                           device=self.device, command=self.command,
                           probe_mode=self.probe_mode, extra={**dict(self.extra), **extra})

    def to_dict(self) -> dict[str, Any]:
        return {"workload": self.workload.to_dict(), "optimizer": self.optimizer.to_dict(),
                "steps": self.steps, "batch_size": self.batch_size, "seeds": self.seeds,
                "probes": self.probes,
                "bounds": None if self.bounds is None else list(self.bounds),
                "assume": dict(self.assume), "out": self.out, "device": self.device,
                "command": self.command, "extra": dict(self.extra), "cwd": self.cwd,
                "method": self.method.to_dict(), "probe_mode": self.probe_mode}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> AuditRequest:
        bounds = d.get("bounds")
        return cls(workload=WorkloadRequest.from_dict(d["workload"]),
                   optimizer=OptimizerSpec.from_dict(d["optimizer"]), steps=int(d["steps"]),
                   batch_size=d.get("batch_size"), seeds=int(d.get("seeds") or 1),
                   probes=d.get("probes") or "standard",
                   bounds=None if bounds is None else tuple(bounds),
                   assume=dict(d.get("assume") or {}), out=d.get("out"),
                   device=d.get("device") or "cpu", command=d.get("command"),
                   extra=dict(d.get("extra") or {}), cwd=d.get("cwd"),
                   method=MethodRequest.from_dict(d.get("method") or {}),
                   probe_mode=d.get("probe_mode") or "train")
