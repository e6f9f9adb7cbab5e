"""Optimizer specifications: parse ``"sgd:lr=0.1,momentum=0.9"``, validate, build a torch optimizer.

An :class:`OptimizerSpec` names one of :data:`OPTIMIZER_NAMES`, its base step size ``lr``, every
other hyper-parameter (defaults filled in, PyTorch's defaults) and a step-size schedule from
:data:`SCHEDULES`. It builds the ``torch.optim.Optimizer`` (:meth:`OptimizerSpec.build`), gives
the step size of step ``k`` (:meth:`OptimizerSpec.lr_at`, :meth:`OptimizerSpec.set_lr`) and maps
its hyper-parameters onto the bound library's symbols (:attr:`OptimizerSpec.symbol_values`)::

    spec = parse_optimizer("sgd:momentum=0.9,nesterov=true", lr=0.1, schedule="1/sqrt(k)")
    opt = spec.build(model.parameters())
    for k in range(K):
        spec.set_lr(opt, k)
        ...

Text from users is parsed with ``float``/``int`` and a whitelist of booleans
(``true/false/1/0/yes/no``); nothing is evaluated.

The ``defossez-*`` names run :class:`DefossezAdam`, the exact algorithm analysed by Défossez,
Bottou, Bach & Usunier (2022) (see :mod:`approx_audit.bounds.families.adaptive`), whose ``eps``
sits inside the square root of an unnormalised second moment, unlike PyTorch's optimizers.
"""

from __future__ import annotations

import difflib
import math
import numbers
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import torch

from ..bounds.errors import ApproxAuditError

__all__ = [
    "OPTIMIZER_NAMES", "SCHEDULES", "DefossezAdam", "OptimizerSpec", "OptimizerSpecError",
    "parse_optimizer",
]

OPTIMIZER_NAMES: tuple[str, ...] = (
    "sgd", "adam", "adamw", "rmsprop", "adagrad",
    "defossez-adam", "defossez-rmsprop", "defossez-adagrad",
)
SCHEDULES: tuple[str, ...] = ("constant", "step", "1/k", "1/sqrt(k)")

_TRUE = frozenset({"true", "1", "yes"})
_FALSE = frozenset({"false", "0", "no"})


class OptimizerSpecError(ApproxAuditError, ValueError):
    """An optimizer or schedule specification that cannot be used (one line, naming the fix)."""


# --- hyper-parameter tables ---------------------------------------------------------------

# name -> (default lr, {key: default}) ; defaults are PyTorch's (defossez-*: the paper's usage).
_DEFAULTS: dict[str, tuple[float, dict[str, float | bool]]] = {
    "sgd": (0.01, {"momentum": 0.0, "dampening": 0.0, "nesterov": False, "weight_decay": 0.0}),
    "adam": (1e-3, {"beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0.0,
                    "amsgrad": False}),
    "adamw": (1e-3, {"beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0.01,
                     "amsgrad": False}),
    "rmsprop": (1e-2, {"alpha": 0.99, "eps": 1e-8, "momentum": 0.0, "centered": False,
                       "weight_decay": 0.0}),
    "adagrad": (1e-2, {"lr_decay": 0.0, "eps": 1e-10, "weight_decay": 0.0,
                       "initial_accumulator_value": 0.0}),
    "defossez-adam": (1e-3, {"beta1": 0.9, "beta2": 0.999, "eps": 1e-8}),
    "defossez-rmsprop": (1e-3, {"beta2": 0.999, "eps": 1e-8}),
    "defossez-adagrad": (1e-2, {"eps": 1e-8}),
}

# A range: (test, words for the message).
_Range = tuple[Callable[[float], bool], str]
_UNIT_CO: _Range = (lambda x: 0.0 <= x < 1.0, "in [0, 1)")
_UNIT_OO: _Range = (lambda x: 0.0 < x < 1.0, "in (0, 1)")
_NONNEG: _Range = (lambda x: x >= 0.0, ">= 0")
_POS: _Range = (lambda x: x > 0.0, "> 0")

_RANGES: dict[str, _Range] = {
    "momentum": _UNIT_CO, "dampening": _UNIT_CO, "beta1": _UNIT_CO, "alpha": _UNIT_CO,
    "beta2": _UNIT_OO, "eps": _NONNEG, "weight_decay": _NONNEG, "lr_decay": _NONNEG,
    "initial_accumulator_value": _NONNEG,
}
_BOOL_KEYS = frozenset({"nesterov", "amsgrad", "centered"})


