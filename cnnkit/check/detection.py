"""Checks of notebooks/08_detection.ipynb: IoU, NMS, box encoding, average precision, a proposal filter.

The references are torchvision's (``box_iou``, ``nms``, ``BoxCoder``, ``clip_boxes_to_image``,
``remove_small_boxes``) and the VOC all-point AP of ``cnnkit.detect`` (tested against an
independent implementation in tests/test_detect.py).

See: notebooks/08_detection.ipynb
"""

from __future__ import annotations

import random

import torch

from cnnkit.check._core import Check, Failure, describe_type, number, register, tensor_failure


class _LazyOps:
    """torchvision.ops, imported on first use: `import cnnkit.check` must not import torchvision."""

    def __getattr__(self, name):
        import torchvision.ops
        return getattr(torchvision.ops, name)


ops = _LazyOps()


def _random_box(rng: random.Random, span: int = 40, size: int = 25) -> list[float]:
    x, y = rng.randint(0, span), rng.randint(0, span)
    return [float(x), float(y), float(x + rng.randint(1, size)), float(y + rng.randint(1, size))]


def _boxes(rng: random.Random, n: int, **kwargs) -> torch.Tensor:
    return torch.tensor([_random_box(rng, **kwargs) for _ in range(n)], dtype=torch.float32).reshape(-1, 4)


@register
class Iou(Check):
    """fn(box_a, box_b) -> IoU of two boxes given as lists [x1, y1, x2, y2]."""
    name, default_n, returns = "iou", 60, "a float"
    hint = "what is the intersection of two boxes that do not touch?"
    formula = ("w = max(0, min(a_x2, b_x2) - max(a_x1, b_x1)), same for h; "
               "IoU = w*h / (area_a + area_b - w*h)")

    def cases(self, seed, n):
        cases = [([0.0, 0.0, 2.0, 2.0], [1.0, 1.0, 3.0, 3.0]),        # the textbook case: 1/7
                 ([0.0, 0.0, 2.0, 2.0], [0.0, 0.0, 2.0, 2.0]),        # identical: 1
                 ([0.0, 0.0, 2.0, 2.0], [5.0, 5.0, 6.0, 6.0]),        # apart: 0
                 ([0.0, 0.0, 2.0, 2.0], [2.0, 0.0, 4.0, 2.0]),        # touching: 0
                 ([0.0, 0.0, 10.0, 10.0], [2.0, 2.0, 4.0, 4.0]),      # one inside the other
                 ([0.0, 0.0, 4.0, 1.0], [5.0, -3.0, 6.0, 4.0])]       # apart in x, overlapping in y
        rng = random.Random(seed)
        cases += [(_random_box(rng), _random_box(rng)) for _ in range(n - len(cases))]
        return [{"box_a": a, "box_b": b} for a, b in cases]

    def run(self, answer, case):
        return answer(list(case["box_a"]), list(case["box_b"]))

    def reference(self, case):
        return float(ops.box_iou(torch.tensor([case["box_a"]]), torch.tensor([case["box_b"]]))[0, 0])

    def compare(self, got, want, case):
        value, failure = number(got, what="a float")
        if failure:
            return failure
        if not abs(value - want) <= 1e-5:                # NaN is never close
            hint = self.hint if want == 0 else "IoU = intersection / union; union = area_a + area_b - intersection"
            return Failure(f"for boxes {case['box_a']} and {case['box_b']} you returned {value:.4g}, "
                           f"IoU is {want:.4g}", hint)
        return None


