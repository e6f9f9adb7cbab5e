"""The auditor: runs optimizers with torch and measures assumptions along the trajectory.

``Auditor`` attaches to a user's own training loop (optimizer hooks); ``run_audit`` is what
``approx-audit run`` calls; workloads, probes, the verdict engine and the trace live in the
submodules.
"""

__all__ = ["Auditor", "train"]


def __getattr__(name: str):
    # lazy: importing a torch-free submodule (the judge) must not import torch
    if name in __all__:
        from . import run
        return getattr(run, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
