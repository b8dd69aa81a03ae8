"""Kinds of segment: what each letter of a layout is, and, for those that can be predicted, their loss and
their score beside an honest baseline. Everything else is derived from this registry: the layouts' tokens
(``objectives.py``), the losses, the scores in ``metrics.jsonl`` and ``summary.json``, the plots and the
compare tables. Adding a kind of target is one ``register(Kind(...))``.

    s  a state (P patch tokens + a status token)     a  an action       r  the extrinsic reward
    m  a state with some cells hidden (given only)    l  where am I (place cells; predicted only)
    z  the model's own output at a state, fed back in (its standardised prefix output)
    n  a fixed random network's embedding of a state (random network distillation; predicted only)
    v  the view seen ``--recall-delay`` steps before s0 (the recall probe; predicted only)
    d  an ensemble's predictions of n (disagreement: its members' spread is the surprise; predicted only)

A kind's loss reads a ``Query``: the outputs of one target segment's query tokens for every instance of a
layout in the window, with what it may compare them to (the states, actions and rewards of those instances,
the online baselines so far). It returns, per instance, the loss, the surprise (-log p of the target, in
nats, up to a constant for continuous targets: the curiosity signal), the score and the baseline's score.
Every score is prequential: made on the newest instance before the model learns from it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int

from curiosity import random_features
from model import RND_DIM, Model, Obs, padded_view, place_centres, place_log_code

PIXEL_VAR = 0.01  # pixel predictions are Gaussian with this variance (std 0.1 per channel)
HIDE_RATE = 0.25  # fraction of cells hidden in a masked state
DELAY_BINS = (1, 2, 4, 8, 16, 32, 64, 128)  # the recall curve's bins of delay: [1, 2), [2, 4), ... [64, 128)


@dataclass(frozen=True)
class Score:
    """A prequential score and its baseline, named as every file of a run names them."""

    name: str  # e.g. "action_accuracy": metrics.jsonl "<objective>/<name>", summary.json prequential.<objective>
    baseline: str  # e.g. "majority": metrics.jsonl "<objective>/<name>/<baseline>"
    higher_is_better: bool
    title: str  # the plot panel's title
    baseline_is: str = ""  # what the baseline does, for summary.json
    chance: Callable | None = None  # spec -> the score of guessing at random, if it has one


@dataclass(frozen=True)
class Kind:
    """One letter of the layout language."""

    letter: str
    tokens: tuple[str, ...]  # its token type: one name (one token), or two (P patch tokens, then 1 status token)
    given: bool  # may stand before ';'
    predicted: bool  # may stand after ';'
    at_state: bool  # x_t is the state after transition t - 1 (s, z, l, n, v), not part of transition t (a, r, m)
    shown_after: bool = True  # later targets of a layout see this one's real content
    loss: Callable | None = None  # Query -> (loss, surprise, score, baseline[, {extra: values}]), each [instances]
    score: Score | None = None
    pixel_score: Score | None = None  # its score in a pixel world, if it differs
    head: int = 0  # outputs of a head of its own (model.heads[letter]); 0: it uses the model's built-in heads
    valid: Callable | None = None  # (window, starts, t) -> [instances] bool: instances this target may count in
    extras: tuple[str, ...] = ()  # names of the extra figures its loss returns (summed by the tally like scores)

    def token_names(self, P: int, query: bool) -> list[str]:
        names = [self.tokens[0]] * P + [self.tokens[1]] if self.state_like else list(self.tokens)
        return ["q_" + n if query else n for n in names]

    @property
    def state_like(self) -> bool:
        """Takes P + 1 tokens, one per patch and the status."""
        return len(self.tokens) == 2

    def types(self) -> list[str]:
        """The token types its segments can have: real ones if given or shown to later targets, queries if
        predicted."""
        real = self.given or (self.predicted and self.shown_after)
        return self.token_names(1, False) * real + self.token_names(1, True) * self.predicted

    def scored(self, pixels: bool) -> Score:
        return self.pixel_score if pixels and self.pixel_score else self.score


KINDS: dict[str, Kind] = {}


def register(kind: Kind) -> Kind:
    KINDS[kind.letter] = kind
    return kind


# the model's token types, in the order of its type embeddings (kinds registered later append theirs)
BASE_TYPES = ("pad", "patch", "status", "action", "reward", "latent", "latent_status",
              "q_patch", "q_status", "q_action", "q_reward", "q_latent", "q_latent_status", "q_place", "q_rnd",
              "memory", "debrief", "think", "q_recall")


def token_types() -> tuple[str, ...]:
    return BASE_TYPES + tuple(dict.fromkeys(n for k in KINDS.values() for n in k.types() if n not in BASE_TYPES))


def type_id(name: str) -> int:
    return token_types().index(name)


def heads() -> dict[str, int]:
    """The heads of kinds registered with their own (letter -> outputs)."""
    return {k.letter: k.head for k in KINDS.values() if k.head}


def model_kinds() -> dict:
    """What the model's shape needs of this registry: ``Model(spec, ..., **targets.model_kinds())``."""
    return dict(types=len(token_types()), heads=heads())


