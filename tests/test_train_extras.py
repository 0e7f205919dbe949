"""fit(): checkpoints (atomic, exact resume, clear errors), early stopping, schedulers,
TensorBoard logging and the learning-rate range test."""

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

import cnnkit
from cnnkit import train


def data(n=256, seed=0):
    gen = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 3, (n,), generator=gen)
    x = torch.randn(n, 1, 8, 8, generator=gen) * 0.7 + y[:, None, None, None].float()
    return TensorDataset(x, y)


def net():
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Dropout(0.2), nn.Flatten(), nn.Linear(4 * 6 * 6, 3))


def run(epochs, **kwargs):
    cnnkit.setup(seed=0, verbose=False)
    model = net()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    h = train.fit(model, data(), data(seed=1), epochs=epochs, optimizer=opt, scheduler=sched,
                  progress=False, device="cpu", **kwargs)
    return model, h


def test_interrupted_and_resumed_run_equals_uninterrupted_run(tmp_path, monkeypatch):
    full_model, full = run(5)
    ckpt = tmp_path / "run.pt"
    # Interrupt in the middle of epoch 4: the checkpoint holds the end of epoch 3.
    calls = {"n": 0}
    real = train._train_one_epoch

    def interrupting(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(train, "_train_one_epoch", interrupting)
    _, partial = run(5, checkpoint=ckpt)
    assert partial.stopped == "interrupted" and partial.epochs == 3
    monkeypatch.setattr(train, "_train_one_epoch", real)
    cnnkit.setup(seed=123, verbose=False)          # a different RNG state: resume must restore it
    model = net()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    resumed = train.fit(model, data(), data(seed=1), epochs=5, optimizer=opt, scheduler=sched,
                        progress=False, device="cpu", resume=ckpt, checkpoint=ckpt)
    assert resumed.epochs == 5 and resumed.lr == full.lr
    assert resumed.train_loss == full.train_loss and resumed.val_loss == full.val_loss
    for a, b in zip(model.state_dict().values(), full_model.state_dict().values()):
        assert torch.equal(a, b)


def test_checkpoint_holds_the_best_weights(tmp_path):
    ckpt = tmp_path / "best.pt"
    model, h = run(4, checkpoint=ckpt, monitor="val_acc")
    fresh = net()
    info = train.load_checkpoint(ckpt, fresh)
    assert info["best"]["epoch"] == h.val_acc.index(max(h.val_acc)) + 1
    assert train.evaluate(fresh, data(seed=1))["accuracy"] == pytest.approx(max(h.val_acc))


def test_checkpoint_save_is_atomic(tmp_path, monkeypatch):
    ckpt = tmp_path / "run.pt"
    run(2, checkpoint=ckpt)
    before = ckpt.read_bytes()
    real_save = torch.save

    def crashing_save(obj, fh, *args, **kwargs):
        fh.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crashing_save)
    with pytest.raises(OSError, match="disk full"):
        run(3, checkpoint=ckpt)
    monkeypatch.setattr(torch, "save", real_save)
    assert ckpt.read_bytes() == before                           # the old checkpoint is intact
    assert train.load_checkpoint(ckpt, net())["epoch"] == 2
    assert [p.name for p in tmp_path.iterdir()] == ["run.pt"]    # no temporary files left


def test_checkpoint_errors_name_the_problem(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        train.load_checkpoint(tmp_path / "nope.pt", net())
    ckpt = tmp_path / "run.pt"
    run(1, checkpoint=ckpt)
    other = nn.Sequential(nn.Conv2d(1, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 6 * 6, 3))
    with pytest.raises(ValueError, match=r"does not match.*shape mismatches.*0\.weight"):
        train.load_checkpoint(ckpt, other)
    with pytest.raises(ValueError, match=r"missing keys.*1\.weight|unexpected keys"):
        train.load_checkpoint(ckpt, nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2)))
    with pytest.raises(ValueError, match="does not match"):
        train.fit(other, data(), data(), epochs=2, resume=ckpt, progress=False, device="cpu")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="could not be read"):
        train.load_checkpoint(tmp_path / "junk.pt", net())


def test_early_stopping_restores_best_weights_and_says_why():
    cnnkit.setup(seed=0, verbose=False)
    small = TensorDataset(torch.randn(24, 1, 8, 8), torch.randint(0, 3, (24,)))   # pure noise: overfits
    model = net()
    h = train.fit(model, small, data(seed=1), epochs=40, lr=0.01, patience=3, progress=False, device="cpu")
    assert h.epochs < 40 and h.stopped.startswith("early stopping")
    best = h.val_loss.index(min(h.val_loss)) + 1
    assert h.best_monitored_epoch == best and h.epochs == best + 3
    assert h.best_epoch_ == best                      # the former name, used by notebook 05, still works
    assert h.best_epoch("val_loss") == best           # the method computes the same from the lists
    assert train.evaluate(model, data(seed=1))["loss"] == pytest.approx(min(h.val_loss), rel=1e-5)


