"""The per-optimizer loops: one compiled kernel per rule of :mod:`adadelta.rules`, the same
operations in the same order, run over the chunks of :mod:`adadelta.kernels.parallel`."""

from __future__ import annotations

from typing import Any

import numba
import numpy as np

from adadelta.kernels.parallel import _chunk, _part, _scan

# --- the kernels: one per rule of adadelta.rules, the same operations in the same order ---


# elements of a chunk that _adadelta_part steps at a time, keeping their old parameters and
# E[dx^2] (4 KiB of float64 for each: in the L1 cache) in case the block must be stepped again
_BLOCK = 512


@numba.njit(cache=True, error_model="numpy", inline="always")
def _adadelta_part(
    addresses: Any,
    chunks: Any,
    parts: int,
    p: int,
    c: Any,
    maximize: bool,
    weight_decay: bool,
    decoupled: bool,
    two_roots: bool,
) -> None:
    first_chunk, last_chunk = _part(chunks, parts, p)
    old_x = np.empty(_BLOCK, c.dtype)
    old_E_dx2 = np.empty(_BLOCK, c.dtype)
    for k in range(first_chunk, last_chunk):
        t, start, end = chunks[k, 0], chunks[k, 1], chunks[k, 2]
        lr, rho, one_minus_rho, eps, wd = c[t, 0], c[t, 1], c[t, 2], c[t, 3], c[t, 4]
        smallest, largest = c[t, 5], c[t, 6]  # the dtype's normal range
        for block in range(start, end, _BLOCK):
            stop = min(block + _BLOCK, end)
            x = _chunk(addresses, 0, t, block, stop, c)
            g = _chunk(addresses, 1, t, block, stop, c)
            E_g2 = _chunk(addresses, 2, t, block, stop, c)
            E_dx2 = _chunk(addresses, 3, t, block, stop, c)
            if two_roots:  # float64: the rule's arithmetic (see the package docstring)
                for i in range(stop - block):
                    xi, Edx = x[i], E_dx2[i]
                    gi = _adadelta_gradient(xi, g[i], wd, maximize, weight_decay, decoupled)
                    Eg = rho * E_g2[i] + one_minus_rho * gi * gi
                    E_g2[i] = Eg
                    dx = -(np.sqrt(Edx + eps) / np.sqrt(Eg + eps)) * gi
                    E_dx2[i] = rho * Edx + one_minus_rho * dx * dx
                    x[i] = _adadelta_parameter(xi, wd, lr, weight_decay, decoupled) + lr * dx
                continue
            # float32: RMS[dx]_{t-1} / RMS[g]_t as one square root of the quotient, where the
            # rule takes two square roots and divides them (see the package docstring), in
            # one pass over the block that keeps the old x and E[dx^2]; where a quotient is
            # not a normal number (it overflowed, or lost digits as a subnormal), the block
            # is stepped again from them with the rule's two roots, exactly. (Each element is
            # read before it is written: a gradient that is the parameter itself reads the
            # old value.)
            outside = False
            for i in range(stop - block):
                xi, Edx = x[i], E_dx2[i]
                old_x[i] = xi
                old_E_dx2[i] = Edx
                gi = _adadelta_gradient(xi, g[i], wd, maximize, weight_decay, decoupled)
                Eg = rho * E_g2[i] + one_minus_rho * gi * gi  # accumulate the gradient first
                E_g2[i] = Eg
                q = (Edx + eps) / (Eg + eps)  # the old E[dx^2]: RMS[dx]_{t-1}
                outside |= not ((q >= smallest) & (q <= largest))  # or NaN
                dx = -np.sqrt(q) * gi
                E_dx2[i] = rho * Edx + one_minus_rho * dx * dx
                x[i] = _adadelta_parameter(xi, wd, lr, weight_decay, decoupled) + lr * dx
            if outside:
                for i in range(stop - block):
                    xi, Edx = old_x[i], old_E_dx2[i]
                    x[i] = xi  # before g[i] is read: it may be x[i]
                    gi = _adadelta_gradient(xi, g[i], wd, maximize, weight_decay, decoupled)
                    dx = -(np.sqrt(Edx + eps) / np.sqrt(E_g2[i] + eps)) * gi
                    E_dx2[i] = rho * Edx + one_minus_rho * dx * dx
                    x[i] = _adadelta_parameter(xi, wd, lr, weight_decay, decoupled) + lr * dx


@numba.njit(cache=True, error_model="numpy", inline="always")
def _adadelta_parameter(xi: Any, wd: Any, lr: Any, weight_decay: bool, decoupled: bool) -> Any:
    """The parameter that ADADELTA steps from: with decoupled weight decay, shrunk first."""
    if weight_decay and decoupled:
        xi = xi - xi * wd * lr
    return xi


