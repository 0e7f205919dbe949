"""A small training loop with a progress bar and live curves: fit, evaluate, predict.

    history = cnnkit.fit(model, train_set, val_set, epochs=5)
    history.plot()
    cnnkit.evaluate(model, test_set)   # {'loss': ..., 'accuracy': ...}

The loop is the one you would write by hand (forward, loss, backward, step);
it only adds bookkeeping, and benchmarks/bench_fit.py measures that cost.
The bookkeeping lives next door: checkpoint.py (save and resume), monitor.py
(progress bar, live curves, TensorBoard), lr_finder.py (learning-rate range test),
batches.py (datasets to batches). Their public names are importable from here too.

See: notebooks/05_training.ipynb
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable

import torch
from torch import nn

from cnnkit.batches import as_loader, count_correct, input_batches, split_batch
from cnnkit.checkpoint import load_checkpoint, resume_into, save_atomic, save_checkpoint
from cnnkit.core import device_of, eval_mode, get_device, require_float, require_int
from cnnkit.lr_finder import LRFinderResult, lr_find
from cnnkit.monitor import LivePlot, in_notebook, log_epoch, progress_bar, tensorboard_writer

__all__ = ["History", "fit", "evaluate", "predict", "as_loader", "lr_find", "LRFinderResult",
           "load_checkpoint", "save_atomic"]

# Schedulers that change the learning rate after every batch; the others step once per epoch.
_PER_BATCH_SCHEDULERS = (torch.optim.lr_scheduler.OneCycleLR, torch.optim.lr_scheduler.CyclicLR)


@dataclass
class History:
    """Per-epoch record of a training run (lists are indexed by epoch - 1)."""

    train_loss: list[float] = field(default_factory=list)
    train_acc: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_acc: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)          # learning rate used in each epoch
    seconds: list[float] = field(default_factory=list)     # wall time of each epoch
    stopped: str = "completed"                             # or "interrupted", or why it stopped early
    best_monitored_epoch: int | None = None                # epoch with the best value of fit's `monitor`

    @property
    def epochs(self) -> int:
        return len(self.train_loss)

    def __len__(self) -> int:
        return self.epochs

    @property
    def best_epoch_(self) -> int | None:
        """Former name of `best_monitored_epoch` (kept so that older notebooks run)."""
        return self.best_monitored_epoch

    def best_epoch(self, metric: str = "val_acc") -> int:
        """1-based epoch with the best value of `metric` (max for *_acc, min for *_loss)."""
        values = getattr(self, metric, None)
        if not isinstance(values, list) or metric in ("lr", "seconds"):
            raise ValueError(f"metric must be one of train_loss, train_acc, val_loss, val_acc; got {metric!r}")
        if not values:
            raise ValueError(f"history has no {metric} values (was a validation set given?)")
        pick = max if metric.endswith("acc") else min
        return 1 + values.index(pick(values))

    def record(self, train_loss: float, train_acc: float, metrics: dict | None, lr: float,
               seconds: float) -> None:
        """Append one epoch. All lists grow together, so an interrupt never leaves them out of step."""
        self.train_loss.append(train_loss)
        self.train_acc.append(train_acc)
        if metrics is not None:
            self.val_loss.append(metrics["loss"])
            self.val_acc.append(metrics["accuracy"])
        self.lr.append(lr)
        self.seconds.append(seconds)

    def as_dict(self) -> dict:
        return {k: getattr(self, k) for k in ("train_loss", "train_acc", "val_loss", "val_acc", "lr",
                                              "seconds", "stopped", "best_monitored_epoch")}

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


def fit(model: nn.Module, train, val=None, *, epochs: int = 10, lr: float = 1e-3,
        batch_size: int = 64, optimizer: torch.optim.Optimizer | None = None,
        scheduler=None, loss_fn: Callable | None = None, device=None,
        live_plot: bool | None = None, progress: bool = True, title: str | None = None,
        log_dir: str | os.PathLike | None = None, checkpoint: str | os.PathLike | None = None,
        resume: str | os.PathLike | None = None, patience: int | None = None,
        monitor: str = "val_loss", param_groups: list[dict] | None = None) -> History:
    """Train `model` on `train` for `epochs` epochs, evaluating on `val` after each.

    train, val: a Dataset (batched with `batch_size`, train shuffled) or a DataLoader.
    optimizer: defaults to Adam(lr) over the trainable parameters (requires_grad=True).
    param_groups: instead, a list of parameter groups for that Adam, each with its own
    "lr" (e.g. ``cnnkit.transfer.layerwise_lr_groups``); or build any optimizer over
    them yourself and pass it as `optimizer`.
    scheduler: stepped once per epoch (OneCycleLR and CyclicLR once per batch);
    the learning rate of each epoch is recorded in ``history.lr``.
    loss_fn: defaults to cross-entropy. device: defaults to cuda > mps > cpu.
    live_plot: redraw curves in the notebook after each epoch (default: in a notebook).
    log_dir: write TensorBoard event files there (scalars, learning rate, weight
    histograms, sample images); view them with `make tensorboard`.
    checkpoint: after every epoch, save atomically (temporary file + rename) the
    best weights so far by `monitor` ("val_loss" or "val_acc"), plus everything
    needed to resume: latest weights, optimizer, scheduler, epoch, history, RNG states.
    resume: continue from such a checkpoint up to `epochs` in total; with the same
    data and seed the result equals an uninterrupted run.
    patience: stop when `monitor` has not improved for this many epochs and restore
    the best weights; ``history.stopped`` says why training ended.
    progress: show a progress bar (one line for the whole run, counting batches);
    progress=False, or the environment variable TQDM_DISABLE=1, turns it off.
    Ctrl-C (or the notebook's stop button) ends training cleanly: the model keeps
    its weights and the returned History says stopped='interrupted'.
    """
    _check_fit_args(model, val, epochs=epochs, lr=lr, optimizer=optimizer, param_groups=param_groups,
                    monitor=monitor, patience=patience, checkpoint=checkpoint)
    train_loader = as_loader(train, batch_size, shuffle=True, name="train")
    val_loader = None if val is None else as_loader(val, batch_size, shuffle=False, name="val")
    device = torch.device(device) if device is not None else get_device()
    model.to(device)
    optimizer = optimizer or _default_optimizer(model, lr, param_groups)
    loss_fn = loss_fn or nn.CrossEntropyLoss()
    batch_scheduler = scheduler if isinstance(scheduler, _PER_BATCH_SCHEDULERS) else None
    history = History()
    best = {"value": None, "epoch": 0, "state": None}      # the best epoch by `monitor` so far
    first_epoch = 1
    if resume is not None:
        first_epoch = resume_into(resume, model, optimizer, scheduler, history, best, device) + 1
    plot = LivePlot(title) if (live_plot if live_plot is not None else in_notebook()) else None
    writer = tensorboard_writer(log_dir, train_loader) if log_dir is not None else None
    bar = progress_bar(max(0, epochs - first_epoch + 1) * len(train_loader), enabled=progress)

    try:
        for epoch in range(first_epoch, epochs + 1):
            start, epoch_lr = time.perf_counter(), optimizer.param_groups[0]["lr"]
            bar.set_description(f"epoch {epoch}/{epochs}")
            train_loss, train_acc = _train_one_epoch(model, train_loader, optimizer, loss_fn, device, bar,
                                                     batch_scheduler)
            metrics = None if val_loader is None else evaluate(model, val_loader, loss_fn=loss_fn, device=device)
            if scheduler is not None and batch_scheduler is None:
                scheduler.step()
            history.record(train_loss, train_acc, metrics, epoch_lr, time.perf_counter() - start)
            bar.set_postfix(_postfix(history))
            if metrics is not None:
                _keep_if_best(best, epoch, metrics, model, monitor)
            if writer is not None:
                log_epoch(writer, model, history, epoch)
            if checkpoint is not None:
                save_checkpoint(checkpoint, model, optimizer, scheduler, history, best, epoch, monitor)
            if plot is not None:
                plot.update(history)
            if patience is not None and epoch - best["epoch"] >= patience:
                history.stopped = (f"early stopping: {monitor} did not improve for {patience} epochs "
                                   f"(best {best['value']:.4f} at epoch {best['epoch']})")
                bar.set_description(f"stopped early at epoch {epoch}/{epochs}")  # why the bar ends short of 100%
                break
    except KeyboardInterrupt:
        history.stopped = "interrupted"
        bar.set_description(f"interrupted in epoch {history.epochs + 1}/{epochs}")
        print(f"Training interrupted after {history.epochs} full epoch(s); "
              "the model keeps its current weights and the history is returned.")
    finally:
        bar.close()
        if writer is not None:
            writer.close()

    history.best_monitored_epoch = best["epoch"] or None
    if patience is not None and best["state"] is not None and history.stopped != "interrupted":
        model.load_state_dict(best["state"])          # early stopping keeps the best weights
        if history.stopped == "completed":
            history.stopped = f"completed; best {monitor} at epoch {best['epoch']} restored"
    return history


def _check_fit_args(model, val, *, epochs, lr, optimizer, param_groups, monitor, patience, checkpoint) -> None:
    """Every argument check of fit, before anything is moved or trained: TypeError for a
    wrong type, ValueError for a wrong value, the message naming the argument."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    require_int(epochs, "epochs", minimum=0)
    if optimizer is None:
        require_float(lr, "lr", positive=True)
    elif not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(f"optimizer must be a torch.optim.Optimizer (an instance), "
                        f"got {type(optimizer).__name__}")
    if param_groups is not None and optimizer is not None:
        raise ValueError("pass either optimizer or param_groups, not both (build the optimizer over the groups)")
    if param_groups is not None and (not isinstance(param_groups, (list, tuple)) or not param_groups
                                     or not all(isinstance(g, dict) and "params" in g for g in param_groups)):
        raise TypeError("param_groups must be a non-empty list of dicts with a 'params' key, "
                        "e.g. cnnkit.transfer.layerwise_lr_groups(model, head_lr=1e-3)")
    if optimizer is None and param_groups is None and not any(p.requires_grad for p in model.parameters()):
        raise ValueError("the model has no trainable parameters (all have requires_grad=False): "
                         "unfreeze the layers to train, e.g. cnnkit.transfer.freeze_all_but_head(model)")
    if monitor not in ("val_loss", "val_acc"):
        raise ValueError(f"monitor must be 'val_loss' or 'val_acc', got {monitor!r}")
    if patience is not None:
        require_int(patience, "patience", minimum=1)
    if (patience is not None or checkpoint is not None) and val is None:
        raise ValueError("patience and checkpoint need a validation set (val=...) to measure improvement")


def _default_optimizer(model: nn.Module, lr: float, param_groups: list[dict] | None) -> torch.optim.Optimizer:
    """Adam(lr) over `param_groups`, or else over the trainable parameters."""
    params = param_groups if param_groups is not None else [p for p in model.parameters() if p.requires_grad]
    return torch.optim.Adam(params, lr=lr)


def _keep_if_best(best: dict, epoch: int, metrics: dict, model: nn.Module, monitor: str) -> None:
    """Remember this epoch's weights (a CPU copy) if `monitor` improved on the best so far."""
    value = metrics["loss"] if monitor == "val_loss" else metrics["accuracy"]
    if best["value"] is None or (value < best["value"] if monitor == "val_loss" else value > best["value"]):
        best.update(value=value, epoch=epoch,
                    state={k: v.detach().cpu().clone() for k, v in model.state_dict().items()})


def _train_one_epoch(model, batches: Iterable, optimizer, loss_fn, device,
                     bar=None, batch_scheduler=None) -> tuple[float, float]:
    """One pass over the data; returns (mean loss, accuracy) over the examples seen."""
    model.train()
    total_loss = torch.zeros((), device=device)
    total_correct = torch.zeros((), device=device, dtype=torch.long)
    seen, classification = 0, True
    for batch in batches:
        x, y = split_batch(batch, device)
        output = model(x)
        loss = loss_fn(output, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if batch_scheduler is not None:
            batch_scheduler.step()
        # Accumulated on the device: no .item() (and no GPU sync) per batch.
        total_loss += loss.detach() * len(x)
        correct = count_correct(output.detach(), y)
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


def evaluate(model: nn.Module, data, *, loss_fn: Callable | None = None, device=None,
             batch_size: int = 256) -> dict[str, float]:
    """Mean loss and accuracy of `model` on `data` (Dataset or DataLoader), in eval mode."""
    loader = as_loader(data, batch_size, shuffle=False)
    device = device_of(model, device)
    loss_fn = loss_fn or nn.CrossEntropyLoss()
    total_loss, total_correct, seen, classification = 0.0, 0, 0, True
    with eval_mode(model):
        for batch in loader:
            x, y = split_batch(batch, device)
            output = model(x)
            total_loss += loss_fn(output, y).item() * len(x)
            correct = count_correct(output, y)
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
    device = device_of(model, device)
    outputs = []
    with eval_mode(model):
        for x in input_batches(data, batch_size):
            out = model(x.to(device))
            outputs.append((out.softmax(dim=1) if probs else out).cpu())
    if not outputs:
        raise ValueError("data is empty: nothing to predict")
    return torch.cat(outputs)
