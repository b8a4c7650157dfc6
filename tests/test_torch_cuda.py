"""The drop-in on a CUDA GPU, compiled Triton kernels (skipped without one; CI has none, and
tests/test_torch_triton.py runs the same kernels there with Triton's interpreter): compact
state with the CPU kernel's bits, state dicts moving between the GPU and the CPU, float32
state to rounding of PyTorch's, a tensor longer than a grid dimension's limit."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("triton")

from adadelta.torch import Adadelta  # noqa: E402

if not torch.cuda.is_available():
    pytest.skip("needs a CUDA device", allow_module_level=True)

CUDA = torch.device("cuda")
SHAPES = [(33, 37), (5,), (3000,), (1024,), (2, 2055), (300, 1000)]  # (5,): float32 state


def mixed(shape: tuple[int, ...], seed: int, dtype: torch.dtype) -> torch.Tensor:
    """Finite values spanning 20 decades in each block (10 in float16), on the CPU."""
    gen = torch.Generator().manual_seed(seed)
    low, high = (-6, 4) if dtype == torch.float16 else (-15, 5)
    magnitude = 10 ** (torch.rand(shape, generator=gen, dtype=torch.float64) * (high - low) + low)
    return (torch.randn(shape, generator=gen, dtype=torch.float64) * magnitude).to(dtype)


def assert_same_bits(a: torch.Tensor, b: torch.Tensor) -> None:
    assert a.dtype == b.dtype and a.shape == b.shape
    a, b = a.detach().cpu().reshape(-1), b.detach().cpu().reshape(-1)
    if a.is_floating_point():
        a, b = a.view(torch.uint8), b.view(torch.uint8)
    assert torch.equal(a, b)


def compare(gpu: Adadelta, cpu: Adadelta) -> None:
    for p, q in zip(gpu.param_groups[0]["params"], cpu.param_groups[0]["params"], strict=True):
        state, expected = gpu.state[p], cpu.state[q]
        if "seed" in state:  # compact: the same bits
            assert_same_bits(p, q)
            for name, value in expected.items():
                if isinstance(value, torch.Tensor):
                    assert_same_bits(state[name], value)
                    assert state[name].device == (p.device if name != "step" else q.device)
                else:
                    assert state[name] == value
        else:  # float32 state: two float32 kernels, to rounding
            torch.testing.assert_close(p.cpu(), q, rtol=1e-3, atol=1e-6)


@pytest.mark.parametrize("state_dtype", ["bfloat16", "float8"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_compact_state_on_cuda_has_the_cpu_bits(state_dtype: str, dtype: torch.dtype) -> None:
    options = {"state_dtype": state_dtype, "min_compact_size": 64, "seed": 3, "eps": 1e-12}
    cpu_params = [mixed(s, i, dtype).requires_grad_() for i, s in enumerate(SHAPES)]
    gpu_params = [p.detach().to(CUDA).requires_grad_() for p in cpu_params]
    cpu, gpu = Adadelta(cpu_params, **options), Adadelta(gpu_params, **options)  # type: ignore[arg-type]
    for step in range(5):
        grads = [mixed(s, 100 * step + i, dtype) for i, s in enumerate(SHAPES)]
        for p, q, g in zip(gpu_params, cpu_params, grads, strict=True):
            p.grad, q.grad = g.to(CUDA), g.clone()
        gpu.step()
        cpu.step()
        compare(gpu, cpu)


@pytest.mark.parametrize("state_dtype", ["bfloat16", "float8"])
def test_state_dicts_move_between_cuda_and_cpu(state_dtype: str) -> None:
    """Saved on the GPU, loaded on the CPU (and back), a run continues with the same bits as
    the run that stayed."""
    options = {"state_dtype": state_dtype, "min_compact_size": 64, "seed": 9}
    start = [mixed(s, i, torch.float32) for i, s in enumerate(SHAPES)]
    stay = [p.clone().to(CUDA).requires_grad_() for p in start]
    staying = Adadelta(stay, **options)  # type: ignore[arg-type]
    moved = [p.clone().requires_grad_() for p in start]
    moving = Adadelta(moved, **options)  # type: ignore[arg-type]
    for step in range(6):
        grads = [mixed(s, 7 * step + i, torch.float32) for i, s in enumerate(SHAPES)]
        if step in (2, 4):  # CPU -> GPU at 2, GPU -> CPU at 4
            device = CUDA if step == 2 else torch.device("cpu")
            saved = moving.state_dict()
            moved = [p.detach().to(device).requires_grad_() for p in moved]
            moving = Adadelta(moved, **options)  # type: ignore[arg-type]
            moving.load_state_dict(saved)
        for p, q, g in zip(stay, moved, grads, strict=True):
            p.grad, q.grad = g.to(CUDA), g.to(q.device)
        staying.step()
        moving.step()
    for p, q in zip(stay, moved, strict=True):
        if p.numel() >= 64:
            assert_same_bits(p, q)
            for name in ("square_avg", "acc_delta", "step"):
                assert_same_bits(staying.state[p][name], moving.state[q][name])


def test_refusals_on_cuda_change_nothing() -> None:
    """(PyTorch itself refuses a gradient on another device, dtype or shape than its
    parameter's; one that is another tensor's memory is the drop-in's to refuse.)"""
    p = torch.ones(5000, device=CUDA, requires_grad=True)
    q = torch.ones(2500, device=CUDA, requires_grad=True)
    opt = Adadelta([p, q], state_dtype="bfloat16", min_compact_size=0)
    p.grad, q.grad = torch.ones(5000, device=CUDA), torch.ones(2500, device=CUDA)
    opt.step()
    assert opt.state[p]["square_avg"].device == p.device
    assert opt.state[p]["step"].device.type == "cpu"
    before = [t.clone() for t in (p, q, *(opt.state[p][k] for k in ("square_avg", "acc_delta")))]
    q.grad = opt.state[p]["acc_delta"].view(torch.float32)  # p's state's memory
    message = "gradient for parameter 1 shares memory with state 'acc_delta' of parameter 0"
    with pytest.raises(ValueError, match=message):
        opt.step()
    after = [p, q, *(opt.state[p][k] for k in ("square_avg", "acc_delta"))]
    for a, b in zip(after, before, strict=True):
        assert torch.equal(a, b)
    assert int(opt.state[p]["step"]) == 1


def test_float32_state_on_cuda_steps_a_tensor_beyond_a_grid_dimension() -> None:
    """70 million elements: more blocks of the float32 kernel than a CUDA grid's second
    dimension holds (65,535), stepped to rounding of ``torch.optim.Adadelta``'s."""
    n = 70_000_000
    gen = torch.Generator(device=CUDA).manual_seed(0)
    ours = torch.randn(n, device=CUDA, generator=gen).requires_grad_()
    theirs = ours.detach().clone().requires_grad_()
    grad = torch.randn(n, device=CUDA, generator=gen)
    a, b = Adadelta([ours]), torch.optim.Adadelta([theirs], foreach=True)
    for _ in range(2):
        ours.grad, theirs.grad = grad, grad.clone()
        a.step()
        b.step()
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6)
    assert (ours != grad).any()
