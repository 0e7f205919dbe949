"""Checks of notebooks/01_convolutions.ipynb: output sizes, parameter counts, convolution, pooling.

See: notebooks/01_convolutions.ipynb
"""

from __future__ import annotations

import random

import torch
import torch.nn.functional as F

from cnnkit.check._core import Check, Failure, describe_type, number, random_cases, register, tensor_failure

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
        notes = {"image": torch.tensor(NOTES_IMAGE, dtype=torch.float32),
                 "kernel": torch.tensor(NOTES_KERNEL, dtype=torch.float32)}

        def random_case(gen):
            kh, kw = (int(v) for v in torch.randint(1, 5, (2,), generator=gen))
            h = kh + int(torch.randint(0, 6, (1,), generator=gen))
            w = kw + int(torch.randint(0, 6, (1,), generator=gen))
            return {"image": torch.randn(h, w, generator=gen), "kernel": torch.randn(kh, kw, generator=gen)}
        return random_cases(seed, n, random_case, fixed=[notes])

    def run(self, answer, case):
        got = answer(case["image"], case["kernel"])
        if type(got).__module__ == "numpy" and type(got).__name__ == "ndarray":
            got = torch.from_numpy(got.copy())      # a NumPy array is a fine answer too
        return got

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
        if not (got.is_floating_point() or got.is_complex()):
            return Failure(f"for a {img} image and a {ker} kernel your output tensor has dtype {got.dtype}: "
                           "every sum you stored in it was rounded to an integer",
                           "your output tensor has an integer dtype: build it as float, "
                           "e.g. torch.zeros(out_h, out_w) (float32 by default)")
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
        fixed = [{"image": notes, "size": 3, "stride": 1}, {"image": notes.clone(), "size": 2, "stride": 2}]

        def random_case(gen):
            size = int(torch.randint(1, 4, (1,), generator=gen))
            stride = int(torch.randint(1, 4, (1,), generator=gen))
            h, w = (size + int(v) for v in torch.randint(0, 7, (2,), generator=gen))
            return {"image": torch.randn(h, w, generator=gen), "size": size, "stride": stride}
        return random_cases(seed, n, random_case, fixed)

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
    hint = ("draw it in 1-D: one layer sees K pixels; how many more input pixels does one output of "
            "the next layer see?")
    formula = "each stride-1 KxK layer widens the field by K-1 pixels: receptive field = num_layers * (K - 1) + 1"

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


# ----------------------------------------------------------------------------
# Depthwise separable convolutions and the backward pass of a convolution (issues 16, 17)
# ----------------------------------------------------------------------------

@register
class SeparableParams(Check):
    """fn(in_channels, out_channels, kernel_size) = parameters of depthwise k x k + pointwise 1 x 1 (biases on)."""
    name, default_n, returns = "separable_params", 60, "an int"
    hint = ("count the two layers separately, as nn.Conv2d would: the depthwise layer has groups=in_channels, "
            "so each of its kernels sees ONE channel; the pointwise layer is an ordinary 1x1 convolution")
    formula = ("depthwise: in_channels kernels of k*k weights + in_channels biases = (k*k + 1) * in_channels; "
               "pointwise: (in_channels + 1) * out_channels; the answer is their sum")

    def cases(self, seed, n):
        rng = random.Random(seed)
        fixed = [(64, 128, 3), (32, 32, 3), (3, 16, 5), (1, 1, 1), (96, 24, 7)]
        fixed += [(rng.randint(1, 128), rng.randint(1, 128), rng.choice([1, 3, 5, 7])) for _ in range(n - len(fixed))]
        return [dict(zip(("in_channels", "out_channels", "kernel_size"), c)) for c in fixed]

    def run(self, answer, case):
        return answer(case["in_channels"], case["out_channels"], case["kernel_size"])

    def reference(self, case):
        c_in, c_out, k = case["in_channels"], case["out_channels"], case["kernel_size"]
        return (k * k + 1) * c_in + (c_in + 1) * c_out   # = nn.Conv2d(c_in, c_in, k, groups=c_in) + nn.Conv2d(c_in, c_out, 1)

    def compare(self, got, want, case):
        c_in, c_out, k = case["in_channels"], case["out_channels"], case["kernel_size"]
        value, failure = number(got, what="an int")
        if failure:
            return failure
        if value == want:
            return None
        standard = (k * k * c_in + 1) * c_out
        hint = self.hint
        if value == standard:
            hint = "that is the count of ONE standard k x k convolution; split it into depthwise + pointwise"
        elif value == k * k * c_in + c_in * c_out:
            hint = "close: both layers have biases (nn.Conv2d's default)"
        elif value == (k * k * c_in + 1) * c_in + (c_in + 1) * c_out:
            hint = "with groups=in_channels a depthwise kernel spans one channel, not all of them"
        return Failure(f"in_channels={c_in}, out_channels={c_out}, kernel_size={k}: you returned {value!r}; "
                       f"nn.Conv2d(groups=in_channels) + a 1x1 nn.Conv2d have {want} parameters", hint)


