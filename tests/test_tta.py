"""cnnkit.tta against plain prediction, hand-written loops and torchvision's crops;
the Shapes dataset and the augmentation grid of lecture 06."""

import random

import pytest
import torch
import torchvision.transforms.v2.functional as TF
from torch import nn

import cnnkit
from cnnkit import tta
from cnnkit.data import SHAPE_CLASSES, ImageDataset, Shapes, make_shapes


def small_net(channels=3, classes=5, seed=0):
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Conv2d(channels, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(), nn.Dropout(0.2),
                        nn.Conv2d(6, 8, 3, stride=2), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                        nn.Linear(8, classes))
    net(torch.randn(8, channels, 12, 12))         # running statistics away from their initial values
    return net


def hand_loop(model, x, views):
    """The definition, one image at a time: mean over views of softmax(model(view(image)))."""
    model.eval()
    rows = []
    with torch.no_grad():
        for image in x:
            probs = [model(view(image[None])).softmax(1)[0] for view in views]
            rows.append(torch.stack(probs).mean(0))
    return torch.stack(rows)


@pytest.mark.parametrize("seed", range(10))
def test_identity_view_equals_plain_prediction(seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(int(torch.randint(1, 40, (1,), generator=g)), 3, 10, 10, generator=g)
    model = small_net(seed=seed)
    torch.testing.assert_close(tta.predict(model, x, ["identity"]), cnnkit.predict(model, x))
    torch.testing.assert_close(tta.predict(model, x), cnnkit.predict(model, x))
    dataset = ImageDataset(x, torch.zeros(len(x), dtype=torch.long))
    torch.testing.assert_close(tta.predict(model, dataset, [tta.identity]), cnnkit.predict(model, dataset))


def random_views(rng: random.Random, size: int):
    pool = [lambda: [tta.hflip], lambda: ["identity", "hflip"], lambda: tta.ten_crop(rng.randint(4, size)),
            lambda: tta.five_crop(rng.randint(4, size)), lambda: tta.shifts(rng.randint(1, 3)),
            lambda: [tta.identity, lambda x: x.flip(-2)]]
    return rng.choice(pool)()


@pytest.mark.parametrize("seed", range(30))
def test_views_match_a_hand_written_loop(seed):
    rng = random.Random(seed)
    size = rng.randint(6, 14)
    channels, classes = rng.choice([1, 3]), rng.randint(2, 6)
    model = small_net(channels, classes, seed)
    x = torch.randn(rng.randint(1, 12), channels, size, size)
    views = random_views(rng, size)
    resolved = [tta.VIEWS[v] if isinstance(v, str) else v for v in views]
    got = tta.predict(model, x, views, batch_size=rng.randint(1, 8))
    torch.testing.assert_close(got, hand_loop(model, x, resolved), atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(got.sum(1), torch.ones(len(x)))


@pytest.mark.parametrize("seed", range(40))
def test_ten_crop_views_equal_torchvision_ten_crop(seed):
    rng = random.Random(seed)
    crop = rng.randint(1, 20)
    h, w = crop + rng.randint(0, 9), crop + rng.randint(0, 9)
    x = torch.randn(2, 3, h, w)
    want = TF.ten_crop(x, [crop, crop])                # tl, tr, bl, br, centre, then the same flipped
    for view, expected in zip(tta.ten_crop(crop), want, strict=True):
        torch.testing.assert_close(view(x), expected, rtol=0, atol=0)
    boxes = tta.crop_boxes((h, w), crop)
    for (top, left, ch, cw), expected in zip(boxes, TF.five_crop(x, [crop, crop]), strict=True):
        torch.testing.assert_close(x[..., top:top + ch, left:left + cw], expected, rtol=0, atol=0)


def test_shifts_move_the_content_and_keep_the_size():
    x = torch.zeros(1, 1, 9, 9)
    x[0, 0, 4, 4] = 1.0
    views = tta.shifts(2)
    assert views[0] is tta.identity and len(views) == 5
    peaks = {tuple((v(x)[0, 0] == 1).nonzero()[0].tolist()) for v in views}
    assert peaks == {(4, 4), (2, 4), (6, 4), (4, 2), (4, 6)}
    assert all(v(x).shape == x.shape for v in views)


def test_each_submodules_own_mode_is_restored():
    # A frozen batch norm (eval) inside a model in train mode stays frozen after a prediction.
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.LazyLinear(5))
    model(torch.randn(2, 3, 8, 8))
    model.train()
    model[1].eval()
    tta.predict(model, torch.randn(2, 3, 8, 8), ["identity", "hflip"])
    assert [m.training for m in model] == [True, False, True, True]


def test_one_forward_pass_per_view_and_batch_in_eval_mode_and_mode_restored():
    model = small_net()
    calls, modes = [], []

    def hook(module, inputs, output):
        calls.append(len(inputs[0]))
        modes.append(module.training)
    model.register_forward_hook(hook)
    model.train()
    x = torch.randn(10, 3, 12, 12)
    probs = tta.predict(model, x, tta.ten_crop(8), batch_size=4)
    assert calls == [4] * 10 + [4] * 10 + [2] * 10           # 3 batches x 10 views
    assert not any(modes) and model.training
    assert not probs.requires_grad and probs.shape == (10, 5)


def test_batch_size_does_not_change_the_answer():
    model, x = small_net(), torch.randn(17, 3, 12, 12)
    a = tta.predict(model, x, tta.ten_crop(9), batch_size=17)
    b = tta.predict(model, x, tta.ten_crop(9), batch_size=3)
    torch.testing.assert_close(a, b)


@pytest.mark.parametrize("views, error, match", [
    ([], ValueError, "non-empty"),
    (["vflip"], ValueError, "unknown view 'vflip'"),
    ([3], TypeError, "callable"),
])
def test_bad_views_are_explained(views, error, match):
    with pytest.raises(error, match=match):
        tta.predict(small_net(), torch.randn(2, 3, 8, 8), views)


def test_bad_data_and_crops_are_explained():
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        tta.predict(small_net(), torch.randn(3, 8, 8))
    with pytest.raises(TypeError, match="nn.Module"):
        tta.predict(lambda x: x, torch.randn(2, 3, 8, 8))
    with pytest.raises(ValueError, match="does not fit"):
        tta.predict(small_net(), torch.randn(2, 3, 8, 8), [tta.crop(0, 0, 9, 9)])
    with pytest.raises(ValueError, match="larger than image_size"):
        tta.crop_boxes(8, 9)
    with pytest.raises(ValueError, match="crop_size"):
        tta.crop_boxes(8, 0)
    with pytest.raises(ValueError, match="pixels"):
        tta.shifts(0)
    with pytest.raises(ValueError, match="empty"):
        tta.predict(small_net(), torch.randn(0, 3, 8, 8))


# ----------------------------------------------------------------------------
# Shapes and ImageDataset
# ----------------------------------------------------------------------------

def test_shapes_are_reproducible_balanced_and_in_range():
    a, ya = make_shapes(50, seed=3)
    b, yb = make_shapes(50, seed=3)
    c, _ = make_shapes(50, seed=4)
    assert torch.equal(a, b) and torch.equal(ya, yb) and not torch.equal(a, c)
    assert a.shape == (50, 3, 36, 36) and a.dtype == torch.float32
    assert a.min() >= 0 and a.max() <= 1
    assert torch.bincount(ya, minlength=len(SHAPE_CLASSES)).tolist() == [10] * 5


def test_shapes_dataset_applies_its_transform_per_item():
    data = Shapes(10, seed=0, size=20, transform=lambda x: x * 0 + 7)
    x, y = data[3]
    assert torch.all(x == 7) and isinstance(y, int) and data.classes == SHAPE_CLASSES
    assert "seed=0" in repr(data)


@pytest.mark.parametrize("kwargs, match", [({"n": 0}, "n must"), ({"n": 5, "size": 8}, "size must")])
def test_make_shapes_rejects_bad_arguments(kwargs, match):
    n = kwargs.pop("n")
    with pytest.raises(ValueError, match=match):
        make_shapes(n, **kwargs)


def test_image_dataset_checks_its_inputs():
    with pytest.raises(ValueError, match="images must be a tensor"):
        ImageDataset(torch.zeros(3, 8, 8), torch.zeros(3))
    with pytest.raises(ValueError, match="targets must have shape"):
        ImageDataset(torch.zeros(3, 1, 8, 8), torch.zeros(4))
    with pytest.raises(TypeError, match="transform"):
        ImageDataset(torch.zeros(3, 1, 8, 8), torch.zeros(3), transform=5)


def test_augmentation_grid_is_deterministic_and_leaves_the_global_rng_alone():
    import numpy as np
    import torchvision.transforms.v2 as v2
    image = torch.rand(3, 20, 30)
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    figs = [cnnkit.plot.show_augmentations(image, {"crop": v2.RandomResizedCrop((20, 30), antialias=True),
                                                   "flip": v2.RandomHorizontalFlip()}, n=4, seed=s)
            for s in (0, 0, 1)]
    assert torch.equal(torch.rand(1), before)
    pixels = []
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    for fig in figs:
        canvas = FigureCanvasAgg(fig)
        canvas.draw()
        pixels.append(np.asarray(canvas.buffer_rgba()).copy())
    assert np.array_equal(pixels[0], pixels[1]) and not np.array_equal(pixels[0], pixels[2])
    assert len(figs[0].axes) == 2 * 5
    with pytest.raises(ValueError, match=r"\(C, H, W\)"):
        cnnkit.plot.show_augmentations(torch.rand(1, 3, 8, 8), v2.RandomHorizontalFlip())
