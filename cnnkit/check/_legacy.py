"""Checks not yet moved to the per-lesson modules (temporary; removed when all are converted).

Exercise checks with immediate feedback.

A check calls the student's function on many inputs and compares it with
PyTorch or with exact values. It prints one line on success; on failure it
raises ``ExerciseFailed`` (an AssertionError, so graders count it as failed)
whose notebook display is the reason and a hint, not a traceback wall. A
function that still raises ``NotImplementedError`` is reported as
"not implemented yet".

    def output_size(size, kernel_size, stride=1, padding=0, dilation=1):
        ...
    cnnkit.check.output_size(output_size)

See: notebooks/01_convolutions.ipynb
"""

from __future__ import annotations

import random
import traceback
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ExerciseFailed", "NotImplementedYet", "run_check",
           "output_size", "conv_params", "convolve", "max_pool", "receptive_field",
           "sigmoid_grad", "path_sum", "numerical_derivative", "mlp_params",
           "batch_norm_train", "layer_norm_rows", "he_std", "eval_predict",
           "topk_accuracy", "inception_block", "residual_block", "head_in_features", "Score",
           "should_stop", "epoch_to_keep", "step_lr", "overfitting_epoch",
           "digit_augmentation", "split_without_leak", "flip_tta", "ten_crop_boxes",
           "freeze_but_head", "new_head", "count_trainable", "lr_groups"]


from cnnkit.check._core import ExerciseFailed, NotImplementedYet  # noqa: E402


def _call(exercise: str, fn: Callable, *args, **kwargs):
    """Call the student's function, turning its exceptions into readable failures."""
    try:
        return fn(*args, **kwargs)
    except NotImplementedError:
        raise NotImplementedYet(exercise) from None
    except ExerciseFailed:
        raise
    except Exception as exc:  # the student's code crashed: say where, briefly
        frame = traceback.extract_tb(exc.__traceback__)[-1]
        shown = ", ".join([*map(_short, args), *(f"{k}={_short(v)}" for k, v in kwargs.items())])
        raise ExerciseFailed(
            exercise,
            f"calling it with ({shown}) raised {type(exc).__name__}: {exc} "
            f"(line {frame.lineno}: `{(frame.line or '').strip()}`)",
        ) from None


def _short(value) -> str:
    if isinstance(value, torch.Tensor):
        return f"tensor of shape {tuple(value.shape)}"
    return repr(value)


def run_check(exercise: str, fn: Callable) -> None:
    """Fail early and clearly when the answer is not a function at all."""
    if not callable(fn):
        raise ExerciseFailed(exercise, f"expected a function, got {type(fn).__name__}",
                             "pass the function itself, without calling it: check(my_fn), not check(my_fn())")


def _passed(exercise: str, n: int) -> None:
    print(f"✔ {exercise}: passed ({n} checks)")


# ----------------------------------------------------------------------------
# 01_convolutions
# ----------------------------------------------------------------------------

def output_size(fn: Callable, n: int = 100, seed: int = 0) -> None:
    """fn(size, kernel_size, stride, padding, dilation) must equal a real nn.Conv2d's output side."""
    ex = "output_size"
    run_check(ex, fn)
    rng = random.Random(seed)
    cases = [(5, 3, 1, 0, 1), (28, 5, 1, 2, 1), (32, 3, 2, 1, 1), (7, 3, 1, 0, 2), (224, 11, 4, 2, 1)]
    while len(cases) < n:
        k, s, p, d = rng.randint(1, 7), rng.randint(1, 4), rng.randint(0, 3), rng.randint(1, 3)
        size = rng.randint(max(1, d * (k - 1) + 1 - 2 * p), 40)
        cases.append((size, k, s, p, d))
    for size, k, s, p, d in cases:
        got = _call(ex, fn, size, k, s, p, d)
        layer = nn.Conv2d(1, 1, k, stride=s, padding=p, dilation=d, bias=False)
        want = layer(torch.zeros(1, 1, size, size)).shape[-1]
        if got != want:
            raise ExerciseFailed(
                ex, f"for size={size}, kernel_size={k}, stride={s}, padding={p}, dilation={d} "
                    f"you returned {got!r}; a real nn.Conv2d gives {want}",
                "O = floor((I + 2P - K_eff) / S) + 1 with K_eff = D*(K-1) + 1; use // for the floor")
    _passed(ex, len(cases))


def conv_params(fn: Callable, n: int = 60, seed: int = 0) -> None:
    """fn(in_channels, out_channels, kernel_size, bias) must equal sum(p.numel()) of nn.Conv2d."""
    ex = "conv_params"
    run_check(ex, fn)
    rng = random.Random(seed)
    cases = [(64, 128, 3, True), (3, 64, 11, True), (1, 6, 5, False), (256, 256, 1, True)]
    while len(cases) < n:
        cases.append((rng.randint(1, 64), rng.randint(1, 64), rng.randint(1, 7), rng.random() < 0.5))
    for c_in, c_out, k, bias in cases:
        got = _call(ex, fn, c_in, c_out, k, bias)
        want = sum(p.numel() for p in nn.Conv2d(c_in, c_out, k, bias=bias).parameters())
        if got != want:
            raise ExerciseFailed(
                ex, f"for in_channels={c_in}, out_channels={c_out}, kernel_size={k}, bias={bias} "
                    f"you returned {got!r}; nn.Conv2d has {want} parameters",
                "each of the out_channels kernels spans ALL input channels (k*k*in_channels "
                "weights) and has one bias if bias=True")
    _passed(ex, len(cases))


