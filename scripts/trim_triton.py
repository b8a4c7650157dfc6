"""Make Triton's wheel light for a CPU-only test environment.

The tests run the PyTorch drop-in's GPU kernel under Triton's interpreter (``TRITON_INTERPRET=1``,
CPU tensors), which needs Triton's Python code and its core library only. The wheel also
carries the CUDA and ROCm toolchains (``backends/*/lib``, ``backends/*/bin``: about 470 MB)
and its libraries' debug information (about 300 MB). This removes both, and changes
nothing where a GPU is visible or Triton is not installed.

    python scripts/trim_triton.py          # in the test environment, after pip install
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path


def size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def main() -> int:
    spec = importlib.util.find_spec("triton")
    if spec is None or spec.origin is None:
        print("trim_triton: Triton is not installed; nothing to do")
        return 0
    if shutil.which("nvidia-smi") or Path("/dev/kfd").exists():
        print("trim_triton: a GPU driver is present; Triton's toolchains are kept")
        return 0
    root = Path(spec.origin).parent
    before = size(root)
    for toolchain in sorted(root.glob("backends/*/lib")) + sorted(root.glob("backends/*/bin")):
        shutil.rmtree(toolchain)
    libraries = sorted(str(p) for p in root.rglob("*.so"))
    strip = shutil.which("strip")
    if strip is not None:
        subprocess.run([strip, "--strip-debug", *libraries], check=True)
    else:
        print("trim_triton: no strip on the PATH (binutils); the debug information is kept")
    after = size(root)
    print(f"trim_triton: {root}: {before / 1e6:.0f} MB -> {after / 1e6:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
