"""Checks of notebooks/07_transfer_learning.ipynb: freezing, a new head, counting, layer-wise rates.

See: notebooks/07_transfer_learning.ipynb
"""

from __future__ import annotations

import random

import torch
from torch import nn

from cnnkit.check._core import Check, Failure, describe, number, register, seeded


class _Net(nn.Module):
    """Features, then a head called "fc" (as in ResNet)."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 6, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.fc = nn.Linear(6, 7)

    def forward(self, x):
        return self.fc(self.features(x))


class _Nested(_Net):
    """The head inside a Sequential, "classifier.2" (as in VGG)."""

    def __init__(self):
        super().__init__()
        del self.fc
        self.classifier = nn.Sequential(nn.Dropout(0.1), nn.Linear(6, 6), nn.Linear(6, 9))

    def forward(self, x):
        return self.classifier(self.features(x))


def _model(case) -> nn.Module:
    """The model a case names; small ones keep their heads where real models do."""
    with seeded(case.get("seed", 0)):
        kind = case["model"]
        if kind == "flat":                                                   # head "5"
            return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                                 nn.Flatten(), nn.Linear(4, 10))
        if kind == "net":
            return _Net()
        if kind == "nested":
            return _Nested()
        from cnnkit import models
        if kind == "resnet18":                                               # head "fc"
            return models.resnet18(num_classes=3)
        if kind == "efficientnet":                                           # head "_fc"
            return models.efficientnet_lite0(num_classes=case.get("num_classes", 1000))
        raise ValueError(f"unknown model {kind!r}")


SMALL = [("flat", "5"), ("net", "fc"), ("nested", "classifier.2")]


@register
class FreezeButHead(Check):
    """fn(model, head_name) freezes every parameter except those of model.get_submodule(head_name)."""
    name, default_n, returns = "freeze_but_head", 4, "nothing (it changes the model)"
    hint = "freeze everything first, then unfreeze the head"
    formula = "set requires_grad=False on all parameters, then True on the head's"

    def cases(self, seed, n):
        rng = random.Random(seed)
        cases = [{"model": m, "head": h} for m, h in SMALL] + [{"model": "resnet18", "head": "fc"}]   # 512*3 + 3
        cases += [dict(zip(("model", "head"), rng.choice(SMALL))) for _ in range(n - len(cases))]
        return [dict(case, seed=seed * 1000 + i) for i, case in enumerate(cases)]

    def run(self, answer, case):
        model = _model(case)
        for p in model.parameters():
            p.requires_grad_(True)
        answer(model, case["head"])
        return {name: bool(p.requires_grad) for name, p in model.named_parameters()}

    def reference(self, case):
        model = _model(case)
        head = {id(p) for p in model.get_submodule(case["head"]).parameters()}
        return {name: id(p) in head for name, p in model.named_parameters()}

    def compare(self, got, want, case):
        if type(got) is not dict or sorted(got) != sorted(want):
            return Failure(f"with head '{case['head']}' the model's parameters changed: do not replace layers here")
        for name, trainable in want.items():
            if got[name] != trainable:
                state = "still trainable" if got[name] else "frozen"
                return Failure(f"with head '{case['head']}', parameter '{name}' is {state}")
        return None


@register
class NewHead(Check):
    """fn(model, head_name, num_classes) replaces the Linear at head_name by a new
    Linear(in_features, num_classes) and returns the model; nothing else changes."""
    name, default_n, returns = "new_head", 7, "the model"
    hint = "find the parent module of the head and put a fresh nn.Linear in its place"
    formula = "setattr(parent, last_name, nn.Linear(old.in_features, num_classes))"

    def cases(self, seed, n):
        cases = [{"model": m, "head": h, "num_classes": k, "input": 8} for m, h in SMALL for k in (2, 5)]
        cases.append({"model": "efficientnet", "head": "_fc", "num_classes": 2, "input": 32})
        rng = random.Random(seed)
        while len(cases) < n:
            m, h = rng.choice(SMALL)
            cases.append({"model": m, "head": h, "num_classes": rng.randint(1, 12), "input": 8})
        return [dict(case, seed=seed * 1000 + i) for i, case in enumerate(cases)]

    def run(self, answer, case):
        model, head = _model(case), case["head"]
        for p in model.parameters():
            p.requires_grad_(False)                         # as after freezing
        old = model.get_submodule(head)
        others = {name: m for name, m in model.named_modules() if name and not name.startswith(head)}
        got = answer(model, head, case["num_classes"])
        new = model.get_submodule(head)
        described = {"returned_model": got is model, "replaced": new is not old, "linear": isinstance(new, nn.Linear),
                     "changed": [name for name, m in others.items() if model.get_submodule(name) is not m]}
        if isinstance(new, nn.Linear):
            described.update(features=[new.in_features, new.out_features],
                             trainable=all(p.requires_grad for p in new.parameters()))
            with torch.no_grad():
                described["out_shape"] = list(model(torch.randn(2, 3, case["input"], case["input"])).shape)
        return described

    def reference(self, case):
        return {"features": [_model(case).get_submodule(case["head"]).in_features, case["num_classes"]],
                "out_shape": [2, case["num_classes"]]}

    def compare(self, got, want, case):
        head = case["head"]
        if got["returned_model"] is not True:
            return Failure("return the model itself (changed in place)", "end with `return model`")
        if got["replaced"] is not True or got["linear"] is not True:
            return Failure(f"model.{head} is still the old layer (or not an nn.Linear)")
        if got["features"] != want["features"]:
            (i, o), (wi, wo) = got["features"], want["features"]
            return Failure(f"the new head maps {i} -> {o}; expected {wi} -> {wo}",
                           "keep in_features of the old head, out_features = num_classes")
        if got["trainable"] is not True:
            return Failure("the new head is frozen", "a fresh nn.Linear is trainable; do not freeze it")
        if got["changed"]:
            return Failure(f"other layers were replaced too: {got['changed']}", "replace only the head")
        if got["out_shape"] != want["out_shape"]:
            return Failure(f"the model now outputs {tuple(got['out_shape'])}, expected {tuple(want['out_shape'])}")
        return None


def _masked_model(case) -> nn.Module:
    """The case's model with requires_grad set by its mask: random per parameter, or the head only."""
    model = _model(case)
    if case["mask"] == "head-only":
        for p in model.parameters():
            p.requires_grad_(False)
        for p in model.get_submodule(case["head"]).parameters():
            p.requires_grad_(True)
    else:
        rng = random.Random(case["mask"])
        for p in model.parameters():
            p.requires_grad_(rng.random() < 0.5)
    return model


