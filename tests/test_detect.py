"""cnnkit.detect against torchvision.ops (ties, empty and bad inputs) and against an
independent VOC average-precision implementation."""

import math

import numpy as np
import pytest
import torch
import torchvision.ops as ops
from torchvision.models.detection._utils import BoxCoder

from cnnkit import detect

THRESHOLDS = [0.0, 0.3, 1 / 3, 0.5, 0.7, 1.0]


def random_boxes(gen, n, integer=False, span=50.0, size=30.0):
    xy = torch.rand(n, 2, generator=gen) * span
    wh = torch.rand(n, 2, generator=gen) * size
    boxes = torch.cat([xy, xy + wh], 1)
    # Integer corners make exact ties: identical boxes and IoUs exactly at 1/3, 0.5, ...
    return boxes.round() if integer else boxes


# ----------------------------------------------------------------------------
# box_iou, nms, batched_nms
# ----------------------------------------------------------------------------

@pytest.mark.parametrize("integer", [False, True])
def test_box_iou_equals_torchvision(integer):
    gen = torch.Generator().manual_seed(0)
    for _ in range(50):
        n, m = (int(v) for v in torch.randint(0, 12, (2,), generator=gen))
        a, b = random_boxes(gen, n, integer), random_boxes(gen, m, integer)
        got, want = detect.box_iou(a, b), ops.box_iou(a, b)
        assert got.shape == (n, m)
        torch.testing.assert_close(got, want, rtol=0, atol=0, equal_nan=True)


def test_box_iou_simple_values():
    a = torch.tensor([[0.0, 0, 2, 2]])
    b = torch.tensor([[1.0, 1, 3, 3], [0, 0, 2, 2], [5, 5, 6, 6]])
    assert detect.box_iou(a, b).tolist() == [[pytest.approx(1 / 7), 1.0, 0.0]]