# ----------------------------------------------------------------------------- what a target's loss reads


@dataclass(frozen=True)
class Prior:
    """Online baselines: what a model that learned nothing would guess, from the life so far."""

    majority: Int[Array, ""]  # the action taken most often so far
    mean_reward: Float[Array, ""]  # the mean reward the animal was paid so far


def state_row(T: int, start, t: int):
    """Row of state ``s_t`` of an instance starting at ``start``, in [obs_0..obs_T-1, next_0..next_T-1, now]."""
    return start if t == 0 else T + start + t - 1


def stack_obs(*obs: Obs) -> Obs:
    return jax.tree.map(lambda *xs: jnp.concatenate(xs), *obs)


def hidden_cells(model: Model, age: Float[Array, ""]) -> Bool[Array, "Hp Wp"]:
    """Which cells a masked state hides: a fixed random draw per frame (seeded by the age it was seen at)."""
    key = jax.random.fold_in(jax.random.PRNGKey(17), age.astype(jnp.int32))
    return jax.random.bernoulli(key, HIDE_RATE, padded_view(model.spec, model.patch)) & model.cell_valid()


@dataclass(frozen=True)
class Query:
    """One target segment of one layout, for all its instances in the window."""

    model: Model
    h: Float[Array, "n q d"]  # the outputs of the segment's query tokens, one row per instance
    t: int  # the segment's time within the layout
    given: tuple  # the layout's given segments before this target, and its earlier targets: (kind, time) pairs
    win: object  # objectives.Window
    starts: np.ndarray  # the instances' first window rows
    z: Float[Array, "T1 P1 d"]  # the prefix outputs of obs_0..obs_T-1 and now, standardised
    prior: Prior

    def state(self, t: int) -> Obs:
        """s_t of every instance."""
        T = self.win.action.shape[0]
        return jax.tree.map(lambda x: x[state_row(T, self.starts, t)], stack_obs(self.win.obs, self.win.next_obs))

    def nearest(self, kinds: str) -> int | None:
        """The time of the segment of one of ``kinds`` before this target that is nearest to it (ties: the later)."""
        times = [t for k, t in self.given if k in kinds]
        return min(times, key=lambda u: (abs(u - self.t), -u)) if times else None


# ----------------------------------------------------------------------------- states: cells or pixels


def mode_ids(ids: Int[Array, "H W"], seen: Bool[Array, "H W"], n: int) -> Int[Array, "H W"]:
    """Every cell set to the most common id among the ``seen`` cells (the masked-state baseline)."""
    counts = jnp.sum(jax.nn.one_hot(ids, n) * seen[..., None], (0, 1))
    return jnp.full(ids.shape, jnp.argmax(counts))


