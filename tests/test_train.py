"""cnnkit.train: fit / evaluate / predict / History, and cnnkit.setup."""

import math
import random

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import cnnkit
from cnnkit import train


def blobs(n=256, seed=0):
    """Two well separated Gaussian blobs in 2-D: any working loop learns them."""
    gen = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 2, (n,), generator=gen)
    x = torch.randn(n, 2, generator=gen) * 0.5 + (y[:, None] * 4.0 - 2.0)
    return TensorDataset(x, y)


def model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 2))


def test_fit_learns_and_records_history():
    net = model()
    h = cnnkit.fit(net, blobs(), blobs(seed=1), epochs=5, lr=1e-2, progress=False, device="cpu")
    assert h.epochs == 5 and len(h.val_acc) == 5 and len(h.lr) == 5 and len(h.seconds) == 5
    assert h.train_loss[-1] < h.train_loss[0]
    assert h.val_acc[-1] > 0.95
    assert h.stopped == "completed"
    assert 1 <= h.best_epoch("val_acc") <= 5 and 1 <= h.best_epoch("val_loss") <= 5
    assert "epochs=5" in repr(h)


def test_fit_accepts_dataloaders_optimizer_and_scheduler():
    net = model()
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.1)
    h = train.fit(net, DataLoader(blobs(), batch_size=32, shuffle=True), epochs=4,
                  optimizer=opt, scheduler=sched, progress=False, device="cpu")
    assert h.lr == pytest.approx([0.1, 0.1, 0.01, 0.01])
    assert h.val_loss == [] and h.epochs == 4


def test_evaluate_matches_a_hand_computation():
    net, ds = model(), blobs()
    x, y = ds.tensors
    with torch.no_grad():
        out = net(x)
    expected_loss = nn.functional.cross_entropy(out, y).item()
    expected_acc = (out.argmax(1) == y).float().mean().item()
    got = cnnkit.evaluate(net, ds, batch_size=50)
    assert got["loss"] == pytest.approx(expected_loss, rel=1e-5)
    assert got["accuracy"] == pytest.approx(expected_acc)


def test_predict_returns_probabilities_and_restores_mode():
    net, ds = nn.Sequential(nn.Linear(2, 3), nn.Dropout(0.5)), blobs(n=40)
    net.train()
    p = cnnkit.predict(net, ds, batch_size=7)
    assert p.shape == (40, 3) and torch.allclose(p.sum(1), torch.ones(40))
    assert net.training, "predict must restore train mode"
    logits = cnnkit.predict(net, ds.tensors[0], probs=False)
    torch.testing.assert_close(logits.softmax(1), p)   # dropout off in eval mode: deterministic


def test_regression_targets_give_nan_accuracy():
    x = torch.randn(64, 3)
    ds = TensorDataset(x, x.sum(1, keepdim=True))
    h = train.fit(nn.Linear(3, 1), ds, ds, epochs=2, loss_fn=nn.MSELoss(), progress=False, device="cpu")
    assert math.isnan(h.train_acc[0]) and math.isnan(h.val_acc[0])


def test_keyboard_interrupt_stops_cleanly_and_keeps_history(capsys):
    calls = {"n": 0}

    class Interrupting(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(2, 2)

        def forward(self, x):
            calls["n"] += 1
            if calls["n"] == 20:          # in the middle of the third epoch (8 batches each)
                raise KeyboardInterrupt
            return self.lin(x)

    h = train.fit(Interrupting(), blobs(), epochs=10, batch_size=32, progress=False, device="cpu")
    assert h.stopped == "interrupted"
    assert h.epochs == 2 and len(h.lr) == 2 and len(h.seconds) == 2
    assert "interrupted" in capsys.readouterr().out


def test_fit_is_reproducible_with_setup():
    results = []
    for _ in range(2):
        cnnkit.setup(seed=3, verbose=False)
        net = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 2))
        h = train.fit(net, blobs(), epochs=2, progress=False, device="cpu")
        results.append((h.train_loss, [p.detach().clone() for p in net.parameters()]))
    assert results[0][0] == results[1][0]
    for a, b in zip(results[0][1], results[1][1]):
        assert torch.equal(a, b)