def convolve(fn: Callable, n: int = 40, seed: int = 0) -> None:
    """fn(image (H, W), kernel (K_h, K_w)) must equal F.conv2d (no padding, stride 1)."""
    ex = "convolve"
    run_check(ex, fn)
    image = torch.tensor([[1, 1, 1, 0, 0], [0, 1, 1, 1, 0], [0, 0, 1, 1, 1],
                          [0, 0, 1, 1, 0], [0, 1, 1, 0, 0]], dtype=torch.float32)
    kernel = torch.tensor([[1, 0, 1], [0, 1, 0], [1, 0, 1]], dtype=torch.float32)
    cases = [(image, kernel)]
    gen = torch.Generator().manual_seed(seed)
    while len(cases) < n:
        kh, kw = (int(v) for v in torch.randint(1, 5, (2,), generator=gen))
        h, w = kh + int(torch.randint(0, 6, (1,), generator=gen)), kw + int(torch.randint(0, 6, (1,), generator=gen))
        cases.append((torch.randn(h, w, generator=gen), torch.randn(kh, kw, generator=gen)))
    for img, ker in cases:
        got = _call(ex, fn, img.clone(), ker.clone())
        want = F.conv2d(img[None, None], ker[None, None])[0, 0]
        if not isinstance(got, torch.Tensor):
            raise ExerciseFailed(ex, f"expected a tensor, got {type(got).__name__}",
                                 "build the output with torch.zeros(out_h, out_w) and fill it in")
        if tuple(got.shape) != tuple(want.shape):
            raise ExerciseFailed(
                ex, f"for a {tuple(img.shape)} image and a {tuple(ker.shape)} kernel the output "
                    f"should be {tuple(want.shape)}, you returned {tuple(got.shape)}",
                "without padding, out_h = H - K_h + 1 and out_w = W - K_w + 1")
        if not torch.allclose(got.float(), want, atol=1e-4, rtol=1e-4):
            where = (got.float() - want).abs().argmax()
            i, j = divmod(int(where), want.shape[1])
            raise ExerciseFailed(
                ex, f"for a {tuple(img.shape)} image and a {tuple(ker.shape)} kernel, output[{i}, {j}] "
                    f"is {float(got[i, j]):.4g}, expected {float(want[i, j]):.4g}",
                "output[i, j] = sum of image[i:i+K_h, j:j+K_w] * kernel (element-wise, no flip)")
    _passed(ex, len(cases))


def max_pool(fn: Callable, n: int = 40, seed: int = 0) -> None:
    """fn(image (H, W), size, stride) must equal F.max_pool2d (no padding)."""
    ex = "max_pool"
    run_check(ex, fn)
    notes = torch.tensor([[3, 3, 2, 1, 0], [0, 0, 1, 3, 1], [3, 1, 2, 2, 3],
                          [2, 0, 0, 2, 2], [2, 0, 0, 0, 1]], dtype=torch.float32)
    cases = [(notes, 3, 1), (notes, 2, 2)]
    gen = torch.Generator().manual_seed(seed)
    while len(cases) < n:
        size = int(torch.randint(1, 4, (1,), generator=gen))
        stride = int(torch.randint(1, 4, (1,), generator=gen))
        h, w = (size + int(v) for v in torch.randint(0, 7, (2,), generator=gen))
        cases.append((torch.randn(h, w, generator=gen), size, stride))
    for img, size, stride in cases:
        got = _call(ex, fn, img.clone(), size, stride)
        want = F.max_pool2d(img[None, None], size, stride)[0, 0]
        if not isinstance(got, torch.Tensor) or tuple(got.shape) != tuple(want.shape):
            shape = tuple(got.shape) if isinstance(got, torch.Tensor) else type(got).__name__
            raise ExerciseFailed(
                ex, f"for a {tuple(img.shape)} image, size={size}, stride={stride} the output should "
                    f"have shape {tuple(want.shape)}, you returned {shape}",
                "O = floor((I - size) / stride) + 1 along each axis")
        if not torch.allclose(got.float(), want):
            raise ExerciseFailed(
                ex, f"wrong values for a {tuple(img.shape)} image, size={size}, stride={stride}: "
                    f"expected\n{want}\ngot\n{got}",
                "output[i, j] = max of image[i*stride : i*stride+size, j*stride : j*stride+size]")
    _passed(ex, len(cases))


def receptive_field(fn: Callable, n: int = 50, seed: int = 0) -> None:
    """fn(num_layers, kernel_size) for stacked stride-1 convolutions, against cnnkit.conv.receptive_field."""
    from cnnkit.conv import receptive_field as reference
    ex = "receptive_field"
    run_check(ex, fn)
    rng = random.Random(seed)
    cases = [(1, 3), (2, 3), (3, 3), (1, 5), (4, 7)]
    while len(cases) < n:
        cases.append((rng.randint(1, 20), rng.choice([1, 3, 5, 7])))
    for layers, k in cases:
        got = _call(ex, fn, layers, k)
        want = reference([nn.Conv2d(1, 1, k) for _ in range(layers)])
        if got != want:
            raise ExerciseFailed(
                ex, f"{layers} stacked {k}x{k} convolutions (stride 1): you returned {got!r}, "
                    f"the receptive field is {want}",
                "each stride-1 KxK layer widens the field by K-1 pixels")
    _passed(ex, len(cases))


# ----------------------------------------------------------------------------
# 02_backprop
# ----------------------------------------------------------------------------

def sigmoid_grad(fn: Callable, n: int = 200, seed: int = 0) -> None:
    """fn(x: float) -> d sigmoid(x) / dx, against torch.autograd."""
    ex = "sigmoid_grad"
    run_check(ex, fn)
    rng = random.Random(seed)
    xs = [0.0, 1.0, -1.0, 4.0, -4.0, 10.0] + [rng.uniform(-8, 8) for _ in range(n - 6)]
    for x in xs:
        got = _call(ex, fn, x)
        t = torch.tensor(x, dtype=torch.float64, requires_grad=True)
        torch.sigmoid(t).backward()
        want = t.grad.item()
        if not isinstance(got, (int, float)) and not (isinstance(got, torch.Tensor) and got.numel() == 1):
            raise ExerciseFailed(ex, f"expected a number, got {type(got).__name__}")
        if abs(float(got) - want) > 1e-9 + 1e-7 * abs(want):
            raise ExerciseFailed(ex, f"at x={x:.4g} you returned {float(got):.6g}, torch.autograd gives {want:.6g}",
                                 "sigmoid'(x) = sigmoid(x) * (1 - sigmoid(x)); at x = 0 it is 0.25")
    _passed(ex, len(xs))