def cell_loss(model: Model, h: Float[Array, "P1 d"], target: Obs, baseline: Obs | None,
              hidden: Bool[Array, "Hp Wp"] | None, lean: bool = True, score_on: Bool[Array, "Hp Wp"] | None = None):
    """Cross-entropy of every cell's block / item / mob id, plus MSE of the status values.

    ``hidden``: score only these cells (and not the status, which a masked state shows). ``baseline``:
    the nearest given state (None: the most common visible id is the baseline). With ``lean``, the model
    sees the baseline state too, through a copy pathway: its one-hot ids, times a learned gain, are added
    to the logits, so the network learns what changes rather than redrawing the whole view. ``score_on``: the
    cells the accuracies are of (default: those of the loss). Returns (loss, surprise = -log p of the scored
    cells in nats, cell accuracy, baseline accuracy).
    """
    s = model.spec
    logits = model.cell_logits(h[:-1])  # [Hp, Wp, V]
    if baseline is not None and lean:
        ids = [model.pad_view(getattr(baseline, f)) for f in ("block", "item", "mob")]
        sizes = (s.n_block + 1, s.n_item + 1, s.n_mob + 1)
        logits = logits + jnp.concatenate([g * jax.nn.one_hot(i, n) for g, i, n in zip(model.copy_gain, ids, sizes)],
                                          -1)
    splits = np.cumsum([s.n_block + 1, s.n_item + 1])
    weight = jnp.asarray(model.cell_valid()) if hidden is None else hidden
    H, W = s.view
    seen = ~weight[:H, :W]
    nll, right, base = 0.0, True, True
    for lg, ids, n, name in zip(jnp.split(logits, splits, axis=-1), (target.block, target.item, target.mob),
                                (s.n_block + 1, s.n_item + 1, s.n_mob + 1), ("block", "item", "mob")):
        guess = getattr(baseline, name) if baseline is not None else mode_ids(ids, seen, n)
        ids, guess = model.pad_view(ids), model.pad_view(guess)
        nll = nll - jnp.take_along_axis(jax.nn.log_softmax(lg), ids[..., None], -1)[..., 0]
        right = right & (lg.argmax(-1) == ids)
        base = base & (guess == ids)
    n = jnp.maximum(weight.sum(), 1)
    surprise = jnp.sum(nll * weight)
    status_mse = jnp.mean((model.status_head(h[-1]) - target.status) ** 2) if hidden is None else 0.0
    on = weight if score_on is None else score_on
    m = jnp.maximum(on.sum(), 1)
    return surprise / n + status_mse, surprise, jnp.sum(right * on) / m, jnp.sum(base * on) / m


def pixel_loss(model: Model, h: Float[Array, "P1 d"], target: Obs, baseline: Obs | None, hidden):
    """Gaussian likelihood of the frame painted by the decoder. Returns (loss, surprise, MSE, copy MSE).

    (No copy pathway: the decoder paints the whole frame.)
    """
    err = (model.eye.decode(h) - target.image) ** 2
    copy = jnp.mean((baseline.image - target.image) ** 2) if baseline is not None else jnp.nan
    return err.mean() / (2 * PIXEL_VAR), err.sum() / (2 * PIXEL_VAR), err.mean(), copy


def state_loss(q: Query):
    """s_t cell by cell (or pixel by pixel), beside a copy of the nearest given state; for the hidden cells
    of a masked s_t, beside the most common visible id."""
    near = q.nearest("s")
    lean = near is None or near != q.t  # an autoencoder may not lean on a copy of its own target
    hidden = None
    if ("m", q.t) in q.given:
        hidden, near = jax.vmap(lambda a: hidden_cells(q.model, a))(q.state(q.t).age), None
    fn = pixel_loss if q.model.eye is not None else partial(cell_loss, lean=lean)
    base = q.state(near) if near is not None else None
    return jax.vmap(fn, in_axes=(None, 0, 0, 0 if base is not None else None, 0 if hidden is not None else None))(
        q.model, q.h, q.state(q.t), base, hidden)


def changed_cells(goal: Obs, now: Obs) -> Bool[Array, "*n H W"]:
    """The cells whose block, item or mob differ between two views."""
    return (goal.block != now.block) | (goal.item != now.item) | (goal.mob != now.mob)