@register
class CountTrainable(Check):
    """fn(model) -> number of parameters (numbers, not tensors) with requires_grad=True."""
    name, default_n, returns = "count_trainable", 31, "an int"
    hint = "sum p.numel() over model.parameters() with p.requires_grad"

    def cases(self, seed, n):
        rng = random.Random(seed)
        cases = [{"model": "efficientnet", "num_classes": 2, "head": "_fc", "mask": "head-only"}]  # the notes' recipe
        while len(cases) < n:
            m, h = SMALL[(len(cases) - 1) % 3]
            cases.append({"model": m, "head": h, "mask": rng.randrange(2 ** 30)})
        return cases

    def run(self, answer, case):
        return answer(_masked_model(case))

    def reference(self, case):
        model = _masked_model(case)
        return {"trainable": sum(p.numel() for p in model.parameters() if p.requires_grad),
                "total": sum(p.numel() for p in model.parameters())}

    def compare(self, got, want, case):
        value, failure = number(got, what="an int")
        if failure:
            return failure
        if value != want["trainable"]:
            return Failure(f"you counted {value!r}; {want['trainable']} of the model's {want['total']} parameters "
                           "are trainable",
                           "count only the parameters with p.requires_grad" if value == want["total"] else self.hint)
        return None


@register
class LrGroups(Check):
    """fn(layers, head_lr, decay) -> [{"params": [...], "lr": ...}] per layer (input first), the
    last layer at head_lr and each earlier one `decay` times the next."""
    name, default_n, returns = "lr_groups", 4, "a list of dicts"
    hint = "the last layer (the head) gets head_lr; each step towards the input multiplies by decay"
    formula = "lr of layer i (of L, from 0) = head_lr * decay ** (L - 1 - i); params = list(layer.parameters())"

    def cases(self, seed, n):
        rng = random.Random(seed)
        cases = [((3, 4, 5, 2), 1e-3, 0.5), ((2, 2), 0.01, 0.1), ((4, 3, 3, 3, 3, 2), 3e-4, 0.3), ((2, 2, 2), 1.0, 0.5)]
        cases += [(tuple(rng.randint(1, 5) for _ in range(rng.randint(2, 6))), rng.choice([1e-3, 0.01, 0.1]),
                   rng.choice([0.1, 0.3, 0.5])) for _ in range(n - len(cases))]
        return [{"sizes": list(s), "head_lr": lr, "decay": d, "seed": seed * 1000 + i}
                for i, (s, lr, d) in enumerate(cases)]

    def run(self, answer, case):
        sizes = case["sizes"]
        with seeded(case["seed"]):
            layers = [nn.Linear(a, b) for a, b in zip(sizes, sizes[1:])]
        where = {id(p): [i, name] for i, layer in enumerate(layers) for name, p in layer.named_parameters()}
        got = answer(layers, case["head_lr"], case["decay"])
        if type(got) is not list or not all(type(g) is dict for g in got):
            return {"groups": describe(got)}
        groups = [{"params": sorted(where.get(id(p), [-1, "other"]) for p in g.get("params", [])),
                   "lr": g.get("lr") if type(g.get("lr")) in (int, float) else describe(g.get("lr"))} for g in got]
        try:
            torch.optim.SGD(got, lr=1.0)                    # the groups must be usable as they are
            usable = True
        except Exception as exc:
            usable = f"{type(exc).__name__}: {exc}"[:200]
        return {"groups": groups, "usable": usable}

    def reference(self, case):
        layers = len(case["sizes"]) - 1
        return [{"params": [[i, "bias"], [i, "weight"]], "lr": case["head_lr"] * case["decay"] ** (layers - 1 - i)}
                for i in range(layers)]

    def compare(self, got, want, case):
        if type(got["groups"]) is not list or len(got["groups"]) != len(want):
            return Failure(f"for {len(want)} layers expected a list of {len(want)} dicts, got {describe(got['groups'])}")
        head_lr, decay = case["head_lr"], case["decay"]
        for i, (group, right) in enumerate(zip(got["groups"], want)):
            if group["params"] != right["params"]:
                return Failure(f"group {i} does not hold exactly the parameters of layer {i}",
                               "{'params': list(layer.parameters()), 'lr': ...}")
            lr = group["lr"]
            if type(lr) not in (int, float) or abs(lr - right["lr"]) > 1e-12 * max(1, right["lr"]):
                return Failure(f"layer {i} of {len(want)} (head_lr={head_lr}, decay={decay}) got lr {lr!r}, "
                               f"expected {right['lr']:.3g}")
        if got["usable"] is not True:
            return Failure(f"torch.optim.SGD cannot use these groups: {got['usable']}")
        return None
