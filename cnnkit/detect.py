"""Object detection from scratch: IoU, NMS, RoI pooling, box regression, mAP, region proposals.

Boxes are ``(x1, y1, x2, y2)`` in pixels, as in torchvision. The box operations
keep torchvision's signatures (``torchvision.ops.box_iou``, ``nms``,
``batched_nms``, ``roi_pool``) so a student can compare them line by line; the
tests check them against torchvision, ties included.

    box_iou, nms, batched_nms, roi_pool        what torchvision.ops does, from scratch
    encode_boxes, decode_boxes                 R-CNN's box-regression parametrisation
    precision_recall, average_precision,       VOC-style AP (all-point interpolation)
    mean_average_precision
    sliding_windows, edge_proposals,           classical, not learned, region proposals
    selective_search, proposal_recall
    anchors                                    Faster R-CNN's anchor boxes

See: notebooks/08_detection.ipynb
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["box_iou", "nms", "batched_nms", "roi_pool", "encode_boxes", "decode_boxes",
           "precision_recall", "average_precision", "match_detections", "mean_average_precision",
           "sliding_windows", "edge_proposals", "selective_search", "first_hits", "proposal_recall", "anchors",
           "warp_boxes", "assign_labels", "sample_regions", "detections_from_scores"]

# torchvision's BoxCoder clamps dw, dh at log(1000 / 16) so exp() cannot overflow.
BBOX_XFORM_CLIP = math.log(1000.0 / 16)


# ----------------------------------------------------------------------------
# Argument checks
# ----------------------------------------------------------------------------

def _check_boxes(name: str, boxes) -> torch.Tensor:
    """A float tensor (N, 4) with x1 <= x2 and y1 <= y2, else a clear error naming `name`."""
    if not isinstance(boxes, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (N, 4), got {type(boxes).__name__}")
    if boxes.dim() != 2 or boxes.shape[1] != 4:
        raise ValueError(f"{name} must have shape (N, 4) as (x1, y1, x2, y2), got {tuple(boxes.shape)}")
    if not boxes.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got {boxes.dtype}")
    bad = (boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1])
    if bad.any():
        i = int(bad.nonzero()[0])
        raise ValueError(f"{name}[{i}] = {boxes[i].tolist()} has x2 < x1 or y2 < y1; "
                         "boxes must be (x1, y1, x2, y2) with x1 <= x2 and y1 <= y2")
    return boxes


def _check_scores(name: str, scores, n: int, what: str = "boxes") -> torch.Tensor:
    if not isinstance(scores, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape ({n},), got {type(scores).__name__}")
    if scores.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},), one per {what}, got {tuple(scores.shape)}")
    return scores


def _check_threshold(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    return float(value)


# ----------------------------------------------------------------------------
# IoU and non-maximum suppression
# ----------------------------------------------------------------------------

def box_area(boxes: torch.Tensor) -> torch.Tensor:
    """(N, 4) -> (N,): (x2 - x1) * (y2 - y1)."""
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def box_iou(boxes1: torch.Tensor, boxes2: torch.Tensor) -> torch.Tensor:
    """Intersection over union of every pair: (N, 4), (M, 4) -> (N, M).

    IoU = area(A ∩ B) / (area(A) + area(B) - area(A ∩ B)); 0/0 (two empty boxes) is NaN,
    as in ``torchvision.ops.box_iou``.
    """
    _check_boxes("boxes1", boxes1)
    _check_boxes("boxes2", boxes2)
    area1, area2 = box_area(boxes1), box_area(boxes2)                   # (N,), (M,)
    top_left = torch.max(boxes1[:, None, :2], boxes2[None, :, :2])      # (N, M, 2)
    bottom_right = torch.min(boxes1[:, None, 2:], boxes2[None, :, 2:])  # (N, M, 2)
    wh = (bottom_right - top_left).clamp(min=0)                         # (N, M, 2), 0 if disjoint
    inter = wh[..., 0] * wh[..., 1]                                     # (N, M)
    return inter / (area1[:, None] + area2[None, :] - inter)


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Greedy non-maximum suppression: indices (int64) of the kept boxes, highest score first.

    Take the best remaining box, keep it, drop every other box whose IoU with it is
    > iou_threshold (strictly, like torchvision); repeat. Equal scores keep their input order.
    """
    _check_boxes("boxes", boxes)
    _check_scores("scores", scores, len(boxes))
    iou_threshold = _check_threshold("iou_threshold", iou_threshold)
    order = scores.argsort(descending=True, stable=True)               # (N,)
    iou = box_iou(boxes, boxes)                                         # (N, N)
    suppressed = torch.zeros(len(boxes), dtype=torch.bool)
    keep = []
    for i in order.tolist():
        if suppressed[i]:
            continue
        keep.append(i)
        # Compared in float64, as torchvision's kernel does (a float32 threshold would round 1/3 up).
        suppressed |= iou[i].double() > iou_threshold
    return torch.tensor(keep, dtype=torch.int64)


