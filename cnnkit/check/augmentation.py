"""Checks of notebooks/06_augmentation.ipynb: label-safe augmentation, a leak-free split, flip TTA, ten crops.

See: notebooks/06_augmentation.ipynb
"""

from __future__ import annotations

import random

import torch
import torch.nn.functional as F
from torch import nn

from cnnkit.check._core import Check, Failure, describe, describe_type, number, register, seeded


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


@register
class DigitAugmentation(Check):
    """fn() -> a transform for (1, 28, 28) digit tensors that changes them but keeps the label:
    no draw may look more like the mirrored, upside-down or half-turned digit than like the digit."""
    name, default_n, returns = "digit_augmentation", 60, "transformed images"
    hint = "no flips for digits, and keep rotations small (about 15 degrees)"

    def cases(self, seed, n):
        return [{"trials": n, "seed": seed}]            # one case: n draws of one transform

    def size(self, cases):
        return sum(case["trials"] for case in cases)

    def run(self, answer, case):
        transform = answer()
        if not callable(transform):
            return {"callable": type(transform).__name__}
        outs = []
        with seeded(case["seed"]):
            for t in range(case["trials"]):
                out = transform(_asymmetric_digit(case["seed"] + t))
                outs.append(out if isinstance(out, torch.Tensor) else type(out).__name__)
        return {"callable": True, "outs": outs}

    def reference(self, case):
        return [_asymmetric_digit(case["seed"] + t) for t in range(case["trials"])]

    def compare(self, got, want, case):
        if got["callable"] is not True:
            return Failure(f"fn() returned {got['callable']}, not a transform",
                           "return a torchvision.transforms.v2 transform, e.g. v2.Compose([...])")
        changed = 0
        for t, (out, image) in enumerate(zip(got["outs"], want)):
            if type(out) is not torch.Tensor or out.shape != (1, 28, 28) or not out.is_floating_point():
                shown = f"{describe(out)} {out.dtype}" if type(out) is torch.Tensor else describe_type(out)
                return Failure(f"the transform returned {shown}; expected a float tensor (1, 28, 28)",
                               "keep the size: crops must be padded back (RandomCrop(28, padding=2)) "
                               "or use RandomAffine(translate=...)")
            changed += not torch.allclose(out, image, atol=1e-3)
            own = _best_corr(out, image)
            for name, other in (("mirrored left-right", image.flip(-1)), ("upside down", image.flip(-2)),
                                ("turned by 180 degrees", image.flip(-1, -2))):
                if _best_corr(out, other) >= own:
                    return Failure(f"draw {t + 1} looks more like the digit {name} than like "
                                   "the digit itself: that can change the label (a 6 turned over is a 9)")
        if len(got["outs"]) != len(want) or changed < len(want) // 2:
            return Failure(f"only {changed} of {len(want)} draws changed the image at all",
                           "augmentation must make new views: add small rotations, shifts or scalings")
        return None


def _split_data(case):
    g = torch.Generator().manual_seed(case["seed"])
    n = case["n"]
    images = torch.rand(n, 3, 6, 6, generator=g)
    images[:, 0, 0, 0] = torch.arange(n) / n                    # a tag to find each image again
    return images, torch.randint(0, 3, (n,), generator=g)


def _augment(x):
    return x + 10.0                                             # unmistakable


