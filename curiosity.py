"""Curiosity: what the animal finds rewarding. One registry (``CURIOSITIES``) of intrinsic rewards, each with
the objectives it needs and how it turns one step's experience into a signal; adding a curiosity is one
``register(Curiosity(...))`` here. Below it, the mechanics of the novelty signals.

The registry (``--curiosity``):

- ``surprise``, ``forward``, ``inverse``: -log p of an objective's targets on the newest step (the first
  objective's, forward_dynamics', inverse_dynamics');
- ``progress``: how much one update lowered the first objective's surprise on the same data (learning
  progress; paid one step late);
- ``icm``: latent_forward's error in the model's standardised features (shaped by latent_inverse);
- ``rnd``, ``count``, ``e3b``: novelty (below);
- ``disagreement``: the spread of an ensemble of forward models' predictions of the next state (of a fixed
  random embedding of it: the ``disagreement`` layout, ``targets.disagreement_loss``), paid before the
  outcome is seen; it names no part of the observation and reads no reward (Pathak, Gandhi & Gupta 2019;
  Plan2Explore's signal);
- ``effects``: 1 / sqrt(times this change of inventory and vitals happened in this episode, cleared at
  death): novelty of what the animal's actions do to it, not of what it sees;
- ``changes``: the same count (C-BET, Parisi, Dean, Pathak & Gupta 2021) over a hash of the whole
  observation's change: every cell whose block, item or mob changed, with what it became, and the sign of
  every status entry's change; no entry is named, so it is not a prior about this game (a step while the
  view scrolls is a change of most cells: moving pays like a new view);
- ``changes-world``: ``changes`` with the two views compared in the world's coordinates: ``before`` is
  shifted by the one-cell move (or none) under which the fewest blocks and items differ (``align``), and only
  the cells both views hold are compared, so a step onto new ground changes nothing but what the animal did
  to the world and to itself. It reads no position and names no entry (the prior it brings is general: an
  egocentric view scrolls with the animal's own move); symbolic views only;
- ``effects+sleep``: effects, with falling asleep and waking up counted as effects of their own (a sleep
  otherwise pays only its gains of energy, less and less, and the animal learns to stay awake; measured in
  docs/curiosity.md section 6);
- ``mix``: ``effects`` plus falling asleep and waking up (1 / sqrt(times each happened this episode)) times
  ``--sleep-weight``, plus ``count``'s view novelty times ``--count-weight``. The two weights are instincts
  (instincts.py): evolution can choose per organism how much sleep and new views are worth. With both at 0
  it pays exactly what ``effects`` pays;
- ``oracle``: a CONTROL, never the animal: Craftax's own reward (achievements and health) through the same
  learner, to judge the learner apart from any curiosity.

Novelty. Surprise fools itself: an action with no visible effect (``do`` facing grass, crafting with nothing to
craft) is as hard to tell from a no-op as the no-op itself, so inverse-dynamics surprise pays for it
forever. The signals here shrink as the same thing is met again:

- ``rnd``, random network distillation (Burda et al. 2019): a fixed, randomly initialised network embeds
  each state; the model learns to predict that embedding (the ``rnd`` layout, ``s0 ; n0``). Its error is
  high on states it has seen rarely and falls as they recur; the target is a deterministic function of
  the state, so there is no noise to chase.
- ``count``, an episodic count over a coarse hash of the view (a Zobrist hash of the block and item ids
  of the local view and of what the player holds, 2^12 buckets): the bonus is 1 / sqrt(n), n = visits
  of this view's bucket in this life (the table is cleared at death).
- ``e3b``, an elliptical episodic bonus in the model's own features (Henaff et al. 2022):
  b = phi' C^-1 phi with C = lambda I + sum of phi phi' over this life so far (Sherman-Morrison updates;
  cleared at death). phi is the status token's prefix output, standardised (below): the features the
  policy reads, shaped by the world model's objectives (inverse dynamics by default, as in E3B).

The prefix outputs themselves barely change from one state to the next (type, time and slot embeddings
dominate them: consecutive states differ by ~1e-4 in mean squared error), which made ICM's latent targets
nearly constant. ``standardise`` subtracts a running mean and divides by a running standard deviation per
token and dimension (kept by the organism, updated once per step, never trained), so features measure
how this state differs from the usual one. ICM's ``z`` tokens and E3B's phi both read them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache, partial

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int

from model import RND_DIM, Obs
from world import EnvSpec

RND_HIDDEN = 128
RND_SEED = 20190101  # the target network is the same for every organism and every run
HASH_BITS = 12  # episodic count table: 4,096 buckets
INVENTORY_LEVELS = 16  # amounts an inventory slot is hashed at (more count as the last)
E3B_RIDGE = 0.1  # lambda of C = lambda I + sum phi phi'
FEATURE_HORIZON = 1000  # steps the running feature statistics average over (1/n before that)
VITALS = 4  # health, food, drink, energy: the status values right after the inventory, in both games


@lru_cache(maxsize=None)
def _rnd_weights(spec: EnvSpec):
    """The fixed random network (numpy constants, never parameters: nothing can train them)."""
    rng = np.random.default_rng(RND_SEED)
    c = 16
    if spec.image is None:
        H, W = spec.view
        tables = [rng.normal(size=(n + 1, c)) for n in (spec.n_block, spec.n_item, spec.n_mob)]
        fan_in = H * W * c + spec.n_status
    else:
        tables = []
        fan_in = 9 * 9 * 3  # the frame, average-pooled to 9 x 9
    w1 = rng.normal(size=(fan_in, RND_HIDDEN)) / np.sqrt(fan_in)
    w2 = rng.normal(size=(RND_HIDDEN, RND_DIM)) / np.sqrt(RND_HIDDEN)
    return [t.astype(np.float32) for t in tables], w1.astype(np.float32), w2.astype(np.float32)


def random_features(spec: EnvSpec, obs: Obs) -> Float[Array, " K"]:
    """RND's target: a fixed random network's embedding of one state (cells and status, or the frame)."""
    tables, w1, w2 = _rnd_weights(spec)
    if spec.image is None:
        cells = sum(jnp.asarray(t)[ids] for t, ids in zip(tables, (obs.block, obs.item, obs.mob)))  # [H, W, c]
        x = jnp.concatenate([cells.reshape(-1), obs.status])
    else:
        h, w, _ = obs.image.shape
        x = obs.image[: h - h % 9, : w - w % 9].reshape(9, h // 9, 9, w // 9, 3).mean((1, 3)).reshape(-1)
    return jax.nn.leaky_relu(x @ w1) @ w2


@lru_cache(maxsize=None)
def _zobrist(spec: EnvSpec):
    rng = np.random.default_rng(RND_SEED + 1)
    H, W = spec.view
    return (rng.integers(0, 2**32, (H, W, spec.n_block + 1), dtype=np.uint32),
            rng.integers(0, 2**32, (H, W, spec.n_item + 1), dtype=np.uint32),
            rng.integers(0, 2**32, (spec.n_inventory, INVENTORY_LEVELS), dtype=np.uint32))


def view_bucket(spec: EnvSpec, obs: Obs) -> Int[Array, ""]:
    """A coarse hash of the view: XOR of a random word per (cell, block id), (cell, item id) and
    (inventory slot, amount), top bits.

    Mobs, vitals and direction are left out (a cow walking by, or hunger rising, is not a new sight); what
    the player holds is in (Crafter draws it under the map: a new tool is a new view). A pixel world
    hashes its whole frame, quantised to 9 x 9 x 3 levels of 4.
    """
    if spec.image is None:
        zb, zi, zv = _zobrist(spec)
        H, W = spec.view
        r, c = np.arange(H)[:, None], np.arange(W)[None]
        held = jnp.clip(jnp.round(obs.status[: spec.n_inventory] * 10), 0, INVENTORY_LEVELS - 1).astype(jnp.int32)
        words = jnp.concatenate([jnp.asarray(zb)[r, c, obs.block].reshape(-1),
                                 jnp.asarray(zi)[r, c, obs.item].reshape(-1),
                                 jnp.asarray(zv)[np.arange(spec.n_inventory), held]])
    else:
        h, w, _ = obs.image.shape
        small = obs.image[: h - h % 9, : w - w % 9].reshape(9, h // 9, 9, w // 9, 3).mean((1, 3))
        levels = jnp.clip((small * 4).astype(jnp.int32), 0, 3).reshape(-1)
        table = jax.random.bits(jax.random.PRNGKey(RND_SEED), (levels.shape[0], 4), jnp.uint32)
        words = table[jnp.arange(levels.shape[0]), levels]
    word = jax.lax.reduce(words, np.uint32(0), jax.lax.bitwise_xor, (0,))
    return (word >> np.uint32(32 - HASH_BITS)).astype(jnp.int32)


@lru_cache(maxsize=None)
def _effect_words(n: int):
    return np.random.default_rng(RND_SEED + 2).integers(0, 2**32, (n, 3), dtype=np.uint32)


def effect_bucket(spec: EnvSpec, before: Obs, after: Obs,
                  sleep: bool = False) -> tuple[Int[Array, ""], Bool[Array, ""]]:
    """What a transition did to the animal: the sign (-, 0, +) of the change of every inventory count and
    vital (and, with ``sleep``, of being asleep: falling asleep and waking up are effects too), hashed to a
    bucket like ``view_bucket``; and whether anything changed at all."""
    n = spec.n_inventory + VITALS
    idx = np.r_[np.arange(n), [spec.sleeping] if sleep else []].astype(np.int32)
    sign = jnp.sign(after.status[idx] - before.status[idx]).astype(jnp.int32) + 1  # [n (+1)] in 0, 1, 2
    n = len(idx)
    words = jnp.asarray(_effect_words(n))[np.arange(n), sign]
    word = jax.lax.reduce(words, np.uint32(0), jax.lax.bitwise_xor, (0,))
    return (word >> np.uint32(32 - HASH_BITS)).astype(jnp.int32), jnp.any(sign != 1)


@lru_cache(maxsize=None)
def _change_words(spec: EnvSpec):
    rng = np.random.default_rng(RND_SEED + 3)
    if spec.image is not None:
        return (rng.integers(0, 2**32, (9 * 9 * 3, 4), dtype=np.uint32),)
    H, W = spec.view
    cells = tuple(rng.integers(0, 2**32, (H, W, n + 1), dtype=np.uint32)
                  for n in (spec.n_block, spec.n_item, spec.n_mob))
    return cells + (rng.integers(0, 2**32, (spec.n_status, 3), dtype=np.uint32),)


SHIFTS = ((0, 0), (1, 0), (-1, 0), (0, 1), (0, -1))  # the moves a view can make in one step: none first


def align(spec: EnvSpec, before: Obs, after: Obs) -> tuple[Obs, Bool[Array, "H W"]]:
    """``before`` as seen from where ``after`` is seen: of the five one-cell shifts of the view (none first),
    the one under which the fewest blocks and items differ (an egocentric view scrolls by the animal's own move;
    no entry of the observation, no position, is read), and which cells both views hold."""
    H, W = spec.view
    r, c = np.arange(H)[:, None], np.arange(W)[None]
    valid = np.stack([(0 <= r + dr) & (r + dr < H) & (0 <= c + dc) & (c + dc < W) for dr, dc in SHIFTS])
    roll = lambda x: jnp.stack([jnp.roll(x, (-dr, -dc), (0, 1)) for dr, dc in SHIFTS])  # [5, H, W]  # noqa: E731
    block, item, mob = roll(before.block), roll(before.item), roll(before.mob)
    wrong = (((block != after.block) | (item != after.item)) & valid).sum((1, 2))
    k = jnp.argmin(wrong)  # ties: the first, no move
    return eqx.tree_at(lambda o: (o.block, o.item, o.mob), before, (block[k], item[k], mob[k])), jnp.asarray(valid)[k]


def change_bucket(spec: EnvSpec, before: Obs, after: Obs, aligned: bool = False
                  ) -> tuple[Int[Array, ""], Bool[Array, ""]]:
    """C-BET's change (Parisi et al. 2021), over the whole observation with no entry named: every cell whose
    block, item or mob changed (with what it became) and the sign of every status entry's change, hashed
    to a bucket like ``view_bucket``; and whether anything changed at all. ``aligned`` (symbolic views): the
    cells compared in the world's coordinates, ``before`` shifted by the move that best explains ``after``
    (``align``), so that a step onto new ground changes nothing the two views both hold. A pixel frame: each
    cell of its 9 x 9 x 3 pooling, quantised to 4 levels, that changed, with its new level."""
    words = _change_words(spec)
    if spec.image is None:
        H, W = spec.view
        r, c = np.arange(H)[:, None], np.arange(W)[None]
        both = True
        if aligned:
            before, both = align(spec, before, after)
        parts, moved = [], []
        for table, old, new in zip(words, (before.block, before.item, before.mob), (after.block, after.item,
                                                                                   after.mob)):
            diff = (old != new) & both
            parts.append(jnp.where(diff, jnp.asarray(table)[r, c, new], np.uint32(0)).reshape(-1))
            moved.append(diff.reshape(-1))
        sign = jnp.sign(after.status - before.status).astype(jnp.int32) + 1
        parts.append(jnp.asarray(words[-1])[np.arange(spec.n_status), sign])
        moved.append(sign != 1)
    else:
        def levels(o):
            h, w, _ = o.image.shape
            small = o.image[: h - h % 9, : w - w % 9].reshape(9, h // 9, 9, w // 9, 3).mean((1, 3))
            return jnp.clip((small * 4).astype(jnp.int32), 0, 3).reshape(-1)
        old, new = levels(before), levels(after)
        parts = [jnp.where(old != new, jnp.asarray(words[0])[np.arange(old.shape[0]), new], np.uint32(0))]
        moved = [old != new]
    word = jax.lax.reduce(jnp.concatenate(parts), np.uint32(0), jax.lax.bitwise_xor, (0,))
    return (word >> np.uint32(32 - HASH_BITS)).astype(jnp.int32), jnp.any(jnp.concatenate(moved))


def effect_bonus(counts: Float[Array, " K"], bucket: Int[Array, ""], changed: Bool[Array, ""],
                 done: Bool[Array, ""]):
    """``count_bonus`` over effects: 1 / sqrt(times this effect happened in this episode); nothing for a
    transition that changed nothing."""
    bonus, counts = count_bonus(counts, bucket, done)
    return jnp.where(changed, bonus, 0.0), counts


def count_bonus(counts: Float[Array, " K"], bucket: Int[Array, ""], done: Bool[Array, ""]):
    """(1 / sqrt(visits of this bucket, this one included), the table after it; cleared when a life ends)."""
    counts = counts.at[bucket].add(1.0)
    bonus = jax.lax.rsqrt(counts[bucket])
    return bonus, jnp.where(done, jnp.zeros_like(counts), counts)


def elliptical_bonus(cinv: Float[Array, "d d"], phi: Float[Array, " d"], done: Bool[Array, ""]):
    """(phi' C^-1 phi, C^-1 after adding phi phi' (Sherman-Morrison)); C^-1 = I / lambda again when a life ends.

    On a life's last step the outcome frame's features are not computed (the model sees the new life's
    first frame), so that step earns nothing."""
    u = cinv @ phi
    bonus = phi @ u
    cinv = cinv - jnp.outer(u, u) / (1.0 + bonus)
    fresh = jnp.eye(cinv.shape[0], dtype=cinv.dtype) / E3B_RIDGE
    return jnp.where(done, 0.0, bonus), jnp.where(done, fresh, cinv)


def new_feature_stats(n_tokens: int, d: int) -> Float[Array, "2 n d"]:
    """Running mean and variance of the prefix outputs, per token and dimension: (0, 1) at birth."""
    return jnp.stack([jnp.zeros((n_tokens, d)), jnp.ones((n_tokens, d))]).astype(jnp.float32)


def standardise(z: Float[Array, "*b n d"], stats: Float[Array, "2 n d"]) -> Float[Array, "*b n d"]:
    mean, var = stats
    return (z - mean) * jax.lax.rsqrt(var + 1e-6)


def update_feature_stats(stats: Float[Array, "2 n d"], z: Float[Array, "n d"], age: Float[Array, ""]):
    """One step of the running statistics: an average over the steps so far with the birth prior (0, 1) as
    one sample, until FEATURE_HORIZON steps; an exponential average over that horizon after."""
    rate = jnp.maximum(1.0 / (age + 2.0), 1.0 / FEATURE_HORIZON)
    mean, var = stats
    delta = z - mean
    mean = mean + rate * delta
    var = (1 - rate) * (var + rate * delta**2)
    return jnp.stack([mean, var])


# ----------------------------------------------------------------------------- the registry

@dataclass(frozen=True)
class Step:
    """What a curiosity may read of one step (after the model's forward pass, before its update)."""

    spec: EnvSpec
    win: object  # objectives.Window: the newest transition is its last row
    surprise: Float[Array, " n"]  # the curious objective's surprise on each of its window instances (newest last)
    ok: Bool[Array, " n"]  # which of those instances counted
    last_surprise: Float[Array, " 2"]  # [surprise, counted] of last step's newest instance (learning progress)
    episodic: Float[Array, "..."]  # this life's memory of the curiosity (counts, C^-1, or empty)
    phi: Float[Array, " d"]  # the model's standardised features of the newest outcome (scaled by 1/sqrt(d))
    instincts: object = None  # the organism's instincts.Instincts (mix reads its weights)
    extrinsic: Float[Array, ""] | None = None  # Craftax's reward of the newest step: only the oracle control reads it


@dataclass(frozen=True)
class Curiosity:
    name: str
    signal: Callable  # Step -> (signal, episodic memory after it, row of the window it pays: -1 newest, -2)
    needs: tuple[str, ...] = ()  # objectives it brings (added to --objective); the last one's surprise is read
    memory: Callable = lambda d: jnp.zeros((0,), jnp.float32)  # d -> the episodic memory a life starts with
    features: bool = False  # reads the model's standardised features (keeps their running statistics)
    control: bool = False  # not a curiosity: the environment's reward (the oracle)
    symbolic: str = ""  # what it reads that only a symbolic view has (refused with --obs pixels); "": any view
    help: str = ""  # what it pays for, in a phrase (--curiosity's help is made of these: help_text)


NAMED = "reads the inventory and vitals of a symbolic view"


CURIOSITIES: dict[str, Curiosity] = {}


def register(c: Curiosity) -> Curiosity:
    CURIOSITIES[c.name] = c
    return c


def newest(x):
    return jax.tree.map(lambda v: v[-1], x)


def surprise_signal(s: Step):
    return jnp.where(s.ok[-1], s.surprise[-1], 0.0), s.episodic, -1


def progress_signal(s: Step):
    """The same instance, one update later: its surprise dropped by this much (paid to the step before)."""
    return jnp.where(s.ok[-2] & (s.last_surprise[1] > 0), s.last_surprise[0] - s.surprise[-2], 0.0), s.episodic, -2


def count_signal(s: Step):
    signal, memory = count_bonus(s.episodic, view_bucket(s.spec, newest(s.win.next_obs)), s.win.done[-1])
    return signal, memory, -1


def e3b_signal(s: Step):
    signal, memory = elliptical_bonus(s.episodic, s.phi, s.win.done[-1])
    return signal, memory, -1


def effects_signal(s: Step, sleep: bool = False):
    bucket, changed = effect_bucket(s.spec, newest(s.win.obs), newest(s.win.next_obs), sleep)
    signal, memory = effect_bonus(s.episodic, bucket, changed, s.win.done[-1])
    return signal, memory, -1


def changes_signal(s: Step, aligned: bool = False):
    bucket, changed = change_bucket(s.spec, newest(s.win.obs), newest(s.win.next_obs), aligned)
    signal, memory = effect_bonus(s.episodic, bucket, changed, s.win.done[-1])
    return signal, memory, -1


def mix_memory(d: int):
    """mix's episodic memory: effect counts, view counts, and the times it fell asleep and woke up."""
    return jnp.zeros(2 * 2**HASH_BITS + 2, jnp.float32)


def sleep_bonus(spec: EnvSpec, counts: Float[Array, " 2"], before: Obs, after: Obs, done: Bool[Array, ""]):
    """1 / sqrt(times this episode the animal fell asleep (or woke up), this time included); nothing for a
    step on which it did neither; the counts are cleared when a life ends."""
    change = after.status[spec.sleeping] - before.status[spec.sleeping]
    which = (change < 0).astype(jnp.int32)  # 0: fell asleep, 1: woke up
    counts = counts.at[which].add((change != 0).astype(jnp.float32))
    bonus = jnp.where(change != 0, jax.lax.rsqrt(jnp.maximum(counts[which], 1.0)), 0.0)
    return bonus, jnp.where(done, jnp.zeros_like(counts), counts)


def mix_signal(s: Step):
    """effects + sleep_weight * sleep_bonus + count_weight * view novelty, the weights the organism's."""
    K = 2**HASH_BITS
    before, after, done = newest(s.win.obs), newest(s.win.next_obs), s.win.done[-1]
    effects, e_counts = effect_bonus(s.episodic[:K], *effect_bucket(s.spec, before, after), done)
    views, v_counts = count_bonus(s.episodic[K:2 * K], view_bucket(s.spec, after), done)
    sleeps, s_counts = sleep_bonus(s.spec, s.episodic[2 * K:], before, after, done)
    signal = effects + s.instincts.sleep_weight * sleeps + s.instincts.count_weight * views
    return signal, jnp.concatenate([e_counts, v_counts, s_counts]), -1


def oracle_signal(s: Step):
    return s.extrinsic, s.episodic, -1


def counts(d: int):
    return jnp.zeros(2**HASH_BITS, jnp.float32)


register(Curiosity("surprise", surprise_signal,
                   help="-log p of the first objective's targets on the newest step"))
register(Curiosity("forward", surprise_signal, needs=("forward_dynamics",),
                   help="the surprise of forward_dynamics"))
register(Curiosity("inverse", surprise_signal, needs=("inverse_dynamics",),
                   help="the surprise of inverse_dynamics"))
register(Curiosity("progress", progress_signal,
                   help="how much one update lowered the first objective's surprise (learning progress)"))
register(Curiosity("icm", surprise_signal, needs=("latent_inverse", "latent_forward"),
                   help="latent_forward's error in the model's standardised features"))
register(Curiosity("rnd", surprise_signal, needs=("rnd",),
                   help="the error of predicting a fixed random network's embedding of the state"))
register(Curiosity("disagreement", surprise_signal, needs=("disagreement",),
                   help="the spread of an ensemble of forward models' predictions of the next state"))
register(Curiosity("count", count_signal, memory=counts,
                   help="1/sqrt(visits of this view in this life)"))
register(Curiosity("e3b", e3b_signal, memory=lambda d: jnp.eye(d, dtype=jnp.float32) / E3B_RIDGE, features=True,
                   help="an elliptical episodic bonus in the model's features"))
register(Curiosity("effects", effects_signal, memory=counts, symbolic=NAMED,
                   help="1/sqrt(times this change of inventory and vitals happened in this episode)"))
register(Curiosity("changes", changes_signal, memory=counts,
                   help="the same count over a hash of every cell and status entry that changed and how, none "
                        "named (C-BET)"))
register(Curiosity("changes-world", partial(changes_signal, aligned=True), memory=counts,
                   symbolic="aligns the cells of two symbolic views",
                   help="changes, the cells compared in the world's coordinates (the view shifted back by the move "
                        "that best explains it)"))
register(Curiosity("effects+sleep", partial(effects_signal, sleep=True), memory=counts, symbolic=NAMED,
                   help="effects, with falling asleep and waking up counted as effects too"))
register(Curiosity("mix", mix_signal, memory=mix_memory, symbolic=NAMED,
                   help="effects plus --sleep-weight x a bonus for falling asleep and waking up plus --count-weight x "
                        "count (weights an evolution may shape: instincts.py)"))
register(Curiosity("oracle", oracle_signal, control=True,
                   help="a CONTROL, not the animal: Craftax's own reward through the same learner"))


def help_text() -> str:
    """--curiosity's help, made from the registry."""
    return ("the intrinsic reward: " + "; ".join(f"'{c.name}' = {c.help}" for c in CURIOSITIES.values())
            + "; a curiosity adds the objectives it needs (curiosity.py)")