def batched_nms(boxes: torch.Tensor, scores: torch.Tensor, idxs: torch.Tensor,
                iou_threshold: float) -> torch.Tensor:
    """NMS within each category `idxs` separately (a cat never suppresses a dog).

    Returns the kept indices sorted by decreasing score (ties: input order).
    """
    _check_boxes("boxes", boxes)
    _check_scores("scores", scores, len(boxes))
    _check_scores("idxs", idxs, len(boxes))
    keep = torch.zeros(len(boxes), dtype=torch.bool)
    for category in torch.unique(idxs):
        members = (idxs == category).nonzero().flatten()               # (n_c,)
        keep[members[nms(boxes[members], scores[members], iou_threshold)]] = True
    kept = keep.nonzero().flatten()
    return kept[scores[kept].argsort(descending=True, stable=True)]


# ----------------------------------------------------------------------------
# RoI pooling (Fast R-CNN)
# ----------------------------------------------------------------------------

def _round_half_away(x: torch.Tensor) -> torch.Tensor:
    """C's round(): halves go away from zero (torch.round rounds halves to even)."""
    return torch.sign(x) * torch.floor(x.abs() + 0.5)


def roi_pool(input: torch.Tensor, boxes, output_size, spatial_scale: float = 1.0) -> torch.Tensor:
    """Max-pool each region of a feature map to a fixed size: (N, C, H, W) -> (K, C, h, w).

    boxes: a tensor (K, 5) of (batch index, x1, y1, x2, y2), or a list of N tensors (L_i, 4).
    Box corners in image pixels are scaled by `spatial_scale` (1 / the stride of the
    feature map) and rounded; the region is split into h x w bins of (nearly) equal size
    and each bin keeps its maximum. An empty bin gives 0. Same result as
    ``torchvision.ops.roi_pool`` (Girshick, Fast R-CNN, 2015).
    """
    if not isinstance(input, torch.Tensor) or input.dim() != 4:
        raise ValueError(f"input must be a tensor (N, C, H, W), got "
                         f"{tuple(input.shape) if isinstance(input, torch.Tensor) else type(input).__name__}")
    if isinstance(boxes, (list, tuple)):
        for i, b in enumerate(boxes):
            _check_boxes(f"boxes[{i}]", b)
        rois = torch.cat([torch.cat([torch.full((len(b), 1), float(i), dtype=b.dtype), b], 1)
                          for i, b in enumerate(boxes)]) if boxes else input.new_zeros(0, 5)
    elif isinstance(boxes, torch.Tensor):
        if boxes.dim() != 2 or boxes.shape[1] != 5:
            raise ValueError(f"boxes must be a tensor (K, 5) of (batch index, x1, y1, x2, y2) or a "
                             f"list of (L, 4) tensors, got shape {tuple(boxes.shape)}")
        rois = boxes
    else:
        raise TypeError(f"boxes must be a tensor (K, 5) or a list of tensors, got {type(boxes).__name__}")
    if isinstance(output_size, int) and not isinstance(output_size, bool):
        output_size = (output_size, output_size)
    if (not isinstance(output_size, (tuple, list)) or len(output_size) != 2
            or not all(isinstance(s, int) and s >= 1 for s in output_size)):
        raise ValueError(f"output_size must be a positive int or a pair (h, w), got {output_size!r}")
    ph, pw = output_size
    n, c, height, width = input.shape
    rois = rois.to(input.dtype)
    if len(rois) == 0:
        return input.new_zeros(0, c, ph, pw)
    # Region corners on the feature map, as torchvision computes them (in the input's dtype).
    start_w = _round_half_away(rois[:, 1] * spatial_scale).long()                  # (K,)
    start_h = _round_half_away(rois[:, 2] * spatial_scale).long()
    end_w = _round_half_away(rois[:, 3] * spatial_scale).long()
    end_h = _round_half_away(rois[:, 4] * spatial_scale).long()
    roi_w = (end_w - start_w + 1).clamp(min=1).to(input.dtype)                     # (K,)
    roi_h = (end_h - start_h + 1).clamp(min=1).to(input.dtype)
    bin_h, bin_w = roi_h / ph, roi_w / pw                                          # (K,)

    def bin_edges(bin_size, start, pooled, length):
        """(K, pooled) first and last+1 row (or column) of each bin, clipped to the map."""
        k = torch.arange(pooled, dtype=input.dtype)                               # (pooled,)
        lo = torch.floor(k[None] * bin_size[:, None]).long() + start[:, None]     # (K, pooled)
        hi = torch.ceil((k[None] + 1) * bin_size[:, None]).long() + start[:, None]
        return lo.clamp(0, length).tolist(), hi.clamp(0, length).tolist()

    h_lo, h_hi = bin_edges(bin_h, start_h, ph, height)
    w_lo, w_hi = bin_edges(bin_w, start_w, pw, width)
    batch = rois[:, 0].long().tolist()
    out = []
    for k in range(len(rois)):                                                     # one region at a time
        fmap = input[batch[k]]                                                     # (C, H, W)
        cells = []
        for i in range(ph):
            for j in range(pw):
                if h_hi[k][i] <= h_lo[k][i] or w_hi[k][j] <= w_lo[k][j]:
                    cells.append(input.new_zeros(c))                               # an empty bin gives 0
                else:
                    cells.append(fmap[:, h_lo[k][i]:h_hi[k][i], w_lo[k][j]:w_hi[k][j]].amax(dim=(1, 2)))
        out.append(torch.stack(cells, 1).view(c, ph, pw))                         # (C, ph, pw)
    return torch.stack(out)