def recall_loss(q: Query):
    """The view a delay before s0 (``--recall-delay``, or drawn per step with ``--recall-min``), from the delay
    line, beside the view now (s0). Trained on every cell; scored on the cells that changed since (the view
    now is right about every other cell and wrong on every one of these: its score there is 0, a model's is
    what it remembers, the ceiling 1); and the same score per bin of delay (``DELAY_BINS``: the recall curve)."""
    goal, now = jax.tree.map(lambda x: x[q.starts + q.t], q.win.recall), q.state(0)
    delay = q.win.recall_delay[q.starts + q.t] if q.win.recall_delay is not None else jnp.zeros(len(q.starts), int)
    if q.model.eye is not None:  # a frame has no cells: the pixels' MSE, no curve
        out = jax.vmap(pixel_loss, in_axes=(None, 0, 0, 0, None))(q.model, q.h, goal, now, None)
        return (*out, {k: jnp.zeros(len(q.starts)) for k in recall_extras()})
    Hp, Wp = padded_view(q.model.spec, q.model.patch)
    H, W = q.model.spec.view
    changed = changed_cells(goal, now)
    on = jnp.pad(changed, ((0, 0), (0, Hp - H), (0, Wp - W)))
    loss, surprise, score, base = jax.vmap(cell_loss, in_axes=(None, 0, 0, 0, None, None, 0))(
        q.model, q.h, goal, now, None, True, on)
    extras = {}
    for lo, hi in zip(DELAY_BINS[:-1], DELAY_BINS[1:]):
        inside = ((delay >= lo) & (delay < hi) & changed.any((1, 2))).astype(jnp.float32)
        extras[f"delay{lo}_{hi - 1}"], extras[f"delay{lo}_{hi - 1}_n"] = score * inside, inside
    return loss, surprise, score, base, extras


def recall_extras() -> tuple[str, ...]:
    """The recall curve's figures: per bin of delay, the changed-cell accuracy (summed) and how many counted."""
    return tuple(k for lo, hi in zip(DELAY_BINS[:-1], DELAY_BINS[1:]) for k in (f"delay{lo}_{hi - 1}",
                                                                                 f"delay{lo}_{hi - 1}_n"))


# ----------------------------------------------------------------------------- the other kinds


def action_loss(q: Query):
    logits = jax.vmap(q.model.action_head)(q.h[:, 0])
    a = q.win.action[q.starts + q.t]
    nll = -jnp.take_along_axis(jax.nn.log_softmax(logits), a[:, None], -1)[:, 0]
    return nll, nll, (logits.argmax(-1) == a).astype(jnp.float32), (a == q.prior.majority).astype(jnp.float32)


def reward_loss(q: Query):
    """The animal's own reward (what its curiosity paid it, normalised), beside the mean paid so far."""
    r = q.win.rint[q.starts + q.t]
    err = (jax.vmap(q.model.reward_head)(q.h[:, 0]) - r) ** 2
    return err, 0.5 * err, err, (r - q.prior.mean_reward) ** 2


def place_loss(q: Query):
    """Where am I, as place-cell activity; the model leans on where it was (a copy pathway, like the cells')."""
    centres = place_centres(q.model.spec.world_size)
    where, before = q.state(q.t).pos, q.state(q.t - 1).pos
    prior = jax.vmap(place_log_code, in_axes=(0, None))(before, centres)
    logp = jax.nn.log_softmax(jax.vmap(q.model.place_head)(q.h[:, 0]) + q.model.copy_gain[3] * prior)
    logq = jax.vmap(place_log_code, in_axes=(0, None))(where, centres)
    kl = jnp.sum(jnp.exp(logq) * (logq - logp), -1)
    guess = jnp.exp(logp) @ centres
    return kl, kl, jnp.linalg.norm(guess - where, axis=-1), jnp.linalg.norm(before - where, axis=-1)


