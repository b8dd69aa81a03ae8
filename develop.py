"""Development: the organism grows during its life, one gene at a time, behind a closed gate.

When to grow (``--grow``): ``schedule``, every ``--grow-every`` steps of age; ``plateau``, when the
prequential surprise of the curious objective has dropped by less than ``--plateau-drop`` (a fraction)
from one span of ``--plateau-span`` steps to the next, at least ``--grow-gap`` steps after the last
insertion; never once every slot (``--slots``) is taken. Decisions are made by the host between chunks
(each organism of a population on its own history), so a chunk of life never changes.

Where: between two active genes, at ``--grow-depth`` of the active stack (0 = below the first gene,
1 = above the last; the default 0.5 puts it in the middle). The genes above move up one slot, with their
gates and their optimizer state: slots are shifted, not re-ordered through an index (the shift is paid
once per insertion; an order array would be a gather in every forward pass).

With what (``--grow-gene``): ``copy``, a copy of the gene just below (the one above at the bottom):
growing by copying a neighbour (stacking, Net2Net) is known to train faster than a fresh layer; or
``fresh``, a newly initialised gene; or, in an evolution, ``pool``: a pool gene drawn by its credit at
the new slot's depth (``evolve.donors``; the grown copy never goes back to the pool). Never a zero gene:
behind a gate g = 0 the gene's own gradient is g times its Jacobian, i.e. zero, so at first only the gate
learns, at a rate set by how well the new gene's output f(x) lines up with the loss gradient
(dL/dg = <dL/dx, f(x)>); a zero gene would have f(x) = 0 and its gate would never move.

How it opens: the gate starts at exactly 0 (every output of the model is bit-identical right after the
insertion), the slot's Adam moments and step count start fresh (``optim.Opt``), and Adam moves the gate
by at most about ``--lr`` per step, less when the sign of its gradient wavers (how far gates open:
docs/development.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

import life
from genes import Gene, insert, shift_in
from learner import BodyTraces


@dataclass(frozen=True)
class Growth:
    """Development: growing genes into free slots during life, behind a closed gate (develop.py)."""

    grow: Literal["never", "schedule", "plateau"] = "never"
    """grow a gene into a free slot during life: 'schedule' every --grow-every steps, 'plateau' when learning
    stalls; growth stops when --slots are full"""
    grow_every: int = 10_000
    """--grow schedule: steps between insertions (a multiple of --chunk)"""
    plateau_span: int = 5_000
    """--grow plateau: the curious objective's prequential surprise is compared over two spans of this many
    steps (a multiple of --chunk)"""
    plateau_drop: float = 0.01
    """--grow plateau: learning has stalled when the surprise fell by less than this fraction of itself"""
    grow_gap: int = 10_000
    """--grow plateau: at least this many steps from birth or the last insertion to the next"""
    grow_gene: Literal["copy", "fresh", "pool"] = "copy"
    """what grows: a copy of the gene below the new slot (stacking), a freshly initialised gene, or (in an
    evolution) a pool gene drawn by its credit at the new slot's depth"""
    grow_depth: float = 0.5
    """where a gene grows, as a fraction of the active stack (0: below every gene, 1: above, 0.5: the middle)"""
    grow_gate: float = 0.0
    """the gate a grown gene starts behind: 0 = closed (every output bit-identical right after the insertion);
    a small weight (0.1) lets the new gene's own gradient flow from its first step"""

    def check(self, body, chunk: int, evolving: bool) -> None:
        """One clear line for impossible growth settings (``body``: sized; ``chunk``: steps per chunk)."""
        if self.grow == "never":
            return
        for ok, msg in [
            (body.slots > body.layers, f"--grow {self.grow} needs free slots to grow into: --slots ({body.slots}) "
                                       f"must exceed --layers ({body.layers})"),
            (self.grow != "schedule" or (self.grow_every > 0 and self.grow_every % chunk == 0),
             f"--grow-every ({self.grow_every}) must be a positive multiple of --chunk ({chunk})"),
            (self.grow != "plateau" or (self.plateau_span > 0 and self.plateau_span % chunk == 0),
             f"--plateau-span ({self.plateau_span}) must be a positive multiple of --chunk ({chunk})"),
            (self.plateau_drop >= 0, f"--plateau-drop cannot be negative, got {self.plateau_drop}"),
            (self.grow_gap >= 0, f"--grow-gap cannot be negative, got {self.grow_gap}"),
            (0 <= self.grow_depth <= 1, f"--grow-depth must lie in [0, 1], got {self.grow_depth}"),
            (0 <= self.grow_gate <= 1, f"--grow-gate must lie in [0, 1], got {self.grow_gate}"),
            (self.grow_gene != "pool" or evolving, "--grow-gene pool needs an evolution's pool (--generations > 1)"),
        ]:
            if not ok:
                raise ValueError(msg)

    def depth(self, active: int) -> int:
        """The slot a new gene takes among ``active`` genes (0: below all of them; ``active``: above)."""
        return int(min(max(np.floor(self.grow_depth * active + 0.5), 0), active))