@pytest.mark.parametrize("integer", [False, True])
def test_nms_equals_torchvision_including_ties(integer):
    gen = torch.Generator().manual_seed(1)
    for trial in range(150):
        n = int(torch.randint(0, 40, (1,), generator=gen))
        boxes = random_boxes(gen, n, integer)
        scores = torch.rand(n, generator=gen)
        if integer:
            scores = (scores * 4).round() / 4                     # many equal scores
            boxes[: n // 4] = boxes[n // 4: 2 * (n // 4)]          # identical boxes
        threshold = THRESHOLDS[trial % len(THRESHOLDS)]
        assert torch.equal(detect.nms(boxes, scores, threshold), ops.nms(boxes, scores, threshold))


def test_nms_iou_exactly_at_threshold_is_kept():
    # Two 3x1 boxes overlapping by 2x1: IoU = 2 / (3 + 3 - 2) = 0.5 exactly; kept, since NMS drops IoU > threshold.
    boxes = torch.tensor([[0.0, 0, 3, 1], [1, 0, 4, 1]])
    scores = torch.tensor([0.9, 0.8])
    assert detect.box_iou(boxes[:1], boxes[1:]).item() == 0.5
    assert detect.nms(boxes, scores, 0.5).tolist() == ops.nms(boxes, scores, 0.5).tolist() == [0, 1]
    assert detect.nms(boxes, scores, 0.49).tolist() == ops.nms(boxes, scores, 0.49).tolist() == [0]


def test_nms_equal_scores_keep_input_order():
    boxes = torch.tensor([[0.0, 0, 10, 10], [0, 0, 10, 10], [20, 20, 30, 30]])
    scores = torch.tensor([0.5, 0.5, 0.5])
    assert detect.nms(boxes, scores, 0.5).tolist() == ops.nms(boxes, scores, 0.5).tolist() == [0, 2]


@pytest.mark.parametrize("n", [5, 40, 1200])       # 1200 boxes: torchvision's per-class path
def test_batched_nms_equals_torchvision(n):
    gen = torch.Generator().manual_seed(n)
    for trial in range(20 if n < 1000 else 2):
        boxes = random_boxes(gen, n, integer=True, span=200)
        scores = torch.rand(n, generator=gen)               # distinct scores: torchvision's large-input
        idxs = torch.randint(0, 4, (n,), generator=gen)     # path sorts unstably, so ties may reorder
        threshold = THRESHOLDS[trial % len(THRESHOLDS)]
        assert torch.equal(detect.batched_nms(boxes, scores, idxs, threshold),
                           ops.batched_nms(boxes, scores, idxs, threshold))


def test_batched_nms_ties_across_classes():
    gen = torch.Generator().manual_seed(3)
    for trial in range(60):
        n = int(torch.randint(0, 30, (1,), generator=gen))
        boxes = random_boxes(gen, n, integer=True)
        scores = (torch.rand(n, generator=gen) * 3).round() / 3
        idxs = torch.randint(0, 3, (n,), generator=gen)
        threshold = THRESHOLDS[trial % len(THRESHOLDS)]
        assert torch.equal(detect.batched_nms(boxes, scores, idxs, threshold),
                           ops.batched_nms(boxes, scores, idxs, threshold))


def test_empty_inputs():
    empty = torch.zeros(0, 4)
    assert detect.box_iou(empty, torch.ones(3, 4)).shape == (0, 3)
    assert detect.nms(empty, torch.zeros(0), 0.5).tolist() == []
    assert detect.nms(empty, torch.zeros(0), 0.5).dtype == torch.int64
    assert detect.batched_nms(empty, torch.zeros(0), torch.zeros(0, dtype=torch.int64), 0.5).tolist() == []
    assert detect.roi_pool(torch.rand(1, 2, 8, 8), torch.zeros(0, 5), 3).shape == (0, 2, 3, 3)
    assert detect.encode_boxes(empty, empty).shape == (0, 4)
    assert detect.decode_boxes(empty, empty).shape == (0, 4)


@pytest.mark.parametrize("call, name, error", [
    (lambda: detect.box_iou(torch.tensor([[2.0, 0, 1, 1]]), torch.zeros(0, 4)), "boxes1", ValueError),
    (lambda: detect.box_iou(torch.zeros(0, 4), torch.zeros(3, 3)), "boxes2", ValueError),
    (lambda: detect.box_iou([[0, 0, 1, 1]], torch.zeros(0, 4)), "boxes1", TypeError),
    (lambda: detect.box_iou(torch.zeros(2, 4, dtype=torch.int64), torch.zeros(0, 4)), "boxes1", TypeError),
    (lambda: detect.nms(torch.tensor([[0.0, 3, 1, 1]]), torch.ones(1), 0.5), "boxes", ValueError),
    (lambda: detect.nms(torch.zeros(2, 4), torch.ones(3), 0.5), "scores", ValueError),
    (lambda: detect.nms(torch.zeros(2, 4), torch.ones(2), "0.5"), "iou_threshold", TypeError),
    (lambda: detect.batched_nms(torch.zeros(2, 4), torch.ones(2), torch.zeros(3), 0.5), "idxs", ValueError),
    (lambda: detect.roi_pool(torch.zeros(2, 8, 8), torch.zeros(0, 5), 2), "input", ValueError),
    (lambda: detect.roi_pool(torch.zeros(1, 1, 8, 8), torch.zeros(1, 4), 2), "boxes", ValueError),
    (lambda: detect.roi_pool(torch.zeros(1, 1, 8, 8), torch.zeros(1, 5), 0), "output_size", ValueError),
    (lambda: detect.encode_boxes(torch.zeros(2, 4), torch.zeros(3, 4)), "same length", ValueError),
    (lambda: detect.decode_boxes(torch.zeros(2, 4), torch.zeros(2, 3)), "deltas", ValueError),
    (lambda: detect.average_precision([1.0, 0.5], [0.5]), "same length", ValueError),
    (lambda: detect.mean_average_precision([{}], []), "detections[0]", ValueError),
    (lambda: detect.mean_average_precision({}, []), "detections", TypeError),
])
def test_bad_inputs_name_the_argument(call, name, error):
    with pytest.raises(error, match=name.replace("[", r"\[").replace("]", r"\]")):
        call()


# ----------------------------------------------------------------------------
# roi_pool
# ----------------------------------------------------------------------------

@pytest.mark.parametrize("spatial_scale", [1.0, 0.5, 0.25, 1 / 3])
@pytest.mark.parametrize("output_size", [1, 2, (3, 5), 7])
def test_roi_pool_equals_torchvision(spatial_scale, output_size):
    gen = torch.Generator().manual_seed(7)
    x = torch.randn(2, 3, 20, 24, generator=gen)
    boxes = random_boxes(gen, 30, span=60, size=40)
    boxes[:5] = boxes[:5].round() + 0.5 / spatial_scale            # corners landing on .5 after scaling
    boxes[5:8] = torch.tensor([[-10.0, -10, -2, -2], [90, 90, 100, 100], [3, 3, 3, 3]])   # outside, point
    rois = torch.cat([torch.randint(0, 2, (30, 1), generator=gen).float(), boxes], 1)
    torch.testing.assert_close(detect.roi_pool(x, rois, output_size, spatial_scale),
                               ops.roi_pool(x, rois, output_size, spatial_scale), rtol=0, atol=0)


def test_roi_pool_list_of_boxes_integer_features_and_gradients():
    gen = torch.Generator().manual_seed(8)
    ints = torch.randint(0, 3, (2, 2, 9, 9), generator=gen).float()          # many equal values
    boxes = [random_boxes(gen, 4, span=5, size=8), random_boxes(gen, 3, span=5, size=8)]
    torch.testing.assert_close(detect.roi_pool(ints, boxes, 3), ops.roi_pool(ints, boxes, 3), rtol=0, atol=0)
    # Gradients (distinct values: with equal maxima torch's amax shares the gradient between them,
    # torchvision gives it to the first one).
    x1 = torch.randn(2, 2, 9, 9, generator=gen, requires_grad=True)
    x2 = x1.detach().clone().requires_grad_()
    weight = torch.randn(7, 2, 3, 3, generator=gen)
    (detect.roi_pool(x1, boxes, 3) * weight).sum().backward()
    (ops.roi_pool(x2, boxes, 3) * weight).sum().backward()
    torch.testing.assert_close(x1.grad, x2.grad)


# ----------------------------------------------------------------------------
# box encoding
# ----------------------------------------------------------------------------

def test_encode_decode_equal_boxcoder_and_invert():
    gen = torch.Generator().manual_seed(9)
    coder = BoxCoder(weights=(1.0, 1.0, 1.0, 1.0))
    for _ in range(20):
        proposals = random_boxes(gen, 50) + torch.tensor([0, 0, 1.0, 1.0])     # positive widths
        targets = random_boxes(gen, 50) + torch.tensor([0, 0, 1.0, 1.0])
        deltas = detect.encode_boxes(proposals, targets)
        torch.testing.assert_close(deltas, coder.encode_single(targets, proposals))
        torch.testing.assert_close(detect.decode_boxes(proposals, deltas), coder.decode_single(deltas, proposals))
        torch.testing.assert_close(detect.decode_boxes(proposals, deltas), targets, rtol=0, atol=1e-4)
    huge = torch.tensor([[0.0, 0.0, 100.0, 100.0]])                 # dw clamped like torchvision
    torch.testing.assert_close(detect.decode_boxes(huge, huge), coder.decode_single(huge, huge))


def test_encode_is_zero_for_a_perfect_proposal():
    box = torch.tensor([[3.0, 4.0, 13.0, 24.0]])
    assert detect.encode_boxes(box, box).abs().max().item() == 0.0
    shifted = torch.tensor([[8.0, 4.0, 18.0, 24.0]])                    # half a width to the right
    assert detect.encode_boxes(box, shifted).tolist() == [[0.5, 0.0, 0.0, 0.0]]


# ----------------------------------------------------------------------------
# Average precision: against an independent implementation of the same definition.
#
# Definition (PASCAL VOC 2010+, "all-point interpolation"): per class, detections of all
# images sorted by score; each is a true positive when the ground-truth box of that class
# with the highest IoU in its image has IoU >= 0.5 and is not yet matched, else a false
# positive; precision is made non-increasing from the right and AP is the area under that
# step curve. mAP is the mean over classes that have ground truth. The reference below is a
# port of the VOC development kit's `VOCevalDet` / py-faster-rcnn `voc_eval` (numpy, one
# detection at a time), with its `>` changed to `>=` (torchmetrics' and COCO's rule, and the
# course's "IoU >= 0.5"). torchmetrics' MeanAveragePrecision is NOT used: it needs the
# pycocotools or faster-coco-eval backend and computes COCO's 101-point interpolated AP with
# per-image detection limits, a different number.
# ----------------------------------------------------------------------------

def voc_ap_reference(rec, prec):
    mrec = np.concatenate(([0.0], rec, [1.0]))
    mpre = np.concatenate(([0.0], prec, [0.0]))
    for i in range(mpre.size - 1, 0, -1):
        mpre[i - 1] = max(mpre[i - 1], mpre[i])
    i = np.where(mrec[1:] != mrec[:-1])[0]
    return float(np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1]))