def latent_loss(q: Query):
    """The model's own standardised prefix output at s_t, beside that of s_t-1."""
    goal = jax.lax.stop_gradient(q.z[q.starts + q.t])
    err = jnp.mean((q.h - goal) ** 2, (1, 2))
    copy = jnp.mean((jax.lax.stop_gradient(q.z[q.starts + q.t - 1]) - goal) ** 2, (1, 2))
    return err, 0.5 * jnp.sum((q.h - goal) ** 2, (1, 2)), err, copy


def random_features_loss(q: Query):
    """A fixed random network's embedding of s_t (RND), beside predicting zero."""
    goal = jax.vmap(partial(random_features, q.model.spec))(q.state(q.t))
    pred = jax.vmap(q.model.rnd_head)(q.h[:, 0])
    err = jnp.mean((pred - goal) ** 2, -1)
    return err, 0.5 * jnp.sum((pred - goal) ** 2, -1), err, jnp.mean(goal**2, -1)


ENSEMBLE = 5  # disagreement: forward models in the ensemble
BOOTSTRAP_SEED = 23


def disagreement_loss(q: Query):
    """An ensemble of ENSEMBLE forward models (linear heads on the shared query output of s_t, from s_t-1 and
    a_t-1) each predicting a fixed random network's embedding of s_t (RND's target), each trained on its own
    bootstrap half of the transitions (a fixed draw per transition, from the age it was seen at). The
    surprise is their disagreement: the variance of the predictions across the ensemble, summed over the
    embedding (Pathak, Gandhi & Gupta 2019; Plan2Explore, Sekar et al. 2020), which needs no outcome to
    compute and falls where the models agree. Scored by the ensemble mean's MSE, beside predicting zero."""
    goal = jax.vmap(partial(random_features, q.model.spec))(q.state(q.t))  # [n, K]
    n = goal.shape[0]
    pred = jax.vmap(q.model.heads["d"])(q.h[:, 0]).reshape(n, ENSEMBLE, -1)
    ages = q.state(q.t - 1).age.astype(jnp.int32)
    keep = jax.vmap(lambda a: jax.random.bernoulli(jax.random.fold_in(jax.random.PRNGKey(BOOTSTRAP_SEED), a), 0.5,
                                                   (ENSEMBLE,)))(ages).astype(jnp.float32)
    err = jnp.mean((pred - goal[:, None]) ** 2, -1)  # [n, E]
    loss = jnp.sum(keep * err, -1) / jnp.maximum(jnp.sum(keep, -1), 1.0)
    spread = jnp.sum(jnp.var(pred, 1), -1)
    mean_err = jnp.mean((pred.mean(1) - goal) ** 2, -1)
    return loss, spread, mean_err, jnp.mean(goal**2, -1)


def chosen(win, starts, t):
    """An action the game overrode (asleep: noop) caused nothing: it is never a target."""
    return None if win.chosen is None else win.chosen[starts + t]


def recalled(win, starts, t):
    """The delay line's view must be of the same life, and differ from the view now somewhere (in a frame:
    anywhere; in cells: a cell whose block, item or mob changed): the probe is scored on what changed."""
    goal, now = (jax.tree.map(lambda x: x[starts], o) for o in (win.recall, win.obs))
    if goal.image is not None:
        return win.recall_ok[starts] & jnp.any(goal.image != now.image, (1, 2, 3))
    return win.recall_ok[starts] & changed_cells(goal, now).any((1, 2))


# the built-in kinds, in the order their scores are listed
register(Kind("a", ("action",), True, True, False, loss=action_loss, valid=chosen,
              score=Score("action_accuracy", "majority", True, "actions: accuracy (dashed: majority action)",
                          "the action taken most often so far", chance=lambda spec: 1.0 / spec.n_actions)))
register(Kind("r", ("reward",), True, True, False, loss=reward_loss,
              score=Score("reward_squared_error", "mean", False, "reward: squared error (dashed: mean reward)",
                          "the mean reward so far")))
