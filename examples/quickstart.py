"""Minimise a small quadratic with ADADELTA and print the loss going down."""

import numpy as np

import adadelta


def main() -> None:
    rng = np.random.default_rng(0)
    params = {"W": rng.standard_normal((3, 2)), "b": np.zeros(2)}
    opt = adadelta.Adadelta(params)  # rho=0.95, eps=1e-6: the paper's defaults, no learning rate
    for step in range(1, 1001):
        loss = float(np.sum(params["W"] ** 2) + np.sum((params["b"] - 1) ** 2))
        grads = {"W": 2 * params["W"], "b": 2 * (params["b"] - 1)}
        opt.step(grads)
        if step in (1, 10, 100, 1000):
            print(f"step {step:5d}  loss {loss:.6f}")


if __name__ == "__main__":
    main()
