"""Instincts: heritable numbers beside the layer genes, which every step reads as data.

An animal is born knowing what its learning is for and how fast to learn, not what to do: evolution shapes
the learner, and life learns the rest (Singh, Lewis & Barto 2009, "Where do rewards come from?"; population
based training, Jaderberg et al. 2017, does the same for hyperparameters). Here an organism's instincts are
seven numbers of its learner and of what it finds rewarding (``life.Organism.instincts``):

    instinct         what it sets                                   prior (uniform in its space)   space       mutation
    lr               the world model's Adam learning rate (--lr)    3e-4 .. 3e-3                   log         0.25
    ac_lr            the stream learner's ObGD step (--ac-lr)       0.3 .. 3                       log         0.25
    gamma            the return's discount (--gamma)                0.95 .. 0.995                  log(1 - x)  0.25
    lam              the traces' (or GAE's) lambda (--lam)          0.5 .. 0.95                    log(1 - x)  0.25
    entropy_target   nats the policy's entropy is held near          0.5 .. 2.5                     linear      0.2
                     (--entropy-target; 0: the coefficient stays)
    sleep_weight     --curiosity mix: what falling asleep and        0 .. 1                         linear      0.1
                     waking up pay beside effect novelty (--sleep-weight)
    count_weight     --curiosity mix: what a new view pays beside    0 .. 1                         linear      0.1
                     effect novelty (--count-weight)

A *space* is where the prior is uniform and a mutation adds Gaussian noise of the stated standard deviation
(then clips to the prior's range): a learning rate mutates by a factor (0.25 in log: about x1.28 or /1.28),
a discount by its horizon 1 / (1 - gamma). Every organism carries its instincts: a single run's are its
flags; an evolution with ``--evolve instincts`` or ``both`` draws generation 0's from the prior and selects
them (``select``: the worst quarter of the organisms take mutated copies of the best quarter's, the rest
keep theirs); its control (``--selection none``) draws every generation's afresh from the prior. Since
the step reads them as data, a new value compiles nothing. The two weights are read by ``--curiosity mix``
alone (curiosity.py: effect novelty plus weighted sleep and view-count bonuses): under any other curiosity they
are carried and selected but change nothing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float


class Instincts(eqx.Module):
    """One organism's instincts (each a float32 scalar; a population's have a leading [N] axis)."""

    lr: Float[Array, "*n"]
    ac_lr: Float[Array, "*n"]
    gamma: Float[Array, "*n"]
    lam: Float[Array, "*n"]
    entropy_target: Float[Array, "*n"]
    sleep_weight: Float[Array, "*n"]
    count_weight: Float[Array, "*n"]


@dataclass(frozen=True)
class Range:
    """An instinct's prior and mutation: uniform over [low, high] in its ``space``, mutated there."""

    name: str
    low: float
    high: float
    space: str  # "log", "log1m" (log(1 - x)) or "linear"
    mutation: float  # standard deviation of a mutation, in the space


TABLE = (Range("lr", 3e-4, 3e-3, "log", 0.25), Range("ac_lr", 0.3, 3.0, "log", 0.25),
         Range("gamma", 0.95, 0.995, "log1m", 0.25), Range("lam", 0.5, 0.95, "log1m", 0.25),
         Range("entropy_target", 0.5, 2.5, "linear", 0.2), Range("sleep_weight", 0.0, 1.0, "linear", 0.1),
         Range("count_weight", 0.0, 1.0, "linear", 0.1))
NAMES = tuple(r.name for r in TABLE)
SELECTED = 0.25  # the share of organisms whose instincts are replaced (and copied from) at each selection


def of_flags(learning) -> Instincts:
    """A single run's instincts: its flags (``learner.Learning``)."""
    return Instincts(**{n: jnp.asarray(getattr(learning, n), jnp.float32) for n in NAMES})


def rows(inst: Instincts) -> np.ndarray:
    """[N, I] (a population's) or [I] (one organism's) values, in the order of NAMES (I = len(NAMES))."""
    return np.stack([np.asarray(getattr(inst, n), np.float64) for n in NAMES], axis=-1)


def from_rows(values: np.ndarray) -> Instincts:
    """Instincts from ``rows``'s layout."""
    values = np.asarray(values)
    return Instincts(**{n: jnp.asarray(values[..., i], jnp.float32) for i, n in enumerate(NAMES)})


def to_space(r: Range, x):
    return {"log": np.log, "log1m": lambda v: np.log1p(-v), "linear": lambda v: v}[r.space](np.asarray(x, np.float64))


def from_space(r: Range, u):
    return {"log": np.exp, "log1m": lambda v: -np.expm1(v), "linear": lambda v: v}[r.space](u)


def prior(rng: np.random.Generator, n: int) -> np.ndarray:
    """[n, I]: instincts drawn from the prior (uniform in each one's space over its range)."""
    cols = []
    for r in TABLE:
        a, b = sorted((to_space(r, r.low), to_space(r, r.high)))
        cols.append(from_space(r, rng.uniform(a, b, n)))
    return np.stack(cols, axis=1)


def mutate(values: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Each instinct plus Gaussian noise of its mutation scale in its space, kept within its prior's range."""
    out = np.array(values, np.float64)
    for i, r in enumerate(TABLE):
        a, b = sorted((to_space(r, r.low), to_space(r, r.high)))
        u = to_space(r, out[..., i]) + r.mutation * rng.standard_normal(out[..., i].shape)
        out[..., i] = from_space(r, np.clip(u, a, b))
    return out


def select(values: np.ndarray, fitness: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, list]:
    """Truncation selection (PBT's exploit and explore): the ``SELECTED`` share of least fit organisms (at least
    one, at most half) take mutated copies of the instincts of as many of the fittest, best to worst; the rest
    keep theirs. Returns (the next generation's [N, I], [(from, to)] organism pairs)."""
    N = len(fitness)
    k = min(max(1, math.floor(SELECTED * N)), N // 2)
    order = sorted(range(N), key=lambda i: (fitness[i], -i))  # worst first; on a tie the later organism is worse
    worst, best = order[:k], order[::-1][:k]
    nxt = np.array(values, np.float64)
    nxt[worst] = mutate(values[best], rng)
    return nxt, list(zip(best, worst))


def next_generation(selection: str, values: np.ndarray, fitness: np.ndarray, rng: np.random.Generator):
    """The next generation's instincts ([N, I]) and the record of how they came: selected (``select``) or, in
    the control (``selection`` 'none'), drawn afresh from the prior."""
    if selection == "evolve":
        nxt, moves = select(values, fitness, rng)
        return nxt, {"copied": [[int(a), int(b)] for a, b in moves]}
    return prior(rng, len(fitness)), {"copied": []}


def check(learning, evolving_instincts: bool) -> None:
    """One clear line for an instinct flag outside what the learner can use (the prior's range is for
    evolution: flags may lie outside it)."""
    if evolving_instincts and learning.policy != "learned":
        raise ValueError("--evolve instincts/both shapes a learner: it needs --policy learned")
    if evolving_instincts and learning.ent_coef <= 0:
        raise ValueError("evolved instincts hold an entropy target: they need a positive --ent-coef to start from")