def voc_eval_reference(detections, ground_truth, label, threshold=0.5):
    gts = {img: gt["boxes"][gt["labels"] == label].numpy().astype(np.float64) for img, gt in enumerate(ground_truth)}
    used = {img: np.zeros(len(b), dtype=bool) for img, b in gts.items()}
    npos = sum(len(b) for b in gts.values())
    rows = [(img, float(s), b.numpy().astype(np.float64))
            for img, det in enumerate(detections)
            for b, s, lab in zip(det["boxes"], det["scores"], det["labels"]) if int(lab) == label]
    rows = sorted(rows, key=lambda r: -r[1])                        # stable: ties keep input order
    tp, fp = np.zeros(len(rows)), np.zeros(len(rows))
    for d, (img, _, bb) in enumerate(rows):
        gt = gts[img]
        ovmax, jmax = -np.inf, -1
        for j, g in enumerate(gt):
            iw = max(min(g[2], bb[2]) - max(g[0], bb[0]), 0.0)
            ih = max(min(g[3], bb[3]) - max(g[1], bb[1]), 0.0)
            inter = iw * ih
            union = (bb[2] - bb[0]) * (bb[3] - bb[1]) + (g[2] - g[0]) * (g[3] - g[1]) - inter
            if inter / union > ovmax:
                ovmax, jmax = inter / union, j
        if ovmax >= threshold and not used[img][jmax]:
            tp[d], used[img][jmax] = 1, True
        else:
            fp[d] = 1
    tp, fp = np.cumsum(tp), np.cumsum(fp)
    rec = tp / max(npos, 1)
    prec = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
    return voc_ap_reference(rec, prec) if len(rows) else 0.0