# ----------------------------------------------------------------------------
# Box regression (R-CNN, appendix C)
# ----------------------------------------------------------------------------

def _centres(boxes: torch.Tensor):
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    return boxes[:, 0] + 0.5 * w, boxes[:, 1] + 0.5 * h, w, h


def encode_boxes(proposals: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The regression targets that move each proposal onto its target box: (N, 4), (N, 4) -> (N, 4).

    dx = (x_t - x_p) / w_p,  dy = (y_t - y_p) / h_p,  dw = log(w_t / w_p),  dh = log(h_t / h_p)
    with (x, y) box centres; the shifts are relative to the proposal's size, so one linear
    regressor serves small and large boxes. Same as torchvision's BoxCoder(weights=(1, 1, 1, 1)).
    """
    _check_boxes("proposals", proposals)
    _check_boxes("targets", targets)
    if len(proposals) != len(targets):
        raise ValueError(f"proposals and targets must have the same length, got {len(proposals)} and {len(targets)}")
    px, py, pw, ph = _centres(proposals)
    tx, ty, tw, th = _centres(targets)
    return torch.stack([(tx - px) / pw, (ty - py) / ph, torch.log(tw / pw), torch.log(th / ph)], 1)


def decode_boxes(proposals: torch.Tensor, deltas: torch.Tensor) -> torch.Tensor:
    """Apply regression outputs to proposals (the inverse of ``encode_boxes``): -> boxes (N, 4)."""
    _check_boxes("proposals", proposals)
    if not isinstance(deltas, torch.Tensor) or deltas.shape != proposals.shape:
        raise ValueError(f"deltas must be a tensor of shape {tuple(proposals.shape)} like proposals, got "
                         f"{tuple(deltas.shape) if isinstance(deltas, torch.Tensor) else type(deltas).__name__}")
    px, py, pw, ph = _centres(proposals)
    dw, dh = deltas[:, 2].clamp(max=BBOX_XFORM_CLIP), deltas[:, 3].clamp(max=BBOX_XFORM_CLIP)
    x, y = deltas[:, 0] * pw + px, deltas[:, 1] * ph + py
    half_w, half_h = 0.5 * torch.exp(dw) * pw, 0.5 * torch.exp(dh) * ph
    return torch.stack([x - half_w, y - half_h, x + half_w, y + half_h], 1)


# ----------------------------------------------------------------------------
# Average precision (PASCAL VOC, all-point interpolation)
# ----------------------------------------------------------------------------

def precision_recall(scores: torch.Tensor, is_true_positive: torch.Tensor,
                     num_ground_truth: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Precision and recall after each detection, best score first: -> (precision (D,), recall (D,))."""
    if isinstance(num_ground_truth, bool) or not isinstance(num_ground_truth, int) or num_ground_truth < 0:
        raise ValueError(f"num_ground_truth must be an int >= 0, got {num_ground_truth!r}")
    _check_scores("is_true_positive", is_true_positive, len(scores), "score")
    order = torch.as_tensor(scores).argsort(descending=True, stable=True)
    tp = is_true_positive[order].double().cumsum(0)                    # (D,)
    seen = torch.arange(1, len(order) + 1, dtype=torch.float64)
    return tp / seen, tp / max(num_ground_truth, 1)


def average_precision(precision, recall) -> float:
    """Area under the precision-recall curve, VOC style (all points, 2010+).

    First make precision non-increasing (each point takes the best precision at any
    higher recall), then sum precision x (recall step) over the points where recall grows.
    """
    p = torch.as_tensor(precision, dtype=torch.float64).flatten()
    r = torch.as_tensor(recall, dtype=torch.float64).flatten()
    if p.shape != r.shape:
        raise ValueError(f"precision and recall must have the same length, got {len(p)} and {len(r)}")
    p = torch.cat([torch.zeros(1, dtype=p.dtype), p, torch.zeros(1, dtype=p.dtype)])
    r = torch.cat([torch.zeros(1, dtype=r.dtype), r, torch.ones(1, dtype=r.dtype)])
    p = p.flip(0).cummax(0).values.flip(0)                               # the envelope
    steps = (r[1:] != r[:-1]).nonzero().flatten()
    return float(((r[steps + 1] - r[steps]) * p[steps + 1]).sum())


def match_detections(detections: list[dict], ground_truth: list[dict], label: int, iou_threshold: float = 0.5):
    """Scores and true-positive flags of every detection of class `label`, and the number of its
    ground-truth boxes: (scores (D,), is_tp (D,), num_gt). Matching is per image, so the flags of
    a subset of images are the subset of the flags (what a bootstrap over images needs)."""
    scores, flags, num_gt = [], [], 0
    for det, gt in zip(detections, ground_truth):
        gt_boxes = gt["boxes"][gt["labels"] == label]
        num_gt += len(gt_boxes)
        mine = det["labels"] == label
        d_boxes, d_scores = det["boxes"][mine], det["scores"][mine]
        order = d_scores.argsort(descending=True, stable=True)
        taken = torch.zeros(len(gt_boxes), dtype=torch.bool)
        iou = box_iou(d_boxes, gt_boxes) if len(gt_boxes) else None
        for i in order.tolist():
            hit = False
            if iou is not None:
                best, j = iou[i].max(0)
                # VOC: the best-overlapping ground truth, if already taken, makes this a false positive.
                if best >= iou_threshold and not taken[j]:
                    taken[j], hit = True, True
            scores.append(float(d_scores[i]))
            flags.append(hit)
    return torch.tensor(scores, dtype=torch.float64), torch.tensor(flags, dtype=torch.bool), num_gt


def _check_detection_lists(detections, ground_truth) -> None:
    for name, items, keys in (("detections", detections, ("boxes", "scores", "labels")),
                              ("ground_truth", ground_truth, ("boxes", "labels"))):
        if not isinstance(items, (list, tuple)):
            raise TypeError(f"{name} must be a list with one dict per image, got {type(items).__name__}")
        for i, item in enumerate(items):
            if not isinstance(item, dict) or any(k not in item for k in keys):
                raise ValueError(f"{name}[{i}] must be a dict with keys {keys}")
            _check_boxes(f"{name}[{i}]['boxes']", item["boxes"])
            for k in keys[1:]:
                _check_scores(f"{name}[{i}]['{k}']", item[k], len(item["boxes"]))
    if len(detections) != len(ground_truth):
        raise ValueError(f"detections and ground_truth must have one entry per image each, "
                         f"got {len(detections)} and {len(ground_truth)}")


def mean_average_precision(detections: list[dict], ground_truth: list[dict],
                           iou_threshold: float = 0.5) -> dict:
    """VOC-style mAP: {"map": float, "ap": {label: float}} over the classes that have ground truth.

    detections: one dict per image {"boxes" (D, 4), "scores" (D,), "labels" (D,)};
    ground_truth: one dict per image {"boxes" (G, 4), "labels" (G,)} (torchmetrics' format).
    A detection is a true positive when its best-overlapping ground-truth box of the same
    class has IoU >= iou_threshold and was not matched by a higher-scored detection.
    """
    _check_detection_lists(detections, ground_truth)
    iou_threshold = _check_threshold("iou_threshold", iou_threshold)
    labels = sorted({int(x) for gt in ground_truth for x in gt["labels"].tolist()})
    ap = {}
    for label in labels:
        scores, flags, num_gt = match_detections(detections, ground_truth, label, iou_threshold)
        ap[label] = average_precision(*precision_recall(scores, flags, num_gt)) if len(scores) else 0.0
    return {"map": float(np.mean(list(ap.values()))) if ap else float("nan"), "ap": ap}


# ----------------------------------------------------------------------------
# Region proposals: classical computer vision, no learning
# ----------------------------------------------------------------------------

def _image_hwc(image) -> np.ndarray:
    """(3, H, W) or (1, H, W) tensor in [0, 1] -> float numpy (H, W, 3)."""
    if not isinstance(image, torch.Tensor) or image.dim() != 3 or image.shape[0] not in (1, 3):
        raise ValueError(f"image must be a tensor (3, H, W) or (1, H, W), got "
                         f"{tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__}")
    array = image.detach().cpu().float().permute(1, 2, 0).numpy()
    return np.repeat(array, 3, axis=2) if array.shape[2] == 1 else array


def _unique_boxes(boxes: list) -> torch.Tensor:
    """Boxes in first-seen order, duplicates dropped: -> float (N, 4)."""
    seen, out = set(), []
    for box in boxes:
        key = tuple(int(v) for v in box)
        if key not in seen and key[2] > key[0] and key[3] > key[1]:
            seen.add(key)
            out.append(key)
    return torch.tensor(out, dtype=torch.float32).reshape(-1, 4)


def sliding_windows(image_size, sizes=(16, 32, 48, 64), ratios=(0.5, 1.0, 2.0),
                    stride_fraction: float = 0.5) -> torch.Tensor:
    """Every window of every size and aspect ratio on a grid: the proposal baseline -> (N, 4).

    A window of size s and ratio r (height / width) is s/sqrt(r) wide and s*sqrt(r) high;
    windows step by `stride_fraction` of their own size. Ordered from large to small.
    """
    h, w = (image_size, image_size) if isinstance(image_size, int) else image_size
    boxes = []
    for s in sorted(sizes, reverse=True):
        for r in ratios:
            bw, bh = s / math.sqrt(r), s * math.sqrt(r)
            if bw > w or bh > h:
                continue
            ys = np.arange(0, h - bh + 1e-6, max(1.0, bh * stride_fraction))
            xs = np.arange(0, w - bw + 1e-6, max(1.0, bw * stride_fraction))
            boxes += [(x, y, x + bw, y + bh) for y in ys for x in xs]
    return torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4)