@numba.njit(cache=True, error_model="numpy", inline="always")
def _adadelta_gradient(
    xi: Any, gi: Any, wd: Any, maximize: bool, weight_decay: bool, decoupled: bool
) -> Any:
    """The gradient that ADADELTA accumulates: negated to maximize, plus coupled weight decay."""
    if maximize:
        gi = -gi
    if weight_decay and not decoupled:
        gi = gi + wd * xi
    return gi


@numba.njit(cache=True, error_model="numpy", parallel=True)
def _adadelta(
    addresses: Any,
    chunks: Any,
    check: bool,
    parts: int,
    c: Any,
    maximize: bool,
    weight_decay: bool,
    decoupled: bool,
    two_roots: bool,
) -> int:
    # addresses rows: x, g, E[g^2], E[dx^2]; c columns: lr, rho, 1 - rho, eps, weight_decay
    if check:
        bad = _scan(addresses, chunks, parts, c[0])
        if bad >= 0:
            return bad
    for p in numba.prange(parts):
        _adadelta_part(addresses, chunks, parts, p, c, maximize, weight_decay, decoupled, two_roots)
    return -1


@numba.njit(cache=True, error_model="numpy", inline="always")
def _sgd_part(
    addresses: Any,
    chunks: Any,
    parts: int,
    p: int,
    c: Any,
    first: Any,
    maximize: bool,
    weight_decay: bool,
    momentum: bool,
    nesterov: bool,
) -> None:
    first_chunk, last_chunk = _part(chunks, parts, p)
    for k in range(first_chunk, last_chunk):
        t, start, end = chunks[k, 0], chunks[k, 1], chunks[k, 2]
        x, g = _chunk(addresses, 0, t, start, end, c), _chunk(addresses, 1, t, start, end, c)
        lr, mu, one_minus_dampening, wd = c[t, 0], c[t, 1], c[t, 2], c[t, 3]
        if momentum:
            buffer = _chunk(addresses, 2, t, start, end, c)
            starts = first[t]
            for i in range(end - start):
                xi, gi = x[i], g[i]
                if maximize:
                    gi = -gi
                if weight_decay:
                    gi = gi + wd * xi
                b = gi if starts else mu * buffer[i] + one_minus_dampening * gi
                buffer[i] = b
                x[i] = xi - lr * (gi + mu * b if nesterov else b)
        else:
            for i in range(end - start):
                xi, gi = x[i], g[i]
                if maximize:
                    gi = -gi
                if weight_decay:
                    gi = gi + wd * xi
                x[i] = xi - lr * gi


@numba.njit(cache=True, error_model="numpy", parallel=True)
def _sgd(
    addresses: Any,
    chunks: Any,
    check: bool,
    parts: int,
    c: Any,
    first: Any,
    maximize: bool,
    weight_decay: bool,
    momentum: bool,
    nesterov: bool,
) -> int:
    # addresses rows: x, g, momentum buffer; c columns: lr, momentum, 1 - dampening, wd
    # first[t]: the buffer starts at this step's gradient
    if check:
        bad = _scan(addresses, chunks, parts, c[0])
        if bad >= 0:
            return bad
    for p in numba.prange(parts):
        _sgd_part(
            addresses,
            chunks,
            parts,
            p,
            c,
            first,
            maximize,
            weight_decay,
            momentum,
            nesterov,
        )
    return -1


@numba.njit(cache=True, error_model="numpy", inline="always")
def _adagrad_part(
    addresses: Any, chunks: Any, parts: int, p: int, c: Any, maximize: bool, weight_decay: bool
) -> None:
    first_chunk, last_chunk = _part(chunks, parts, p)
    for k in range(first_chunk, last_chunk):
        t, start, end = chunks[k, 0], chunks[k, 1], chunks[k, 2]
        x, g = _chunk(addresses, 0, t, start, end, c), _chunk(addresses, 1, t, start, end, c)
        total = _chunk(addresses, 2, t, start, end, c)
        clr, eps, wd = c[t, 0], c[t, 1], c[t, 2]
        for i in range(end - start):
            xi, gi = x[i], g[i]
            if maximize:
                gi = -gi
            if weight_decay:
                gi = gi + wd * xi
            s = total[i] + gi * gi
            total[i] = s
            x[i] = xi - clr * (gi / (np.sqrt(s) + eps))


@numba.njit(cache=True, error_model="numpy", parallel=True)
def _adagrad(
    addresses: Any,
    chunks: Any,
    check: bool,
    parts: int,
    c: Any,
    maximize: bool,
    weight_decay: bool,
) -> int:
    # addresses rows: x, g, sum; c columns: clr (the decayed lr of this array's step), eps, wd
    if check:
        bad = _scan(addresses, chunks, parts, c[0])
        if bad >= 0:
            return bad
    for p in numba.prange(parts):
        _adagrad_part(addresses, chunks, parts, p, c, maximize, weight_decay)
    return -1


