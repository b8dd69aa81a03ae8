"""Checkpoints: one JSON line of hyperparameters, then the leaves; written atomically, read with clear errors."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import equinox as eqx


def save_checkpoint(path: Path, cfg, step: int, state, meta: dict | None = None) -> None:
    """One JSON line of hyperparameters (and ``meta``: host-side state such as an evolution's ledger), then
    the leaves; written to a temporary file, then renamed."""
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as f:
        header = {"step": step, "config": dataclasses.asdict(cfg), "meta": meta or {}}
        f.write((json.dumps(header) + "\n").encode())
        eqx.tree_serialise_leaves(f, state)
    os.replace(tmp, path)


def load_checkpoint(path: Path, now: dict, like, free: tuple[str, ...] = (), saved: dict | None = None):
    """(step, state) from ``path``; a missing, corrupt or mismatched checkpoint raises one clear line.

    ``now`` ({field: value}) must match ``saved`` (the checkpoint's config as the same flat dict; None: its
    header's config as it is), except for the fields named in ``free``.
    """
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint to resume from at {path}")

    def corrupt(e: Exception) -> ValueError:
        return ValueError(f"checkpoint {path} is corrupt or unreadable ({type(e).__name__}: {e})")

    with open(path, "rb") as f:
        try:
            header = json.loads(f.readline())
            saved, step = saved or header["config"], int(header["step"])
        except (ValueError, KeyError, TypeError, OSError) as e:
            raise corrupt(e) from None
        as_json = lambda v: json.loads(json.dumps(v))  # noqa: E731  (tuples as lists, as config.json writes them)
        diff = [k for k, v in now.items() if k not in free and as_json(v) != as_json(saved.get(k))]
        if diff:
            raise ValueError(f"checkpoint {path} was made with a different config: "
                             + ", ".join(f"--{k.replace('_', '-')} {json.dumps(saved.get(k))} (now "
                                         f"{json.dumps(now[k])})" for k in diff)
                             + "; a resumed run keeps its config.json (only --steps, --generations and the run's "
                               "own flags may change)")
        try:
            state = eqx.tree_deserialise_leaves(f, like)
        except Exception as e:  # truncated or overwritten bytes surface as many different errors
            raise corrupt(e) from None
        if f.read(1):
            raise corrupt(ValueError("trailing bytes"))
    return step, state


def read_header(path: Path) -> dict:
    """The JSON header of a checkpoint ({"step", "config", "meta"}), or one clear line if there is none."""
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        with open(path, "rb") as f:
            header = json.loads(f.readline())
        int(header["step"]), header["config"]
    except (ValueError, KeyError, TypeError, OSError) as e:
        raise ValueError(f"checkpoint {path} is corrupt or unreadable ({type(e).__name__}: {e})") from None
    header.setdefault("meta", {})
    return header