def sobel_edges(image, blur: float = 1.5) -> np.ndarray:
    """Gradient magnitude of the grey image with Sobel's 3x3 kernels: (H, W) numpy.

    A Gaussian blur of std `blur` pixels first quietens fine texture (0: no blur).
    """
    from scipy import ndimage
    grey = _image_hwc(image).mean(axis=2)
    grey = ndimage.gaussian_filter(grey, blur) if blur > 0 else grey
    grey = torch.from_numpy(np.ascontiguousarray(grey, dtype=np.float32))[None, None]   # (1, 1, H, W)
    kx = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])
    k = torch.stack([kx, kx.T])[:, None]                                     # (2, 1, 3, 3)
    g = F.conv2d(F.pad(grey, (1, 1, 1, 1), mode="replicate"), k)[0]        # (2, H, W)
    return g.pow(2).sum(0).sqrt().numpy()


def edge_proposals(image, quantiles=(0.6, 0.7, 0.8, 0.9), closing=(1, 2, 3),
                   min_size: int = 6) -> torch.Tensor:
    """The notes' route: Sobel edges -> threshold -> connected components -> their boxes -> (N, 4).

    The edge map is thresholded at several quantiles of its values; small gaps in each
    contour are closed with a square of radius `closing` (a morphological closing), holes
    filled, and each connected component gives one box. Large components first.
    """
    from scipy import ndimage
    edges = sobel_edges(image)
    h, w = edges.shape
    found = []                                                  # (area, box)
    for q in quantiles:
        binary = edges > np.quantile(edges, q)
        for radius in closing:
            square = np.ones((2 * radius + 1, 2 * radius + 1), dtype=bool)
            closed = ndimage.binary_fill_holes(ndimage.binary_closing(binary, square))
            components, _ = ndimage.label(closed)
            for sl in ndimage.find_objects(components):
                y0, y1, x0, x1 = sl[0].start, sl[0].stop, sl[1].start, sl[1].stop
                if y1 - y0 >= min_size and x1 - x0 >= min_size and (y1 - y0) * (x1 - x0) < 0.9 * h * w:
                    found.append(((y1 - y0) * (x1 - x0), (x0, y0, x1, y1)))
    found.sort(key=lambda item: -item[0])
    return _unique_boxes([box for _, box in found])