def _conv_backward_reference(x, weight, grad_out):
    """(grad_x, grad_weight) of sum(conv2d(x, weight) * grad_out), by torch.autograd in float64."""
    x = x.to(torch.float64).requires_grad_()
    weight = weight.to(torch.float64).requires_grad_()
    out = F.conv2d(x[None], weight)[0]                           # (C_out, H', W')
    return torch.autograd.grad(out, (x, weight), grad_out.to(torch.float64))


@register
class ConvBackward(Check):
    """fn(x (C_in, H, W), weight (C_out, C_in, K_h, K_w), grad_out (C_out, H', W')) -> (grad_x, grad_weight).

    Stride 1, no padding, no bias; compared with torch.autograd. The answer runs under
    torch.no_grad(), so it must compute the gradients itself.
    """
    name, default_n, returns = "conv_backward", 30, "a pair (grad_x, grad_weight)"
    hint = ("output (f, i, j) read the window x[:, i:i+K_h, j:j+K_w] with kernel weight[f]; the chain rule sends "
            "grad_out[f, i, j] back along exactly those products, and every output adds its share")
    formula = ("for every output position (i, j) and kernel f: "
               "grad_weight[f] += grad_out[f, i, j] * x[:, i:i+K_h, j:j+K_w]; "
               "grad_x[:, i:i+K_h, j:j+K_w] += grad_out[f, i, j] * weight[f]  (start both from zeros). "
               "Equivalently grad_weight = correlation of x with grad_out, and grad_x = 'full' convolution "
               "of grad_out with the kernel flipped in both axes")

    def cases(self, seed, n):
        image = torch.tensor(NOTES_IMAGE, dtype=torch.float64)[None]          # (1, 5, 5)
        kernel = torch.tensor(NOTES_KERNEL, dtype=torch.float64)[None, None]  # (1, 1, 3, 3)
        asym = torch.arange(6, dtype=torch.float64).reshape(1, 1, 2, 3)       # a kernel whose flip matters
        fixed = [
            {"x": image, "weight": kernel, "grad_out": torch.ones(1, 3, 3, dtype=torch.float64)},
            {"x": image.clone(), "weight": asym, "grad_out": torch.ones(1, 4, 3, dtype=torch.float64)},
        ]

        def random_case(gen):
            c_in, c_out, kh, kw = (int(v) for v in torch.randint(1, 4, (4,), generator=gen))
            h, w = (k + int(v) for k, v in zip((kh, kw), torch.randint(0, 5, (2,), generator=gen)))
            return {"x": torch.randn(c_in, h, w, generator=gen, dtype=torch.float64),
                    "weight": torch.randn(c_out, c_in, kh, kw, generator=gen, dtype=torch.float64),
                    "grad_out": torch.randn(c_out, h - kh + 1, w - kw + 1, generator=gen, dtype=torch.float64)}
        return random_cases(seed, n, random_case, fixed)

    def run(self, answer, case):
        with torch.no_grad():
            result = answer(case["x"], case["weight"], case["grad_out"])
        return tuple(result) if type(result) in (tuple, list) else result

    def reference(self, case):
        return _conv_backward_reference(case["x"], case["weight"], case["grad_out"])

    def compare(self, got, want, case):
        shapes = (f"x {tuple(case['x'].shape)}, weight {tuple(case['weight'].shape)}, "
                  f"grad_out {tuple(case['grad_out'].shape)}")
        if type(got) is not tuple or len(got) != 2:
            return Failure(f"expected a pair (grad_x, grad_weight), got {describe_type(got)}",
                           "return grad_x, grad_weight" if got is not None else "did you forget `return`?")
        x, weight, grad_out = case["x"], case["weight"], case["grad_out"]
        for what, value, expected in (("grad_weight", got[1], want[1]), ("grad_x", got[0], want[0])):
            failure = tensor_failure(value, expected, f"{what} ({shapes})", floating=True,
                                     hint="a gradient has the shape of what it is the gradient of, "
                                          "and is built in floating point: start from torch.zeros_like")
            values_differ = (type(value) is torch.Tensor and value.shape == expected.shape
                             and value.is_floating_point())
            if failure and values_differ:
                failure.hint = self._nudge(what, value.to(torch.float64), x, weight, grad_out)
            if failure:
                return failure
        return None

    @staticmethod
    def _nudge(what, value, x, weight, grad_out) -> str:
        """A hint aimed at the mistake the wrong gradient looks like."""
        flipped_x = _conv_backward_reference(x, weight.flip(-1, -2), grad_out)[0]
        if what == "grad_x" and torch.allclose(value, flipped_x, atol=1e-6):
            return ("your grad_x is what the kernel flipped upside down and left-right would give: "
                    "each output sends its gradient back to the pixels it READ, with the weight that read them")
        if what == "grad_weight" and torch.allclose(value, _conv_backward_reference(x, weight, grad_out)[1].flip(-1, -2),
                                                    atol=1e-6):
            return "your grad_weight is flipped: weight[f, c, u, v] multiplied x[c, i+u, j+v] for every (i, j)"
        return ("neighbouring windows overlap: a pixel read by several outputs collects gradient from each of them "
                "(+=, not =), and grad_weight sums over all output positions")
