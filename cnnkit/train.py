"""A small training loop with a progress bar and live curves: fit, evaluate, predict.

    history = cnnkit.fit(model, train_set, val_set, epochs=5)
    history.plot()
    cnnkit.evaluate(model, test_set)   # {'loss': ..., 'accuracy': ...}

The loop is the one you would write by hand (forward, loss, backward, step);
it only adds bookkeeping, and benchmarks/bench_fit.py measures that cost.

See: notebooks/01_convolutions.ipynb
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from cnnkit.core import get_device

__all__ = ["History", "fit", "evaluate", "predict", "as_loader"]


@dataclass
class History:
    """Per-epoch record of a training run (lists are indexed by epoch - 1)."""

    train_loss: list[float] = field(default_factory=list)
    train_acc: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_acc: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)          # learning rate used in each epoch
    seconds: list[float] = field(default_factory=list)     # wall time of each epoch
    stopped: str = "completed"                             # or "interrupted"

    @property
    def epochs(self) -> int:
        return len(self.train_loss)

    def __len__(self) -> int:
        return self.epochs

    def best_epoch(self, metric: str = "val_acc") -> int:
        """1-based epoch with the best value of `metric` (max for *_acc, min for *_loss)."""
        values = getattr(self, metric, None)
        if not isinstance(values, list) or metric in ("lr", "seconds"):
            raise ValueError(f"metric must be one of train_loss, train_acc, val_loss, val_acc; got {metric!r}")
        if not values:
            raise ValueError(f"history has no {metric} values (was a validation set given?)")
        pick = max if metric.endswith("acc") else min
        return 1 + values.index(pick(values))

    def as_dict(self) -> dict:
        return {k: getattr(self, k) for k in
                ("train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds", "stopped")}

    def plot(self, title: str | None = None):
        """Loss and accuracy curves, train vs validation; returns the matplotlib Figure."""
        from cnnkit.plot import plot_history
        return plot_history(self, title=title)

    def __repr__(self) -> str:
        if not self.epochs:
            return "History(empty)"
        last = f"train_loss={self.train_loss[-1]:.4f}, train_acc={self.train_acc[-1]:.4f}"
        if self.val_loss:
            last += f", val_loss={self.val_loss[-1]:.4f}, val_acc={self.val_acc[-1]:.4f}"
        return f"History(epochs={self.epochs}, {last}, stopped={self.stopped!r})"


def as_loader(data, batch_size: int = 64, shuffle: bool = False,
              name: str = "data") -> DataLoader:
    """A DataLoader as it is, or a Dataset wrapped in one."""
    if isinstance(data, DataLoader):
        return data
    if isinstance(data, Dataset) or (hasattr(data, "__getitem__") and hasattr(data, "__len__")
                                     and not isinstance(data, torch.Tensor)):
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        if len(data) == 0:
            raise ValueError(f"{name} is empty")
        return DataLoader(data, batch_size=batch_size, shuffle=shuffle)
    raise TypeError(f"{name} must be a torch Dataset or DataLoader, got {type(data).__name__}")


def _in_notebook() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def _split_batch(batch, device: torch.device):
    if not isinstance(batch, (tuple, list)) or len(batch) < 2:
        raise TypeError("each batch must be a pair (inputs, targets); "
                        f"got {type(batch).__name__}")
    x, y = batch[0], batch[1]
    return x.to(device, non_blocking=True), y.to(device, non_blocking=True)


def _correct(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor | None:
    """Number of right answers, if this is classification with class-index targets."""
    if output.dim() == 2 and target.dim() == 1 and not target.is_floating_point():
        return (output.argmax(dim=1) == target).sum()
    return None


class _LivePlot:
    """Redraws the loss/accuracy figure in place in a notebook after each epoch."""

    def __init__(self, title: str | None):
        from IPython.display import display
        from cnnkit.plot import plot_history
        self._plot = plot_history
        self._title = title
        self._handle = display(_placeholder(), display_id=True)

    def update(self, history: History) -> None:
        fig = self._plot(history, title=self._title)
        self._handle.update(fig)


def _placeholder():
    from IPython.display import HTML
    return HTML("<i>training curves appear after the first epoch...</i>")


def fit(model: nn.Module, train, val=None, *, epochs: int = 10, lr: float = 1e-3,
        batch_size: int = 64, optimizer: torch.optim.Optimizer | None = None,
        scheduler=None, loss_fn: Callable | None = None, device=None,
        live_plot: bool | None = None, progress: bool = True,
        title: str | None = None) -> History:
    """Train `model` on `train` for `epochs` epochs, evaluating on `val` after each.

    train, val: a Dataset (batched with `batch_size`, train shuffled) or a DataLoader.
    optimizer: defaults to Adam(model.parameters(), lr); scheduler: stepped once
    per epoch. loss_fn: defaults to cross-entropy. device: defaults to
    cuda > mps > cpu; the model is moved there. live_plot: redraw curves in the
    notebook after each epoch (default: on in a notebook, off elsewhere).
    Ctrl-C (or the notebook's stop button) ends training cleanly: the model
    keeps its weights and the returned History says stopped='interrupted'.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 0:
        raise ValueError(f"epochs must be a non-negative int, got {epochs!r}")
    if optimizer is None and not (isinstance(lr, (int, float)) and lr > 0):
        raise ValueError(f"lr must be a positive number, got {lr!r}")
    if optimizer is not None and not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(f"optimizer must be a torch.optim.Optimizer (an instance), "
                        f"got {type(optimizer).__name__}")
    train_loader = as_loader(train, batch_size, shuffle=True, name="train")
    val_loader = None if val is None else as_loader(val, batch_size, shuffle=False, name="val")

    device = torch.device(device) if device is not None else get_device()
    model.to(device)
    optimizer = optimizer or torch.optim.Adam(model.parameters(), lr=lr)
    loss_fn = loss_fn or nn.CrossEntropyLoss()
    history = History()
    plot = _LivePlot(title) if (live_plot if live_plot is not None else _in_notebook()) else None

    from tqdm.auto import tqdm
    # One bar for the whole run (one output line in a notebook), counting batches.
    bar = tqdm(total=epochs * len(train_loader), unit="batch", disable=not progress)
    try:
        for epoch in range(1, epochs + 1):
            start = time.perf_counter()
            epoch_lr = optimizer.param_groups[0]["lr"]
            bar.set_description(f"epoch {epoch}/{epochs}")
            train_loss, train_acc = _train_one_epoch(model, train_loader, optimizer, loss_fn,
                                                     device, bar)
            metrics = None if val_loader is None else evaluate(
                model, val_loader, loss_fn=loss_fn, device=device)
            if scheduler is not None:
                scheduler.step()
            # Recorded together, so an interrupt never leaves the lists out of step.
            history.train_loss.append(train_loss)
            history.train_acc.append(train_acc)
            if metrics is not None:
                history.val_loss.append(metrics["loss"])
                history.val_acc.append(metrics["accuracy"])
            history.lr.append(epoch_lr)
            history.seconds.append(time.perf_counter() - start)
            bar.set_postfix(_postfix(history))
            if plot is not None:
                plot.update(history)
    except KeyboardInterrupt:
        history.stopped = "interrupted"
        print(f"Training interrupted after {history.epochs} full epoch(s); "
              "the model keeps its current weights and the history is returned.")
    finally:
        bar.close()
    return history


def _train_one_epoch(model, batches: Iterable, optimizer, loss_fn, device,
                     bar=None) -> tuple[float, float]:
    """One pass over the data; returns (mean loss, accuracy) over the examples seen."""
    model.train()
    total_loss = torch.zeros((), device=device)
    total_correct = torch.zeros((), device=device, dtype=torch.long)
    seen, classification = 0, True
    for batch in batches:
        x, y = _split_batch(batch, device)
        output = model(x)
        loss = loss_fn(output, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        # Accumulated on the device: no .item() (and no GPU sync) per batch.
        total_loss += loss.detach() * len(x)
        correct = _correct(output.detach(), y)
        if correct is None:
            classification = False
        else:
            total_correct += correct
        seen += len(x)
        if bar is not None:
            bar.update()
    if seen == 0:
        raise ValueError("the training data yielded no batches")
    accuracy = total_correct.item() / seen if classification else math.nan
    return total_loss.item() / seen, accuracy


def _postfix(history: History) -> dict:
    post = {"loss": f"{history.train_loss[-1]:.4f}", "acc": f"{history.train_acc[-1]:.3f}"}
    if history.val_loss:
        post.update(val_loss=f"{history.val_loss[-1]:.4f}", val_acc=f"{history.val_acc[-1]:.3f}")
    return post


class _eval_mode:
    """Context manager: model.eval() and no_grad inside, previous mode restored after."""

    def __init__(self, model: nn.Module):
        self.model, self.was_training = model, model.training

    def __enter__(self):
        self.model.eval()
        self._no_grad = torch.no_grad()
        self._no_grad.__enter__()

    def __exit__(self, *exc):
        self._no_grad.__exit__(*exc)
        self.model.train(self.was_training)


def evaluate(model: nn.Module, data, *, loss_fn: Callable | None = None, device=None,
             batch_size: int = 256) -> dict[str, float]:
    """Mean loss and accuracy of `model` on `data` (Dataset or DataLoader), in eval mode."""
    loader = as_loader(data, batch_size, shuffle=False)
    device = torch.device(device) if device is not None else next(
        (p.device for p in model.parameters()), torch.device("cpu"))
    loss_fn = loss_fn or nn.CrossEntropyLoss()
    total_loss, total_correct, seen, classification = 0.0, 0, 0, True
    with _eval_mode(model):
        for batch in loader:
            x, y = _split_batch(batch, device)
            output = model(x)
            total_loss += loss_fn(output, y).item() * len(x)
            correct = _correct(output, y)
            if correct is None:
                classification = False
            else:
                total_correct += int(correct)
            seen += len(x)
    if seen == 0:
        raise ValueError("data is empty: nothing to evaluate")
    return {"loss": total_loss / seen,
            "accuracy": total_correct / seen if classification else math.nan}


def predict(model: nn.Module, data, *, device=None, batch_size: int = 256,
            probs: bool = True) -> torch.Tensor:
    """Class probabilities (N, num_classes) for `data`, on the CPU, in eval mode.

    data: a Dataset or DataLoader of (input, target) pairs, or a tensor of inputs
    (N, C, H, W). probs=False returns the raw outputs (logits) instead.
    ``predict(model, data).argmax(1)`` gives the predicted classes.
    """
    device = torch.device(device) if device is not None else next(
        (p.device for p in model.parameters()), torch.device("cpu"))
    if isinstance(data, torch.Tensor):
        batches = ((chunk,) for chunk in data.split(batch_size))
    else:
        batches = as_loader(data, batch_size, shuffle=False)
    outputs = []
    with _eval_mode(model):
        for batch in batches:
            x = batch[0] if isinstance(batch, (tuple, list)) else batch
            out = model(x.to(device))
            outputs.append((out.softmax(dim=1) if probs else out).cpu())
    if not outputs:
        raise ValueError("data is empty: nothing to predict")
    return torch.cat(outputs)
