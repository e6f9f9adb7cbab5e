"""Put the repository root on ``sys.path`` so ``import examples.cnn`` works however pytest is
started (``python -m pytest`` adds the working directory, a bare ``pytest`` does not, and
``--import-mode=importlib`` adds nothing). ``pythonpath = ["."]`` in pyproject's pytest
options would do the same for every test folder."""

import sys
from pathlib import Path

ROOT = str(Path(__file__).resolve().parents[2])
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