def random_detection_set(gen, n_images, n_classes=3):
    detections, ground_truth = [], []
    for _ in range(n_images):
        g = int(torch.randint(0, 5, (1,), generator=gen))
        gt_boxes = random_boxes(gen, g, integer=True, span=60, size=30) + torch.tensor([0, 0, 2.0, 2.0])
        gt_labels = torch.randint(0, n_classes, (g,), generator=gen)
        # detections: jittered copies of the ground truth (hits and near misses) plus clutter
        jitter = gt_boxes + torch.randn(g, 4, generator=gen) * 4
        jitter = torch.cat([jitter[:, :2].minimum(jitter[:, 2:]), jitter[:, :2].maximum(jitter[:, 2:])], 1)
        clutter = random_boxes(gen, int(torch.randint(0, 4, (1,), generator=gen)), span=60, size=30)
        boxes = torch.cat([jitter, jitter[: g // 2], clutter])     # duplicates: second one is a FP
        labels = torch.cat([gt_labels, gt_labels[: g // 2],
                            torch.randint(0, n_classes, (len(clutter),), generator=gen)])
        scores = (torch.rand(len(boxes), generator=gen) * 5).round() / 5     # ties in scores
        detections.append({"boxes": boxes, "scores": scores, "labels": labels})
        ground_truth.append({"boxes": gt_boxes, "labels": gt_labels})
    return detections, ground_truth


def test_map_equals_independent_voc_implementation():
    gen = torch.Generator().manual_seed(10)
    for _ in range(30):
        detections, ground_truth = random_detection_set(gen, int(torch.randint(1, 8, (1,), generator=gen)))
        result = detect.mean_average_precision(detections, ground_truth)
        labels = sorted({int(x) for gt in ground_truth for x in gt["labels"]})
        want = {c: voc_eval_reference(detections, ground_truth, c) for c in labels}
        assert result["ap"].keys() == want.keys()
        for c in labels:
            assert abs(result["ap"][c] - want[c]) < 1e-6
        if labels:
            assert abs(result["map"] - np.mean(list(want.values()))) < 1e-6


def test_map_simple_cases():
    gt = [{"boxes": torch.tensor([[0.0, 0, 10, 10], [20, 20, 30, 30]]), "labels": torch.tensor([0, 0])}]
    perfect = [{"boxes": gt[0]["boxes"], "scores": torch.tensor([0.9, 0.8]), "labels": torch.tensor([0, 0])}]
    assert detect.mean_average_precision(perfect, gt)["map"] == 1.0
    # one hit after one false positive: precision 0 then 1/2 at recall 1/2 -> AP = 0.25
    half = [{"boxes": torch.tensor([[50.0, 50, 60, 60], [0, 0, 10, 10]]), "scores": torch.tensor([0.9, 0.8]),
             "labels": torch.tensor([0, 0])}]
    assert detect.mean_average_precision(half, gt)["map"] == 0.25
    none = [{"boxes": torch.zeros(0, 4), "scores": torch.zeros(0), "labels": torch.zeros(0, dtype=torch.int64)}]
    assert detect.mean_average_precision(none, gt)["map"] == 0.0
    assert math.isnan(detect.mean_average_precision(none, [{"boxes": torch.zeros(0, 4),
                                                             "labels": torch.zeros(0, dtype=torch.int64)}])["map"])


def test_average_precision_from_a_curve():
    assert detect.average_precision([1.0, 0.5, 0.67], [0.5, 0.5, 1.0]) == pytest.approx(0.5 + 0.5 * 0.67)
    prec, rec = np.array([1.0, 0.5, 2 / 3, 0.5]), np.array([1 / 3, 1 / 3, 2 / 3, 2 / 3])
    assert detect.average_precision(prec, rec) == pytest.approx(voc_ap_reference(rec, prec))
    p, r = detect.precision_recall(torch.tensor([0.9, 0.3, 0.8]), torch.tensor([True, True, False]), 4)
    assert p.tolist() == [1.0, 0.5, 2 / 3] and r.tolist() == [0.25, 0.25, 0.5]


# ----------------------------------------------------------------------------
# Proposals and anchors
# ----------------------------------------------------------------------------

def test_proposals_are_valid_boxes_and_find_a_square():
    image = torch.full((3, 64, 64), 0.2)
    image[:, 20:40, 10:30] = 0.9                                   # one bright square
    square = torch.tensor([[10.0, 20, 30, 40]])
    for proposals in (detect.edge_proposals(image), detect.selective_search(image),
                      detect.sliding_windows(64, sizes=(20,), ratios=(1.0,), stride_fraction=0.5)):
        assert proposals.dtype == torch.float32 and proposals.dim() == 2 and proposals.shape[1] == 4
        assert (proposals[:, 2] > proposals[:, 0]).all() and (proposals[:, 3] > proposals[:, 1]).all()
        assert proposals.min() >= 0 and proposals.max() <= 64
        assert detect.box_iou(square, proposals).max() >= 0.5
    assert detect.proposal_recall([detect.edge_proposals(image)], [square]) == 1.0
    with pytest.raises(ValueError, match="image"):
        detect.selective_search(torch.zeros(64, 64))


def test_selective_search_is_deterministic_and_close_to_opencv_by_recall():
    from cnnkit.data import ShapeScenes
    scenes = ShapeScenes(8, seed=3)
    ours = [detect.selective_search(image) for image in scenes.images]
    assert all(torch.equal(a, detect.selective_search(image)) for a, image in zip(ours[:2], scenes.images))
    recall = detect.proposal_recall(ours, scenes.targets, k=300)
    assert recall >= 0.9
    cv2 = pytest.importorskip("cv2", reason="OpenCV (opencv-contrib-python-headless) is optional")
    cv2.setNumThreads(1)
    theirs = []
    for image in scenes.images:
        ss = cv2.ximgproc.segmentation.createSelectiveSearchSegmentation()
        ss.setBaseImage(np.ascontiguousarray((image.permute(1, 2, 0).numpy()[..., ::-1] * 255).astype(np.uint8)))
        ss.switchToSelectiveSearchFast()
        rects = ss.process()                                           # (N, 4) as x, y, w, h
        theirs.append(torch.tensor(np.c_[rects[:, :2], rects[:, :2] + rects[:, 2:]], dtype=torch.float32))
    assert abs(recall - detect.proposal_recall(theirs, scenes.targets, k=300)) <= 0.1


def test_anchors_layout():
    a = detect.anchors((2, 3), stride=16, sizes=(32,), ratios=(0.5, 1.0, 2.0))
    assert a.shape == (2 * 3 * 3, 4)
    torch.testing.assert_close(a[1], torch.tensor([-8.0, -8.0, 24.0, 24.0]))       # ratio 1 at cell (0, 0)
    widths, heights = a[:3, 2] - a[:3, 0], a[:3, 3] - a[:3, 1]
    torch.testing.assert_close(widths * heights, torch.full((3,), 32.0 ** 2))
    torch.testing.assert_close(heights / widths, torch.tensor([0.5, 1.0, 2.0]))


def test_first_hits_and_recall_match_a_brute_force_count():
    gen = torch.Generator().manual_seed(11)
    props = [random_boxes(gen, int(torch.randint(0, 30, (1,), generator=gen)), integer=True) for _ in range(12)]
    truth = [random_boxes(gen, int(torch.randint(0, 4, (1,), generator=gen)), integer=True) + torch.tensor([0, 0, 1.0, 1])
             for _ in range(12)]
    for k in (1, 5, 10, None):
        hits = total = 0
        for p, t in zip(props, truth):
            top = p if k is None else p[:k]
            for g in t:
                total += 1
                hits += any(detect.box_iou(g[None], b[None]).item() >= 0.5 for b in top)
        assert detect.proposal_recall(props, truth, k) == pytest.approx(hits / total)
