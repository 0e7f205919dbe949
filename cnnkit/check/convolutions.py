"""Checks of notebooks/01_convolutions.ipynb: output sizes, parameter counts, convolution, pooling.

See: notebooks/01_convolutions.ipynb
"""

from __future__ import annotations

import random

import torch
import torch.nn.functional as F

from cnnkit.check._core import Check, Failure, describe_type, number, register

# The 5x5 image and 3x3 kernel of the lecture notes, and the notes' pooling example.
NOTES_IMAGE = [[1, 1, 1, 0, 0], [0, 1, 1, 1, 0], [0, 0, 1, 1, 1], [0, 0, 1, 1, 0], [0, 1, 1, 0, 0]]
NOTES_KERNEL = [[1, 0, 1], [0, 1, 0], [1, 0, 1]]
NOTES_POOL = [[3, 3, 2, 1, 0], [0, 0, 1, 3, 1], [3, 1, 2, 2, 3], [2, 0, 0, 2, 2], [2, 0, 0, 0, 1]]


def _int_failure(got, want: int, reason: str, hint: str = "", formula: str = "") -> Failure | None:
    """None if `got` is the number `want` (an int, or a float or one-element tensor equal to it)."""
    value, failure = number(got, what="an int")
    if failure:
        return failure
    return None if value == want else Failure(reason.format(got=value), hint, formula)


@register
class OutputSize(Check):
    """fn(size, kernel_size, stride, padding, dilation) must equal a real nn.Conv2d's output side."""
    name, default_n, returns = "output_size", 100, "an int"
    hint = "count the positions where the (dilated) kernel fits while sliding by `stride` over the padded input; use // for the floor"
    formula = "O = floor((I + 2P - K_eff) / S) + 1 with K_eff = D*(K-1) + 1; use // for the floor"

    def cases(self, seed, n):
        rng = random.Random(seed)
        fixed = [(5, 3, 1, 0, 1), (28, 5, 1, 2, 1), (32, 3, 2, 1, 1), (7, 3, 1, 0, 2), (224, 11, 4, 2, 1)]
        cases = [dict(zip(("size", "kernel_size", "stride", "padding", "dilation"), c)) for c in fixed]
        cases.append({"size": 224, "kernel_size": 7, "stride": 2, "padding": 3, "dilation": None})  # default dilation
        while len(cases) < n:
            k, s, p, d = rng.randint(1, 7), rng.randint(1, 4), rng.randint(0, 3), rng.randint(1, 3)
            size = rng.randint(max(1, d * (k - 1) + 1 - 2 * p), 40)
            cases.append({"size": size, "kernel_size": k, "stride": s, "padding": p, "dilation": d})
        return cases

    def run(self, answer, case):
        args = (case["size"], case["kernel_size"], case["stride"], case["padding"])
        return answer(*args) if case["dilation"] is None else answer(*args, case["dilation"])

    def reference(self, case):
        size, k = case["size"], case["kernel_size"]
        out = F.conv2d(torch.zeros(1, 1, size, size), torch.zeros(1, 1, k, k), stride=case["stride"],
                       padding=case["padding"], dilation=case["dilation"] or 1)
        return out.shape[-1]

    def compare(self, got, want, case):
        shown = ", ".join(f"{k}={v}" for k, v in case.items() if v is not None)
        return _int_failure(got, want, f"for {shown} you returned {{got!r}}; a real nn.Conv2d gives {want}")


@register
class ConvParams(Check):
    """fn(in_channels, out_channels, kernel_size, bias) must equal sum(p.numel()) of nn.Conv2d."""
    name, default_n, returns = "conv_params", 60, "an int"
    hint = "each of the out_channels kernels spans ALL input channels; bias=False means no biases"
    formula = ("each of the out_channels kernels spans ALL input channels (k*k*in_channels "
               "weights) and has one bias if bias=True")

    def cases(self, seed, n):
        rng = random.Random(seed)
        fixed = [(64, 128, 3, True), (3, 64, 11, True), (1, 6, 5, False), (256, 256, 1, True)]
        fixed += [(rng.randint(1, 64), rng.randint(1, 64), rng.randint(1, 7), rng.random() < 0.5)
                  for _ in range(n - len(fixed))]
        return [dict(zip(("in_channels", "out_channels", "kernel_size", "bias"), c)) for c in fixed]

    def run(self, answer, case):
        return answer(case["in_channels"], case["out_channels"], case["kernel_size"], case["bias"])

    def reference(self, case):
        c_in, c_out, k = case["in_channels"], case["out_channels"], case["kernel_size"]
        return c_out * c_in * k * k + (c_out if case["bias"] else 0)     # = sum(p.numel()) of nn.Conv2d

    def compare(self, got, want, case):
        shown = ", ".join(f"{k}={v}" for k, v in case.items())
        return _int_failure(got, want, f"for {shown} you returned {{got!r}}; nn.Conv2d has {want} parameters")


