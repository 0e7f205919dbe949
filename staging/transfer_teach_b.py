

# ----------------------------------------------------------------------------
# 07, a fine-tuning setup, judged by which parameters change after one step
# ----------------------------------------------------------------------------

def _staged_net(width: int, stages: int, classes: int) -> nn.Sequential:
    """stem, block1..block{stages-2}, head: conv-BN-ReLU stages and a pooled linear head."""
    def block(c_in, c_out):
        return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU())
    layers = [("stem", block(3, width))] + [(f"block{i}", block(width, width)) for i in range(1, stages - 1)]
    layers.append(("head", nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, classes))))
    return nn.Sequential(OrderedDict(layers))


def _stage_of(key: str) -> str:
    return key.split(".", 1)[0]


def _fine_tune_behaviour(setup, case):
    """Build the case's network, let `setup` freeze it and build an optimizer, train one step in train mode;
    report which state_dict entries changed and each stage's learning rate in the optimizer."""
    with seeded(case["seed"]):
        model = _staged_net(case["width"], case["stages"], case["classes"])
        x, y = torch.randn(6, 3, 8, 8), torch.randint(0, case["classes"], (6,))
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    optimizer = setup(model, case["n_frozen"], case["head_lr"], case["decay"])
    if not isinstance(optimizer, torch.optim.Optimizer):
        return optimizer
    lr_of = {id(p): group["lr"] for group in optimizer.param_groups for p in group["params"]}
    stage_lr = {}
    for stage, module in model.named_children():
        lrs = {float(lr_of[id(p)]) for p in module.parameters() if id(p) in lr_of}
        stage_lr[stage] = lrs.pop() if len(lrs) == 1 else (None if not lrs else -1.0)
    model.train()
    optimizer.zero_grad()
    F.cross_entropy(model(x), y).backward()
    optimizer.step()
    after = model.state_dict()
    changed = {k: not torch.equal(before[k], after[k].detach()) for k in before
               if k in after and not k.endswith("num_batches_tracked")}
    return {"changed": changed, "stage_lr": stage_lr}


def reference_fine_tuning(model, n_frozen, head_lr, decay):
    """Freeze the first n_frozen stages (parameters and batch-norm statistics), SGD over the rest with
    learning rates growing towards the output (trusted side)."""
    from cnnkit.transfer import freeze, freeze_batchnorm
    stages = list(model.children())
    for stage in stages[:n_frozen]:
        freeze_batchnorm(freeze(stage))
    trainable = stages[n_frozen:]
    groups = [{"params": list(s.parameters()), "lr": head_lr * decay ** (len(trainable) - 1 - i)}
              for i, s in enumerate(trainable)]
    return torch.optim.SGD(groups, lr=head_lr, momentum=0.9)


@register
class FineTuning(Check):
    """fn(model, n_frozen, head_lr, decay) -> optimizer; judged by one training step: frozen stages (weights
    and batch-norm statistics) unchanged, every other stage changed, learning rates growing towards the head."""
    name, default_n, returns = "fine_tuning", 6, "a torch.optim optimizer"
    hint = ("after one optimizer step in train mode nothing in the first n_frozen stages may change: not the "
            "weights, and not the batch-norm running statistics either")
    formula = ("stages = list(model.children())\n"
               "for s in stages[:n_frozen]: cnnkit.transfer.freeze_batchnorm(cnnkit.transfer.freeze(s))\n"
               "rest = stages[n_frozen:]\n"
               "groups = [{'params': list(s.parameters()), 'lr': head_lr * decay ** (len(rest) - 1 - i)} "
               "for i, s in enumerate(rest)]\n"
               "return torch.optim.SGD(groups, lr=head_lr, momentum=0.9)")

    def cases(self, seed, n):
        rng = random.Random(seed)
        fixed = [dict(stages=4, n_frozen=2, head_lr=1e-2, decay=0.5),
                 dict(stages=5, n_frozen=4, head_lr=1e-3, decay=0.1),     # only the head trains
                 dict(stages=3, n_frozen=0, head_lr=1e-2, decay=1.0)]     # nothing frozen, one rate
        specs = fixed + [dict(stages=rng.randint(3, 6), n_frozen=None, head_lr=rng.choice([1e-3, 1e-2]),
                              decay=rng.choice([0.5, 0.25])) for _ in range(max(0, n - len(fixed)))]
        cases = []
        for i, spec in enumerate(specs[:n]):
            if spec["n_frozen"] is None:
                spec["n_frozen"] = rng.randint(1, spec["stages"] - 1)
            cases.append(dict(spec, seed=seed * 100 + i, width=4, classes=3))
        return cases

    def run(self, answer, case):
        return _fine_tune_behaviour(answer, case)

    def reference(self, case):
        return _fine_tune_behaviour(reference_fine_tuning, case)

    def compare(self, got, want, case):
        if type(got) is not dict:
            return Failure(f"expected {self.returns}, got {describe_type(got)}",
                           "did you forget `return optimizer`?" if got is None else
                           "build and return e.g. torch.optim.SGD(groups, lr=head_lr, momentum=0.9)")
        names = [f"stem"] + [f"block{i}" for i in range(1, case["stages"] - 1)] + ["head"]
        frozen, rest = names[:case["n_frozen"]], names[case["n_frozen"]:]
        changed = got.get("changed", {})
        for key, moved in changed.items():
            if _stage_of(key) in frozen and moved:
                stats = "running_" in key
                return Failure(f"'{key}' changed after one step, but stage '{_stage_of(key)}' should be frozen "
                               f"(n_frozen={case['n_frozen']})",
                               "requires_grad=False does not stop batch norm: in train mode it still updates its "
                               "running statistics (cnnkit.transfer.freeze_batchnorm)" if stats else
                               "set requires_grad=False on every parameter of the frozen stages")
        for key, moved in want["changed"].items():
            if _stage_of(key) in rest and moved and key in changed and not changed[key] and "running_" not in key:
                return Failure(f"'{key}' did not change after one step, but stage '{_stage_of(key)}' should train",
                               "put every parameter of the stages after the frozen ones into the optimizer, "
                               "with requires_grad=True")
        stage_lr = got.get("stage_lr", {})
        for stage in rest:
            a, b = stage_lr.get(stage), want["stage_lr"][stage]
            if a is None or a == -1.0 or abs(a - b) > 1e-12 + 1e-6 * b:
                return Failure(f"learning rate of stage '{stage}': got {'several' if a == -1.0 else a}, expected "
                               f"{b:.3g} (head_lr={case['head_lr']}, decay={case['decay']})",
                               "one parameter group per trainable stage: the head gets head_lr, each stage "
                               "below `decay` times the rate of the stage above it")
        return None