@register
class Nms(Check):
    """fn(boxes (N, 4), scores (N,), iou_threshold) -> indices of the kept boxes, best score first."""
    name, default_n, returns = "nms", 40, "a list or tensor of indices"
    hint = "go through the boxes from the best score down; a box survives unless a kept box overlaps it too much"
    formula = ("order = scores.argsort(descending=True) (exactly tied scores may come in any order); "
               "for each i in order not yet removed: keep i, remove every box with IoU(i, box) > iou_threshold")

    def cases(self, seed, n):
        cases = [{"boxes": [[0.0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30]], "scores": [0.9, 0.8, 0.7],
                  "iou_threshold": 0.5},                                # the duplicate goes
                 {"boxes": [[0.0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30]], "scores": [0.6, 0.8, 0.7],
                  "iou_threshold": 0.5},                                # the better duplicate stays
                 {"boxes": [[0.0, 0, 3, 1], [1, 0, 4, 1]], "scores": [0.9, 0.8], "iou_threshold": 0.5},  # IoU = 0.5
                 {"boxes": [], "scores": [], "iou_threshold": 0.5}]     # nothing detected
        rng = random.Random(seed)
        while len(cases) < n:
            k = rng.randint(1, 25)
            cases.append({"boxes": _boxes(rng, k, span=30).tolist(),
                          "scores": [rng.randint(0, 20) / 20 if rng.random() < 0.3 else rng.random() for _ in range(k)],
                          "iou_threshold": rng.choice([0.3, 0.5, 0.7])})
        return cases

    def run(self, answer, case):
        boxes = torch.tensor(case["boxes"], dtype=torch.float32).reshape(-1, 4)
        got = answer(boxes, torch.tensor(case["scores"], dtype=torch.float32), case["iou_threshold"])
        return got.tolist() if isinstance(got, torch.Tensor) else got

    def reference(self, case):
        # IoU computed in float32 (tensors) or float64 (Python floats) may fall on either side of an
        # exact-tie threshold; both are right, so both results are accepted.
        return [ops.nms(torch.tensor(case["boxes"], dtype=dtype).reshape(-1, 4),
                        torch.tensor(case["scores"], dtype=dtype), case["iou_threshold"]).tolist()
                for dtype in (torch.float32, torch.float64)]

    def compare(self, got, want, case):
        if type(got) not in (list, tuple) or any(type(i) is not int for i in got):
            return Failure(f"expected a list (or int64 tensor) of indices, got {describe_type(got)}",
                           "did you forget `return`?" if got is None else "return the indices, e.g. a list of ints")
        if list(got) in want or any(_greedy_nms_result(got, case, dtype) for dtype in (torch.float32, torch.float64)):
            return None
        want = want[0]
        where = f"{len(case['boxes'])} boxes, iou_threshold={case['iou_threshold']}"
        if sorted(got) == sorted(want):
            return Failure(f"for {where} you kept the right boxes in the wrong order: {list(got)}, expected {want}",
                           "list the kept boxes from the highest score down")
        return Failure(f"for {where} you kept {list(got)}; NMS keeps {want} (boxes with exactly equal scores "
                       "may come in any order)",
                       "a box is removed only when its IoU with a kept box is greater than the threshold "
                       "(equal is kept), and only kept boxes remove others")


def _greedy_nms_result(got, case, dtype) -> bool:
    """Whether `got` is what greedy NMS keeps for SOME order of the boxes by descending score, i.e.
    with exactly tied scores in any order (an unstable argsort is right too). That holds iff the
    indices are distinct and valid, their scores never increase, no two kept boxes overlap by more
    than the threshold, and every other box overlaps by more than the threshold a kept box whose
    score is at least its own (then ordering ties as kept-before-removed reproduces `got`)."""
    n = len(case["boxes"])
    if len(set(got)) != len(got) or any(not 0 <= i < n for i in got):
        return False
    if n == 0:
        return True
    boxes = torch.tensor(case["boxes"], dtype=dtype).reshape(-1, 4)
    scores = torch.tensor(case["scores"], dtype=dtype)
    iou = ops.box_iou(boxes, boxes)
    over = iou > case["iou_threshold"]
    kept = list(got)
    if any(scores[a] < scores[b] for a, b in zip(kept, kept[1:])):
        return False
    if any(bool(over[a, b]) for k, a in enumerate(kept) for b in kept[k + 1:]):
        return False
    return all(any(bool(over[k, j]) and scores[k] >= scores[j] for k in kept) for j in range(n) if j not in kept)


@register
class EncodeBoxes(Check):
    """fn(proposals (N, 4), targets (N, 4)) -> deltas (N, 4) = (dx, dy, dw, dh), R-CNN's parametrisation."""
    name, default_n, returns = "encode_boxes", 20, "a tensor (N, 4)"
    hint = "work with centres, widths and heights; shifts are relative to the proposal's size, scales are logs"
    formula = ("dx = (x_t - x_p) / w_p, dy = (y_t - y_p) / h_p, dw = log(w_t / w_p), dh = log(h_t / h_p), "
               "with x, y the box centres")

    def cases(self, seed, n):
        cases = [{"proposals": [[0.0, 0, 10, 20]], "targets": [[5.0, 0, 15, 20]]},      # dx = 0.5
                 {"proposals": [[0.0, 0, 10, 20]], "targets": [[0.0, 0, 20, 20]]},      # dw = log 2, dx = 0.5
                 {"proposals": [[2.0, 3, 12, 23]], "targets": [[2.0, 3, 12, 23]]}]      # perfect: all 0
        rng = random.Random(seed)
        while len(cases) < n:
            k = rng.randint(1, 8)
            cases.append({"proposals": _boxes(rng, k).tolist(), "targets": _boxes(rng, k).tolist()})
        return cases

    def run(self, answer, case):
        return answer(torch.tensor(case["proposals"]), torch.tensor(case["targets"]))

    def reference(self, case):
        from torchvision.models.detection._utils import BoxCoder
        return BoxCoder(weights=(1.0, 1.0, 1.0, 1.0)).encode_single(torch.tensor(case["targets"]),
                                                                    torch.tensor(case["proposals"]))

    def compare(self, got, want, case):
        return tensor_failure(got, want, f"deltas for proposals {case['proposals'][:2]}... and targets "
                                         f"{case['targets'][:2]}...", self.hint, atol=1e-4)


