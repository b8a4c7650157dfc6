"""Presets: the ADADELTA defaults of other well-known implementations.

``Adadelta(params, preset="keras")`` reproduces Keras' ADADELTA; explicit arguments override the
preset. Where the frameworks differ, and why it matters, is tabulated in the README.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Preset:
    lr: float
    rho: float
    eps: float
    decoupled_weight_decay: bool  # True: x -= x * weight_decay * lr before the step (Keras)
    source: str


PRESETS: dict[str, Preset] = {
    "paper": Preset(1.0, 0.95, 1e-6, False, "Zeiler (2012), Algorithm 1: no learning rate"),
    "torch": Preset(1.0, 0.9, 1e-6, False, "torch.optim.Adadelta"),
    "optax": Preset(1.0, 0.9, 1e-6, False, "optax.adadelta(learning_rate=1.0)"),
    "keras": Preset(1e-3, 0.95, 1e-7, True, "keras.optimizers.Adadelta (Keras 3)"),
    "tf1": Preset(1e-3, 0.95, 1e-8, False, "tf.compat.v1.train.AdadeltaOptimizer"),
}