def _region_histograms(segments: np.ndarray, values: np.ndarray, bins: int, high: float) -> np.ndarray:
    """L1-normalised histograms of every region, `bins` bins per channel: (R, C * bins).

    segments: (H, W) labels 0..R-1; values: (H, W, C) in [0, high].
    """
    n_regions, channels = segments.max() + 1, values.shape[2]
    codes = np.clip((values / high * bins).astype(np.int64), 0, bins - 1) + bins * np.arange(channels)
    flat = (segments[..., None] * channels * bins + codes).ravel()       # one bin per (region, channel)
    hist = np.bincount(flat, minlength=n_regions * channels * bins).reshape(n_regions, -1)
    return hist / hist.sum(1, keepdims=True)


def selective_search(image, scales=(50, 150), sigma: float = 0.8, min_size: int = 20,
                     seed: int = 0) -> torch.Tensor:
    """Selective search (Uijlings et al., 2013): hierarchical grouping of superpixels -> boxes (N, 4).

    For each scale: Felzenszwalb-Huttenlocher superpixels; then, repeatedly, merge the two
    most similar neighbouring regions, where similarity = colour + texture + size + fill:
      colour  histogram intersection of 25-bin colour histograms per channel,
      texture histogram intersection of gradient-orientation histograms (8 directions x 10 bins),
      size    1 - (size_i + size_j) / image size (merge small regions first),
      fill    1 - (bounding box of both - size_i - size_j) / image size (regions that fit together).
    Every region ever formed is a proposal. Ordered as in the paper: by hierarchy level
    (the last merges first) times a random number from `seed`.
    """
    from scipy import ndimage
    from skimage.segmentation import felzenszwalb
    rgb = _image_hwc(image)
    h, w, _ = rgb.shape
    image_size = float(h * w)
    grey = rgb.mean(axis=2)
    gy, gx = np.gradient(grey)
    orientation = (np.arctan2(gy, gx) % (2 * np.pi)) // (2 * np.pi / 8)      # (H, W) in 0..7
    magnitude = np.hypot(gx, gy)
    texture = np.stack([np.where(orientation == k, magnitude, 0.0) for k in range(8)], 2)   # (H, W, 8)
    rng = np.random.default_rng(seed)
    ranked = []                                                  # (priority, box)
    for scale in scales:
        segments = felzenszwalb(rgb, scale=scale, sigma=sigma, min_size=min_size)   # (H, W) 0..R-1
        colour = _region_histograms(segments, rgb, 25, 1.0)
        textures = _region_histograms(segments, texture, 10, max(float(texture.max()), 1e-6))
        sizes = np.bincount(segments.ravel())
        regions = {}
        for label, sl in enumerate(ndimage.find_objects(segments + 1)):
            regions[label] = {"size": float(sizes[label]),
                              "box": (sl[1].start, sl[0].start, sl[1].stop, sl[0].stop),
                              "colour": colour[label], "texture": textures[label]}
        # Neighbours: labels that touch horizontally or vertically.
        pairs = set()
        for a, b in ((segments[:, :-1], segments[:, 1:]), (segments[:-1], segments[1:])):
            differ = a != b
            pairs |= {(min(p, q), max(p, q)) for p, q in zip(a[differ].tolist(), b[differ].tolist())}

        def similarity(i, j):
            ri, rj = regions[i], regions[j]
            x0, y0 = min(ri["box"][0], rj["box"][0]), min(ri["box"][1], rj["box"][1])
            x1, y1 = max(ri["box"][2], rj["box"][2]), max(ri["box"][3], rj["box"][3])
            return (np.minimum(ri["colour"], rj["colour"]).sum()
                    + np.minimum(ri["texture"], rj["texture"]).sum()
                    + 1 - (ri["size"] + rj["size"]) / image_size
                    + 1 - ((x1 - x0) * (y1 - y0) - ri["size"] - rj["size"]) / image_size)

        sims = {pair: similarity(*pair) for pair in pairs}
        order = [regions[k]["box"] for k in regions]             # level 0: the superpixels
        next_label = max(regions) + 1
        while sims:
            i, j = max(sims, key=sims.get)
            ri, rj = regions[i], regions[j]
            size = ri["size"] + rj["size"]
            merged = {
                "size": size,
                "box": (min(ri["box"][0], rj["box"][0]), min(ri["box"][1], rj["box"][1]),
                        max(ri["box"][2], rj["box"][2]), max(ri["box"][3], rj["box"][3])),
                "colour": (ri["size"] * ri["colour"] + rj["size"] * rj["colour"]) / size,
                "texture": (ri["size"] * ri["texture"] + rj["size"] * rj["texture"]) / size,
            }
            neighbours = {p for pair in sims if i in pair or j in pair for p in pair} - {i, j}
            sims = {pair: s for pair, s in sims.items() if i not in pair and j not in pair}
            regions[next_label] = merged
            for k in neighbours:
                sims[(k, next_label)] = similarity(k, next_label)
            order.append(merged["box"])
            next_label += 1
        n = len(order)
        # Position in the hierarchy: 1 for the last merge (the whole image), n for the first superpixel.
        ranked += [((n - i) * rng.random(), box) for i, box in enumerate(order)]
    ranked.sort(key=lambda item: item[0])
    return _unique_boxes([box for _, box in ranked])