@register
class AveragePrecision(Check):
    """fn(precision, recall) -> VOC all-point AP of a precision-recall curve (lists, best score first)."""
    name, default_n, returns = "average_precision", 40, "a float"
    hint = "before summing, replace each precision by the best precision at this or any higher recall"
    formula = ("p_interp[i] = max(precision[i:]); AP = sum over points where recall grows of "
               "(recall[i] - recall[i-1]) * p_interp[i], starting from recall 0")

    def cases(self, seed, n):
        cases = [{"precision": [1.0, 0.5, 2 / 3, 0.5], "recall": [0.25, 0.25, 0.5, 0.5]},
                 {"precision": [1.0, 1.0], "recall": [0.5, 1.0]},                         # perfect: 1
                 {"precision": [0.0, 0.5], "recall": [0.0, 0.5]},                         # a miss first
                 {"precision": [], "recall": []}]                                         # no detections: 0
        rng = random.Random(seed)
        while len(cases) < n:
            flags = [rng.random() < 0.6 for _ in range(rng.randint(1, 15))]
            n_gt = sum(flags) + rng.randint(0, 3) or 1
            tp, precision, recall = 0, [], []
            for i, hit in enumerate(flags, 1):
                tp += hit
                precision.append(tp / i)
                recall.append(tp / n_gt)
            cases.append({"precision": precision, "recall": recall})
        return cases

    def run(self, answer, case):
        return answer(list(case["precision"]), list(case["recall"]))

    def reference(self, case):
        from cnnkit.detect import average_precision
        return average_precision(case["precision"], case["recall"])

    def compare(self, got, want, case):
        value, failure = number(got, what="a float")
        if failure:
            return failure
        if not abs(value - want) <= 1e-6:                # NaN is never close
            curve = ", ".join(f"({r:.2f}, {p:.2f})" for p, r in zip(case["precision"], case["recall"]))
            return Failure(f"for the curve (recall, precision) = {curve or 'empty'} you returned {value:.4g}, "
                           f"VOC AP is {want:.4g}", self.hint)
        return None


@register
class FilterProposals(Check):
    """fn(boxes (N, 4), image_size (H, W), min_size) -> the boxes clipped to the image, without those
    narrower or lower than min_size after clipping (order kept)."""
    name, default_n, returns = "filter_proposals", 30, "a tensor (M, 4)"
    hint = "clip first (x to [0, W], y to [0, H]), then measure width and height"
    formula = ("boxes[:, 0::2] clamped to [0, W], boxes[:, 1::2] to [0, H]; keep rows with "
               "x2 - x1 >= min_size and y2 - y1 >= min_size")

    def cases(self, seed, n):
        cases = [{"boxes": [[-5.0, -5, 10, 10], [60, 60, 80, 70], [10, 10, 12, 40]], "image_size": [64, 64],
                  "min_size": 4.0}]                                   # clipped, cut to 4x4 by the border, thin
        rng = random.Random(seed)
        while len(cases) < n:
            boxes = (_boxes(rng, rng.randint(0, 12), span=70, size=30) - 10).tolist()
            cases.append({"boxes": boxes, "image_size": [rng.randint(30, 60), rng.randint(30, 60)],
                          "min_size": float(rng.choice([1, 3, 5, 8]))})
        return cases

    def run(self, answer, case):
        boxes = torch.tensor(case["boxes"], dtype=torch.float32).reshape(-1, 4)
        return answer(boxes, tuple(case["image_size"]), case["min_size"])

    def reference(self, case):
        boxes = torch.tensor(case["boxes"], dtype=torch.float32).reshape(-1, 4)
        clipped = ops.clip_boxes_to_image(boxes, tuple(case["image_size"]))
        return clipped[ops.remove_small_boxes(clipped, case["min_size"])]

    def compare(self, got, want, case):
        return tensor_failure(got, want, f"{len(case['boxes'])} boxes in an image of size "
                                         f"{tuple(case['image_size'])}, min_size={case['min_size']:g}",
                              self.hint, atol=1e-5)
