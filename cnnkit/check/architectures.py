"""Checks of notebooks/04_architectures.ipynb: top-k accuracy, Inception and residual blocks, head sizes.

See: notebooks/04_architectures.ipynb
"""

from __future__ import annotations

import random

import torch
from torch import nn

from cnnkit.check._core import Check, Failure, describe_type, number, random_cases, register, seeded


@register
class TopkAccuracy(Check):
    """fn(logits (N, C), targets (N,), k) -> fraction of rows whose target is among the k largest."""
    name, default_n, returns = "topk_accuracy", 30, "a float"
    hint = "find the k best classes of each row; a row counts if its target is among them; return the fraction as a float"
    formula = ("logits.topk(k, dim=1).indices gives the k best classes of each row; "
               "a row counts if its target is among them; return the fraction as a float")

    def cases(self, seed, n):
        def random_case(gen):
            rows, classes = int(torch.randint(1, 50, (1,), generator=gen)), int(torch.randint(2, 20, (1,), generator=gen))
            k = int(torch.randint(1, classes + 1, (1,), generator=gen))
            return {"logits": torch.randn(rows, classes, generator=gen),
                    "targets": torch.randint(0, classes, (rows,), generator=gen), "k": k}
        return random_cases(seed, n, random_case)

    def run(self, answer, case):
        return answer(case["logits"], case["targets"], case["k"])

    def reference(self, case):
        logits, targets = case["logits"], case["targets"]
        return (logits.topk(case["k"], dim=1).indices == targets[:, None]).any(dim=1).float().mean().item()

    def compare(self, got, want, case):
        value, failure = number(got, what="a float")
        rows, classes = case["logits"].shape
        if failure or not abs(value - want) <= 1e-6:
            shown = describe_type(got) if failure else repr(value)
            return Failure(f"for {rows} rows, {classes} classes and k={case['k']} you returned {shown}, "
                           f"expected {want:.4f}")
        return None