def first_hits(proposals: list, ground_truth: list, iou_threshold: float = 0.5) -> torch.Tensor:
    """For every ground-truth box, the rank of the first proposal with IoU >= threshold (inf if none).

    proposals: one (N_i, 4) tensor per image; ground_truth: one (G_i, 4) tensor (or target dict) per image.
    Recall with the first k proposals is ``(first_hits(...) < k).float().mean()``.
    """
    ranks = []
    for props, gt in zip(proposals, ground_truth):
        gt = gt["boxes"] if isinstance(gt, dict) else gt
        if len(gt) == 0:
            continue
        if len(props) == 0:
            ranks.append(torch.full((len(gt),), float("inf")))
            continue
        hit = box_iou(gt, props) >= iou_threshold                          # (G, N)
        first = hit.float().argmax(1).float()                              # first True (0 if none)
        ranks.append(torch.where(hit.any(1), first, torch.tensor(float("inf"))))
    return torch.cat(ranks) if ranks else torch.zeros(0)


def proposal_recall(proposals: list, ground_truth: list, k: int | None = None,
                    iou_threshold: float = 0.5) -> float:
    """Share of ground-truth boxes covered (IoU >= threshold) by one of the first `k` proposals (all if None)."""
    ranks = first_hits(proposals, ground_truth, iou_threshold)
    limit = float("inf") if k is None else k
    return float((ranks < limit).float().mean()) if len(ranks) else 0.0