@eqx.filter_jit
def grow(cfg: life.Life, gene: str, orgs: life.Organism, mask, k, keys, donors: Gene | None = None,
         gate: float = 0.0) -> life.Organism:
    """Organism i (a population) grows a gene (``gene``: copy, fresh or pool, drawn from ``keys[i]``) into
    slot ``k[i]`` where ``mask[i]``, behind a gate starting at ``gate`` (--grow-gate); the rest stay exactly as
    they were.
    ``donors``: the genes to grow for ``--grow-gene pool`` (one per organism, stacked). One jitted call with
    fixed shapes: growing never compiles twice."""
    b = cfg.body

    def one(org, on, k, key, donor):
        stack = org.model.stack
        below = jnp.maximum(k - 1, 0)  # the neighbour to copy: just below (at the bottom, the one above)
        if gene == "copy":
            new = jax.tree.map(lambda x: x[below], stack.genes)
        elif gene == "pool":
            new = donor
        else:
            new = Gene(b.d_model, b.n_heads, b.mlp_ratio, key=key)
        grown = eqx.tree_at(lambda o: o.model.stack, org, insert(stack, k, new, gate))
        # the optimizer state follows the genes: shifted with them, fresh (zero moments, count 0) for the new one
        slots = jax.tree.map(lambda x: shift_in(x, k, jnp.zeros_like(x[0])), org.opt_state.slots)
        grown = eqx.tree_at(lambda o: o.opt_state.slots, grown, slots)
        if isinstance(org.traces, BodyTraces):  # so do the traces through the body: the new gene's start at zero
            def rows(o):  # every per-slot array of both traces: the trace and its moments
                return tuple(getattr(z, f) for z in (o.traces.actor, o.traces.critic)
                             for f in ("slots", "sq_slots", "m_slots"))

            grown = eqx.tree_at(rows, grown, tuple(shift_in(x, k, jnp.zeros_like(x[0])) for x in rows(org)))
        return jax.tree.map(lambda a, b: jnp.where(on, a, b), grown, org)

    mask, k = jnp.asarray(mask), jnp.asarray(k, jnp.int32)
    return eqx.filter_vmap(one)(orgs, mask, k, jnp.asarray(keys), donors)


class Development:
    """The host's view of each organism's development: its curious surprise per chunk since its last
    insertion, when that was, and where its birth genes now sit (for evolution's bookkeeping)."""

    def __init__(self, n: int, layers: int):
        self.since: list[list[float]] = [[] for _ in range(n)]
        self.last = [0] * n
        self.placed = [list(range(layers)) for _ in range(n)]  # slot of each birth gene, in genome order

    def to_json(self) -> dict:
        return {"since": self.since, "last": self.last, "placed": self.placed}

    @staticmethod
    def from_json(d: dict) -> Development:
        g = Development(0, 0)
        g.since, g.last, g.placed = d["since"], d["last"], d["placed"]
        return g


def decide(cfg: Growth, slots: int, chunk: int, growth: Development, age: int, n: int, surprise: list,
           active: np.ndarray):
    """After a chunk of ``n`` steps (the organisms are now ``age`` steps old), with each organism's mean
    curious surprise over it: (mask, slots, reasons) of the organisms that grow now (``slots``: the body's;
    ``chunk``: steps per chunk)."""
    N = len(active)
    mask, k, why = np.zeros(N, bool), np.zeros(N, np.int32), [""] * N
    span = cfg.plateau_span // chunk
    for i in range(N):
        if surprise[i] is not None:
            growth.since[i] = (growth.since[i] + [float(surprise[i])])[-2 * span:]  # all that a decision reads
        if cfg.grow == "never" or active[i] >= slots:
            continue
        if cfg.grow == "schedule" and age // cfg.grow_every > (age - n) // cfg.grow_every:
            mask[i], why[i] = True, f"schedule: every {cfg.grow_every} steps"
        elif cfg.grow == "plateau" and age - growth.last[i] >= cfg.grow_gap and len(growth.since[i]) >= 2 * span:
            before, now = np.mean(growth.since[i][-2 * span:-span]), np.mean(growth.since[i][-span:])
            if before - now < cfg.plateau_drop * abs(before):
                mask[i] = True
                why[i] = f"plateau: surprise {before:.4f} -> {now:.4f} over {cfg.plateau_span} steps"
        if mask[i]:
            k[i] = cfg.depth(int(active[i]))
            growth.since[i], growth.last[i] = [], age
            growth.placed[i] = [int(s + (s >= k[i])) for s in growth.placed[i]]
    return mask, k, why
