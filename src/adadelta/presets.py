"""Presets: the ADADELTA defaults of other well-known implementations.

``Adadelta(params, preset="keras")`` reproduces Keras' ADADELTA; explicit arguments override the
preset. Where the frameworks differ, and why it matters, is tabulated in the documentation's guide
"Presets of other frameworks".
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Preset:
    """One implementation's ADADELTA defaults (the values :class:`adadelta.Adadelta` takes for
    the arguments it is not given).

    The presets (:data:`PRESETS`): ``"paper"`` lr 1.0, rho 0.95, eps 1e-6; ``"torch"`` and
    ``"optax"`` lr 1.0, rho 0.9, eps 1e-6; ``"keras"`` lr 0.001, rho 0.95, eps 1e-7, decoupled
    weight decay; ``"tf1"`` lr 0.001, rho 0.95, eps 1e-8.

    Parameters
    ----------
    lr : float
        Learning rate applied to the step.
    rho : float
        Decay rate of the running averages.
    eps : float
        The constant inside both square roots.
    decoupled_weight_decay : bool
        ``True``: weight decay shrinks the parameter directly, ``x -= x * weight_decay * lr``,
        before the step (Keras); ``False``: it is added to the gradient.
    source : str
        The implementation these defaults come from.
    """

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
