"""A small CNN on scikit-learn's 8x8 handwritten digits (no download needed).

Audit it from the repository root with::

    approx-audit run --model examples.cnn:model --data examples.cnn:data --loss cross-entropy \
        -O sgd:lr=0.05,momentum=0.9 --weight-decay 5e-4 -B 64 --steps 300

Copy this file and replace ``model()`` and ``data()`` with your own: both take no arguments;
``model()`` returns an ``nn.Module``, ``data()`` returns ``(X, y)`` tensors held in memory.
"""

import torch
from sklearn.datasets import load_digits
from torch import nn


def data():
    """The 1797 digits as (n, 1, 8, 8) float32 images in [0, 1] and (n,) long labels 0-9."""
    digits = load_digits()  # shipped with scikit-learn; pixel values are 0..16
    X = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.tensor(digits.target, dtype=torch.long)
    return X, y


def model():
    """Two 3x3 conv layers with BatchNorm, global average pooling and a linear classifier
    (about 1.5k parameters). The weights come from torch's RNG, which the CLI seeds."""
    return nn.Sequential(
        nn.Conv2d(1, 8, kernel_size=3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Conv2d(8, 16, kernel_size=3, padding=1),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),  # (B, 16, 8, 8) -> (B, 16, 1, 1)
        nn.Flatten(),             # -> (B, 16)
        nn.Linear(16, 10),        # logits for the 10 classes
    )
