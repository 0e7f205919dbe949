"""cnnkit.data.ShapeScenes: a detection dataset in torchvision's format, generated from a seed."""

import pytest
import torch

import cnnkit.data
from cnnkit.scenes import SCENE_SPLITS, ShapeScenes, make_scenes


def test_reexported_from_data():
    assert cnnkit.data.ShapeScenes is ShapeScenes


def test_items_look_like_a_torchvision_detection_dataset():
    scenes = ShapeScenes(20, seed=0)
    assert len(scenes) == 20
    for image, target in scenes:
        assert image.shape == (3, 128, 128) and image.dtype == torch.float32
        assert 0 <= image.min() and image.max() <= 1
        boxes, labels = target["boxes"], target["labels"]
        assert boxes.dtype == torch.float32 and labels.dtype == torch.int64
        assert boxes.shape == (len(labels), 4) and 1 <= len(labels) <= 4
        assert (boxes[:, 2] > boxes[:, 0]).all() and (boxes[:, 3] > boxes[:, 1]).all()
        assert boxes.min() >= 0 and boxes.max() <= 128
        assert ((0 <= labels) & (labels < len(ShapeScenes.classes))).all()


def test_one_object_box_is_tight_around_the_shape():
    # The shape's colour differs from the background's; outside its box the image is the
    # background texture, so a margin just outside the box looks like the scene's border pixels.
    images, targets = make_scenes(10, size=64, seed=4, min_objects=1, max_objects=1)
    for image, target in zip(images, targets):
        x1, y1, x2, y2 = (int(v) for v in target["boxes"][0])
        assert 4 <= x2 - x1 <= 64 and 4 <= y2 - y1 <= 64
        inside = torch.zeros(64, 64, dtype=torch.bool)
        inside[y1:y2, x1:x2] = True
        background = image[:, ~inside].mean(1)                       # (3,)
        centre = image[:, (y1 + y2) // 2 - 1:(y1 + y2) // 2 + 1, (x1 + x2) // 2 - 1:(x1 + x2) // 2 + 1]
        edge_rows = torch.cat([image[:, y1, x1:x2], image[:, y2 - 1, x1:x2]], 1)   # the box's own edge rows
        # the box touches the shape: its edge rows hold some pixels far from the background colour
        assert (edge_rows - background[:, None]).abs().sum(0).max() > 0.2 or centre.numel() == 0


def test_deterministic_and_seeded():
    a, b, c = ShapeScenes(5, seed=1), ShapeScenes(5, seed=1), ShapeScenes(5, seed=2)
    assert torch.equal(a.images, b.images)
    assert all(torch.equal(x["boxes"], y["boxes"]) for x, y in zip(a.targets, b.targets))
    assert not torch.equal(a.images, c.images)


def test_fixed_splits_and_variety():
    test = ShapeScenes.split("test")
    assert len(test) == SCENE_SPLITS["test"][0] == 200
    counts = torch.tensor([len(t["labels"]) for t in test.targets])
    labels = torch.cat([t["labels"] for t in test.targets])
    assert counts.min() == 1 and counts.max() == 4
    assert torch.bincount(labels, minlength=5).min() > 40                      # every class present
    boxes = torch.cat([t["boxes"] for t in test.targets])
    assert (boxes[:, 0] == 0).any() and (boxes[:, 2] == 128).any()             # objects touch the border
    from cnnkit.detect import box_iou
    overlaps = [box_iou(t["boxes"], t["boxes"]).fill_diagonal_(0).max() for t in test.targets if len(t["labels"]) > 1]
    assert max(overlaps) > 0.1                                                  # objects overlap partly
    with pytest.raises(ValueError, match="name"):
        ShapeScenes.split("val")


@pytest.mark.parametrize("kwargs, error", [
    ({"n": 0}, ValueError), ({"n": 2.5}, TypeError), ({"size": 8}, ValueError),
    ({"min_objects": 3, "max_objects": 2}, ValueError), ({"min_objects": 0}, ValueError),
])
def test_bad_arguments(kwargs, error):
    name = next(iter(kwargs)) if "max_objects" not in kwargs else "max_objects"
    with pytest.raises(error, match=name):
        ShapeScenes(**{"n": 2, **kwargs})