def path_sum(fn: Callable, n: int = 200, seed: int = 0) -> None:
    """fn(x, y) -> d f / d y for f(x, y) = tanh(x * y + y), against torch.autograd."""
    ex = "path_sum"
    run_check(ex, fn)
    rng = random.Random(seed)
    cases = [(2.0, -0.5), (0.0, 1.0), (-1.0, 3.0)] + [(rng.uniform(-2, 2), rng.uniform(-2, 2))
                                                      for _ in range(n - 3)]
    for x, y in cases:
        got = _call(ex, fn, x, y)
        tx = torch.tensor(x, dtype=torch.float64)
        ty = torch.tensor(y, dtype=torch.float64, requires_grad=True)
        torch.tanh(tx * ty + ty).backward()
        want = ty.grad.item()
        if abs(float(got) - want) > 1e-9 + 1e-7 * abs(want):
            raise ExerciseFailed(
                ex, f"at x={x:.4g}, y={y:.4g} you returned {float(got):.6g}, torch.autograd gives {want:.6g}",
                "y reaches the output along two paths (through x*y, and directly into the sum); "
                "multiply the local derivatives along each path, then add the two products")
    _passed(ex, len(cases))


def numerical_derivative(fn: Callable) -> None:
    """fn(f, x, eps) must be the central difference (f(x + eps) - f(x - eps)) / (2 eps)."""
    import math
    ex = "numerical_derivative"
    run_check(ex, fn)
    cases = [(math.sin, x, math.cos(x)) for x in (-2.0, 0.0, 0.7, 3.0)]
    cases += [(math.exp, 1.0, math.e), (lambda t: t ** 2, 3.0, 6.0)]
    for f, x, want in cases:
        got = _call(ex, fn, f, x, 1e-5)
        if abs(float(got) - want) > 1e-6:
            raise ExerciseFailed(ex, f"at x={x} you returned {float(got):.8g}, the derivative is {want:.8g}",
                                 "(f(x + eps) - f(x - eps)) / (2 * eps)")
    # Only the central difference has an O(eps^2) error: for x^3 at x = 1 it gives 3 + eps^2 exactly.
    got = float(_call(ex, fn, lambda t: t ** 3, 1.0, 1e-2))
    if abs(got - 3.0001) > 1e-8:
        raise ExerciseFailed(ex, f"for f(x) = x^3 at x = 1 with eps = 0.01 you returned {got:.6g}; the central "
                                 f"difference gives 3.0001 (a one-sided difference gives about 3.0301)",
                             "use both sides: f(x + eps) and f(x - eps), divided by 2 * eps")
    _passed(ex, len(cases) + 1)


def mlp_params(fn: Callable, n: int = 50, seed: int = 0) -> None:
    """fn(sizes) -> parameters of an MLP with layer sizes [inputs, hidden..., outputs], biases included."""
    ex = "mlp_params"
    run_check(ex, fn)
    rng = random.Random(seed)
    cases = [[784, 128, 64, 10], [2, 1], [3, 4, 4, 1]]
    while len(cases) < n:
        cases.append([rng.randint(1, 50) for _ in range(rng.randint(2, 6))])
    for sizes in cases:
        got = _call(ex, fn, list(sizes))
        net = nn.Sequential(*[nn.Linear(a, b) for a, b in zip(sizes, sizes[1:])])
        want = sum(p.numel() for p in net.parameters())
        if got != want:
            raise ExerciseFailed(ex, f"for sizes={sizes} you returned {got!r}; sum(p.numel()) gives {want}",
                                 "each layer has inputs*outputs weights plus one bias per output unit")
    _passed(ex, len(cases))


# ----------------------------------------------------------------------------
# 03_normalization
# ----------------------------------------------------------------------------

def _compare_tensor(ex: str, got, want: torch.Tensor, what: str, hint: str, atol: float = 1e-5) -> None:
    if not isinstance(got, torch.Tensor):
        raise ExerciseFailed(ex, f"expected a tensor, got {type(got).__name__}", hint)
    if tuple(got.shape) != tuple(want.shape):
        raise ExerciseFailed(ex, f"{what}: expected shape {tuple(want.shape)}, got {tuple(got.shape)}", hint)
    if not torch.allclose(got.to(want.dtype), want, atol=atol, rtol=1e-4):
        err = (got.to(want.dtype) - want).abs().max().item()
        raise ExerciseFailed(ex, f"{what}: values differ from PyTorch by up to {err:.3g}", hint)


def batch_norm_train(fn: Callable, n: int = 40, seed: int = 0) -> None:
    """fn(x (N, C), eps) -> batch norm in training mode without gamma/beta, against F.batch_norm."""
    ex = "batch_norm_train"
    run_check(ex, fn)
    gen = torch.Generator().manual_seed(seed)
    for i in range(n):
        rows, cols = int(torch.randint(2, 40, (1,), generator=gen)), int(torch.randint(1, 8, (1,), generator=gen))
        x = torch.randn(rows, cols, generator=gen) * (1 + 5 * torch.rand(cols, generator=gen)) + 3
        got = _call(ex, fn, x.clone(), 1e-5)
        want = F.batch_norm(x, None, None, training=True, eps=1e-5)
        _compare_tensor(ex, got, want, f"for x of shape {tuple(x.shape)}",
                        "per column (feature): subtract the mean over the batch (dim=0) and divide by "
                        "sqrt(biased variance + eps): x.var(dim=0, unbiased=False)")
    _passed(ex, n)


def layer_norm_rows(fn: Callable, n: int = 40, seed: int = 0) -> None:
    """fn(x (N, D), eps) -> layer norm over each row without gamma/beta, against F.layer_norm."""
    ex = "layer_norm_rows"
    run_check(ex, fn)
    gen = torch.Generator().manual_seed(seed)
    for i in range(n):
        rows, cols = int(torch.randint(1, 20, (1,), generator=gen)), int(torch.randint(2, 30, (1,), generator=gen))
        x = torch.randn(rows, cols, generator=gen) * 4 - 2
        got = _call(ex, fn, x.clone(), 1e-5)
        want = F.layer_norm(x, (cols,), eps=1e-5)
        _compare_tensor(ex, got, want, f"for x of shape {tuple(x.shape)}",
                        "per row (example): mean and biased variance over dim=1, keepdim=True")
    _passed(ex, n)