register(Kind("s", ("patch", "status"), True, True, True, loss=state_loss,
              score=Score("cell_accuracy", "baseline", True, "states: cell accuracy (dashed: copy / most common)",
                          "a copy of the nearest given state (hidden cells: the most common visible id)"),
              pixel_score=Score("pixel_mse", "copy", False, "states: pixel MSE (dashed: copy)",
                                "a copy of the nearest given state")))
register(Kind("l", ("place",), False, True, True, shown_after=False, loss=place_loss,
              score=Score("place_error_cells", "copy", False, "location: error in cells (dashed: stayed put)",
                          "staying where it was")))
register(Kind("z", ("latent", "latent_status"), True, True, True, loss=latent_loss,
              score=Score("latent_mse", "copy", False, "own features: MSE (dashed: copy)",
                          "the previous state's features")))
register(Kind("n", ("rnd",), False, True, True, shown_after=False, loss=random_features_loss,
              score=Score("random_features_mse", "zero", False, "random features: MSE (dashed: zero)",
                          "predicting zero")))
register(Kind("v", ("recall", "recall"), False, True, True, shown_after=False, loss=recall_loss, valid=recalled,
              extras=recall_extras(),
              score=Score("recall_changed_accuracy", "view_now", True,
                          "recall: accuracy on the cells that changed (dashed: view now, 0)",
                          "the view now (wrong on every changed cell)"),
              pixel_score=Score("recall_pixel_mse", "view_now", False,
                                "recall: pixel MSE, view long ago (dashed: view now)", "the view now")))
register(Kind("d", ("ensemble",), False, True, True, shown_after=False, loss=disagreement_loss,
              head=ENSEMBLE * RND_DIM,
              score=Score("ensemble_mse", "zero", False, "ensemble: MSE of random features (dashed: zero)",
                          "predicting zero")))
register(Kind("m", ("patch", "status"), True, False, False))


def scores(kinds, pixels: bool) -> list[Score]:
    """The scores of the target kinds among ``kinds``, in registry order."""
    return [k.scored(pixels) for k in KINDS.values() if k.letter in kinds and k.predicted]


def all_scores() -> list[Score]:
    """Every score any layout can report (symbolic and pixel), in registry order."""
    out = [s for k in KINDS.values() for s in (k.score, k.pixel_score) if s is not None]
    return list(dict.fromkeys(out))


# ----------------------------------------------------------------------------- one layout's loss


def target_loss(model: Model, plan, seen, rows: tuple[int, int], win, starts_: np.ndarray,
                prior: Prior | None = None) -> dict:
    """Per-instance loss, surprise and prequential scores of one layout's instances: ``plan`` (an
    ``objectives.Plan``), whose outputs are ``seen.h[rows[0]:rows[1]]`` (``seen``: an ``objectives.Seen``).

    Returns {"loss", "surprise", <score name>, <score name>/<baseline>} (a kind predicted several times in
    a layout is scored by the mean over its segments). ``prior``: the online baselines (None: zeros)."""
    h, z = seen.h[rows[0]:rows[1]], seen.z
    prior = prior or Prior(majority=jnp.zeros((), jnp.int32), mean_reward=jnp.zeros(()))
    loss, surprise, got = 0.0, 0.0, {}
    pixels = model.eye is not None
    for k, (seg, pos) in enumerate(plan.targets):
        kind = KINDS[seg.kind]
        before = plan.segments[:plan.segments.index(seg)]
        q = Query(model, h[:, np.array(pos)], seg.time, tuple((s.kind, s.time) for s in before), win, starts_, z,
                  prior)
        l_, s_, score, base, *extra = kind.loss(q)
        loss, surprise = loss + l_, surprise + s_
        for name, v in (extra[0] if extra else {}).items():
            got.setdefault(name, []).append(v)
        sc = kind.scored(pixels)
        got.setdefault(sc.name, []).append(score)
        got.setdefault(f"{sc.name}/{sc.baseline}", []).append(base)
    return dict(loss=loss, surprise=surprise, **{k: jnp.mean(jnp.stack(v), 0) for k, v in got.items()})
