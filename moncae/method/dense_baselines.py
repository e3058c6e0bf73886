"""The dense reference autoencoders' fixed settings (plain values, no TensorFlow): what
`moncae.model.dense_baseline` builds and trains, and what keys the report's baseline cache."""

from __future__ import annotations

__all__ = ["BATCH_SIZE", "EPOCHS", "HIDDEN_UNITS", "LEARNING_RATE", "PATIENCE", "SETTINGS"]

HIDDEN_UNITS = 256  # one hidden ReLU layer of this width on each side of the k-value code
EPOCHS = 20  # at most; early stopping on the validation split
PATIENCE = 3
BATCH_SIZE = 128
LEARNING_RATE = 1e-3  # Adam

SETTINGS = {"hidden": HIDDEN_UNITS, "epochs": EPOCHS, "patience": PATIENCE, "batch": BATCH_SIZE,
            "lr": LEARNING_RATE}