def he_std(fn: Callable) -> None:
    """fn(in_channels, kernel_size) -> the He std of a ReLU conv layer, against torch.nn.init."""
    import math
    ex = "he_std"
    run_check(ex, fn)
    cases = [(1, 3), (3, 7), (64, 3), (256, 1), (16, 5), (512, 3)]
    for c_in, k in cases:
        got = _call(ex, fn, c_in, k)
        fan_in = nn.init._calculate_fan_in_and_fan_out(torch.empty(8, c_in, k, k))[0]
        want = nn.init.calculate_gain("relu") / math.sqrt(fan_in)
        if not isinstance(got, (int, float)) or abs(got - want) > 1e-9:
            raise ExerciseFailed(ex, f"for in_channels={c_in}, kernel_size={k} you returned {got!r}, "
                                     f"He initialisation uses std = {want:.6g}",
                                 "std = sqrt(2 / fan_in), and fan_in of a conv layer = in_channels * k * k")
    _passed(ex, len(cases))


def eval_predict(fn: Callable) -> None:
    """fn(model, x) must return the model's eval-mode output without a graph, and restore its mode."""
    ex = "eval_predict"
    run_check(ex, fn)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Dropout(0.5), nn.Linear(8, 3))
    for _ in range(20):
        model(torch.randn(32, 4) * 2 + 1)          # give the running statistics something to hold
    for mode, x in ((True, torch.randn(1, 4)), (True, torch.randn(5, 4)), (False, torch.randn(5, 4))):
        model.train(mode)
        before = {k: v.clone() for k, v in model.state_dict().items()}
        got = _call(ex, fn, model, x)
        mode_after = model.training
        model.eval()
        with torch.no_grad():
            want = model(x)
        model.train(mode)
        if not isinstance(got, torch.Tensor) or got.shape != want.shape or not torch.allclose(got, want, atol=1e-6):
            raise ExerciseFailed(ex, f"for a batch of {len(x)} the output is not the eval-mode output "
                                     "(running statistics, no dropout)", "call model.eval() before the forward pass")
        if got.requires_grad:
            raise ExerciseFailed(ex, "the output still carries an autograd graph",
                                 "wrap the forward pass in `with torch.no_grad():`")
        changed = [k for k, v in model.state_dict().items() if not torch.equal(v, before[k])]
        if changed:
            raise ExerciseFailed(ex, f"predicting changed the model's state: {changed}",
                                 "in eval mode batch norm must not update its running statistics")
        if mode_after != mode:
            raise ExerciseFailed(ex, f"the model was in {'train' if mode else 'eval'} mode before and is in "
                                     f"{'train' if mode_after else 'eval'} mode after",
                                 "remember `was_training = model.training` and call model.train(was_training) at the end")
    _passed(ex, 3)


# ----------------------------------------------------------------------------
# 04_architectures
# ----------------------------------------------------------------------------

def topk_accuracy(fn: Callable, n: int = 30, seed: int = 0) -> None:
    """fn(logits (N, C), targets (N,), k) -> fraction of rows whose target is among the k largest."""
    ex = "topk_accuracy"
    run_check(ex, fn)
    gen = torch.Generator().manual_seed(seed)
    for i in range(n):
        rows, classes = int(torch.randint(1, 50, (1,), generator=gen)), int(torch.randint(2, 20, (1,), generator=gen))
        k = int(torch.randint(1, classes + 1, (1,), generator=gen))
        logits = torch.randn(rows, classes, generator=gen)
        targets = torch.randint(0, classes, (rows,), generator=gen)
        got = _call(ex, fn, logits.clone(), targets.clone(), k)
        want = (logits.topk(k, dim=1).indices == targets[:, None]).any(dim=1).float().mean().item()
        if not isinstance(got, (int, float, torch.Tensor)) or abs(float(got) - want) > 1e-6:
            raise ExerciseFailed(ex, f"for {rows} rows, {classes} classes and k={k} you returned {got!r}, "
                                     f"expected {want:.4f}",
                                 "logits.topk(k, dim=1).indices gives the k best classes of each row; "
                                 "a row counts if its target is among them; return the fraction as a float")
    _passed(ex, n)


def inception_block(fn: Callable) -> None:
    """fn(c_in, c1, c3_reduce, c3, c5_reduce, c5, pool_proj) -> an nn.Module with the four branches."""
    from cnnkit.models import Inception
    ex = "inception_block"
    run_check(ex, fn)
    cases = [(192, 64, 96, 128, 16, 32, 32), (16, 4, 8, 8, 2, 4, 4), (32, 8, 4, 16, 4, 8, 2)]
    for widths in cases:
        block = _call(ex, fn, *widths)
        if not isinstance(block, nn.Module):
            raise ExerciseFailed(ex, f"expected an nn.Module, got {type(block).__name__}")
        x = torch.randn(2, widths[0], 9, 9)
        out = _call(ex, block, x)
        c_out = widths[1] + widths[3] + widths[5] + widths[6]
        if tuple(out.shape) != (2, c_out, 9, 9):
            raise ExerciseFailed(ex, f"for widths {widths} and a (2, {widths[0]}, 9, 9) input the output should be "
                                     f"(2, {c_out}, 9, 9), got {tuple(out.shape)}",
                                 "pad each branch so it keeps H x W (3x3: padding 1, 5x5: padding 2, max pool: "
                                 "stride 1, padding 1), then torch.cat along dim=1")
        convs = sorted(tuple(m.weight.shape) for m in block.modules() if isinstance(m, nn.Conv2d))
        want = sorted(tuple(m.weight.shape) for m in Inception(*widths, five="5x5").modules()
                      if isinstance(m, nn.Conv2d))
        if convs != want:
            raise ExerciseFailed(ex, f"for widths {widths} the convolution weights have shapes {convs}, "
                                     f"an Inception block has {want}",
                                 "branches: 1x1 | 1x1 -> 3x3 | 1x1 -> 5x5 | 3x3 max pool -> 1x1")
    _passed(ex, len(cases))