@register
class Convolve(Check):
    """fn(image (H, W), kernel (K_h, K_w)) must equal F.conv2d (no padding, stride 1)."""
    name, default_n, returns = "convolve", 40, "a tensor"
    hint = "slide the kernel over the image without flipping it; each output is a sum of element-wise products"
    formula = "output[i, j] = sum of image[i:i+K_h, j:j+K_w] * kernel (element-wise, no flip)"

    def cases(self, seed, n):
        cases = [{"image": torch.tensor(NOTES_IMAGE, dtype=torch.float32),
                  "kernel": torch.tensor(NOTES_KERNEL, dtype=torch.float32)}]
        gen = torch.Generator().manual_seed(seed)
        while len(cases) < n:
            kh, kw = (int(v) for v in torch.randint(1, 5, (2,), generator=gen))
            h = kh + int(torch.randint(0, 6, (1,), generator=gen))
            w = kw + int(torch.randint(0, 6, (1,), generator=gen))
            cases.append({"image": torch.randn(h, w, generator=gen), "kernel": torch.randn(kh, kw, generator=gen)})
        return cases

    def run(self, answer, case):
        return answer(case["image"], case["kernel"])

    def reference(self, case):
        return F.conv2d(case["image"][None, None], case["kernel"][None, None])[0, 0]

    def compare(self, got, want, case):
        img, ker = tuple(case["image"].shape), tuple(case["kernel"].shape)
        if type(got) is not torch.Tensor:
            return Failure(f"expected a tensor, got {describe_type(got)}",
                           "build the output with torch.zeros(out_h, out_w) and fill it in")
        if tuple(got.shape) != tuple(want.shape):
            return Failure(f"for a {img} image and a {ker} kernel the output should be {tuple(want.shape)}, "
                           f"you returned {tuple(got.shape)}",
                           "the kernel must fit entirely inside the image (no padding)",
                           "without padding, out_h = H - K_h + 1 and out_w = W - K_w + 1")
        got = got.to(torch.float32)
        if not torch.allclose(got, want, atol=1e-4, rtol=1e-4):
            i, j = divmod(int((got - want).abs().nan_to_num(float("inf")).argmax()), want.shape[1])
            return Failure(f"for a {img} image and a {ker} kernel, output[{i}, {j}] is {float(got[i, j]):.4g}, "
                           f"expected {float(want[i, j]):.4g}")
        return None


@register
class MaxPool(Check):
    """fn(image (H, W), size, stride) must equal F.max_pool2d (no padding)."""
    name, default_n, returns = "max_pool", 40, "a tensor"
    hint = "windows of `size` x `size` start every `stride` pixels; keep the largest value of each"
    formula = "output[i, j] = max of image[i*stride : i*stride+size, j*stride : j*stride+size]"

    def cases(self, seed, n):
        notes = torch.tensor(NOTES_POOL, dtype=torch.float32)
        cases = [{"image": notes, "size": 3, "stride": 1}, {"image": notes.clone(), "size": 2, "stride": 2}]
        gen = torch.Generator().manual_seed(seed)
        while len(cases) < n:
            size = int(torch.randint(1, 4, (1,), generator=gen))
            stride = int(torch.randint(1, 4, (1,), generator=gen))
            h, w = (size + int(v) for v in torch.randint(0, 7, (2,), generator=gen))
            cases.append({"image": torch.randn(h, w, generator=gen), "size": size, "stride": stride})
        return cases

    def run(self, answer, case):
        return answer(case["image"], case["size"], case["stride"])

    def reference(self, case):
        return F.max_pool2d(case["image"][None, None], case["size"], case["stride"])[0, 0]

    def compare(self, got, want, case):
        where = f"a {tuple(case['image'].shape)} image, size={case['size']}, stride={case['stride']}"
        if type(got) is not torch.Tensor or tuple(got.shape) != tuple(want.shape):
            shape = tuple(got.shape) if type(got) is torch.Tensor else describe_type(got)
            return Failure(f"for {where} the output should have shape {tuple(want.shape)}, you returned {shape}",
                           "count how many windows fit along each axis",
                           "O = floor((I - size) / stride) + 1 along each axis")
        if not torch.allclose(got.to(torch.float32), want):
            return Failure(f"wrong values for {where}: expected\n{want}\ngot\n{got}")
        return None


@register
class ReceptiveField(Check):
    """fn(num_layers, kernel_size) for stacked stride-1 convolutions, against cnnkit.conv.receptive_field."""
    name, default_n, returns = "receptive_field", 50, "an int"
    hint = "each stride-1 KxK layer widens the field by K-1 pixels"
    formula = "receptive field = num_layers * (K - 1) + 1"

    def cases(self, seed, n):
        rng = random.Random(seed)
        fixed = [(1, 3), (2, 3), (3, 3), (1, 5), (4, 7)]
        fixed += [(rng.randint(1, 20), rng.choice([1, 3, 5, 7])) for _ in range(n - len(fixed))]
        return [{"num_layers": layers, "kernel_size": k} for layers, k in fixed]

    def run(self, answer, case):
        return answer(case["num_layers"], case["kernel_size"])

    def reference(self, case):
        from torch import nn
        from cnnkit.conv import receptive_field
        k = case["kernel_size"]
        return receptive_field([nn.Conv2d(1, 1, k) for _ in range(case["num_layers"])])

    def compare(self, got, want, case):
        layers, k = case["num_layers"], case["kernel_size"]
        return _int_failure(got, want, f"{layers} stacked {k}x{k} convolutions (stride 1): you returned {{got!r}}, "
                                       f"the receptive field is {want}")
