"""A one-layer Transformer encoder that reads each 8x8 digit as a sequence of 8 rows.

Audit it from the repository root with::

    approx-audit run --model examples.transformer:model --data examples.transformer:data \
        --loss cross-entropy -O adamw:lr=1e-3 -B 64 --steps 300

Each image becomes 8 tokens (its rows) of 8 features; the model embeds them, adds a learned
position embedding, runs one encoder layer (self-attention, feed-forward, LayerNorm, dropout),
averages the tokens and classifies.
"""

import torch
from sklearn.datasets import load_digits
from torch import nn


def data():
    """The 1797 digits as (n, 8, 8) float32 sequences (8 rows of 8 pixels) in [0, 1], and
    (n,) long labels 0-9."""
    digits = load_digits()  # shipped with scikit-learn; pixel values are 0..16
    X = torch.tensor(digits.images, dtype=torch.float32) / 16.0
    y = torch.tensor(digits.target, dtype=torch.long)
    return X, y


class DigitTransformer(nn.Module):
    """Row embedding + position embedding -> one encoder layer -> mean over tokens ->
    LayerNorm -> linear classifier (about 9.5k parameters)."""

    def __init__(self, dropout: float = 0.1, d_model: int = 32, n_tokens: int = 8,
                 n_features: int = 8, n_classes: int = 10):
        super().__init__()
        self.embed = nn.Linear(n_features, d_model)
        # One learned vector per row position, small at the start as in GPT/ViT.
        self.pos = nn.Parameter(0.02 * torch.randn(1, n_tokens, d_model))
        self.encoder = nn.TransformerEncoderLayer(
            d_model=d_model, nhead=4, dim_feedforward=64, dropout=dropout,
            batch_first=True, norm_first=True)  # pre-norm: hence the LayerNorm after pooling
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, n_classes)

    def forward(self, x):
        h = self.embed(x) + self.pos  # (B, 8, 8) -> (B, 8, d_model)
        h = self.encoder(h)
        return self.head(self.norm(h.mean(dim=1)))  # (B, n_classes) logits


def model(dropout: float = 0.1):
    """The transformer; ``dropout`` reaches every dropout in it (attention and feed-forward),
    so ``model(dropout=0.0)`` is the same network without randomness."""
    return DigitTransformer(dropout=dropout)