@register
class InceptionBlock(Check):
    """fn(c_in, c1, c3_reduce, c3, c5_reduce, c5, pool_proj) -> an nn.Module with the four branches."""
    name, default_n, returns = "inception_block", 4, "an nn.Module"
    hint = "four branches side by side, each keeping H x W, joined along the channels"
    formula = ("pad each branch so it keeps H x W (3x3: padding 1, 5x5: padding 2, max pool: "
               "stride 1, padding 1), then torch.cat along dim=1")

    def cases(self, seed, n):
        rng = random.Random(seed)
        fixed = [((192, 64, 96, 128, 16, 32, 32), 9, 2), ((16, 4, 8, 8, 2, 4, 4), 9, 2),
                 ((32, 8, 4, 16, 4, 8, 2), 9, 2), ((480, 192, 96, 208, 16, 48, 64), 14, 1)]   # GoogLeNet's 4a
        fixed += [(tuple(rng.randint(1, 16) for _ in range(7)), rng.randint(3, 12), rng.randint(1, 3))
                  for _ in range(n - len(fixed))]
        return [{"widths": list(w), "size": size, "batch": batch, "seed": i} for i, (w, size, batch) in enumerate(fixed)]

    def run(self, answer, case):
        widths, size = case["widths"], case["size"]
        with seeded(case["seed"]):
            block = answer(*widths)
            if not isinstance(block, nn.Module):
                return {"module": type(block).__name__}
            out = block(torch.randn(case["batch"], widths[0], size, size))
        convs = sorted(list(m.weight.shape) for m in block.modules() if isinstance(m, nn.Conv2d))
        return {"module": True, "out_shape": list(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__,
                "convs": convs}

    def reference(self, case):
        from cnnkit.models import Inception
        w = case["widths"]
        convs = sorted(list(m.weight.shape) for m in Inception(*w, five="5x5").modules() if isinstance(m, nn.Conv2d))
        return {"out_shape": [case["batch"], w[1] + w[3] + w[5] + w[6], case["size"], case["size"]], "convs": convs}

    def compare(self, got, want, case):
        widths, size, batch = tuple(case["widths"]), case["size"], case["batch"]
        if got["module"] is not True:
            return Failure(f"expected an nn.Module, got {got['module']}", "return the block you built")
        if got["out_shape"] != want["out_shape"]:
            return Failure(f"for widths {widths} and a ({batch}, {widths[0]}, {size}, {size}) input the output should be "
                           f"{tuple(want['out_shape'])}, got {got['out_shape']}", self.hint, self.formula)
        if got["convs"] != want["convs"]:
            shapes = lambda convs: [tuple(c) for c in convs]                         # noqa: E731
            return Failure(f"for widths {widths} the convolution weights have shapes {shapes(got['convs'])}, "
                           f"an Inception block has {shapes(want['convs'])}",
                           "branches: 1x1 | 1x1 -> 3x3 | 1x1 -> 5x5 | 3x3 max pool -> 1x1")
        return None


@register
class ResidualBlock(Check):
    """cls(channels) -> a basic residual block: relu(bn2(conv2(relu(bn1(conv1(x))))) + x)."""
    name, default_n, returns = "residual_block", 3, "a description of the block"
    expects = "an nn.Module class"
    hint = "conv3x3 -> BN -> ReLU -> conv3x3 -> BN, plus the shortcut, then the final ReLU"
    formula = "out = relu(bn2(conv2(relu(bn1(conv1(x))))) + x)"

    def accepts(self, answer):
        return isinstance(answer, type) and issubclass(answer, nn.Module)

    def cases(self, seed, n):
        rng = random.Random(seed)
        channels = [4, 16, 64] + [rng.randint(1, 32) for _ in range(n - 3)]
        return [{"channels": c, "seed": seed * 1000 + i} for i, c in enumerate(channels)]

    def _input(self, case):
        with seeded(case["seed"]):
            return torch.randn(3, case["channels"], 8, 8)

    def run(self, answer, case):
        c, x = case["channels"], self._input(case)
        with seeded(case["seed"]):
            block = answer(c)
            convs = [m for m in block.modules() if isinstance(m, nn.Conv2d)]
            bns = [m for m in block.modules() if isinstance(m, nn.BatchNorm2d)]
            described = {"convs": [list(m.weight.shape) for m in convs], "bns": len(bns),
                         "params": sum(p.numel() for p in block.parameters())}
            out = block(x)
            described["out_shape"] = list(out.shape)
            with torch.no_grad():                    # with the residual branch silenced, out = relu(x)
                for bn in bns:
                    bn.weight.zero_()
                    bn.bias.zero_()
                described["silenced"] = block(x)
        return described

    def reference(self, case):
        c = case["channels"]
        return {"convs": [[c, c, 3, 3]] * 2, "bns": 2, "params": 2 * 9 * c * c + 4 * c,
                "out_shape": [3, c, 8, 8], "silenced": torch.relu(self._input(case))}

    def compare(self, got, want, case):
        c = case["channels"]
        if got["convs"] != want["convs"] or got["bns"] != 2:
            return Failure(f"expected two {c}->{c} 3x3 convolutions and two BatchNorm2d, found "
                           f"{[tuple(s) for s in got['convs']]} and {got['bns']} batch norms")
        if got["params"] != want["params"]:
            return Failure(f"ResidualBlock({c}) has {got['params']} parameters, expected {want['params']} "
                           "(two 3x3 convolutions without bias and two batch norms)",
                           "a convolution followed by batch norm needs no bias: nn.Conv2d(..., bias=False)")
        if got["out_shape"] != want["out_shape"]:
            return Failure(f"output shape {tuple(got['out_shape'])} differs from the input's {tuple(want['out_shape'])}",
                           "use padding=1 in the 3x3 convolutions")
        silenced = got["silenced"]
        if type(silenced) is not torch.Tensor or silenced.shape != want["silenced"].shape or \
                not torch.allclose(silenced, want["silenced"], atol=1e-6):
            if type(silenced) is torch.Tensor and (silenced < 0).any():
                return Failure("the output has negative values: the final ReLU is missing", "out = relu(F(x) + x)")
            return Failure("with the convolution branch switched off the block should return relu(x); "
                           "the shortcut is missing or misplaced", "add x before the final ReLU",
                           "out = relu(F(x) + x): add x before the final ReLU")
        return None


def _build(spec: list) -> nn.Sequential:
    """An nn.Sequential from a plain description: ["conv", c_in, c_out, k, stride, padding], ["maxpool", k], ..."""
    layers = []
    for kind, *args in spec:
        if kind == "conv":
            c_in, c_out, k, stride, padding = args
            layers.append(nn.Conv2d(c_in, c_out, k, stride=stride, padding=padding))
        elif kind == "maxpool":
            layers.append(nn.MaxPool2d(args[0]))
        elif kind == "relu":
            layers.append(nn.ReLU())
        elif kind == "gap":
            layers.append(nn.AdaptiveAvgPool2d(1))
    return nn.Sequential(*layers)


def _random_features(rng: random.Random, c: int, size: int) -> list:
    spec = []
    for _ in range(rng.randint(1, 4)):
        if rng.random() < 0.6 or size < 2:
            k = rng.choice([1, 3, 5])
            stride, padding = rng.randint(1, 2), rng.randint(0, k // 2)
            if size + 2 * padding < k:
                continue
            c_out = rng.randint(1, 12)
            spec.append(["conv", c, c_out, k, stride, padding])
            c, size = c_out, (size + 2 * padding - k) // stride + 1
        else:
            spec.append(["maxpool", 2])
            size //= 2
        if rng.random() < 0.3:
            spec.append(["relu"])
    return spec


@register
class HeadInFeatures(Check):
    """fn(features, input_size) -> in_features the first Linear after Flatten needs."""
    name, default_n, returns = "head_in_features", 5, "an int"
    hint = "run the features once on torch.zeros(input_size) and read the shape"

    def cases(self, seed, n):
        rng = random.Random(seed)
        fixed = [([["conv", 1, 6, 5, 1, 0], ["maxpool", 2], ["conv", 6, 16, 5, 1, 0], ["maxpool", 2]], [1, 1, 32, 32]),
                 ([["conv", 3, 8, 3, 1, 1], ["maxpool", 2]], [1, 3, 64, 48]),
                 ([["conv", 3, 4, 7, 2, 3], ["relu"], ["conv", 4, 10, 3, 2, 0]], [2, 3, 50, 50]),
                 ([["conv", 1, 5, 3, 1, 0], ["gap"]], [1, 1, 17, 23]),
                 ([["conv", 3, 2, 3, 1, 0], ["maxpool", 2]], [1, 3, 10, 10])]
        while len(fixed) < n:
            c, size = rng.randint(1, 4), rng.randint(8, 40)
            fixed.append((_random_features(rng, c, size), [rng.randint(1, 3), c, size, size]))
        return [{"features": spec, "input_size": size, "seed": i} for i, (spec, size) in enumerate(fixed)]

    def run(self, answer, case):
        with seeded(case["seed"]):
            return answer(_build(case["features"]), tuple(case["input_size"]))

    def reference(self, case):
        with torch.no_grad():
            return _build(case["features"])(torch.zeros(case["input_size"])).flatten(1).shape[1]

    def compare(self, got, want, case):
        value, failure = number(got, what="an int")
        if failure:
            return failure
        if value != want:
            return Failure(f"for input {tuple(case['input_size'])} and features {_build(case['features'])} you "
                           f"returned {value!r}, Flatten produces {want} numbers")
        return None


# --- issue 17: build a network from a table of layers ---------------------------------------

_ROW_KINDS = ("conv", "bn", "relu", "maxpool", "gap", "fc")


def _reference_net(table, in_shape) -> nn.Sequential:
    """The network a table describes (the rules are in notebooks/04_architectures.ipynb, exercise 5)."""
    layers, (c, h, w), flat = [], in_shape, False
    for k, row in enumerate(table):
        kind = row[0]
        if kind == "conv":
            _, out, size, stride = row
            bias = not (k + 1 < len(table) and table[k + 1][0] == "bn")   # BN's beta replaces the bias
            layers.append(nn.Conv2d(c, out, size, stride=stride, padding=size // 2, bias=bias))
            c, h, w = out, (h + 2 * (size // 2) - size) // stride + 1, (w + 2 * (size // 2) - size) // stride + 1
        elif kind == "bn":
            layers.append(nn.BatchNorm2d(c))
        elif kind == "relu":
            layers.append(nn.ReLU())
        elif kind == "maxpool":
            layers.append(nn.MaxPool2d(row[1]))
            h, w = h // row[1], w // row[1]
        elif kind == "gap":
            layers += [nn.AdaptiveAvgPool2d(1)]
            h = w = 1
        elif kind == "fc":
            if not flat:
                layers.append(nn.Flatten())
                c, flat = c * h * w, True
            layers.append(nn.Linear(c, row[1]))
            c = row[1]
    return nn.Sequential(*layers)


def _random_table(rng: random.Random) -> tuple[list, list]:
    in_shape = [rng.choice([1, 3]), rng.choice([16, 20, 28, 32]), 0]
    in_shape[2] = in_shape[1] if rng.random() < 0.7 else rng.choice([16, 24, 30])
    table, size = [], min(in_shape[1:])
    for _ in range(rng.randint(1, 3)):
        for _ in range(rng.randint(1, 2)):
            k, stride = rng.choice([1, 3, 5]), (2 if size >= 8 and rng.random() < 0.3 else 1)
            table.append(["conv", rng.choice([4, 6, 8, 12, 16]), k, stride])
            size = (size + 2 * (k // 2) - k) // stride + 1
            if rng.random() < 0.6:
                table.append(["bn"])
            table.append(["relu"])
        if size >= 4 and rng.random() < 0.7:
            table.append(["maxpool", 2])
            size //= 2
    table.append(["gap"] if rng.random() < 0.5 else ["fc", rng.choice([16, 32])])
    if table[-1][0] == "fc":
        table.append(["relu"])
    table.append(["fc", rng.choice([2, 5, 10])])
    return table, in_shape


@register
class NetFromTable(Check):
    """fn(table, in_shape) -> nn.Module; its parameter count and output shape must match the table's network."""
    name, default_n = "net_from_table", 25
    returns = "an nn.Module"
    hint = ("follow the shape row by row: a conv changes the channels (and with stride 2 halves H and W, "
            "padding k // 2 keeps them otherwise), a pool divides H and W, and an fc after a feature map "
            "reads C * H * W numbers; a conv followed by bn has no bias")
    formula = ("conv [out, k, s] -> nn.Conv2d(c, out, k, stride=s, padding=k // 2, bias=<next row is not bn>), "
               "H -> (H + 2 * (k // 2) - k) // s + 1; bn -> nn.BatchNorm2d(c); maxpool [p] -> nn.MaxPool2d(p), "
               "H -> H // p; gap -> nn.AdaptiveAvgPool2d(1); the first fc [n] -> nn.Flatten(), "
               "nn.Linear(c * H * W, n); later fc -> nn.Linear(previous n, n)")

    def cases(self, seed, n):
        rng = random.Random(seed)
        fixed = [([["conv", 8, 3, 1], ["relu"], ["fc", 10]], [1, 8, 8]),                    # flatten: 8*8*8
                 ([["conv", 6, 5, 1], ["bn"], ["relu"], ["maxpool", 2], ["gap"], ["fc", 3]], [3, 12, 12]),
                 ([["conv", 4, 3, 2], ["relu"], ["conv", 8, 3, 2], ["relu"], ["fc", 5]], [1, 15, 15]),  # odd sizes
                 ([["conv", 8, 3, 1], ["bn"], ["relu"], ["maxpool", 2], ["conv", 16, 3, 1], ["bn"], ["relu"],
                   ["maxpool", 2], ["fc", 32], ["relu"], ["fc", 10]], [1, 28, 28])]
        fixed += [_random_table(rng) for _ in range(max(0, n - len(fixed)))]
        return [{"table": t, "in_shape": s} for t, s in fixed]

    def describe_case(self, case):
        return f"table={case['table']}, in_shape={tuple(case['in_shape'])}"

    def run(self, answer, case):
        model = answer([list(row) for row in case["table"]], tuple(case["in_shape"]))
        if not isinstance(model, nn.Module):
            return {"type": type(model).__name__}
        model.eval()
        with torch.no_grad():
            out = model(torch.zeros(2, *case["in_shape"]))
        return {"type": "Module", "params": sum(p.numel() for p in model.parameters()),
                "shape": list(out.shape)}

    def reference(self, case):
        model = _reference_net(case["table"], tuple(case["in_shape"]))
        with torch.no_grad():
            shape = list(model.eval()(torch.zeros(2, *case["in_shape"])).shape)
        return {"type": "Module", "params": sum(p.numel() for p in model.parameters()), "shape": shape}

    def compare(self, got, want, case):
        if type(got) is not dict or got.get("type") != "Module":
            what = got.get("type") if type(got) is dict else type(got).__name__
            return Failure(f"expected {self.returns}, got {what}", "return the model, e.g. nn.Sequential(*layers)")
        where = f"for the table {case['table']} on input {tuple(case['in_shape'])}"
        if got.get("shape") != want["shape"]:
            return Failure(f"{where} the output has shape {got.get('shape')}, expected {want['shape']}")
        if got.get("params") != want["params"]:
            return Failure(f"{where} the model has {got.get('params'):,} parameters, the table's network "
                           f"{want['params']:,}")
        return None
