"""What is known about a workload before any run: the judge's facts, and rounding of its dtype."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

ROUNDING_ULPS = 64        # absolute slack: ULPS · eps(dtype) · scale of the observed quantity


def eps_of(dtype: str) -> float:
    """Machine epsilon of a torch dtype named without its prefix (float32 when unknown)."""
    return {"float64": 2.2e-16, "float32": 1.2e-7, "float16": 9.8e-4,
            "bfloat16": 7.8e-3}.get(dtype, 1.2e-7)


@dataclass(frozen=True)
class Facts:
    """What is known about the workload, independent of any run."""

    name: str
    convex: bool | None              # None: unknown (a user's model)
    quadratic: bool
    f_star: float | None
    f_lower: float | None
    constants: Mapping[str, tuple[float, str, str]]   # name -> (value, kind, source)
    n: int | None
    d: int
    dtype: str = "float32"
    sampling: str = "iid"            # "iid": i.i.d. with replacement (unbiased); "user"

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Facts":
        return cls(name=d["name"], convex=d.get("convex"), quadratic=bool(d.get("quadratic")),
                   f_star=d.get("f_star"), f_lower=d.get("f_lower"),
                   constants={k: (float(v["value"]), v["kind"], v["source"])
                              for k, v in (d.get("constants") or {}).items()},
                   n=d.get("n"), d=int(d.get("d") or 0), dtype=d.get("dtype", "float32"),
                   sampling=d.get("sampling", "iid"))

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "convex": self.convex, "quadratic": self.quadratic,
                "f_star": self.f_star, "f_lower": self.f_lower, "n": self.n, "d": self.d,
                "dtype": self.dtype, "sampling": self.sampling,
                "constants": {k: {"value": v, "kind": kind, "source": src}
                              for k, (v, kind, src) in self.constants.items()}}

