"""Checkpoints written by fit(..., checkpoint=...): atomic saves, exact resume, clear errors.

    history = cnnkit.fit(model, train_set, val_set, epochs=20, checkpoint="runs/cnn.pt")
    cnnkit.train.load_checkpoint("runs/cnn.pt", model)            # the best weights
    cnnkit.fit(model, train_set, val_set, epochs=30, resume="runs/cnn.pt")   # 10 more epochs

A checkpoint holds the best weights so far (by `monitor`) and everything resuming needs:
the latest weights, optimizer and scheduler states, the epoch, the history and the
random-number generators' states, so a resumed run equals an uninterrupted one.

See: notebooks/05_training.ipynb
"""

from __future__ import annotations

import os
import random
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

__all__ = ["save_atomic", "load_checkpoint"]


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


def save_checkpoint(path, model, optimizer, scheduler, history, best: dict, epoch: int, monitor: str) -> None:
    """Called by fit after every epoch. best: {"value", "epoch", "state"} of the best epoch so far."""
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


def resume_into(path, model, optimizer, scheduler, history, best: dict, device) -> int:
    """Called by fit(..., resume=path): restore everything a checkpoint holds into the
    objects of the new run (weights, optimizer, scheduler, history, best so far, RNG
    states); returns the last finished epoch."""
    data = _read_checkpoint(path)
    last = data["last"]
    _load_weights(model, last["model"], path)
    model.to(device)
    optimizer.load_state_dict(last["optimizer"])
    if scheduler is not None and last["scheduler"] is not None:
        scheduler.load_state_dict(last["scheduler"])
    for key, value in data["history"].items():
        key = {"best_epoch_": "best_monitored_epoch"}.get(key, key)   # checkpoints written before the rename
        setattr(history, key, list(value) if isinstance(value, list) else value)
    history.stopped = "completed"
    best.update(value=data["best"]["value"], epoch=data["best"]["epoch"], state=data["model"])
    _set_rng_state(last["rng"])
    return last["epoch"]
