"""cnnkit.data: SmallMNIST shape, split, checksums and clear errors."""

import hashlib
import shutil

import numpy as np
import pytest
import torch

from cnnkit import data


@pytest.fixture(scope="module")
def train_set():
    return data.SmallMNIST(train=True)


@pytest.fixture(scope="module")
def test_set():
    return data.SmallMNIST(train=False)


def test_sizes_types_and_ranges(train_set, test_set):
    assert len(train_set) == 4000 and len(test_set) == 1000
    assert train_set.data.dtype == torch.uint8 and train_set.data.shape == (4000, 28, 28)
    assert train_set.targets.dtype == torch.int64 and train_set.targets.shape == (4000,)
    assert train_set.classes[3].startswith("3") and len(train_set.classes) == 10
    image, label = train_set[0]
    assert image.dtype == torch.float32 and image.shape == (1, 28, 28)
    assert 0.0 <= float(image.min()) and float(image.max()) <= 1.0
    assert isinstance(label, int) and label == int(train_set.targets[0])
    assert torch.equal(image[0], train_set.data[0].float() / 255)


def test_split_is_stratified_disjoint_and_fixed(train_set, test_set):
    assert torch.bincount(train_set.targets).tolist() == [400] * 10
    assert torch.bincount(test_set.targets).tolist() == [100] * 10
    images, _ = data.load_mnist5k()
    rows = {img.tobytes() for img in images}
    train_rows = {img.numpy().tobytes() for img in train_set.data}
    test_rows = {img.numpy().tobytes() for img in test_set.data}
    assert train_rows | test_rows <= rows
    # a handful of MNIST digits are exact duplicates of each other; the index split is disjoint
    train_idx, test_idx = data.stratified_split(data.load_mnist5k()[1], 0.2, seed=0)
    assert not set(train_idx) & set(test_idx) and len(set(train_idx) | set(test_idx)) == 5000
    again = data.SmallMNIST(train=True)
    assert torch.equal(again.data, train_set.data) and torch.equal(again.targets, train_set.targets)
    # not class-sorted like the source file
    assert len(set(train_set.targets[:20].tolist())) > 3


def test_the_digits_are_real_mnist(train_set):
    """Real digits: mostly-zero borders, ink in the middle, mean intensity near MNIST's 0.13."""
    x = train_set.data.float() / 255
    assert 0.10 < float(x.mean()) < 0.16
    assert float(x[:, :2, :].mean()) < 0.01 and float(x[:, 10:18, 10:18].mean()) > 0.3


def test_transform_and_target_transform_are_applied():
    ds = data.SmallMNIST(train=False, transform=lambda t: t * 2, target_transform=lambda y: y + 100)
    image, label = ds[5]
    assert float(image.max()) > 1.0 and label >= 100
    with pytest.raises(TypeError, match="transform"):
        data.SmallMNIST(transform="flip")
    with pytest.raises(TypeError, match="train"):
        data.SmallMNIST(train="yes")


def test_works_with_dataloader(train_set):
    x, y = next(iter(torch.utils.data.DataLoader(train_set, batch_size=32)))
    assert x.shape == (32, 1, 28, 28) and y.shape == (32,)


def test_checksum_file_matches_shipped_data():
    path = data.data_dir() / data.MNIST5K_FILE
    listed = (data.data_dir() / "SHA256SUMS").read_text().split()[0]
    assert hashlib.sha256(path.read_bytes()).hexdigest() == listed


def _copy_data(tmp_path):
    shutil.copytree(data.data_dir(), tmp_path / "data")
    return tmp_path / "data"


def test_missing_file_names_the_file(tmp_path):
    root = _copy_data(tmp_path)
    (root / data.MNIST5K_FILE).unlink()
    with pytest.raises(FileNotFoundError, match="mnist_5k.csv.gz"):
        data.SmallMNIST(root=root)


def test_corrupt_file_is_detected_and_named(tmp_path):
    root = _copy_data(tmp_path)
    path = root / data.MNIST5K_FILE
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="mnist_5k.csv.gz.*corrupt"):
        data.SmallMNIST(root=root)
    path.write_bytes(bytes(raw[: len(raw) // 3]))   # truncated
    with pytest.raises(ValueError, match="corrupt"):
        data.SmallMNIST(root=root)


def test_missing_checksum_list_is_reported(tmp_path):
    root = _copy_data(tmp_path)
    (root / "SHA256SUMS").unlink()
    data._checksums.cache_clear()
    with pytest.raises(FileNotFoundError, match="SHA256SUMS"):
        data.SmallMNIST(root=root)


def test_data_dir_can_be_moved_with_environment(tmp_path, monkeypatch):
    root = _copy_data(tmp_path)
    monkeypatch.setenv("CNNKIT_DATA_DIR", str(root))
    assert data.data_dir() == root
    assert len(data.SmallMNIST(train=False)) == 1000


def test_stratified_split_rejects_bad_fraction():
    with pytest.raises(ValueError, match="test_fraction"):
        data.stratified_split(np.zeros(10), 1.5)


@pytest.mark.parametrize("name", sorted(data.PHOTOS))
def test_bundled_photos_load_offline(name):
    photo = data.load_photo(name)
    assert photo.dim() == 3 and photo.shape[0] in (1, 3) and photo.dtype == torch.float32
    assert 0 <= float(photo.min()) and float(photo.max()) <= 1
    assert data.load_photo(name, gray=True).shape[0] == 1


def test_unknown_photo_lists_the_choices():
    with pytest.raises(ValueError, match="camera"):
        data.load_photo("mona_lisa")


@pytest.mark.parametrize("kind", ["blobs", "moons", "circles", "xor"])
def test_toy_2d_is_balanced_reproducible_and_shaped(kind):
    x, y = data.toy_2d(kind, n=101, seed=3)
    assert x.shape == (101, 2) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert set(y.tolist()) == {0, 1} and abs(int(y.sum()) - 50) <= 1
    x2, y2 = data.toy_2d(kind, n=101, seed=3)
    assert torch.equal(x, x2) and torch.equal(y, y2)
    assert not torch.equal(x, data.toy_2d(kind, n=101, seed=4)[0])


def test_toy_2d_rejects_bad_arguments():
    with pytest.raises(ValueError, match="kind"):
        data.toy_2d("spirals")
    with pytest.raises(ValueError, match="n must"):
        data.toy_2d(n=1)