@numba.njit(cache=True, error_model="numpy", inline="always")
def _rmsprop_part(
    addresses: Any,
    chunks: Any,
    parts: int,
    p: int,
    c: Any,
    maximize: bool,
    weight_decay: bool,
    centered: bool,
    momentum: bool,
) -> None:
    first_chunk, last_chunk = _part(chunks, parts, p)
    for k in range(first_chunk, last_chunk):
        t, start, end = chunks[k, 0], chunks[k, 1], chunks[k, 2]
        x, g = _chunk(addresses, 0, t, start, end, c), _chunk(addresses, 1, t, start, end, c)
        square_avg = _chunk(addresses, 2, t, start, end, c)
        # row 2 stands in for the rows that this configuration does not use
        grad_avg = _chunk(addresses, 3 if centered else 2, t, start, end, c)
        buffer = _chunk(addresses, 4 if momentum else 2, t, start, end, c)
        lr, alpha, one_minus_alpha, eps, wd, mu = (
            c[t, 0],
            c[t, 1],
            c[t, 2],
            c[t, 3],
            c[t, 4],
            c[t, 5],
        )
        for i in range(end - start):
            xi, gi = x[i], g[i]
            if maximize:
                gi = -gi
            if weight_decay:
                gi = gi + wd * xi
            v = alpha * square_avg[i] + one_minus_alpha * gi * gi
            square_avg[i] = v
            if centered:
                m = grad_avg[i]
                m = m + one_minus_alpha * (gi - m)
                grad_avg[i] = m
                avg = np.sqrt(v - m * m) + eps
            else:
                avg = np.sqrt(v) + eps
            if momentum:
                b = mu * buffer[i] + gi / avg
                buffer[i] = b
                x[i] = xi - lr * b
            else:
                x[i] = xi - lr * (gi / avg)


@numba.njit(cache=True, error_model="numpy", parallel=True)
def _rmsprop(
    addresses: Any,
    chunks: Any,
    check: bool,
    parts: int,
    c: Any,
    maximize: bool,
    weight_decay: bool,
    centered: bool,
    momentum: bool,
) -> int:
    # addresses rows: x, g, square_avg, grad_avg, momentum buffer
    # c columns: lr, alpha, 1 - alpha, eps, wd, momentum
    if check:
        bad = _scan(addresses, chunks, parts, c[0])
        if bad >= 0:
            return bad
    for p in numba.prange(parts):
        _rmsprop_part(addresses, chunks, parts, p, c, maximize, weight_decay, centered, momentum)
    return -1


@numba.njit(cache=True, error_model="numpy", inline="always")
def _adam_part(
    addresses: Any,
    chunks: Any,
    parts: int,
    p: int,
    c: Any,
    first: Any,
    maximize: bool,
    weight_decay: bool,
    amsgrad: bool,
) -> None:
    first_chunk, last_chunk = _part(chunks, parts, p)
    for k in range(first_chunk, last_chunk):
        t, start, end = chunks[k, 0], chunks[k, 1], chunks[k, 2]
        x, g = _chunk(addresses, 0, t, start, end, c), _chunk(addresses, 1, t, start, end, c)
        exp_avg, exp_avg_sq = (
            _chunk(addresses, 2, t, start, end, c),
            _chunk(addresses, 3, t, start, end, c),
        )
        v_max = _chunk(addresses, 4 if amsgrad else 3, t, start, end, c)  # row 3: unused stand-in
        one_minus_beta1, beta2, one_minus_beta2 = c[t, 0], c[t, 1], c[t, 2]
        step_size, bias_correction2_sqrt, eps, wd = c[t, 3], c[t, 4], c[t, 5], c[t, 6]
        starts = first[t]
        for i in range(end - start):
            xi, gi = x[i], g[i]
            if maximize:
                gi = -gi
            if weight_decay:
                gi = gi + wd * xi
            m = exp_avg[i]
            m = m + one_minus_beta1 * (gi - m)
            v = beta2 * exp_avg_sq[i] + one_minus_beta2 * gi * gi
            exp_avg[i] = m
            exp_avg_sq[i] = v
            if amsgrad:
                if not starts:
                    old = v_max[i]
                    # np.maximum: NaN if either is NaN
                    v = old if old > v or old != old else v
                v_max[i] = v
            x[i] = xi - step_size * (m / (np.sqrt(v) / bias_correction2_sqrt + eps))


@numba.njit(cache=True, error_model="numpy", parallel=True)
def _adam(
    addresses: Any,
    chunks: Any,
    check: bool,
    parts: int,
    c: Any,
    first: Any,
    maximize: bool,
    weight_decay: bool,
    amsgrad: bool,
) -> int:
    # addresses rows: x, g, exp_avg, exp_avg_sq, max_exp_avg_sq
    # c columns: 1 - beta1, beta2, 1 - beta2, step_size, bias_correction2_sqrt, eps, wd
    # first[t]: max_exp_avg_sq starts at this step's exp_avg_sq
    if check:
        bad = _scan(addresses, chunks, parts, c[0])
        if bad >= 0:
            return bad
    for p in numba.prange(parts):
        _adam_part(addresses, chunks, parts, p, c, first, maximize, weight_decay, amsgrad)
    return -1
