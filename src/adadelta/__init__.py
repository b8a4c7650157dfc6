"""ADADELTA (Zeiler, 2012) exact to the paper, with the baselines it is compared with.

>>> import numpy as np, adadelta
>>> w = np.array([3.0, -1.0])
>>> opt = adadelta.Adadelta(w)            # rho=0.95, eps=1e-6, no learning rate
>>> for _ in range(500):
...     opt.step(2 * w)                    # the gradient of |w|^2
>>> bool(np.abs(w).max() < 3.0)
True
"""

from adadelta.checkpoint import CheckpointError, load, save
from adadelta.optimizers import (
    OPTIMIZERS,
    SGD,
    Adadelta,
    Adagrad,
    Adam,
    NonFiniteGradientError,
    Optimizer,
    RMSprop,
    convert_state,
)
from adadelta.presets import PRESETS, Preset

__version__ = "0.1.0"

__all__ = [
    "OPTIMIZERS",
    "PRESETS",
    "SGD",
    "Adadelta",
    "Adagrad",
    "Adam",
    "CheckpointError",
    "NonFiniteGradientError",
    "Optimizer",
    "Preset",
    "RMSprop",
    "__version__",
    "convert_state",
    "load",
    "save",
]