def _range_for(name: str, key: str) -> _Range:
    if key == "eps" and name.startswith("defossez-"):
        return _POS  # eps sits inside sqrt(eps + v): v_1 may be 0, so eps = 0 can divide by 0
    return _RANGES[key]


def _fmt(x: float | bool) -> str:
    """Short text of a number for labels and messages (``0.1``, ``1e-08``, ``100``)."""
    if isinstance(x, bool):
        return "true" if x else "false"
    return f"{float(x):.12g}"


def _canonical_name(name: Any) -> str:
    if not isinstance(name, str):
        raise OptimizerSpecError(f"optimizer name must be text, got {type(name).__name__}; "
                                 f"give one of {', '.join(OPTIMIZER_NAMES)}")
    canon = name.strip().lower().replace("_", "-")
    if canon not in _DEFAULTS:
        close = difflib.get_close_matches(canon, OPTIMIZER_NAMES, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise OptimizerSpecError(f"unknown optimizer {name!r}; {hint}"
                                 f"valid names: {', '.join(OPTIMIZER_NAMES)}")
    return canon


def _as_float(name: str, key: str, value: Any, what: str = "optimizer") -> float:
    """``value`` (number or text) as a finite float, else a one-line error naming the key."""
    if isinstance(value, bool):
        raise OptimizerSpecError(f"{what} {name!r}: {key}={value!r} is a boolean; "
                                 f"give a number")
    if isinstance(value, numbers.Real):
        x = float(value)
    elif isinstance(value, str):
        try:
            x = float(value.strip())
        except ValueError:
            raise OptimizerSpecError(f"{what} {name!r}: {key}={value!r} is not a number; "
                                     f"give a decimal such as 0.1 or 1e-3") from None
    else:
        raise OptimizerSpecError(f"{what} {name!r}: {key}={value!r} is not a number; "
                                 f"give a decimal such as 0.1 or 1e-3")
    if not math.isfinite(x):
        raise OptimizerSpecError(f"{what} {name!r}: {key}={value!r} is not finite; "
                                 f"give a finite number")
    return x


def _as_bool(name: str, key: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        low = value.strip().lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
    raise OptimizerSpecError(f"optimizer {name!r}: {key}={value!r} is not a boolean; "
                             f"give true/false (or 1/0, yes/no)")


def _check_lr(name: str, value: Any) -> float:
    lr = _as_float(name, "lr", value)
    if lr <= 0.0:
        raise OptimizerSpecError(f"optimizer {name!r}: lr={_fmt(lr)} must be > 0; "
                                 f"give a positive step size (e.g. 0.01)")
    return lr


def _check_hparams(name: str, given: Mapping[str, Any]) -> dict[str, float | bool]:
    """All hyper-parameters of ``name`` but lr: ``given`` coerced and checked, defaults filled."""
    defaults = _DEFAULTS[name][1]
    out: dict[str, float | bool] = dict(defaults)
    for raw_key, value in given.items():
        key = str(raw_key).strip().lower().replace("-", "_")
        if key == "lr":
            raise OptimizerSpecError(f"optimizer {name!r}: lr is not a hyper-parameter entry; "
                                     f"pass it as OptimizerSpec(lr=...)")
        if key not in defaults:
            valid = ", ".join(["lr", *defaults])
            raise OptimizerSpecError(f"optimizer {name!r}: unknown key {raw_key!r}; "
                                     f"valid keys: {valid}")
        if key in _BOOL_KEYS:
            out[key] = _as_bool(name, key, value)
            continue
        x = _as_float(name, key, value)
        test, words = _range_for(name, key)
        if not test(x):
            raise OptimizerSpecError(f"optimizer {name!r}: {key}={_fmt(x)} must be {words}; "
                                     f"give a value {words} (default {_fmt(defaults[key])})")
        out[key] = x
    if out.get("nesterov") and (out["momentum"] <= 0.0 or out["dampening"] != 0.0):
        raise OptimizerSpecError(
            f"optimizer {name!r}: nesterov=true needs momentum > 0 and dampening = 0 (got "
            f"momentum={_fmt(out['momentum'])}, dampening={_fmt(out['dampening'])}); "
            f"set momentum (e.g. 0.9) and dampening=0, or nesterov=false")
    return out


_STEP_DEFAULTS: dict[str, float] = {"step_size": 100, "gamma": 0.1}


def _check_schedule(schedule: Any, params: Mapping[str, Any]) -> tuple[str, dict[str, float]]:
    if not isinstance(schedule, str) or schedule.strip().lower().replace(" ", "") not in SCHEDULES:
        raise OptimizerSpecError(f"unknown schedule {schedule!r}; valid schedules: "
                                 f"{', '.join(SCHEDULES)} (step takes step:step_size=N,gamma=G)")
    schedule = schedule.strip().lower().replace(" ", "")
    if schedule != "step":
        if params:
            raise OptimizerSpecError(f"schedule {schedule!r} takes no parameters, got "
                                     f"{', '.join(map(str, params))}; drop them or use step")
        return schedule, {}
    out: dict[str, float] = dict(_STEP_DEFAULTS)
    for raw_key, value in params.items():
        key = str(raw_key).strip().lower().replace("-", "_")
        if key == "step_size":
            x = _as_float("step", key, value, "schedule")
            if x != int(x) or x < 1:
                raise OptimizerSpecError(f"schedule 'step': step_size={value!r} must be an "
                                         f"integer >= 1; give a number of steps such as 100")
            out[key] = int(x)
        elif key == "gamma":
            x = _as_float("step", key, value, "schedule")
            if not 0.0 < x <= 1.0:
                raise OptimizerSpecError(f"schedule 'step': gamma={_fmt(x)} is outside (0, 1]; "
                                         f"give a decay factor in (0, 1] such as 0.1")
            out[key] = x
        else:
            raise OptimizerSpecError(f"schedule 'step': unknown key {raw_key!r}; "
                                     f"valid keys: step_size, gamma")
    return schedule, out


def _split_pairs(what: str, body: str, example: str) -> dict[str, str]:
    """``"a=1,b=2"`` as ``{"a": "1", "b": "2"}``; empty entries skipped, duplicates refused."""
    pairs: dict[str, str] = {}
    for item in body.split(","):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        key = key.strip().lower().replace("-", "_")
        if not sep or not key:
            raise OptimizerSpecError(f"{what}: {item.strip()!r} is not key=value; "
                                     f"write e.g. {example}")
        if key in pairs:
            raise OptimizerSpecError(f"{what}: key {key!r} given twice; give it once")
        pairs[key] = value.strip()
    return pairs


# --- the spec ---------------------------------------------------------------------------


@dataclass(frozen=True)
class OptimizerSpec:
    """One optimizer with all its hyper-parameters and a step-size schedule, validated.

    ``hparams`` holds every hyper-parameter except ``lr`` (missing ones get PyTorch's
    defaults, given ones are coerced from numbers or text and range-checked) and is read-only;
    ``schedule_params`` holds ``step_size``/``gamma`` for ``"step"`` and is empty otherwise.
    Construction raises :class:`OptimizerSpecError` for anything invalid.
    """

    name: str
    lr: float
    hparams: Mapping[str, float | bool] = field(default_factory=dict, hash=False)
    schedule: str = "constant"
    schedule_params: Mapping[str, float] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        name = _canonical_name(self.name)
        if not isinstance(self.hparams, Mapping):
            raise OptimizerSpecError(f"optimizer {name!r}: hparams must be a mapping of "
                                     f"key to value, got {type(self.hparams).__name__}")
        if not isinstance(self.schedule_params, Mapping):
            raise OptimizerSpecError(f"schedule params must be a mapping of key to value, "
                                     f"got {type(self.schedule_params).__name__}")
        lr = _check_lr(name, self.lr)
        hparams = _check_hparams(name, self.hparams)
        schedule, sparams = _check_schedule(self.schedule, self.schedule_params)
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "lr", lr)
        object.__setattr__(self, "hparams", MappingProxyType(hparams))
        object.__setattr__(self, "schedule", schedule)
        object.__setattr__(self, "schedule_params", MappingProxyType(sparams))

    # -- torch -----------------------------------------------------------------------------

    def build(self, params: Iterable[Any]) -> torch.optim.Optimizer:
        """The torch optimizer over ``params`` (tensors or param groups), lr = :attr:`lr`."""
        h = self.hparams
        if self.name == "sgd":
            return torch.optim.SGD(params, lr=self.lr, momentum=h["momentum"],
                                   dampening=h["dampening"], weight_decay=h["weight_decay"],
                                   nesterov=h["nesterov"])
        if self.name in ("adam", "adamw"):
            cls = torch.optim.Adam if self.name == "adam" else torch.optim.AdamW
            return cls(params, lr=self.lr, betas=(h["beta1"], h["beta2"]), eps=h["eps"],
                       weight_decay=h["weight_decay"], amsgrad=h["amsgrad"])
        if self.name == "rmsprop":
            return torch.optim.RMSprop(params, lr=self.lr, alpha=h["alpha"], eps=h["eps"],
                                       weight_decay=h["weight_decay"], momentum=h["momentum"],
                                       centered=h["centered"])
        if self.name == "adagrad":
            return torch.optim.Adagrad(params, lr=self.lr, lr_decay=h["lr_decay"],
                                       weight_decay=h["weight_decay"],
                                       initial_accumulator_value=h["initial_accumulator_value"],
                                       eps=h["eps"])
        sv = self.symbol_values
        return DefossezAdam(params, lr=self.lr, beta1=sv.get("beta1", 0.0),
                            beta2=sv.get("beta2", 1.0), eps=sv["eps"])

    def lr_at(self, k: int) -> float:
        """Step size of step ``k = 0, 1, 2, ...`` under :attr:`schedule`."""
        if isinstance(k, bool) or not isinstance(k, int) or k < 0:
            raise OptimizerSpecError(f"lr_at: step k={k!r} must be an integer >= 0; "
                                     f"count steps from 0")
        if self.schedule == "constant":
            return self.lr
        if self.schedule == "step":
            sp = self.schedule_params
            return self.lr * sp["gamma"] ** (k // int(sp["step_size"]))
        if self.schedule == "1/k":
            return self.lr / (k + 1)
        return self.lr / math.sqrt(k + 1)  # "1/sqrt(k)"

    def set_lr(self, optimizer: torch.optim.Optimizer, k: int) -> float:
        """Set every param group's ``lr`` to :meth:`lr_at` ``(k)``; return it."""
        lr = self.lr_at(k)
        for group in optimizer.param_groups:
            group["lr"] = lr
        return lr

    # -- reporting -------------------------------------------------------------------------

    def label(self) -> str:
        """Short label with lr and non-default hyper-parameters: ``sgd(lr=0.1, nesterov)``."""
        defaults = _DEFAULTS[self.name][1]
        parts = [f"lr={_fmt(self.lr)}"]
        for key, value in self.hparams.items():
            if value == defaults[key] and type(value) is type(defaults[key]):
                continue
            parts.append(key if value is True else f"{key}={_fmt(value)}")
        if self.schedule == "step":
            sp = self.schedule_params
            parts.append(f"schedule=step(step_size={int(sp['step_size'])}, "
                         f"gamma={_fmt(sp['gamma'])})")
        elif self.schedule != "constant":
            parts.append(f"schedule={self.schedule}")
        return f"{self.name}({', '.join(parts)})"

    def to_dict(self) -> dict[str, Any]:
        """JSON-able record: name, lr, hparams, schedule, schedule_params, label."""
        return {
            "name": self.name,
            "lr": self.lr,
            "hparams": dict(self.hparams),
            "schedule": self.schedule,
            "schedule_params": dict(self.schedule_params),
            "label": self.label(),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "OptimizerSpec":
        """The spec :meth:`to_dict` wrote (validated again; ``label`` is derived, not read)."""
        try:
            return cls(name=d["name"], lr=d["lr"], hparams=dict(d.get("hparams") or {}),
                       schedule=d.get("schedule", "constant"),
                       schedule_params=dict(d.get("schedule_params") or {}))
        except (KeyError, TypeError) as exc:
            raise OptimizerSpecError(f"optimizer record {dict(d)!r} lacks name or lr: "
                                     f"{exc}") from None

    @property
    def symbol_values(self) -> dict[str, float]:
        """Hyper-parameters under the bound library's symbol names (``eta`` is the base lr)."""
        h, n = self.hparams, self.name
        if n == "sgd":
            return {"eta": self.lr, "beta": float(h["momentum"])}
        if n in ("adam", "adamw", "defossez-adam"):
            return {"eta": self.lr, "beta1": float(h["beta1"]), "beta2": float(h["beta2"]),
                    "eps": float(h["eps"])}
        if n == "rmsprop":
            return {"eta": self.lr, "beta2": float(h["alpha"]), "eps": float(h["eps"])}
        if n == "defossez-rmsprop":
            return {"eta": self.lr, "beta1": 0.0, "beta2": float(h["beta2"]),
                    "eps": float(h["eps"])}
        return {"eta": self.lr, "eps": float(h["eps"])}  # adagrad, defossez-adagrad


def parse_optimizer(text: str, *, schedule: str | None = None, **overrides: Any) -> OptimizerSpec:
    """Parse ``"name"`` or ``"name:key=value,..."`` into a validated :class:`OptimizerSpec`.

    ``overrides`` (e.g. ``lr=0.1`` from ``--lr``) win over values in ``text``; ``None`` values
    are ignored. ``schedule`` is one of :data:`SCHEDULES` or ``"step:step_size=N,gamma=G"``
    (default ``"constant"``). Values are read with ``float``/``int`` and booleans from
    ``true/false/1/0/yes/no``; nothing is evaluated.
    """
    if not isinstance(text, str) or not text.strip():
        raise OptimizerSpecError(f"optimizer spec {text!r} is empty or not text; give e.g. "
                                 f"'sgd' or 'sgd:lr=0.1,momentum=0.9'")
    raw_name, _, body = text.partition(":")
    name = _canonical_name(raw_name)
    values: dict[str, Any] = _split_pairs(f"optimizer {name!r}", body, f"{name}:lr=0.1")
    for key, value in overrides.items():
        if value is not None:
            values[key.strip().lower().replace("-", "_")] = value
    lr = values.pop("lr", _DEFAULTS[name][0])

    sched_text = "constant" if schedule is None else schedule
    if not isinstance(sched_text, str):
        raise OptimizerSpecError(f"unknown schedule {schedule!r}; valid schedules: "
                                 f"{', '.join(SCHEDULES)}")
    sched_name, sep, sched_body = sched_text.partition(":")
    if sep and sched_name.strip().lower() != "step":
        raise OptimizerSpecError(f"schedule {sched_text!r}: only 'step' takes parameters "
                                 f"(step:step_size=N,gamma=G); valid schedules: "
                                 f"{', '.join(SCHEDULES)}")
    sched_params = _split_pairs("schedule 'step'", sched_body,
                                                "step:step_size=50,gamma=0.5") if sep else {}
    return OptimizerSpec(name=name, lr=lr, hparams=values, schedule=sched_name,
                         schedule_params=sched_params)


# --- the Défossez et al. (2022) algorithm -------------------------------------------------


class DefossezAdam(torch.optim.Optimizer):
    """Adam/RMSprop/Adagrad exactly as analysed by Défossez, Bottou, Bach & Usunier (2022).

    Coordinate-wise, with ``m_0 = v_0 = 0`` and ``n = 1, 2, ...`` the step count of each
    parameter::

        m_n = beta1 m_{n-1} + g_n
        v_n = beta2 v_{n-1} + g_n^2
        x_n = x_{n-1} - alpha_n m_n / sqrt(eps + v_n)

    ``alpha_n = alpha (1 - beta1) sqrt((1 - beta2^n) / (1 - beta2))`` for ``0 < beta2 < 1``
    (Adam; RMSprop is ``beta1 = 0``) and ``alpha_n = alpha (1 - beta1)`` for ``beta2 = 1``
    (Adagrad; ``alpha_n = alpha`` with ``beta1 = 0``). ``param_group["lr"]`` is ``alpha``, so
    schedules scale ``alpha``. No bias correction of ``m``, ``eps`` inside the square root and
    an unnormalised ``v``: these differ from ``torch.optim.Adam``/``Adagrad``.

    State per parameter: ``step`` (int), ``m``, ``v`` (tensors like the parameter).
    """

    def __init__(self, params: Iterable[Any], lr: float = 1e-3, beta1: float = 0.9,
                 beta2: float = 0.999, eps: float = 1e-8) -> None:
        for key, value in (("lr", lr), ("beta1", beta1), ("beta2", beta2), ("eps", eps)):
            if isinstance(value, bool) or not isinstance(value, numbers.Real) \
                    or not math.isfinite(value):
                raise ValueError(f"DefossezAdam: {key}={value!r} must be a finite number")
        if lr < 0.0:
            raise ValueError(f"DefossezAdam: lr={lr!r} must be >= 0; give a step size such "
                             f"as 1e-3")
        if not 0.0 <= beta1 < 1.0:
            raise ValueError(f"DefossezAdam: beta1={beta1!r} is outside [0, 1); give e.g. 0.9")
        if not 0.0 < beta2 <= 1.0:
            raise ValueError(f"DefossezAdam: beta2={beta2!r} is outside (0, 1]; give e.g. "
                             f"0.999, or 1 for Adagrad")
        if not eps > 0.0:
            raise ValueError(f"DefossezAdam: eps={eps!r} must be > 0 (it sits inside "
                             f"sqrt(eps + v)); give e.g. 1e-8")
        defaults = dict(lr=float(lr), beta1=float(beta1), beta2=float(beta2), eps=float(eps))
        super().__init__(params, defaults)

    @staticmethod
    def step_factor(n: int, beta1: float, beta2: float) -> float:
        """``alpha_n / alpha`` at step ``n >= 1``."""
        if beta2 == 1.0:
            return 1.0 - beta1
        # sqrt((1 - beta2^n)/(1 - beta2)) without cancellation for beta2 close to 1
        return (1.0 - beta1) * math.sqrt(-math.expm1(n * math.log(beta2)) / (1.0 - beta2))

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:  # type: ignore[override]
        """One update of every parameter that has a gradient; returns ``closure()`` if given."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, beta1, beta2, eps = group["lr"], group["beta1"], group["beta2"], group["eps"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad
                if g.is_sparse:
                    raise RuntimeError("DefossezAdam does not support sparse gradients; "
                                       "use dense gradients")
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["m"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["v"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["step"] += 1
                m, v = state["m"], state["v"]
                m.mul_(beta1).add_(g)
                v.mul_(beta2).addcmul_(g, g)
                alpha_n = lr * self.step_factor(state["step"], beta1, beta2)
                p.addcdiv_(m, v.add(eps).sqrt_(), value=-alpha_n)
        return loss


def spec_from_optimizer(optimizer: torch.optim.Optimizer,
                        lr: float | None = None) -> OptimizerSpec:
    """The spec of a torch optimizer a user built (first param group). ``lr``: the base step
    size (e.g. the first step's, under a scheduler); default the group's lr as it is now,
    which a scheduler may have moved to its final value (0 for cosine annealing to 0).

    Raises :class:`OptimizerSpecError` for classes the catalogue knows nothing about."""
    g = optimizer.param_groups[0]
    lr = float(g["lr"]) if lr is None else float(lr)
    if isinstance(optimizer, DefossezAdam):
        b1, b2 = float(g["beta1"]), float(g["beta2"])
        if b2 == 1.0 and b1 == 0.0:
            return OptimizerSpec("defossez-adagrad", lr, {"eps": g["eps"]})
        if b1 == 0.0:
            return OptimizerSpec("defossez-rmsprop", lr, {"beta2": b2, "eps": g["eps"]})
        return OptimizerSpec("defossez-adam", lr, {"beta1": b1, "beta2": b2, "eps": g["eps"]})
    if isinstance(optimizer, torch.optim.SGD):
        return OptimizerSpec("sgd", lr, {k: g[k] for k in ("momentum", "dampening", "nesterov",
                                                           "weight_decay")})
    if isinstance(optimizer, (torch.optim.Adam, torch.optim.AdamW)):
        name = "adamw" if isinstance(optimizer, torch.optim.AdamW) else "adam"
        return OptimizerSpec(name, lr, {"beta1": g["betas"][0], "beta2": g["betas"][1],
                                        "eps": g["eps"], "weight_decay": g["weight_decay"],
                                        "amsgrad": g["amsgrad"]})
    if isinstance(optimizer, torch.optim.RMSprop):
        return OptimizerSpec("rmsprop", lr, {k: g[k] for k in ("alpha", "eps", "momentum",
                                                               "centered", "weight_decay")})
    if isinstance(optimizer, torch.optim.Adagrad):
        return OptimizerSpec("adagrad", lr, {k: g[k] for k in (
            "lr_decay", "eps", "weight_decay", "initial_accumulator_value")})
    raise OptimizerSpecError(f"{type(optimizer).__name__} is not an optimizer the catalogue has "
                             f"bounds for; supported: SGD, Adam, AdamW, RMSprop, Adagrad, "
                             "DefossezAdam")
