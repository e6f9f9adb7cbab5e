"""An MLP regressor on scikit-learn's diabetes data set (442 patients, 10 features).

Audit it from the repository root with::

    approx-audit run --model examples.regression:model --data examples.regression:data \
        --loss mse -O sgd:lr=0.01 -B 32 --steps 300

Inputs and target are standardized (mean 0, standard deviation 1), so a learning rate that
works here is not at the mercy of the raw units.
"""

import torch
from sklearn.datasets import load_diabetes
from torch import nn


def _standardize(a):
    """Each column to mean 0 and standard deviation 1 (computed in float64)."""
    return (a - a.mean(axis=0)) / a.std(axis=0)


def data():
    """X: (442, 10) float32, y: (442, 1) float32 (a column, like the model's output, so
    ``nn.MSELoss`` compares them element by element without broadcasting)."""
    X, y = load_diabetes(return_X_y=True)  # shipped with scikit-learn
    X = torch.tensor(_standardize(X), dtype=torch.float32)
    y = torch.tensor(_standardize(y.reshape(-1, 1)), dtype=torch.float32)
    return X, y


def model():
    """A 10-64-64-1 MLP with ReLU (about 4.9k parameters)."""
    return nn.Sequential(
        nn.Linear(10, 64),
        nn.ReLU(),
        nn.Linear(64, 64),
        nn.ReLU(),
        nn.Linear(64, 1),
    )
