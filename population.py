"""A population: N lives at once, each organism its own seed, model and world; in one process or over several.

The two halves of a step (``life.act``, ``life.learn``) run under ``vmap`` with a *population* rebirth
between them. Under ``vmap`` a per-organism ``lax.cond`` turns into a select that would build a world for
every organism on every step, so instead a few fresh worlds are built for the whole population, only on
steps where somebody died (a ``cond`` on ``any(done)``, which stays a real branch), and handed to the
dead in order (optimistic reset). On a CPU the population is cut into equal slices that run side by side
in host threads, one per core (``live_threads``). Organism i draws its randomness exactly as its single
life would, so a population of one is ``life.live`` and every organism of a population can be replayed
alone.

Over several processes (``hosts.py``: JAX's distributed runtime, one process per host or per GPU), each
process lives an equal slice of the population, cut as threads cut it: a process is a slice reborn on its own.

Every function takes a ``life.Life`` (``cfg``), as in ``life.py``.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

import life
import world

# ----------------------------------------------------------------------------- births


def born_population(cfg: life.Life, keys) -> tuple[life.Organism, object]:
    """``born`` for each key, stacked on the host (a leading population axis on every leaf): organism i is
    exactly the single life born from ``keys[i]``, and the programs are the single life's."""
    newborns = [life.born(cfg, k) for k in keys]
    return jax.tree.map(stack, *newborns)


def stack(*leaves):
    """One leaf of each organism, stacked: on the host (no program to compile for each shape and population
    size), or traced (under ``eval_shape``, as a resumed run builds its checkpoint's structure)."""
    if any(isinstance(x, jax.core.Tracer) for x in leaves):
        return jnp.stack(leaves)
    return jnp.asarray(np.stack(leaves))


# ----------------------------------------------------------------------------- rebirth


def fresh_worlds(population: int) -> int:
    """How many new worlds a population builds on a step where somebody died. Classic lives last ~150
    steps, so two or more deaths on one step are rare below a few dozen organisms."""
    return min(population, 2 + population // 16)


def rebirth(cfg: life.Life, a: life.Act):
    """Population rebirth (optimistic reset): the dead take fresh worlds, in order of their index.

    Fresh world r is built from the reset key of the r-th organism that died on this step, so an
    organism that dies alone gets exactly the world its single life would have got. Only if more than
    ``fresh_worlds(N)`` die on one step do some share a world (counted). Returns (obs, env_state, shared).
    """
    env, params = world.make_env(cfg.body.world)
    N = a.done.shape[0]
    R = fresh_worlds(N)
    rank = jnp.cumsum(a.done) - 1  # [N] order among the dead
    who = jnp.argmax((rank[None] == jnp.arange(R)[:, None]) & a.done[None], axis=1)  # [R] the r-th dead
    fresh = jax.lax.cond(jnp.any(a.done),
                         lambda: jax.vmap(lambda k: world.reset(env, params, k))(a.reset_key[who]),
                         lambda: jax.tree.map(lambda x: x[:R], (a.next_obs, a.last_state)))
    src = jnp.where(a.done, rank % R, 0)

    def pick(new, old):
        d = a.done.reshape((N,) + (1,) * (old.ndim - 1))
        return jnp.where(d, new[src], old)

    obs, env_state = jax.tree.map(pick, fresh, (a.next_obs, a.last_state))
    return obs, env_state, (a.done & (rank >= R)).astype(jnp.float32)


# ----------------------------------------------------------------------------- chunks of N lives


def live_population(cfg: life.Life, orgs: life.Organism, env_states, keys, steps: int):
    """``steps`` steps of N lives at once (every leaf has a leading axis N; ``keys`` is [N, 2]): organism i
    draws its randomness exactly as ``live`` does from ``keys[i]``. Records come back as [N, steps].

    N = 1 is the single life (a real ``cond`` rebirth); N > 1 is ``act`` and ``learn`` under ``vmap`` with
    the population's rebirth between them. Whatever sharding the inputs carry, the jitted chunk keeps.
    """
    if keys.shape[0] == 1:
        one = lambda tree: jax.tree.map(lambda x: x[0], tree)  # noqa: E731
        org, env_state, rec = life.live(cfg, one(orgs), one(env_states), keys[0], steps)
        return jax.tree.map(lambda x: x[None], (org, env_state, rec))
    return vmapped_lives(cfg, orgs, env_states, keys, steps)


@eqx.filter_jit
def vmapped_lives(cfg: life.Life, orgs, env_states, keys, steps: int):
    """``live_population`` for N > 1: ``act`` and ``learn`` under ``vmap``, the population's rebirth between."""

    def body(carry, k):
        orgs, env_states = carry
        a = jax.vmap(lambda o, e, k: life.act(cfg, o, e, k))(orgs, env_states, k)
        obs, env_states, shared = rebirth(cfg, a)
        orgs, rec = jax.vmap(lambda o, a, x, e, s: life.learn(cfg, o, a, x, e, s))(orgs, a, obs, env_states, shared)
        return (orgs, env_states), rec

    step_keys = jax.vmap(lambda k: jax.random.split(k, steps))(keys)  # [N, steps, 2], as ``live`` splits
    (orgs, env_states), records = jax.lax.scan(body, (orgs, env_states), jnp.swapaxes(step_keys, 0, 1))
    return orgs, env_states, jax.tree.map(lambda x: jnp.swapaxes(x, 0, 1), records)


def threads_for(population: int, threads: int = 0) -> int:
    """How many host threads share a population: ``threads`` if given, else, on a CPU with one device, the
    largest divisor of the population that is at most the number of cores (elsewhere 1)."""
    if threads:
        return threads
    if jax.default_backend() != "cpu" or len(jax.local_devices()) > 1:
        return 1
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(k for k in range(1, min(population, cores) + 1) if population % k == 0)


def live_threads(cfg: life.Life, orgs: life.Organism, env_states, keys, steps: int, threads: int):
    """``live_population`` over ``threads`` equal slices of the population, each in its own host thread.

    XLA's CPU backend runs one small computation on about one core; slices of the population are
    independent lives (each slice is reborn on its own), so they can run side by side, one per core. The
    result is the same as one call whatever the threads' timing.
    """
    if threads == 1:
        return live_population(cfg, orgs, env_states, keys, steps)
    size = keys.shape[0] // threads

    def part(i):
        cut = lambda tree: jax.tree.map(lambda x: x[i * size:(i + 1) * size], tree)  # noqa: E731
        return jax.block_until_ready(live_population(cfg, *cut((orgs, env_states, keys)), steps))

    with ThreadPoolExecutor(threads) as pool:
        outs = list(pool.map(part, range(threads)))
    return jax.tree.map(lambda *xs: jnp.concatenate(xs), *outs)