@register
class SplitWithoutLeak(Check):
    """fn(images, targets, n_val, transform) -> (train_set, val_set): disjoint, all images used,
    `transform` on training items only, validation items exactly the stored images."""
    name, default_n, returns = "split_without_leak", 4, "a pair of datasets"
    hint = "split the indices first, then build two datasets: the transform goes to the training one only"

    def cases(self, seed, n):
        rng = random.Random(seed)
        fixed = [(40, 10), (25, 5), (12, 11), (250, 50)]
        fixed += [(size, rng.randint(1, size - 1)) for size in (rng.randint(2, 60) for _ in range(n - len(fixed)))]
        return [{"n": size, "n_val": n_val, "seed": seed * 1000 + i} for i, (size, n_val) in enumerate(fixed)]

    def run(self, answer, case):
        images, targets = _split_data(case)
        got = answer(images, targets, case["n_val"], _augment)
        if not (isinstance(got, (tuple, list)) and len(got) == 2):
            return {"pair": type(got).__name__}
        described = {"pair": True}
        for name, dataset in zip(("train", "val"), got):
            described[name] = [list(dataset[i]) for i in range(len(dataset))]
        return described

    def reference(self, case):
        return _split_data(case)

    def compare(self, got, want, case):
        images, targets = want
        n, n_val = case["n"], case["n_val"]
        if got["pair"] is not True:
            return Failure(f"expected a pair (train_set, val_set), got {got['pair']}")
        if len(got["train"]) != n - n_val or len(got["val"]) != n_val:
            return Failure(f"for {n} images and n_val={n_val} the sizes are {len(got['train'])} and "
                           f"{len(got['val'])}; expected {n - n_val} and {n_val}")
        tags = {}
        for name, items, shifted in (("validation", got["val"], False), ("training", got["train"], True)):
            for i, (x, y) in enumerate(items):
                if type(x) is not torch.Tensor or x.shape != images[0].shape:
                    return Failure(f"{name} item {i} is {describe_type(x)}, not one of the given images")
                if shifted and not bool((x >= 9.0).all()):
                    return Failure(f"training item {i} was not passed through the transform",
                                   "give the training set the transform (that is where augmentation belongs)")
                if not shifted and bool((x >= 9.0).any()):
                    return Failure(f"validation item {i} went through the training transform: the leak is still there",
                                   "build the validation set from the images with no transform, not from a "
                                   "random_split of one augmented dataset")
                base = x - 10.0 if shifted else x
                k = int(round(float(base[0, 0, 0]) * n))
                if not (0 <= k < n and torch.allclose(base, images[k], atol=1e-5)):
                    return Failure(f"{name} item {i} is not one of the given images")
                label, failure = number(y, what="an int label")
                if failure or label != int(targets[k]):
                    return Failure(f"{name} item {i} has label {describe(y)}, its image has {int(targets[k])}")
                tags.setdefault(k, []).append(name)
        if sorted(tags) != list(range(n)) or any(len(v) != 1 for v in tags.values()):
            return Failure("the two sets overlap or miss images",
                           "split one random permutation of the indices: the last n_val for validation")
        return None