def residual_block(cls) -> None:
    """cls(channels) -> a basic residual block: relu(bn2(conv2(relu(bn1(conv1(x))))) + x)."""
    ex = "residual_block"
    if not isinstance(cls, type) or not issubclass(cls, nn.Module):
        raise ExerciseFailed(ex, f"expected an nn.Module class, got {cls!r}", "define `class ResidualBlock(nn.Module)`")
    for channels in (4, 16):
        torch.manual_seed(0)
        block = _call(ex, cls, channels)
        convs = [m for m in block.modules() if isinstance(m, nn.Conv2d)]
        bns = [m for m in block.modules() if isinstance(m, nn.BatchNorm2d)]
        if len(convs) != 2 or len(bns) != 2 or any(tuple(c.weight.shape) != (channels, channels, 3, 3) for c in convs):
            raise ExerciseFailed(ex, f"expected two {channels}->{channels} 3x3 convolutions and two BatchNorm2d, found "
                                     f"{[tuple(c.weight.shape) for c in convs]} and {len(bns)} batch norms",
                                 "conv3x3 -> BN -> ReLU -> conv3x3 -> BN, plus the shortcut")
        x = torch.randn(3, channels, 8, 8)
        out = _call(ex, block, x)
        if tuple(out.shape) != tuple(x.shape):
            raise ExerciseFailed(ex, f"output shape {tuple(out.shape)} differs from the input's {tuple(x.shape)}",
                                 "use padding=1 in the 3x3 convolutions")
        with torch.no_grad():                      # with the residual branch silenced, out = relu(x)
            for bn in bns:
                bn.weight.zero_()
                bn.bias.zero_()
            silenced = block(x)
        if not torch.allclose(silenced, torch.relu(x), atol=1e-6):
            raise ExerciseFailed(ex, "with the convolution branch switched off the block should return relu(x); "
                                     "the shortcut is missing or misplaced",
                                 "out = relu(F(x) + x): add x before the final ReLU")
        if (silenced < 0).any():
            raise ExerciseFailed(ex, "the output has negative values: the final ReLU is missing",
                                 "out = relu(F(x) + x)")
    _passed(ex, 2)


def head_in_features(fn: Callable) -> None:
    """fn(features, input_size) -> in_features the first Linear after Flatten needs."""
    ex = "head_in_features"
    run_check(ex, fn)
    cases = [
        (nn.Sequential(nn.Conv2d(1, 6, 5), nn.MaxPool2d(2), nn.Conv2d(6, 16, 5), nn.MaxPool2d(2)), (1, 1, 32, 32)),
        (nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.MaxPool2d(2)), (1, 3, 64, 48)),
        (nn.Sequential(nn.Conv2d(3, 4, 7, stride=2, padding=3), nn.ReLU(), nn.Conv2d(4, 10, 3, stride=2)), (2, 3, 50, 50)),
        (nn.Sequential(nn.Conv2d(1, 5, 3), nn.AdaptiveAvgPool2d(1)), (1, 1, 17, 23)),
    ]
    for features, size in cases:
        got = _call(ex, fn, features, size)
        with torch.no_grad():
            want = features(torch.zeros(size)).flatten(1).shape[1]
        if got != want:
            raise ExerciseFailed(ex, f"for input {size} and features {features} you returned {got!r}, "
                                     f"Flatten produces {want} numbers",
                                 "run the features once on torch.zeros(input_size) and read the shape")
    _passed(ex, len(cases))


# ----------------------------------------------------------------------------
# Partial credit
# ----------------------------------------------------------------------------

from cnnkit.check._core import Score  # noqa: E402,F401


# ----------------------------------------------------------------------------
# 05_training
# ----------------------------------------------------------------------------

def _random_curves(rng: random.Random, n: int) -> list[float]:
    values, v = [], rng.uniform(1, 3)
    for _ in range(n):
        v = max(0.01, v + rng.uniform(-0.3, 0.2))
        values.append(round(v, 3))
    return values


def should_stop(fn: Callable, n: int = 200, seed: int = 0) -> None:
    """fn(val_losses, patience) -> True when the best loss is more than `patience` epochs old."""
    ex = "should_stop"
    run_check(ex, fn)
    rng = random.Random(seed)
    cases = [([1.0, 0.8, 0.7, 0.75, 0.76], 2, True), ([1.0, 0.8, 0.7, 0.75], 2, False),
             ([1.0], 1, False), ([0.5, 0.5, 0.5], 2, True), ([0.9, 0.8, 0.7], 1, False)]
    while len(cases) < n:
        losses, patience = _random_curves(rng, rng.randint(1, 15)), rng.randint(1, 5)
        best = losses.index(min(losses))                  # first epoch with the minimum
        cases.append((losses, patience, len(losses) - 1 - best >= patience))
    for losses, patience, want in cases:
        got = _call(ex, fn, list(losses), patience)
        if bool(got) != want or not isinstance(got, (bool, int)):
            raise ExerciseFailed(ex, f"for val_losses={losses} and patience={patience} you returned {got!r}, "
                                     f"expected {want}",
                                 "stop when the epochs since the best (lowest, first one on ties) "
                                 "validation loss are >= patience")
    _passed(ex, len(cases))


def epoch_to_keep(fn: Callable, n: int = 200, seed: int = 0) -> None:
    """fn(val_losses) -> the 1-based epoch whose weights to keep (lowest loss, earliest on ties)."""
    ex = "epoch_to_keep"
    run_check(ex, fn)
    rng = random.Random(seed)
    cases = [[0.9, 0.5, 0.7], [0.5, 0.5], [1.0]] + [_random_curves(rng, rng.randint(1, 20)) for _ in range(n - 3)]
    for losses in cases:
        got = _call(ex, fn, list(losses))
        want = losses.index(min(losses)) + 1
        if got != want:
            raise ExerciseFailed(ex, f"for val_losses={losses} you returned {got!r}, expected epoch {want}",
                                 "epochs are counted from 1; on ties keep the earliest epoch")
    _passed(ex, len(cases))