# ----------------------------------------------------------------------------
# Faster R-CNN's anchors
# ----------------------------------------------------------------------------

def anchors(feature_size, stride: int, sizes=(16, 32, 64), ratios=(0.5, 1.0, 2.0)) -> torch.Tensor:
    """Anchor boxes centred on every feature-map cell: -> (H' * W' * len(sizes) * len(ratios), 4).

    Cell (i, j) of a feature map with the given stride is centred at ((j + 0.5) * stride,
    (i + 0.5) * stride) in the image; an anchor of size s and ratio r (height / width) is
    s/sqrt(r) wide and s*sqrt(r) high. The RPN predicts, for every anchor, an objectness
    score and the encode_boxes deltas to the object (Ren et al., Faster R-CNN, 2015).
    """
    fh, fw = (feature_size, feature_size) if isinstance(feature_size, int) else feature_size
    shapes = torch.tensor([(s / math.sqrt(r), s * math.sqrt(r)) for s in sizes for r in ratios])   # (A, 2)
    cy, cx = torch.meshgrid((torch.arange(fh) + 0.5) * stride, (torch.arange(fw) + 0.5) * stride,
                            indexing="ij")
    centres = torch.stack([cx, cy], -1).reshape(-1, 1, 2)                                        # (H'W', 1, 2)
    return torch.cat([centres - shapes / 2, centres + shapes / 2], -1).reshape(-1, 4)