def test_early_stopping_bar_says_why_it_ends_short_of_100_percent(capsys, monkeypatch):
    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    cnnkit.setup(seed=0, verbose=False)
    small = TensorDataset(torch.randn(24, 1, 8, 8), torch.randint(0, 3, (24,)))
    h = train.fit(net(), small, data(seed=1), epochs=40, lr=0.01, patience=3, device="cpu")
    last = capsys.readouterr().err.replace("\r", "\n").strip().splitlines()[-1]
    assert last.startswith(f"stopped early at epoch {h.epochs}/40: "), last
    assert "100%" not in last


def test_one_cycle_steps_per_batch_and_lr_is_recorded():
    cnnkit.setup(seed=0, verbose=False)
    model = net()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=3 * 4)
    h = train.fit(model, data(n=128), epochs=3, batch_size=32, optimizer=opt, scheduler=sched,
                  progress=False, device="cpu")
    assert sched.last_epoch == 12 and len(h.lr) == 3 and h.lr[0] < h.lr[1]


def test_tensorboard_event_files(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    run(2, log_dir=tmp_path / "runs" / "a")
    acc = EventAccumulator(str(tmp_path / "runs" / "a"), size_guidance={"histograms": 0, "images": 0})
    acc.Reload()
    tags = acc.Tags()
    assert {"loss/train", "loss/val", "accuracy/train", "accuracy/val", "learning_rate"} <= set(tags["scalars"])
    assert [e.step for e in acc.Scalars("loss/train")] == [1, 2]
    assert any(t.startswith("weights/") for t in tags["histograms"]) and "samples" in tags["images"]


def assert_sensible_range_test(result, start_lr=1e-6, end_lr=1.0, num_iter=60):
    """What a working range test must show; each line fails for some broken lr_find."""
    # the rates grow exponentially from start_lr towards end_lr, one per batch (a wrong schedule fails)
    factor = (end_lr / start_lr) ** (1 / (num_iter - 1))
    assert len(result.lrs) == len(result.losses) >= 3
    assert result.lrs == pytest.approx([start_lr * factor ** i for i in range(len(result.lrs))], rel=1e-9)
    # the rates were really used: the smoothed loss fell by more than 10% (an optimizer that never
    # steps, or steps at a fixed tiny rate, leaves it flat)
    assert min(result.losses) < 0.9 * result.losses[0], (result.losses[0], min(result.losses))
    # the suggestion is where the loss is still falling, before its minimum (not after, not at it)
    i = result.lrs.index(result.suggestion)
    assert i < result.losses.index(min(result.losses)) and result.losses[i + 1] < result.losses[i]


def test_lr_find_restores_the_model_and_suggests_a_rate():
    cnnkit.setup(seed=0, verbose=False)
    model = net()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = train.lr_find(model, data(n=512), num_iter=60, device="cpu")
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert_sensible_range_test(result)
    assert result.plot().axes[0].get_xscale() == "log"


def test_the_lr_find_assertions_fail_for_a_broken_lr_find(monkeypatch):
    # The earlier check (1e-6 <= suggestion <= 1.0) held for any output: the suggestion is always
    # one of the tried rates. These two broken variants must be caught.
    cnnkit.setup(seed=0, verbose=False)
    with monkeypatch.context() as m:                  # the optimizer never moves the weights
        m.setattr(torch.optim.SGD, "step", lambda self, closure=None: None)
        frozen = train.lr_find(net(), data(n=512), num_iter=60, device="cpu")
    with pytest.raises(AssertionError):
        assert_sensible_range_test(frozen)
    cnnkit.setup(seed=0, verbose=False)
    result = train.lr_find(net(), data(n=512), num_iter=60, device="cpu")
    with monkeypatch.context() as m:                  # steepest ascent instead of descent
        m.setattr(type(result), "suggestion", property(
            lambda self: self.lrs[int(np.argmax(np.gradient(np.asarray(self.losses), np.log10(self.lrs))))]))
        with pytest.raises(AssertionError):
            assert_sensible_range_test(result)


@pytest.mark.parametrize("kwargs,match", [
    (dict(patience=0), "patience"), (dict(monitor="train_loss"), "monitor"),
])
def test_bad_fit_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        train.fit(net(), data(), data(), epochs=1, progress=False, device="cpu", **kwargs)
    with pytest.raises(ValueError, match="validation"):
        train.fit(net(), data(), epochs=1, patience=2, progress=False, device="cpu")


@pytest.mark.parametrize("n_epochs", [1, 2, 7])
def test_curves_have_whole_epoch_ticks(n_epochs):
    """One epoch reads "1" on the axis, not 0.95 ... 1.05; longer runs tick whole epochs only."""
    from cnnkit.plot import compare_histories, plot_history
    h = train.History()
    for e in range(n_epochs):
        h.record(1.0 / (e + 1), 0.5, {"loss": 1.0, "accuracy": 0.5}, 0.1, 0.0)
    for fig in (plot_history(h), compare_histories({"a": h, "b": h})):
        fig.canvas.draw()
        for ax in fig.axes:
            lo, hi = ax.get_xlim()
            shown = [t for t in ax.get_xticks() if lo <= t <= hi]
            assert shown and all(float(t).is_integer() for t in shown), shown
            assert 1 in shown and lo < 1 and hi > n_epochs