def step_lr(fn: Callable) -> None:
    """fn(epoch, base_lr, step_size, gamma) -> the learning rate torch's StepLR uses in that epoch (from 0)."""
    ex = "step_lr"
    run_check(ex, fn)
    count = 0
    for base, step, gamma in [(0.1, 7, 0.1), (0.01, 3, 0.5), (1.0, 1, 0.9), (0.05, 10, 0.2)]:
        opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=base)
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=step, gamma=gamma)
        for epoch in range(25):
            want = opt.param_groups[0]["lr"]
            got = _call(ex, fn, epoch, base, step, gamma)
            if not isinstance(got, (int, float)) or abs(got - want) > 1e-12 + 1e-9 * want:
                raise ExerciseFailed(ex, f"epoch={epoch}, base_lr={base}, step_size={step}, gamma={gamma}: "
                                         f"you returned {got!r}, StepLR gives {want:.6g}",
                                     "lr = base_lr * gamma ** (epoch // step_size)")
            opt.step()
            sched.step()
            count += 1
    _passed(ex, count)


def overfitting_epoch(fn: Callable) -> None:
    """fn(train_losses, val_losses) -> the epoch (1-based) after which the model overfits, or None."""
    ex = "overfitting_epoch"
    run_check(ex, fn)
    cases = [
        ([1.0, 0.7, 0.5, 0.4, 0.3, 0.2], [1.1, 0.8, 0.6, 0.65, 0.7, 0.8], 3),
        ([1.0, 0.7, 0.5, 0.4], [1.1, 0.8, 0.6, 0.55], None),              # still improving: keep training
        ([2.0, 1.5, 1.4, 1.3, 1.2], [2.1, 1.7, 1.8, 1.9, 2.0], 2),
        ([1.0, 0.9], [1.0, 1.2], 1),
        ([1.0, 0.8, 0.6, 0.5], [1.0, 0.9, 0.95, 0.85], None),             # a bump, then a new best
    ]
    for train_l, val_l, want in cases:
        got = _call(ex, fn, list(train_l), list(val_l))
        if got != want:
            raise ExerciseFailed(ex, f"for train={train_l}, val={val_l} you returned {got!r}, expected {want!r}",
                                 "no overfitting while validation still improves: if the best validation loss "
                                 "is at the last epoch return None, else return the epoch of the best one")
    _passed(ex, len(cases))


# ----------------------------------------------------------------------------
# 06_augmentation
# ----------------------------------------------------------------------------

def _asymmetric_digit(seed: int) -> torch.Tensor:
    """A blurred 'F'-like stroke pattern (1, 28, 28) that no flip or half-turn maps onto itself."""
    g = torch.Generator().manual_seed(seed)
    image = torch.zeros(1, 28, 28)
    top, left = 5 + int(torch.randint(0, 3, (1,), generator=g)), 7 + int(torch.randint(0, 3, (1,), generator=g))
    image[0, top:top + 18, left:left + 4] = 1                       # the stem
    image[0, top:top + 4, left:left + 13] = 1                       # the top bar
    image[0, top + 8:top + 12, left:left + 9] = 1                   # the middle bar
    blur = F.avg_pool2d(image[None], 5, stride=1, padding=2)        # soft strokes, as in real digits
    return F.avg_pool2d(blur, 5, stride=1, padding=2)[0]


def _best_corr(out: torch.Tensor, reference: torch.Tensor, shift: int = 4) -> float:
    """Largest correlation of `out` with `reference` moved by up to `shift` pixels each way."""
    h, w = reference.shape[-2:]
    windows = F.unfold(F.pad(reference[None], (shift,) * 4), (h, w))[0].T       # (positions, H*W)
    windows = windows - windows.mean(1, keepdim=True)
    a = out.flatten() - out.mean()
    return float((windows @ a / (windows.norm(dim=1) * a.norm() + 1e-12)).max())


def digit_augmentation(fn: Callable, trials: int = 60) -> None:
    """fn() -> a transform for (1, 28, 28) digit tensors that changes them but keeps the label:
    no draw may look more like the mirrored, upside-down or half-turned digit than like the digit."""
    ex = "digit_augmentation"
    run_check(ex, fn)
    transform = _call(ex, fn)
    if not callable(transform):
        raise ExerciseFailed(ex, f"fn() returned {type(transform).__name__}, not a transform",
                             "return a torchvision.transforms.v2 transform, e.g. v2.Compose([...])")
    changed = 0
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        for t in range(trials):
            image = _asymmetric_digit(t)
            out = _call(ex, transform, image.clone())
            if not isinstance(out, torch.Tensor) or out.shape != (1, 28, 28) or not out.is_floating_point():
                raise ExerciseFailed(ex, f"the transform returned {_short(out)} "
                                         f"{getattr(out, 'dtype', '')}; expected a float tensor (1, 28, 28)",
                                     "keep the size: crops must be padded back (RandomCrop(28, padding=2)) "
                                     "or use RandomAffine(translate=...)")
            changed += not torch.allclose(out, image, atol=1e-3)
            own = _best_corr(out, image)
            for name, other in (("mirrored left-right", image.flip(-1)), ("upside down", image.flip(-2)),
                                ("turned by 180 degrees", image.flip(-1, -2))):
                if _best_corr(out, other) >= own:
                    raise ExerciseFailed(ex, f"draw {t + 1} looks more like the digit {name} than like "
                                             "the digit itself: that can change the label (a 6 turned over is a 9)",
                                         "no flips for digits, and keep rotations small (about 15 degrees)")
    if changed < trials // 2:
        raise ExerciseFailed(ex, f"only {changed} of {trials} draws changed the image at all",
                             "augmentation must make new views: add small rotations, shifts or scalings")
    _passed(ex, trials)


