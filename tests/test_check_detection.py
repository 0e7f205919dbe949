"""The exercise checks of notebooks/08_detection.ipynb: the right and typical wrong answers that
tests/test_check.py's tables use (with the generic tests: reasons, hints, stubs, grading mode), every
right formulation on more cases, and NMS's tie rule."""

import pytest
import torch
import torchvision.ops as ops

from cnnkit import check, detect
from cnnkit.check import CHECKS


def right_iou(a, b):
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def unclamped_iou(a, b):                       # disjoint boxes get a "negative intersection"
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    return w * h / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - w * h)


def right_nms(boxes, scores, threshold):
    keep, removed = [], set()
    for i in scores.argsort(descending=True, stable=True).tolist():
        if i in removed:
            continue
        keep.append(i)
        for j in range(len(boxes)):
            if right_iou(boxes[i].tolist(), boxes[j].tolist()) > threshold:
                removed.add(j)
    return keep


def nms_ties_reversed(boxes, scores, threshold):   # right, but exactly tied scores in reverse index order
    order = sorted(range(len(boxes)), key=lambda i: (-float(scores[i]), -i))
    keep, removed = [], set()
    for i in order:
        if i in removed:
            continue
        keep.append(i)
        removed |= {j for j in range(len(boxes)) if right_iou(boxes[i].tolist(), boxes[j].tolist()) > threshold}
    return keep


def nms_ge(boxes, scores, threshold):          # removes boxes at exactly the threshold too
    keep, removed = [], set()
    for i in scores.argsort(descending=True, stable=True).tolist():
        if i in removed:
            continue
        keep.append(i)
        removed |= {j for j in range(len(boxes)) if right_iou(boxes[i].tolist(), boxes[j].tolist()) >= threshold}
    return keep


def nms_without_sorting(boxes, scores, threshold):   # walks the boxes in input order
    keep = []
    for i in range(len(boxes)):
        if all(right_iou(boxes[i].tolist(), boxes[k].tolist()) <= threshold for k in keep):
            keep.append(i)
    return keep


def right_encode(p, t):
    pw, ph, tw, th = p[:, 2] - p[:, 0], p[:, 3] - p[:, 1], t[:, 2] - t[:, 0], t[:, 3] - t[:, 1]
    px, py, tx, ty = p[:, 0] + pw / 2, p[:, 1] + ph / 2, t[:, 0] + tw / 2, t[:, 1] + th / 2
    return torch.stack([(tx - px) / pw, (ty - py) / ph, (tw / pw).log(), (th / ph).log()], 1)


def encode_without_log(p, t):
    d = right_encode(p, t)
    return torch.cat([d[:, :2], d[:, 2:].exp()], 1)


def encode_absolute_shift(p, t):               # forgets to divide the shift by the proposal's size
    d = right_encode(p, t)
    return torch.cat([d[:, :2] * (p[:, 2:] - p[:, :2]), d[:, 2:]], 1)


def right_ap(precision, recall):
    p = [0.0] + list(precision) + [0.0]
    r = [0.0] + list(recall) + [1.0]
    for i in range(len(p) - 2, -1, -1):
        p[i] = max(p[i], p[i + 1])
    return sum((r[i] - r[i - 1]) * p[i] for i in range(1, len(r)) if r[i] != r[i - 1])


def ap_without_envelope(precision, recall):
    r = [0.0] + list(recall)
    return sum((r[i + 1] - r[i]) * p for i, p in enumerate(precision))


def ap_eleven_point(precision, recall):        # VOC 2007's 11-point interpolation: another definition
    return sum(max([p for p, r in zip(precision, recall) if r >= t / 10] or [0.0]) for t in range(11)) / 11


def right_filter(boxes, image_size, min_size):
    h, w = image_size
    boxes = torch.stack([boxes[:, 0].clamp(0, w), boxes[:, 1].clamp(0, h),
                         boxes[:, 2].clamp(0, w), boxes[:, 3].clamp(0, h)], 1)
    keep = (boxes[:, 2] - boxes[:, 0] >= min_size) & (boxes[:, 3] - boxes[:, 1] >= min_size)
    return boxes[keep]


def filter_before_clipping(boxes, image_size, min_size):
    keep = (boxes[:, 2] - boxes[:, 0] >= min_size) & (boxes[:, 3] - boxes[:, 1] >= min_size)
    return ops.clip_boxes_to_image(boxes[keep], image_size)


def filter_swapped_axes(boxes, image_size, min_size):    # clips x to H and y to W
    return right_filter(boxes, image_size[::-1], min_size)


# More right answers than tests/test_check.py's RIGHT (the first of each): other formulations, library versions.
RIGHT = {
    "iou": [right_iou, lambda a, b: float(ops.box_iou(torch.tensor([a]), torch.tensor([b]))[0, 0])],
    "nms": [right_nms, detect.nms, ops.nms, nms_ties_reversed],
    "encode_boxes": [right_encode, detect.encode_boxes],
    "average_precision": [right_ap, detect.average_precision],
    "filter_proposals": [right_filter],
}


@pytest.mark.parametrize("name, answer", [(n, a) for n, answers in RIGHT.items() for a in answers])
def test_right_answers_pass(name, answer, capsys):
    getattr(check, name)(answer)
    getattr(check, name)(answer, n=100, seed=5)
    assert f"✔ {name}: passed" in capsys.readouterr().out


def test_nms_accepts_any_order_among_exactly_tied_scores_only():
    boxes = torch.tensor([[0.0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30]])
    case = {"boxes": boxes.tolist(), "scores": [0.8, 0.8, 0.5], "iou_threshold": 0.5}
    nms = CHECKS["nms"]
    want = nms.reference(case)
    assert want[0] == [0, 2]
    assert nms.compare([1, 2], want, case) is None           # the tie broken the other way
    assert nms.compare([2, 1], want, case) is not None       # 0.5 before 0.8: wrong order
    assert nms.compare([0, 1, 2], want, case) is not None    # the duplicate kept
    assert nms.compare([1, 1, 2], want, case) is not None
    untied = dict(case, scores=[0.8, 0.7, 0.5])
    assert nms.compare([1, 2], nms.reference(untied), untied) is not None
