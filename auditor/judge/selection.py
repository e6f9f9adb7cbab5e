"""Which catalogue bounds speak of a run: its algorithm, the bounds, its hyper-parameters."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ...bounds import symbols as S
from ...bounds.bound import Bound
from ...bounds.quantities import Quantity

STABILITY_QUANTITIES = (Quantity.UNIFORM_STABILITY, Quantity.PARAMETER_DIVERGENCE)
# Deterministic bounds that hold along every realized trajectory of a stochastic run, their
# constants measured on that trajectory (the consensus recursions)
PATHWISE = (Quantity.CONSENSUS_DISTANCE,)
ADAPTIVE = {"adam", "rmsprop", "adagrad"}

# ``approx-audit run --method M`` (auditor/decentralized.py): the catalogue algorithm of each
# method (its consensus bound; its published rates are not in the catalogue: their constants
# are not confirmed) and its name
DECENTRALIZED_METHODS = {"dpsgd": ("dpsgd", "D-PSGD (Lian et al. 2017)"),
                         "local-sgd": ("local_sgd", "local SGD (periodic parameter averaging)"),
                         "easgd": ("easgd", "synchronous EASGD (Zhang, Choromanska & LeCun "
                                            "2015)")}


def algorithm_of(spec: Mapping[str, Any], full_batch: bool) -> tuple[str | None, str]:
    """(catalogue algorithm the run implements or None, one-line explanation)."""
    method = spec.get("distributed_method")
    if method in DECENTRALIZED_METHODS:
        algo, name = DECENTRALIZED_METHODS[method]
        return algo, (f"{name} (--method {method}) with local optimizer {spec['name']}: the "
                      "catalogue has its consensus bound; the constants of its published "
                      "convergence rates are not confirmed")
    name = spec["name"]
    hp = spec.get("hparams", {})
    wd = float(hp.get("weight_decay", 0) or 0)
    if name == "sgd":
        if wd:
            return None, ("weight_decay adds (wd/2)‖x‖² to the objective the optimizer sees; "
                          "put it in the workload (lam) so the bounds see it")
        if hp.get("nesterov"):
            return None, ("torch's Nesterov momentum (constant coefficient) is not the "
                          "accelerated method the catalogue's agd bounds analyse")
        if float(hp.get("momentum", 0) or 0) > 0:
            if float(hp.get("dampening", 0) or 0) != 0:
                return None, "SGD momentum with dampening is not Polyak's heavy ball"
            if not full_batch:
                return None, "stochastic heavy ball has no bound in the catalogue"
            return "heavy_ball", "full-batch SGD with momentum is Polyak's heavy ball"
        if full_batch:
            return "gd", "full-batch SGD is gradient descent"
        layers = spec.get("random_layers")
        if layers:
            return "sgd", (f"SGD whose gradients are random through {layers[0]}"
                           f"{' and more' if len(layers) > 1 else ''} (dropout draws a mask at "
                           "every step, even on the full data)")
        return "sgd", "minibatch SGD with i.i.d. samples"
    if name.startswith("defossez-"):
        return name.split("-", 1)[1], "the algorithm of Défossez et al. (2022), implemented exactly"
    if name in ("adam", "adamw", "rmsprop", "adagrad"):
        torch_name = {"adam": "Adam", "adamw": "AdamW", "rmsprop": "RMSprop",
                      "adagrad": "Adagrad"}[name]
        return None, (f"torch.optim.{torch_name} "
                      "differs from the analysed algorithm (bias correction of the first moment"
                      " / eps outside the square root); audit --optimizer defossez-"
                      f"{'adam' if name == 'adamw' else name} for the theorem's algorithm")
    return None, f"no catalogue algorithm for optimizer {name!r}"


def why_no_bound(optimizer: Mapping[str, Any], full_batch: bool) -> str:
    """The one-line reason a run got no bound at all (never silent): which feature of the run
    differs from every catalogue theorem's algorithm."""
    algo, why = algorithm_of(optimizer, bool(full_batch))
    if algo is None:
        return why
    return (f"{why}; no catalogue bound for {algo} matched the run's settings (see "
            f"approx-audit bounds list --algorithm {algo})")


def _torch_family(name: str) -> str | None:
    return {"adam": "adam", "adamw": "adam", "rmsprop": "rmsprop", "adagrad": "adagrad"}.get(name)


def select_bounds(catalogue, spec: Mapping[str, Any], full_batch: bool,
                  ids: Sequence[str] | None = None) -> list[Bound]:
    """Bounds to rule on: ``ids`` when given (unknown ids raise with close matches), else the
    upper bounds of the run's algorithm (and, for torch's adaptive optimizers, their family's
    bounds, which will be ruled not applicable with the reason)."""
    if ids:
        return [catalogue.get(i) for i in dict.fromkeys(ids)]   # each id once, in order
    algo, _ = algorithm_of(spec, full_batch)
    if spec.get("distributed_method") in DECENTRALIZED_METHODS:
        # the method's own bounds, not the local optimizer's (the ranks do not run it alone)
        return [b for b in catalogue if b.algorithm == algo and b.kind == "upper"]
    family = algo or _torch_family(spec["name"])
    if family is None:
        return []
    return [b for b in catalogue if b.algorithm == family and b.kind == "upper"
            and b.quantity not in STABILITY_QUANTITIES]    # ruled by approx-audit stability



def hyper_values(spec: Mapping[str, Any]) -> dict[str, float]:
    """The run's hyper-parameters in the symbol table's names (eta, beta, beta1, beta2, eps,
    and c, gamma for the 1/k schedule, whose η_k = c/(gamma + k + 1))."""
    out = {k: float(v) for k, v in (spec.get("symbol_values") or {}).items()}
    if spec.get("schedule") == "1/k":
        out["c"] = float(spec["lr"])
        out["gamma"] = 0.0
    return {k: v for k, v in out.items() if k in S.SYMBOLS}