@pytest.mark.parametrize("kwargs,exc,match", [
    (dict(epochs=-1), ValueError, "epochs"),
    (dict(epochs=1.5), TypeError, "epochs"),      # a wrong type (cnnkit.core.require_int)
    (dict(lr=0), ValueError, "lr"),
    (dict(batch_size=0), ValueError, "batch_size"),
    (dict(optimizer=torch.optim.Adam), TypeError, "optimizer"),
])
def test_fit_rejects_bad_arguments(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        train.fit(model(), blobs(), progress=False, device="cpu", **kwargs)


def test_fit_rejects_bad_data_and_model():
    with pytest.raises(TypeError, match="train"):
        train.fit(model(), torch.randn(10, 2), progress=False)
    with pytest.raises(TypeError, match="model"):
        train.fit(lambda x: x, blobs(), progress=False)
    with pytest.raises(ValueError, match="empty"):
        train.fit(model(), TensorDataset(torch.zeros(0, 2), torch.zeros(0, dtype=torch.long)), progress=False)


def test_history_best_epoch_errors():
    h = train.History(train_loss=[1.0, 0.5], train_acc=[0.5, 0.7])
    with pytest.raises(ValueError, match="validation"):
        h.best_epoch("val_acc")
    with pytest.raises(ValueError, match="metric"):
        h.best_epoch("lr")


def test_history_plot_returns_a_figure():
    h = train.History(train_loss=[1.0, 0.5], train_acc=[0.5, 0.7], val_loss=[1.1, 0.6], val_acc=[0.4, 0.6])
    fig = h.plot(title="t")
    assert len(fig.axes) == 2 and fig.axes[0].get_xlabel() == "epoch"


def test_setup_seeds_everything_and_returns_a_device(capsys):
    device = cnnkit.setup(seed=7)
    assert isinstance(device, torch.device)
    assert "seed 7" in capsys.readouterr().out
    a = (random.random(), np.random.rand(), torch.rand(1).item())
    cnnkit.setup(seed=7, verbose=False)
    assert a == (random.random(), np.random.rand(), torch.rand(1).item())
    with pytest.raises(TypeError, match="seed"):
        cnnkit.setup(seed="0")
    with pytest.raises(ValueError, match="prefer"):
        cnnkit.get_device("tpu")


def test_device_can_be_forced_to_cpu(monkeypatch):
    monkeypatch.setenv("CNNKIT_DEVICE", "cpu")
    assert cnnkit.get_device() == torch.device("cpu")


def frozen_bn_net():
    """A model in train mode whose batch norm was put in eval mode on purpose (frozen)."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(2, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 2))
    net.train()
    net[1].eval()
    return net


def test_evaluate_and_predict_restore_each_submodules_own_mode():
    net = frozen_bn_net()
    train.evaluate(net, blobs(n=32))
    assert [m.training for m in net] == [True, False, True, True]
    train.predict(net, torch.randn(5, 2))
    assert [m.training for m in net] == [True, False, True, True]


def test_progress_bar_on_by_default_off_with_progress_false_or_tqdm_disable(capsys, monkeypatch):
    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    train.fit(model(), blobs(n=64), epochs=1, device="cpu")
    err = capsys.readouterr().err
    assert "epoch 1/1: 100%" in err and "1/1 [" in err
    train.fit(model(), blobs(n=64), epochs=1, device="cpu", progress=False)
    assert capsys.readouterr().err == ""
    monkeypatch.setenv("TQDM_DISABLE", "1")
    train.fit(model(), blobs(n=64), epochs=1, device="cpu")
    assert capsys.readouterr().err == ""


@pytest.mark.notebook
def test_a_notebook_keeps_the_finished_bar_and_figures_as_pictures(tmp_path):
    """Saved outputs must read in static viewers (GitHub, nbconvert): the widget bar's first
    state "0%| 0/N" is replaced by its finished text, a returned figure is a PNG."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(
            "import torch\nfrom torch import nn\nfrom torch.utils.data import TensorDataset\nimport cnnkit\n"
            "torch.manual_seed(0)\n"
            "data = TensorDataset(torch.randn(64, 2), torch.randint(0, 2, (64,)))\n"
            "history = cnnkit.fit(nn.Linear(2, 2), data, data, epochs=2, batch_size=16, device='cpu')"),
        nbformat.v4.new_code_cell("cnnkit.plot.show_images(torch.rand(4, 1, 8, 8))"),
    ]
    NotebookClient(nb, timeout=120, kernel_name="cnn-course", resources={"metadata": {"path": str(tmp_path)}}).execute()
    fit_outputs = nb.cells[0].outputs
    texts = ["".join(o.get("data", {}).get("text/plain", "")) for o in fit_outputs]
    bars = [t for t in texts if "batch" in t]
    assert len(bars) == 1, texts
    assert "100%" in bars[0] and "8/8" in bars[0] and "epoch 2/2" in bars[0], bars[0]
    assert not any("widget-view" in mime for o in fit_outputs for mime in o.get("data", {})), \
        "a widget left in the saved output shows its first state in static viewers"
    assert any("image/png" in o.get("data", {}) for o in fit_outputs)            # the live curves
    figure_output, = nb.cells[1].outputs
    assert "image/png" in figure_output.data, figure_output.data.get("text/plain")
