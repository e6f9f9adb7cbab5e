"""The judge: catalogue bounds instantiated from what runs measured, and ruled on.

Torch-free by construction (``tests/test_architecture.py`` checks it): it reads trace records
and the bound library only. The rules are DESIGN.md's verdict table; :mod:`.ruling` chains the
stages, one concern per module:

* :mod:`.facts` — what is known of the workload; :mod:`.evidence` — one run's records;
* :mod:`.constants` — estimates and their directions; :mod:`.estimates` — where they come from;
* :mod:`.conditions`, :mod:`.assumptions` — a bound's hypotheses checked;
* :mod:`.selection` — which bounds speak of a run; :mod:`.gates` — error / not applicable;
* :mod:`.instantiate`, :mod:`.observe`, :mod:`.comparison` — the numbers and the decision;
* :mod:`.verdict` — the answer and its ``to_dict`` (results.json).
"""

from .comparison import CONFIDENCE, REL_TOL, Samples, compare, decide, t_quantile, tolerance
from .conditions import ConditionCheck, check_condition
from .constants import Certainty, Constant, Estimate, Monotonicity, build_constants
from .estimates import collect_constants
from .evidence import RunEvidence, runs_from_records
from .facts import Facts
from .instantiate import Instantiation, instantiate
from .observe import Observed, observe
from .ruling import judge, rule
from .selection import algorithm_of, hyper_values, select_bounds
from .verdict import VERDICTS, Ruling, Verdict, downsample, summarize

__all__ = ["CONFIDENCE", "REL_TOL", "VERDICTS", "Certainty", "ConditionCheck", "Constant",
           "Estimate", "Facts", "Instantiation", "Monotonicity", "Observed", "Ruling",
           "RunEvidence", "Samples", "Verdict", "algorithm_of", "build_constants",
           "check_condition", "collect_constants", "compare", "decide", "downsample",
           "hyper_values", "instantiate", "judge", "observe", "rule", "runs_from_records",
           "select_bounds", "summarize", "t_quantile", "tolerance"]