def split_without_leak(fn: Callable, seed: int = 0) -> None:
    """fn(images, targets, n_val, transform) -> (train_set, val_set): disjoint, all images used,
    `transform` on training items only, validation items exactly the stored images."""
    ex = "split_without_leak"
    run_check(ex, fn)
    g = torch.Generator().manual_seed(seed)
    for n, n_val in ((40, 10), (25, 5), (12, 11)):
        images = torch.rand(n, 3, 6, 6, generator=g)
        images[:, 0, 0, 0] = torch.arange(n) / n                    # a tag to find each image again
        targets = torch.randint(0, 3, (n,), generator=g)
        calls = []

        def augment(x):
            calls.append(1)
            return x + 10.0                                          # unmistakable
        got = _call(ex, fn, images, targets, n_val, augment)
        if not (isinstance(got, (tuple, list)) and len(got) == 2):
            raise ExerciseFailed(ex, f"expected a pair (train_set, val_set), got {type(got).__name__}")
        train_set, val_set = got
        if len(train_set) != n - n_val or len(val_set) != n_val:
            raise ExerciseFailed(ex, f"for {n} images and n_val={n_val} the sizes are {len(train_set)} and "
                                     f"{len(val_set)}; expected {n - n_val} and {n_val}")
        tags = {}
        for name, dataset, shifted in (("validation", val_set, False), ("training", train_set, True)):
            for i in range(len(dataset)):
                x, y = dataset[i]
                if shifted and not bool((x >= 9.0).all()):
                    raise ExerciseFailed(ex, f"training item {i} was not passed through the transform",
                                         "give the training set the transform (that is where augmentation belongs)")
                if not shifted and bool((x >= 9.0).any()):
                    raise ExerciseFailed(ex, f"validation item {i} went through the training transform: "
                                             "the leak is still there",
                                         "build the validation set from the images with no transform, not from a "
                                         "random_split of one augmented dataset")
                base = x - 10.0 if shifted else x
                k = int(round(float(base[0, 0, 0]) * n))
                if not (0 <= k < n and torch.allclose(base, images[k], atol=1e-5)):
                    raise ExerciseFailed(ex, f"{name} item {i} is not one of the given images")
                if int(y) != int(targets[k]):
                    raise ExerciseFailed(ex, f"{name} item {i} has label {int(y)}, its image has {int(targets[k])}")
                tags.setdefault(k, []).append(name)
        if sorted(tags) != list(range(n)) or any(len(v) != 1 for v in tags.values()):
            raise ExerciseFailed(ex, "the two sets overlap or miss images",
                                 "split one random permutation of the indices: the last n_val for validation")
    _passed(ex, 3)


