"""Case study: the hardness of small two-layer networks (Blum & Rivest 1992).

Exact training of the 3-node threshold network (two hidden linear-threshold units, threshold
output) is NP-complete. This study measures what that means in practice on small instances:
exact 0/1-loss training by MILP (cvxpy + HiGHS) against SGD/Adam on a sigmoid relaxation, on
noisy planted data and on Blum–Rivest reduction instances, with independent checks (d = 2
exhaustive search, Set-Splitting brute force, numpy re-evaluation of every network).

Run it with ``approx-audit case-study two-layer-hardness [--quick]``.
"""

from .errors import OutputDirError, StudyInputError
from .exhaustive import ExhaustiveResult, exhaustive_train
from .instances import (FANO_PLANE, Instance, all_subsets_instance, blum_rivest_network,
                        planted_instance, random_set_splitting, reduction_instance,
                        set_splitting_brute_force)
from .milp import ExactResult, exact_train, exact_train_generic
from .network import AND, LTF_TABLES, NAND, Network
from .relaxation import RelaxedResult, relaxed_train
from .study import QUICK, StudyOptions, run_study

__all__ = [
    "AND", "FANO_PLANE", "LTF_TABLES", "NAND", "ExactResult", "ExhaustiveResult", "Instance",
    "Network", "OutputDirError", "QUICK", "RelaxedResult", "StudyInputError", "StudyOptions",
    "all_subsets_instance", "blum_rivest_network", "exact_train", "exact_train_generic",
    "exhaustive_train", "planted_instance", "random_set_splitting", "reduction_instance",
    "relaxed_train", "run_study", "set_splitting_brute_force",
]
