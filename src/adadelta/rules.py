"""The update rules, one short pure function per optimizer, in the papers' names.

These are the ground truth of the package: readable line by line against the papers, and the
reference that every fast path (the fused kernels, the PyTorch drop-in) is tested against.
Each rule takes one parameter array ``x``, its gradient ``g`` and the optimizer's state for that
array, and returns the new parameter and the new state; nothing is changed in place.

A state field that is ``None`` has not been created yet (the first step creates it), as in
``torch.optim``. ``step`` counts the steps taken before this one.

The baselines follow ``torch.optim`` exactly (argument names, defaults, and the order of the
floating-point operations where it matters), so the two agree to rounding.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.floating[Any]]


class AdadeltaState(NamedTuple):
    step: int
    E_g2: FloatArray | None  # E[g^2], the running average of squared gradients
    E_dx2: FloatArray | None  # E[dx^2], the running average of squared updates


def adadelta(
    x: FloatArray,
    g: FloatArray,
    state: AdadeltaState,
    *,
    lr: float,
    rho: float,
    eps: float,
    weight_decay: float,
    decoupled_weight_decay: bool,
    maximize: bool,
) -> tuple[FloatArray, AdadeltaState]:
    r"""One step of ADADELTA, Algorithm 1 of Zeiler (2012), arXiv:1212.5701.

    .. math::

        E[g^2]_t &= \rho E[g^2]_{t-1} + (1-\rho) g_t^2 \\
        \Delta x_t &= -\frac{\mathrm{RMS}[\Delta x]_{t-1}}{\mathrm{RMS}[g]_t} g_t,
            \qquad \mathrm{RMS}[y]_t = \sqrt{E[y^2]_t + \epsilon} \\
        E[\Delta x^2]_t &= \rho E[\Delta x^2]_{t-1} + (1-\rho) \Delta x_t^2 \\
        x_{t+1} &= x_t + \mathrm{lr} \cdot \Delta x_t

    The paper has no learning rate (``lr = 1``); ``lr`` scales the applied step only, and
    E[dx^2] accumulates the step before ``lr`` (as PyTorch and optax do). Weight decay is added
    to the gradient (PyTorch, optax), or with ``decoupled_weight_decay`` taken off the parameter
    before the step as ``x -= x * weight_decay * lr`` (Keras).

    >>> x, state = np.array([1.0]), AdadeltaState(step=0, E_g2=None, E_dx2=None)
    >>> x, state = adadelta(x, np.array([2.0]), state, lr=1.0, rho=0.95, eps=1e-6,
    ...                     weight_decay=0.0, decoupled_weight_decay=False, maximize=False)
    >>> print(f"{x[0]:.9f}")  # 1 - sqrt(1e-6) / sqrt(0.05 * 4 + 1e-6) * 2
    0.995527875
    """
    if maximize:
        g = -g
    if weight_decay != 0:
        if decoupled_weight_decay:
            x = x - x * weight_decay * lr
        else:
            g = g + weight_decay * x
    E_g2 = np.zeros_like(x) if state.E_g2 is None else state.E_g2
    E_dx2 = np.zeros_like(x) if state.E_dx2 is None else state.E_dx2

    E_g2 = rho * E_g2 + (1 - rho) * g * g  # line 4: accumulate the gradient first
    RMS_dx = np.sqrt(E_dx2 + eps)  # RMS[dx]_{t-1}: the *old* E[dx^2]; eps starts the first step
    RMS_g = np.sqrt(E_g2 + eps)  # RMS[g]_t: the *new* E[g^2]
    dx = -(RMS_dx / RMS_g) * g  # line 5
    E_dx2 = rho * E_dx2 + (1 - rho) * dx * dx  # line 6: accumulate the step before lr
    return x + lr * dx, AdadeltaState(state.step + 1, E_g2, E_dx2)  # line 7


class SGDState(NamedTuple):
    step: int
    momentum_buffer: FloatArray | None


def sgd(
    x: FloatArray,
    g: FloatArray,
    state: SGDState,
    *,
    lr: float,
    momentum: float,
    dampening: float,
    weight_decay: float,
    nesterov: bool,
    maximize: bool,
) -> tuple[FloatArray, SGDState]:
    r"""One step of stochastic gradient descent with optional (Nesterov) momentum.

    .. math::

        b_t = \mu b_{t-1} + (1 - \tau) g_t \quad (b_1 = g_1), \qquad
        x_{t+1} = x_t - \mathrm{lr} \cdot (g_t + \mu b_t \text{ if Nesterov else } b_t)

    As ``torch.optim.SGD``; with ``momentum=0`` it is plain SGD. The paper's MOMENTUM baseline
    is SGD with momentum.

    >>> x, state = sgd(np.array([1.0]), np.array([2.0]), SGDState(0, None), lr=0.1,
    ...                momentum=0.9, dampening=0.0, weight_decay=0.0, nesterov=False,
    ...                maximize=False)
    >>> print(f"{x[0]:.2f}")
    0.80
    """
    if maximize:
        g = -g
    if weight_decay != 0:
        g = g + weight_decay * x
    buffer = state.momentum_buffer
    if momentum != 0:
        if buffer is None:
            buffer = g.copy()  # the first step starts the buffer at the gradient
        else:
            buffer = momentum * buffer + (1 - dampening) * g
        g = g + momentum * buffer if nesterov else buffer
    return x - lr * g, SGDState(state.step + 1, buffer)


class AdagradState(NamedTuple):
    step: int
    sum: FloatArray | None  # the sum of squared gradients


def adagrad(
    x: FloatArray,
    g: FloatArray,
    state: AdagradState,
    *,
    lr: float,
    lr_decay: float,
    weight_decay: float,
    initial_accumulator_value: float,
    eps: float,
    maximize: bool,
) -> tuple[FloatArray, AdagradState]:
    r"""One step of Adagrad (Duchi et al., 2011), as ``torch.optim.Adagrad``.

    .. math::

        s_t = s_{t-1} + g_t^2, \qquad
        x_{t+1} = x_t - \frac{\mathrm{lr}}{1 + (t-1)\,\mathrm{lr\_decay}}
                  \frac{g_t}{\sqrt{s_t} + \epsilon}

    >>> x, state = adagrad(np.array([1.0]), np.array([2.0]), AdagradState(0, None), lr=0.1,
    ...                    lr_decay=0.0, weight_decay=0.0, initial_accumulator_value=0.0,
    ...                    eps=1e-10, maximize=False)
    >>> print(f"{x[0]:.6f}")
    0.900000
    """
    if maximize:
        g = -g
    if weight_decay != 0:
        g = g + weight_decay * x
    step = state.step + 1
    total = np.full_like(x, initial_accumulator_value) if state.sum is None else state.sum
    total = total + g * g
    clr = lr / (1 + (step - 1) * lr_decay)
    return x - clr * (g / (np.sqrt(total) + eps)), AdagradState(step, total)


class RMSpropState(NamedTuple):
    step: int
    square_avg: FloatArray | None
    momentum_buffer: FloatArray | None  # only with momentum > 0
    grad_avg: FloatArray | None  # only when centered


def rmsprop(
    x: FloatArray,
    g: FloatArray,
    state: RMSpropState,
    *,
    lr: float,
    alpha: float,
    eps: float,
    weight_decay: float,
    momentum: float,
    centered: bool,
    maximize: bool,
) -> tuple[FloatArray, RMSpropState]:
    r"""One step of RMSprop (Tieleman and Hinton, 2012), as ``torch.optim.RMSprop``.

    .. math::

        v_t = \alpha v_{t-1} + (1-\alpha) g_t^2, \qquad
        x_{t+1} = x_t - \mathrm{lr} \frac{g_t}{\sqrt{v_t} + \epsilon}

    ``centered`` subtracts the square of the running mean gradient from :math:`v_t`;
    ``momentum`` accumulates :math:`g_t / (\sqrt{v_t} + \epsilon)` in a buffer.

    >>> x, state = rmsprop(np.array([1.0]), np.array([2.0]), RMSpropState(0, None, None, None),
    ...                    lr=0.01, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0,
    ...                    centered=False, maximize=False)
    >>> print(f"{x[0]:.4f}")  # 1 - 0.01 * 2 / sqrt(0.01 * 4)
    0.9000
    """
    if maximize:
        g = -g
    if weight_decay != 0:
        g = g + weight_decay * x
    square_avg = np.zeros_like(x) if state.square_avg is None else state.square_avg
    square_avg = alpha * square_avg + (1 - alpha) * g * g
    grad_avg = state.grad_avg
    if centered:
        grad_avg = np.zeros_like(x) if grad_avg is None else grad_avg
        grad_avg = grad_avg + (1 - alpha) * (g - grad_avg)
        avg = np.sqrt(square_avg - grad_avg * grad_avg) + eps
    else:
        avg = np.sqrt(square_avg) + eps
    buffer = state.momentum_buffer
    if momentum > 0:
        buffer = np.zeros_like(x) if buffer is None else buffer
        buffer = momentum * buffer + g / avg
        x = x - lr * buffer
    else:
        x = x - lr * (g / avg)
    return x, RMSpropState(state.step + 1, square_avg, buffer, grad_avg)


class AdamState(NamedTuple):
    step: int
    exp_avg: FloatArray | None  # m, the first moment
    exp_avg_sq: FloatArray | None  # v, the second moment
    max_exp_avg_sq: FloatArray | None  # only with amsgrad


def adam(
    x: FloatArray,
    g: FloatArray,
    state: AdamState,
    *,
    lr: float,
    betas: tuple[float, float],
    eps: float,
    weight_decay: float,
    amsgrad: bool,
    maximize: bool,
) -> tuple[FloatArray, AdamState]:
    r"""One step of Adam (Kingma and Ba, 2015), as ``torch.optim.Adam``.

    .. math::

        m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t, \quad
        v_t = \beta_2 v_{t-1} + (1-\beta_2) g_t^2, \quad
        x_{t+1} = x_t - \frac{\mathrm{lr}}{1-\beta_1^t}
                  \frac{m_t}{\sqrt{v_t} / \sqrt{1-\beta_2^t} + \epsilon}

    >>> x, state = adam(np.array([1.0]), np.array([2.0]), AdamState(0, None, None, None),
    ...                 lr=0.001, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
    ...                 amsgrad=False, maximize=False)
    >>> print(f"{x[0]:.6f}")  # the first Adam step is lr * sign(g)
    0.999000
    """
    beta1, beta2 = betas
    if maximize:
        g = -g
    if weight_decay != 0:
        g = g + weight_decay * x
    step = state.step + 1
    m = np.zeros_like(x) if state.exp_avg is None else state.exp_avg
    v = np.zeros_like(x) if state.exp_avg_sq is None else state.exp_avg_sq
    m = m + (1 - beta1) * (g - m)
    v = beta2 * v + (1 - beta2) * g * g
    step_size = lr / (1 - beta1**step)
    bias_correction2_sqrt = (1 - beta2**step) ** 0.5
    v_max = state.max_exp_avg_sq
    if amsgrad:
        v_max = v.copy() if v_max is None else np.maximum(v_max, v)
        denom = np.sqrt(v_max) / bias_correction2_sqrt + eps
    else:
        denom = np.sqrt(v) / bias_correction2_sqrt + eps
    return x - step_size * (m / denom), AdamState(step, m, v, v_max)
