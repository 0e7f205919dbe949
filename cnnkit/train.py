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
import os
import random
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from cnnkit.core import get_device

__all__ = ["History", "fit", "evaluate", "predict", "as_loader", "lr_find", "LRFinderResult",
           "load_checkpoint", "save_atomic"]


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
    best_epoch_: int | None = None                         # epoch of the best monitored value, if any

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
                ("train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds", "stopped", "best_epoch_")}

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
    Ctrl-C (or the notebook's stop button) ends training cleanly: the model keeps
    its weights and the returned History says stopped='interrupted'.
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
    if patience is not None and (isinstance(patience, bool) or not isinstance(patience, int) or patience < 1):
        raise ValueError(f"patience must be a positive int or None, got {patience!r}")
    if (patience is not None or checkpoint is not None) and val is None:
        raise ValueError("patience and checkpoint need a validation set (val=...) to measure improvement")
    train_loader = as_loader(train, batch_size, shuffle=True, name="train")
    val_loader = None if val is None else as_loader(val, batch_size, shuffle=False, name="val")

    device = torch.device(device) if device is not None else get_device()
    model.to(device)
    if optimizer is None:
        optimizer = torch.optim.Adam(param_groups if param_groups is not None
                                     else [p for p in model.parameters() if p.requires_grad], lr=lr)
    loss_fn = loss_fn or nn.CrossEntropyLoss()
    per_batch = isinstance(scheduler, (torch.optim.lr_scheduler.OneCycleLR, torch.optim.lr_scheduler.CyclicLR))
    history, first_epoch = History(), 1
    best = {"value": None, "epoch": 0, "state": None}
    if resume is not None:
        first_epoch = _resume(resume, model, optimizer, scheduler, history, best, device) + 1
    plot = _LivePlot(title) if (live_plot if live_plot is not None else _in_notebook()) else None
    writer = _tensorboard(log_dir, model, train_loader) if log_dir is not None else None

    from tqdm.auto import tqdm
    # One bar for the whole run (one output line in a notebook), counting batches.
    bar = tqdm(total=max(0, epochs - first_epoch + 1) * len(train_loader), unit="batch", disable=not progress)
    try:
        for epoch in range(first_epoch, epochs + 1):
            start = time.perf_counter()
            epoch_lr = optimizer.param_groups[0]["lr"]
            bar.set_description(f"epoch {epoch}/{epochs}")
            train_loss, train_acc = _train_one_epoch(model, train_loader, optimizer, loss_fn, device, bar,
                                                     scheduler if per_batch else None)
            metrics = None if val_loader is None else evaluate(
                model, val_loader, loss_fn=loss_fn, device=device)
            if scheduler is not None and not per_batch:
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
            if metrics is not None:
                value = metrics["loss"] if monitor == "val_loss" else metrics["accuracy"]
                better = best["value"] is None or (value < best["value"] if monitor == "val_loss"
                                                   else value > best["value"])
                if better:
                    best.update(value=value, epoch=epoch,
                                state={k: v.detach().cpu().clone() for k, v in model.state_dict().items()})
            if writer is not None:
                _log_epoch(writer, model, history, epoch)
            if checkpoint is not None:
                _save_checkpoint(checkpoint, model, optimizer, scheduler, history, best, epoch, monitor)
            if plot is not None:
                plot.update(history)
            if patience is not None and epoch - best["epoch"] >= patience:
                history.stopped = (f"early stopping: {monitor} did not improve for {patience} epochs "
                                   f"(best {best['value']:.4f} at epoch {best['epoch']})")
                break
    except KeyboardInterrupt:
        history.stopped = "interrupted"
        print(f"Training interrupted after {history.epochs} full epoch(s); "
              "the model keeps its current weights and the history is returned.")
    finally:
        bar.close()
        if writer is not None:
            writer.close()
    history.best_epoch_ = best["epoch"] or None
    if patience is not None and best["state"] is not None and history.stopped != "interrupted":
        model.load_state_dict(best["state"])          # early stopping keeps the best weights
        if history.stopped == "completed":
            history.stopped = f"completed; best {monitor} at epoch {best['epoch']} restored"
    return history


# ----------------------------------------------------------------------------
# Checkpoints: atomic saves, exact resume, clear errors
# ----------------------------------------------------------------------------

def _rng_state() -> dict:
    state = {"torch": torch.get_rng_state(), "python": random.getstate(), "numpy": np.random.get_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_atomic(obj, path: str | os.PathLike) -> None:
    """torch.save to a temporary file in the same folder, then rename: a crash mid-save
    leaves the previous file intact, never a half-written one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(obj, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)                         # atomic on POSIX and Windows
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _save_checkpoint(path, model, optimizer, scheduler, history, best, epoch, monitor) -> None:
    save_atomic({
        "format": "cnnkit-checkpoint-1",
        "model": best["state"],                        # the best weights (what you evaluate)
        "best": {"value": best["value"], "epoch": best["epoch"], "monitor": monitor},
        "last": {                                      # what resuming needs
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict() if scheduler is not None else None,
            "epoch": epoch,
            "rng": _rng_state(),
        },
        "history": history.as_dict(),
    }, path)


def _read_checkpoint(path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        data = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:
        raise ValueError(f"checkpoint {path} could not be read ({type(exc).__name__}: {exc})") from exc
    if not isinstance(data, dict) or data.get("format") != "cnnkit-checkpoint-1":
        raise ValueError(f"{path} is not a cnnkit checkpoint (written by fit(..., checkpoint=...))")
    return data


def _load_weights(model: nn.Module, state: dict, path) -> None:
    """load_state_dict with an error that names what does not match."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = sorted(f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
                    for k in set(own) & set(state) if tuple(own[k].shape) != tuple(state[k].shape))
    if missing or unexpected or shapes:
        parts = [f"missing keys {missing[:8]}{' ...' if len(missing) > 8 else ''}" if missing else "",
                 f"unexpected keys {unexpected[:8]}{' ...' if len(unexpected) > 8 else ''}" if unexpected else "",
                 f"shape mismatches {shapes[:5]}" if shapes else ""]
        raise ValueError(f"checkpoint {path} does not match this model (another architecture?): "
                         + "; ".join(p for p in parts if p))
    model.load_state_dict(state)


def load_checkpoint(path, model: nn.Module, which: str = "best") -> dict:
    """Load the best (or "last") weights of a fit() checkpoint into `model`; returns its info."""
    if which not in ("best", "last"):
        raise ValueError(f"which must be 'best' or 'last', got {which!r}")
    data = _read_checkpoint(path)
    state = data["model"] if which == "best" else data["last"]["model"]
    _load_weights(model, state, path)
    return {"best": data["best"], "epoch": data["last"]["epoch"], "history": data["history"]}


def _resume(path, model, optimizer, scheduler, history, best, device) -> int:
    data = _read_checkpoint(path)
    last = data["last"]
    _load_weights(model, last["model"], path)
    model.to(device)
    optimizer.load_state_dict(last["optimizer"])
    if scheduler is not None and last["scheduler"] is not None:
        scheduler.load_state_dict(last["scheduler"])
    for key, value in data["history"].items():
        setattr(history, key, list(value) if isinstance(value, list) else value)
    history.stopped = "completed"
    best.update(value=data["best"]["value"], epoch=data["best"]["epoch"], state=data["model"])
    _set_rng_state(last["rng"])
    return last["epoch"]


# ----------------------------------------------------------------------------
# TensorBoard: a local dashboard, nothing sent anywhere
# ----------------------------------------------------------------------------

def _tensorboard(log_dir, model, loader):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as exc:  # pragma: no cover - tensorboard is in the pinned stack
        raise ImportError("log_dir needs the tensorboard package: run `make setup` "
                          "or `pip install tensorboard`") from exc
    writer = SummaryWriter(log_dir=str(log_dir))
    try:
        x, _ = next(iter(loader))
        if x.dim() == 4 and x.shape[1] in (1, 3):
            writer.add_images("samples", x[:16].float().clamp(0, 1), 0)
    except (StopIteration, TypeError, ValueError):
        pass
    return writer


def _log_epoch(writer, model, history: History, epoch: int) -> None:
    writer.add_scalar("loss/train", history.train_loss[-1], epoch)
    writer.add_scalar("accuracy/train", history.train_acc[-1], epoch)
    if history.val_loss:
        writer.add_scalar("loss/val", history.val_loss[-1], epoch)
        writer.add_scalar("accuracy/val", history.val_acc[-1], epoch)
    writer.add_scalar("learning_rate", history.lr[-1], epoch)
    for name, p in model.named_parameters():
        if p.dim() > 1:                                # weights, not biases or BN scales
            writer.add_histogram(f"weights/{name}", p.detach().cpu(), epoch)
    writer.flush()


# ----------------------------------------------------------------------------
# Learning-rate range test
# ----------------------------------------------------------------------------

@dataclass
class LRFinderResult:
    lrs: list[float]
    losses: list[float]                     # smoothed training loss at each learning rate

    @property
    def suggestion(self) -> float:
        """The learning rate where the smoothed loss falls fastest (steepest descent)."""
        if len(self.losses) < 3:
            raise ValueError("too few points to suggest a learning rate")
        logs = np.log10(self.lrs)
        slopes = np.gradient(np.asarray(self.losses), logs)
        return float(self.lrs[int(np.argmin(slopes))])

    def plot(self, title: str | None = "learning-rate range test"):
        from matplotlib.figure import Figure
        fig = Figure(figsize=(6, 3.8), layout="constrained")
        ax = fig.subplots()
        ax.semilogx(self.lrs, self.losses)
        ax.axvline(self.suggestion, color="tab:red", ls="--", label=f"steepest descent: {self.suggestion:.1e}")
        ax.set_xlabel("learning rate (log scale)")
        ax.set_ylabel("training loss (smoothed)")
        ax.grid(alpha=0.3, which="both")
        ax.legend()
        if title:
            ax.set_title(title)
        return fig


def lr_find(model: nn.Module, train, *, start_lr: float = 1e-6, end_lr: float = 1.0, num_iter: int = 100,
            optimizer: torch.optim.Optimizer | None = None, loss_fn: Callable | None = None,
            batch_size: int = 64, device=None, smoothing: float = 0.05, diverge: float = 4.0) -> LRFinderResult:
    """Learning-rate range test (Smith, 2017): raise the learning rate exponentially from
    start_lr to end_lr over num_iter batches, record the loss, stop when it explodes.

    The model and optimizer are restored afterwards. Pick a learning rate a little
    below where the loss falls fastest (``result.suggestion``), well before it blows up.
    """
    if not 0 < start_lr < end_lr:
        raise ValueError(f"need 0 < start_lr < end_lr, got {start_lr} and {end_lr}")
    if num_iter < 3:
        raise ValueError(f"num_iter must be at least 3, got {num_iter}")
    loader = as_loader(train, batch_size, shuffle=True, name="train")
    device = torch.device(device) if device is not None else get_device()
    model.to(device)
    optimizer = optimizer or torch.optim.SGD(model.parameters(), lr=start_lr, momentum=0.9)
    loss_fn = loss_fn or nn.CrossEntropyLoss()
    saved_model = {k: v.detach().clone() for k, v in model.state_dict().items()}
    saved_opt = optimizer.state_dict()
    factor = (end_lr / start_lr) ** (1 / (num_iter - 1))
    lrs, losses, smooth, best = [], [], None, math.inf
    model.train()
    try:
        batches = iter(loader)
        for i in range(num_iter):
            try:
                batch = next(batches)
            except StopIteration:
                batches = iter(loader)
                batch = next(batches)
            lr = start_lr * factor ** i
            for group in optimizer.param_groups:
                group["lr"] = lr
            x, y = _split_batch(batch, device)
            loss = loss_fn(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            value = loss.item()
            smooth = value if smooth is None else smoothing * value + (1 - smoothing) * smooth
            lrs.append(lr)
            losses.append(smooth)
            best = min(best, smooth)
            if not math.isfinite(value) or smooth > diverge * best:
                break
    finally:
        model.load_state_dict(saved_model)
        optimizer.load_state_dict(saved_opt)
    return LRFinderResult(lrs, losses)


def _train_one_epoch(model, batches: Iterable, optimizer, loss_fn, device,
                     bar=None, batch_scheduler=None) -> tuple[float, float]:
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
        if batch_scheduler is not None:
            batch_scheduler.step()
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


def _device_of(model: nn.Module, device=None) -> torch.device:
    """`device` if given, else where the model's parameters are (the CPU if it has none)."""
    if device is not None:
        return torch.device(device)
    return next((p.device for p in model.parameters()), torch.device("cpu"))


def _input_batches(data, batch_size: int = 256) -> Iterable[torch.Tensor]:
    """The inputs of `data`, batch by batch, in order: slices of a tensor (N, ...), or the
    first element of each batch of a Dataset / DataLoader of (input, target) pairs."""
    if isinstance(data, torch.Tensor):
        yield from data.split(batch_size)
        return
    for batch in as_loader(data, batch_size, shuffle=False):
        yield batch[0] if isinstance(batch, (tuple, list)) else batch


def evaluate(model: nn.Module, data, *, loss_fn: Callable | None = None, device=None,
             batch_size: int = 256) -> dict[str, float]:
    """Mean loss and accuracy of `model` on `data` (Dataset or DataLoader), in eval mode."""
    loader = as_loader(data, batch_size, shuffle=False)
    device = _device_of(model, device)
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
    device = _device_of(model, device)
    outputs = []
    with _eval_mode(model):
        for x in _input_batches(data, batch_size):
            out = model(x.to(device))
            outputs.append((out.softmax(dim=1) if probs else out).cpu())
    if not outputs:
        raise ValueError("data is empty: nothing to predict")
    return torch.cat(outputs)