def _tta_setup(case) -> tuple[nn.Module, torch.Tensor]:
    n, c, size = case["n"], case["channels"], case["size"]
    with seeded(case["seed"]):
        model = nn.Sequential(nn.Conv2d(c, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Dropout(0.3),
                              nn.Flatten(), nn.Linear(4 * (size - 2) ** 2, 5))
        model(torch.randn(16, c, size, size))                 # running statistics, away from init
        model.train()
        return model, torch.randn(n, c, size, size)


@register
class FlipTTA(Check):
    """fn(model, x) -> the mean of softmax(model(x)) and softmax(model(x flipped left-right)), in eval mode."""
    name, default_n, returns = "flip_tta", 4, "a tensor of probabilities"
    hint = "predict on x and on x flipped left-right (the last axis), in eval mode, and average the probabilities"
    formula = ("eval mode (model.eval()), softmax(dim=1) of each view, then the mean; "
               "average probabilities, not logits")

    def cases(self, seed, n):
        rng = random.Random(seed)
        fixed = [(4, 3, 8), (1, 1, 8), (7, 3, 8), (8, 3, 28)]
        fixed += [(rng.randint(1, 8), rng.randint(1, 3), rng.randint(4, 12)) for _ in range(n - len(fixed))]
        return [{"n": b, "channels": c, "size": s, "seed": seed * 1000 + i} for i, (b, c, s) in enumerate(fixed)]

    def run(self, answer, case):
        return answer(*_tta_setup(case))

    def reference(self, case):
        from cnnkit import tta
        model, x = _tta_setup(case)
        return {"tta": tta.predict(model, x, ["identity", "hflip"]), "plain": tta.predict(model, x)}

    def compare(self, got, want, case):
        shape = (case["n"], case["channels"], case["size"], case["size"])
        if type(got) is not torch.Tensor or got.shape != want["tta"].shape:
            return Failure(f"for x of shape {shape} you returned {describe_type(got)}; "
                           f"expected probabilities of shape {tuple(want['tta'].shape)}")
        if torch.allclose(got, want["plain"], atol=1e-5):
            return Failure("your answer equals the prediction on the original images alone",
                           "add the prediction on x.flip(-1) (the last axis is the width) and average")
        if not torch.allclose(got, want["tta"], atol=1e-5):
            return Failure("the probabilities differ from the average of the two views' softmax",
                           "eval mode (model.eval()), softmax of each view, then the mean", self.formula)
        return None


@register
class TenCropBoxes(Check):
    """fn(height, width, size) -> the ten AlexNet views as (top, left, flipped) triples, any order."""
    name, default_n, returns = "ten_crop_boxes", 200, "a list of (top, left, flipped) triples"
    hint = "four corners and the centre, each with and without a flip: ten triples"
    formula = ("four corners (0 or H-size, 0 or W-size) and the centre ((H-size)//2, "
               "(W-size)//2), each with flipped False and True: ten triples")

    def cases(self, seed, n):
        rng = random.Random(seed)
        fixed = [(256, 256, 224), (36, 36, 32), (5, 7, 3), (10, 10, 10), (300, 451, 224)]
        while len(fixed) < n:
            size = rng.randint(1, 30)
            fixed.append((size + rng.randint(0, 12), size + rng.randint(0, 12), size))
        return [{"height": h, "width": w, "size": s} for h, w, s in fixed]

    def run(self, answer, case):
        return answer(case["height"], case["width"], case["size"])

    def reference(self, case):
        h, w, size = case["height"], case["width"], case["size"]
        corners = [(0, 0), (0, w - size), (h - size, 0), (h - size, w - size)]
        centres = {((h - size) // 2, (w - size) // 2), ((h - size + 1) // 2, (w - size + 1) // 2),
                   ((h - size) // 2, (w - size + 1) // 2), ((h - size + 1) // 2, (w - size) // 2)}
        # Either rounding of an odd margin is a centre.
        return [sorted((t, l, f) for t, l in corners + [centre] for f in (False, True)) for centre in sorted(centres)]

    def compare(self, got, want, case):
        h, w, size = case["height"], case["width"], case["size"]
        triples = []
        for item in got if type(got) in (list, tuple) else [None]:
            t, l, f = (item if type(item) in (list, tuple) and len(item) == 3 else (None, None, None))
            (t, bad_t), (l, bad_l) = number(t, what="an int"), number(l, what="an int")
            if bad_t or bad_l or type(f) is not bool and not (type(f) is int and f in (0, 1)) \
                    or t != int(t) or l != int(l):
                return Failure(f"for ({h}, {w}, {size}) you returned {describe(got)}; "
                               "expected a list of (top, left, flipped) triples")
            triples.append((int(t), int(l), bool(f)))
        if sorted(triples) not in want:
            return Failure(f"for an image {h}x{w} and crops of {size} you returned {sorted(triples)}")
        return None


# ----------------------------------------------------------------------------
# 06, an augmentation pipeline that keeps a box label valid
# ----------------------------------------------------------------------------

def _object_image(seed: int, height: int, width: int, channels: int) -> tuple[torch.Tensor, list[int]]:
    """A dark image with one bright, left-right asymmetric object (an 'L' with a dot) at least 5 px
    from every edge; returns (image (C, H, W), box [x0, y0, x1, y1]), x1 and y1 exclusive."""
    rng = random.Random(seed)
    h, w = rng.randint(6, min(12, height - 10)), rng.randint(6, min(12, width - 10))
    y0, x0 = rng.randint(5, height - 5 - h), rng.randint(5, width - 5 - w)
    image = torch.zeros(channels, height, width)
    image[:, y0:y0 + h, x0:x0 + 2] = 1.0                     # the upright bar of the L, on the left
    image[:, y0 + h - 2:y0 + h, x0:x0 + w] = 1.0             # its foot
    image[:, y0, x0 + w - 1] = 1.0                           # a dot at the top right
    return image, [x0, y0, x0 + w, y0 + h]


def _bright_box(image: torch.Tensor) -> list[int] | None:
    """[x0, y0, x1, y1] (exclusive) around the pixels brighter than 0.5 in any channel, or None."""
    mask = (image > 0.5).any(dim=0)
    if not mask.any():
        return None
    rows, cols = mask.any(dim=1).nonzero().flatten(), mask.any(dim=0).nonzero().flatten()
    return [int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1]


@register
class AugmentWithBox(Check):
    """fn(image (C, H, W), box [x0, y0, x1, y1]) -> (image, box): a random left-right flip and a shift of
    at most 4 px, the box moved with the object; judged over 24 draws per image."""
    name, default_n, returns = "augment_with_box", 6, "a pair (image, box)"
    draws = 24
    hint = ("after your transform, box must still be the box around the object in the new image: move it with "
            "every pixel (a flip mirrors x, a shift adds dx and dy); only left-right flips are allowed here")
    formula = ("if torch.rand(()) < 0.5: image = image.flip(-1); x0, x1 = W - x1, W - x0\n"
               "dx, dy = torch.randint(-4, 5, (2,)).tolist()\n"
               "out = torch.zeros_like(image); out[:, max(dy,0):H+min(dy,0), max(dx,0):W+min(dx,0)] = "
               "image[:, max(-dy,0):H-max(dy,0), max(-dx,0):W-max(dx,0)]\n"
               "return out, [x0 + dx, y0 + dy, x1 + dx, y1 + dy]")

    def cases(self, seed, n):
        rng = random.Random(seed)
        fixed = [dict(seed=1, height=32, width=32, channels=3), dict(seed=2, height=28, width=40, channels=1)]
        rand = [dict(seed=seed * 100 + i, height=rng.randint(26, 40), width=rng.randint(26, 40),
                     channels=rng.choice([1, 3])) for i in range(max(0, n - len(fixed)))]
        cases = []
        for spec in (fixed + rand)[:n]:
            image, box = _object_image(spec["seed"], spec["height"], spec["width"], spec["channels"])
            cases.append(dict(spec, image=image, box=box))
        return cases

    def run(self, answer, case):
        results = []
        with seeded(case["seed"]):
            for _ in range(self.draws):
                out = answer(case["image"].clone(), list(case["box"]))
                if not isinstance(out, (tuple, list)) or len(out) != 2:
                    return out
                image, box = out
                if isinstance(box, torch.Tensor):
                    box = box.tolist()
                if isinstance(box, (list, tuple)):
                    box = [int(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v for v in box]
                results.append([image, box])
        return results

    def reference(self, case):
        x0, y0, x1, y1 = case["box"]
        crop = case["image"][:, y0:y1, x0:x1]
        return {"crop": crop, "mirrored": crop.flip(-1)}

    def compare(self, got, want, case):
        if type(got) is not list:
            return Failure(f"expected {self.returns}, got {describe_type(got)}",
                           "did you forget `return image, box`?" if got is None else "return a pair: (image, box)")
        shape, flips, positions = tuple(case["image"].shape), set(), set()
        for i, draw in enumerate(got, start=1):
            if type(draw) is not list or len(draw) != 2:   # run() passed the answer's non-pair result through
                return Failure(f"expected {self.returns}, got {describe(got)}",
                               "return a pair: (image, box)")
            image, box = draw
            if type(image) is not torch.Tensor or tuple(image.shape) != shape:
                return Failure(f"draw {i}: expected an image tensor of shape {shape}, got {describe_type(image)}",
                               "keep the image size: shift with zero fill inside the same frame, do not crop")
            if type(box) is not list or len(box) != 4 or not all(type(v) is int for v in box):
                return Failure(f"draw {i}: expected a box of 4 ints [x0, y0, x1, y1], got {describe(box)}",
                               "return the box as a list of four ints")
            actual = _bright_box(image)
            if actual != box:
                return Failure(f"draw {i}: the box says {box} but the object in the returned image is at {actual} "
                               f"(input box {case['box']})", self.hint)
            x0, y0, x1, y1 = box
            crop = image[:, y0:y1, x0:x1]
            if crop.shape == want["crop"].shape and torch.allclose(crop, want["crop"]):
                flips.add(False)
            elif crop.shape == want["mirrored"].shape and torch.allclose(crop, want["mirrored"]):
                flips.add(True)
            else:
                return Failure(f"draw {i}: the object is no longer itself or its left-right mirror image "
                               "(turned upside down, rotated or rescaled?)",
                               "for this task only left-right flips and shifts keep the label valid")
            positions.add((x0, y0))
        if flips != {False, True}:
            return Failure(f"in {len(got)} draws the object was {'always' if True in flips else 'never'} mirrored",
                           "flip with probability 0.5, drawing anew on every call")
        if len(positions) < 3:
            return Failure(f"in {len(got)} draws the object took only {len(positions)} position(s)",
                           "shift by a new random (dx, dy) in [-4, 4] on every call")
        return None
