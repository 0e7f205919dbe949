"""What you watch while fit() trains: the progress bar, live curves, TensorBoard.

The progress bar is off with ``fit(..., progress=False)`` or, for every run of a
session or a CI job, with the environment variable ``TQDM_DISABLE=1``.

See: notebooks/05_training.ipynb
"""

from __future__ import annotations

import html
import os

__all__ = ["progress_bar", "progress_disabled", "in_notebook", "LivePlot", "tensorboard_writer", "log_epoch"]


def in_notebook() -> bool:
    """True inside a Jupyter kernel (not in a terminal IPython or a plain script)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def progress_disabled() -> bool:
    """True when the environment variable TQDM_DISABLE is set to 1 / true / yes / on."""
    return os.environ.get("TQDM_DISABLE", "").strip().lower() in ("1", "true", "yes", "on")


# ----------------------------------------------------------------------------
# Progress bar
# ----------------------------------------------------------------------------

def progress_bar(total: int, enabled: bool = True):
    """A tqdm bar counting `total` batches; disabled when `enabled` is False or TQDM_DISABLE=1.

    In a notebook it is tqdm's widget, which leaves a line of text behind when closed
    (see _TextWhenClosed); elsewhere tqdm's text bar on stderr.
    """
    disable = not enabled or progress_disabled()
    if not disable and in_notebook():
        try:
            return _TextWhenClosed(total)
        except ImportError:                 # no ipywidgets: tqdm cannot draw a widget
            pass
    from tqdm.std import tqdm
    return tqdm(total=total, unit="batch", disable=disable)


class _TextWhenClosed:
    """tqdm's notebook widget, replaced by its final text when the bar closes.

    A saved notebook keeps only the text a widget had when it was first displayed
    ("0%|          | 0/684"), which is what GitHub and nbconvert show. On close, the
    output becomes the finished bar as text/plain and text/html, e.g.
    "epoch 3/3: 100%|██████████| 684/684 [00:41<00:00, 16.5batch/s, loss=0.0712, ...]".
    """

    def __init__(self, total: int):
        from IPython.display import display
        from tqdm.notebook import tqdm as notebook_tqdm
        self._bar = notebook_tqdm(total=total, unit="batch", display=False)
        self._handle = display(self._bar.container, display_id=True)

    def update(self, n: int = 1) -> None:
        self._bar.update(n)

    def set_description(self, desc: str) -> None:
        self._bar.set_description(desc)

    def set_postfix(self, postfix: dict) -> None:
        self._bar.set_postfix(postfix)

    def close(self) -> None:
        if self._bar.disable:               # closed already
            return
        self._bar.close()
        text = self._bar.format_meter(**self._bar.format_dict)
        self._handle.update({"text/plain": text, "text/html": f"<pre>{html.escape(text)}</pre>"}, raw=True)


# ----------------------------------------------------------------------------
# Live curves in a notebook
# ----------------------------------------------------------------------------

class LivePlot:
    """Redraws the loss/accuracy figure in place in a notebook after each epoch."""

    def __init__(self, title: str | None):
        from IPython.display import HTML, display
        self._title = title
        self._handle = display(HTML("<i>training curves appear after the first epoch...</i>"), display_id=True)

    def update(self, history) -> None:
        from cnnkit.plot import plot_history
        self._handle.update(plot_history(history, title=self._title))


# ----------------------------------------------------------------------------
# TensorBoard: a local dashboard, nothing sent anywhere
# ----------------------------------------------------------------------------

def tensorboard_writer(log_dir, loader):
    """A SummaryWriter into `log_dir`, with 16 sample images of the first batch."""
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


def log_epoch(writer, model, history, epoch: int) -> None:
    """Scalars (losses, accuracies, learning rate) and weight histograms of one epoch."""
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
