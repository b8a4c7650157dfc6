"""The launch shape of the drop-in's Triton kernel for compact state on a CUDA GPU: scale blocks
per program (``ROWS``) by warps per program (``WARPS``), each timed by CUDA events on one
tensor of 1e8 float32 parameters, beside the float32-state kernel.

    python benchmarks/triton_shape.py          # needs a CUDA GPU and Triton

The GB/s count the bytes each step must move: 28 per element for float32 state, 20 for
bfloat16 state (x and g read, x written, 4 bytes each; two 2-byte codes read and written), 16
for float8 (1-byte codes, scales negligible).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from adadelta.kernels import compact
from adadelta.torch import triton_kernel
from adadelta.torch.compact_state import _empty_compact

N = 100_000_000
BYTES = {"float32": 28, "bfloat16": 20, "float8": 16}


def milliseconds(step: Callable[[], None], count: int = 20) -> float:
    """The mean time of ``count`` launches after 3 untimed ones (CUDA events)."""
    for _ in range(3):
        step()
    start = torch.cuda.Event(enable_timing=True)  # type: ignore[no-untyped-call]
    end = torch.cuda.Event(enable_timing=True)  # type: ignore[no-untyped-call]
    torch.cuda.synchronize()
    start.record()
    for _ in range(count):
        step()
    end.record()
    torch.cuda.synchronize()
    return float(start.elapsed_time(end)) / count


def main() -> None:
    cuda = torch.device("cuda")
    x = torch.randn(N, device=cuda)
    g = torch.randn(N, device=cuda) * 1e-2
    v, u = torch.zeros_like(x), torch.zeros_like(x)

    def float32_step() -> None:
        triton_kernel.step(
            [x], [g], [v], [u], lr=1.0, rho=0.9, eps=1e-6, weight_decay=0.0, maximize=False
        )

    ms = milliseconds(float32_step)
    print(f"{torch.cuda.get_device_name(cuda)}, torch {torch.__version__}, 1e8 parameters")
    print(f"float32 state kernel: {ms:.3f} ms ({BYTES['float32'] * N / ms / 1e6:.0f} GB/s)")
    keys = torch.tensor([compact.stream_key(1, 0)], dtype=torch.int64, device=cuda)
    hyper = [1.0, 0.9, 0.1, 1e-6, 0.0]
    shape = triton_kernel.ROWS, triton_kernel.WARPS
    try:
        for fmt in ("bfloat16", "float8"):
            state = _empty_compact(x, fmt, 0, 0)

            def compact_step(fmt: str = fmt, state: dict[str, object] = state) -> None:
                triton_kernel.compact_step(fmt, [x], [g], [state], keys, hyper, maximize=False)

            for rows in (2, 4, 8, 16):
                for warps in (4, 8):
                    triton_kernel.ROWS, triton_kernel.WARPS = rows, warps
                    ms = milliseconds(compact_step)
                    rate = BYTES[fmt] * N / ms / 1e6
                    print(f"{fmt} ROWS={rows} WARPS={warps}: {ms:.3f} ms ({rate:.0f} GB/s)")
    finally:
        triton_kernel.ROWS, triton_kernel.WARPS = shape


if __name__ == "__main__":
    main()