# ----------------------------------------------------------------------------
# R-CNN's plumbing: warp regions, label proposals, sample training regions, post-process
# ----------------------------------------------------------------------------

def warp_boxes(images: torch.Tensor, boxes: list, size: int) -> torch.Tensor:
    """Cut every box out of its image and resize it to size x size (bilinear), ignoring the aspect
    ratio, as R-CNN warps each proposal: images (N, C, H, W), boxes list of N (L_i, 4) -> (sum L_i, C, size, size)."""
    from torchvision.ops import roi_align
    return roi_align(images, [b.to(images.dtype) for b in boxes], output_size=size, spatial_scale=1.0,
                     sampling_ratio=2, aligned=True)


def assign_labels(proposals: torch.Tensor, gt_boxes: torch.Tensor, gt_labels: torch.Tensor,
                  background: int, fg_iou: float = 0.5, bg_iou: float = 0.3):
    """Label each proposal by its best-overlapping ground truth: (labels (N,), matched boxes (N, 4), IoU (N,)).

    IoU >= fg_iou: that object's class; IoU < bg_iou: `background`; in between: -1 (ignored),
    as in R-CNN's fine-tuning.
    """
    if len(gt_boxes) == 0:
        return (torch.full((len(proposals),), background), torch.zeros(len(proposals), 4),
                torch.zeros(len(proposals)))
    iou, best = box_iou(proposals, gt_boxes).max(1)                 # (N,), (N,)
    labels = gt_labels[best].clone()
    labels[iou < fg_iou] = -1
    labels[iou < bg_iou] = background
    return labels, gt_boxes[best], iou


def sample_regions(target: dict, image_size: int, n_jitter: int, n_random: int,
                   generator: torch.Generator) -> torch.Tensor:
    """Training regions for one scene: jittered copies of each ground-truth box (they play the part of
    proposals that hit the object) and random boxes (mostly background) -> (K, 4)."""
    gt = target["boxes"]
    parts = []
    if len(gt):
        wh = (gt[:, 2:] - gt[:, :2]).repeat_interleave(n_jitter, 0)             # (G*n, 2)
        centre = (gt[:, :2] + gt[:, 2:]).repeat_interleave(n_jitter, 0) / 2
        centre = centre + wh * 0.15 * torch.randn(len(wh), 2, generator=generator)
        wh = wh * torch.exp(0.2 * torch.randn(len(wh), 2, generator=generator))
        parts.append(torch.cat([centre - wh / 2, centre + wh / 2], 1))
    size = 10 + torch.rand(n_random, 2, generator=generator) * 50
    corner = torch.rand(n_random, 2, generator=generator) * (image_size - size)
    parts.append(torch.cat([corner, corner + size], 1))
    return torch.cat(parts).clamp(0, image_size)


def detections_from_scores(proposals: torch.Tensor, probs: torch.Tensor, deltas: torch.Tensor | None = None,
                           score_threshold: float = 0.05, nms_threshold: float = 0.3) -> dict:
    """R-CNN's last step: every (proposal, class) pair scored above the threshold, its box moved by the
    class's regression deltas, then NMS per class.

    proposals (N, 4), probs (N, K + 1) with the background last, deltas (N, K, 4) or None
    -> {"boxes" (D, 4), "scores" (D,), "labels" (D,)}.
    """
    n, k = probs.shape[0], probs.shape[1] - 1
    scores = probs[:, :k]                                            # (N, K), background dropped
    boxes = proposals[:, None].expand(n, k, 4)                       # (N, K, 4)
    if deltas is not None:
        boxes = decode_boxes(proposals.repeat_interleave(k, 0), deltas.reshape(-1, 4)).reshape(n, k, 4)
    labels = torch.arange(k).expand(n, k)
    keep = scores > score_threshold
    boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
    boxes = torch.cat([boxes[:, :2].clamp(min=0), boxes[:, 2:]], 1)
    boxes = torch.cat([boxes[:, :2], boxes[:, 2:].maximum(boxes[:, :2])], 1)   # keep x2 >= x1 after decoding
    kept = batched_nms(boxes, scores, labels, nms_threshold)
    return {"boxes": boxes[kept], "scores": scores[kept], "labels": labels[kept]}