def flip_tta(fn: Callable, seed: int = 0) -> None:
    """fn(model, x) -> the mean of softmax(model(x)) and softmax(model(x flipped left-right)), in eval mode."""
    ex = "flip_tta"
    run_check(ex, fn)
    from cnnkit import tta
    torch.manual_seed(seed)
    for n, c in ((4, 3), (1, 1), (7, 3)):
        model = nn.Sequential(nn.Conv2d(c, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Dropout(0.3),
                              nn.Flatten(), nn.Linear(4 * 6 * 6, 5))
        model(torch.randn(16, c, 8, 8))                              # running statistics, away from init
        model.train()
        x = torch.randn(n, c, 8, 8)
        want = tta.predict(model, x, ["identity", "hflip"])
        got = _call(ex, fn, model, x)
        plain = tta.predict(model, x)
        if not isinstance(got, torch.Tensor) or got.shape != want.shape:
            raise ExerciseFailed(ex, f"for x of shape {tuple(x.shape)} you returned {_short(got)}; "
                                     f"expected probabilities of shape {tuple(want.shape)}")
        if torch.allclose(got.detach(), plain, atol=1e-5):
            raise ExerciseFailed(ex, "your answer equals the prediction on the original images alone",
                                 "add the prediction on x.flip(-1) (the last axis is the width) and average")
        if not torch.allclose(got.detach(), want, atol=1e-5):
            raise ExerciseFailed(ex, "the probabilities differ from the average of the two views' softmax",
                                 "eval mode (model.eval()), softmax(dim=1) of each view, then the mean; "
                                 "average probabilities, not logits")
    _passed(ex, 3)


def ten_crop_boxes(fn: Callable, n: int = 200, seed: int = 0) -> None:
    """fn(height, width, size) -> the ten AlexNet views as (top, left, flipped) triples, any order."""
    ex = "ten_crop_boxes"
    run_check(ex, fn)
    rng = random.Random(seed)
    cases = [(256, 256, 224), (36, 36, 32), (5, 7, 3), (10, 10, 10), (300, 451, 224)]
    while len(cases) < n:
        size = rng.randint(1, 30)
        cases.append((size + rng.randint(0, 12), size + rng.randint(0, 12), size))
    for h, w, size in cases:
        got = _call(ex, fn, h, w, size)
        try:
            got_set = sorted((int(t), int(l), bool(f)) for t, l, f in got)
        except (TypeError, ValueError):
            raise ExerciseFailed(ex, f"for ({h}, {w}, {size}) you returned {got!r}; "
                                     "expected a list of (top, left, flipped) triples") from None
        corners = [(0, 0), (0, w - size), (h - size, 0), (h - size, w - size)]
        centres = {((h - size) // 2, (w - size) // 2), ((h - size + 1) // 2, (w - size + 1) // 2),
                   ((h - size) // 2, (w - size + 1) // 2), ((h - size + 1) // 2, (w - size) // 2)}
        ok = len(got_set) == 10
        if ok:
            for centre in centres:                    # either rounding of an odd margin is a centre
                want = sorted((t, l, f) for t, l in corners + [centre] for f in (False, True))
                if got_set == want:
                    break
            else:
                ok = False
        if not ok:
            raise ExerciseFailed(ex, f"for an image {h}x{w} and crops of {size} you returned {got_set}",
                                 "four corners (0 or H-size, 0 or W-size) and the centre ((H-size)//2, "
                                 "(W-size)//2), each with flipped False and True: ten triples")
    _passed(ex, len(cases))


# ----------------------------------------------------------------------------
# 07_transfer_learning
# ----------------------------------------------------------------------------

def _transfer_models() -> list[tuple[nn.Module, str]]:
    """Small models with their heads in the places real ones keep them."""
    torch.manual_seed(0)
    flat = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(4, 10))                                  # head "5"

    class Net(nn.Module):                                                                   # head "fc"
        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(nn.Conv2d(3, 6, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
            self.fc = nn.Linear(6, 7)

        def forward(self, x):
            return self.fc(self.features(x))

    class Nested(Net):                                                                      # head "classifier.2"
        def __init__(self):
            super().__init__()
            del self.fc
            self.classifier = nn.Sequential(nn.Dropout(0.1), nn.Linear(6, 6), nn.Linear(6, 9))

        def forward(self, x):
            return self.classifier(self.features(x))
    return [(flat, "5"), (Net(), "fc"), (Nested(), "classifier.2")]


def freeze_but_head(fn: Callable) -> None:
    """fn(model, head_name) freezes every parameter except those of model.get_submodule(head_name)."""
    ex = "freeze_but_head"
    run_check(ex, fn)
    for model, head in _transfer_models():
        for p in model.parameters():
            p.requires_grad_(True)
        _call(ex, fn, model, head)
        head_params = {id(p) for p in model.get_submodule(head).parameters()}
        for name, p in model.named_parameters():
            if (id(p) in head_params) != p.requires_grad:
                state = "still trainable" if p.requires_grad else "frozen"
                raise ExerciseFailed(ex, f"with head '{head}', parameter '{name}' is {state}",
                                     "set requires_grad=False on all parameters, then True on the head's")
    _passed(ex, 3)


def new_head(fn: Callable) -> None:
    """fn(model, head_name, num_classes) replaces the Linear at head_name by a new
    Linear(in_features, num_classes) and returns the model; nothing else changes."""
    ex = "new_head"
    run_check(ex, fn)
    for model, head in _transfer_models():
        for num_classes in (2, 5):
            for p in model.parameters():
                p.requires_grad_(False)                         # as after freezing
            old = model.get_submodule(head)
            others = {name: m for name, m in model.named_modules() if name and not name.startswith(head)}
            got = _call(ex, fn, model, head, num_classes)
            if got is not model:
                raise ExerciseFailed(ex, "return the model itself (changed in place)", "end with `return model`")
            new = model.get_submodule(head)
            if new is old or not isinstance(new, nn.Linear):
                raise ExerciseFailed(ex, f"model.{head} is still the old layer (or not an nn.Linear)",
                                     "setattr(parent, last_name, nn.Linear(old.in_features, num_classes))")
            if (new.in_features, new.out_features) != (old.in_features, num_classes):
                raise ExerciseFailed(ex, f"the new head maps {new.in_features} -> {new.out_features}; expected "
                                         f"{old.in_features} -> {num_classes}",
                                     "keep in_features of the old head, out_features = num_classes")
            if not all(p.requires_grad for p in new.parameters()):
                raise ExerciseFailed(ex, "the new head is frozen", "a fresh nn.Linear is trainable; do not freeze it")
            changed = [n for n, m in others.items() if model.get_submodule(n) is not m]
            if changed:
                raise ExerciseFailed(ex, f"other layers were replaced too: {changed}", "replace only the head")
            out = model(torch.randn(2, 3, 8, 8))
            if out.shape != (2, num_classes):
                raise ExerciseFailed(ex, f"the model now outputs {tuple(out.shape)}, expected (2, {num_classes})")
    _passed(ex, 6)


def count_trainable(fn: Callable, n: int = 30, seed: int = 0) -> None:
    """fn(model) -> number of parameters (numbers, not tensors) with requires_grad=True."""
    ex = "count_trainable"
    run_check(ex, fn)
    rng = random.Random(seed)
    count = 0
    for model, _ in _transfer_models():
        for _ in range(n // 3):
            for p in model.parameters():
                p.requires_grad_(rng.random() < 0.5)
            want = sum(p.numel() for p in model.parameters() if p.requires_grad)
            got = _call(ex, fn, model)
            if got != want:
                total = sum(p.numel() for p in model.parameters())
                raise ExerciseFailed(ex, f"you counted {got!r}; {want} of the model's {total} parameters are trainable",
                                     "sum p.numel() over model.parameters() with p.requires_grad" if got != total
                                     else "count only the parameters with p.requires_grad")
            count += 1
    _passed(ex, count)


def lr_groups(fn: Callable) -> None:
    """fn(layers, head_lr, decay) -> [{"params": [...], "lr": ...}] per layer (input first), the
    last layer at head_lr and each earlier one `decay` times the next."""
    ex = "lr_groups"
    run_check(ex, fn)
    torch.manual_seed(0)
    for sizes, head_lr, decay in (((3, 4, 5, 2), 1e-3, 0.5), ((2, 2), 0.01, 0.1), ((4, 3, 3, 3, 3, 2), 3e-4, 0.3)):
        layers = [nn.Linear(a, b) for a, b in zip(sizes, sizes[1:])]
        got = _call(ex, fn, layers, head_lr, decay)
        if not isinstance(got, list) or len(got) != len(layers) or not all(isinstance(g, dict) for g in got):
            raise ExerciseFailed(ex, f"for {len(layers)} layers expected a list of {len(layers)} dicts, got {_short(got)}")
        for i, (group, layer) in enumerate(zip(got, layers)):
            want_lr = head_lr * decay ** (len(layers) - 1 - i)
            if {id(p) for p in group.get("params", [])} != {id(p) for p in layer.parameters()}:
                raise ExerciseFailed(ex, f"group {i} does not hold exactly the parameters of layer {i}",
                                     "{'params': list(layer.parameters()), 'lr': ...}")
            if not isinstance(group.get("lr"), (int, float)) or abs(group["lr"] - want_lr) > 1e-12 * max(1, want_lr):
                raise ExerciseFailed(ex, f"layer {i} of {len(layers)} (head_lr={head_lr}, decay={decay}) got lr "
                                         f"{group.get('lr')!r}, expected {want_lr:.3g}",
                                     "the last layer (the head) gets head_lr; each step towards the input "
                                     "multiplies by decay")
        torch.optim.SGD(got, lr=1.0)                           # the groups must be usable as they are
    _passed(ex, 3)
