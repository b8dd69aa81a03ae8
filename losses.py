"""Losses: what each target of a layout is scored against, and the actor-critic on the intrinsic reward.

``target_loss`` reads the query outputs of one layout (``objectives.forward``) and scores each target
segment against the window: an action by cross-entropy, a reward by squared error, a state cell by cell
(or pixel by pixel) beside a copy of the nearest earlier state, where-am-I as place cells beside where
the organism was, ``z`` against the model's own standardised prefix outputs, ``n`` against a fixed random
network's embedding, ``v`` against the view of ``--recall-delay`` steps ago. Each comes with its online
baseline (``SCORES``): the number a model that learned nothing would get. The surprise of a layout (its
curiosity) is the loss of its newest instance. ``actor_critic_loss`` is the policy's: PPO-style clipping,
GAE over the window, intrinsic reward only.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int

from model import Model, Obs, place_centres, place_log_code
from novelty import random_features
from objectives import Plan, Seen, Segment, Window, hidden_cells, stack_obs, state_row

PIXEL_VAR = 0.01  # pixel predictions are Gaussian with this variance (std 0.1 per channel)


def state_at(win: Window, starts_: np.ndarray, t: int) -> Obs:
    T = win.action.shape[0]
    both = stack_obs(win.obs, win.next_obs)
    return jax.tree.map(lambda x: x[state_row(T, starts_, t)], both)


def mode_ids(ids: Int[Array, "H W"], seen: Bool[Array, "H W"], n: int) -> Int[Array, "H W"]:
    """Every cell set to the most common id among the ``seen`` cells (the masked-state baseline)."""
    counts = jnp.sum(jax.nn.one_hot(ids, n) * seen[..., None], (0, 1))
    return jnp.full(ids.shape, jnp.argmax(counts))


def cell_loss(model: Model, h: Float[Array, "P1 d"], target: Obs, baseline: Obs | None,
              hidden: Bool[Array, "Hp Wp"] | None, lean: bool = True):
    """Cross-entropy of every cell's block / item / mob id, plus MSE of the status values.

    ``hidden``: score only these cells (and not the status, which a masked state shows). ``baseline``:
    the nearest given state (None: the most common visible id is the baseline). With ``lean``, the model
    sees the baseline state too, through a copy pathway: its one-hot ids, times a learned gain, are added
    to the logits, so the network learns what changes rather than redrawing the whole view. Returns (loss,
    surprise = -log p of the scored cells in nats, cell accuracy, baseline accuracy).
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
    for lg, ids, n, field in zip(jnp.split(logits, splits, axis=-1), (target.block, target.item, target.mob),
                                 (s.n_block + 1, s.n_item + 1, s.n_mob + 1), ("block", "item", "mob")):
        guess = getattr(baseline, field) if baseline is not None else mode_ids(ids, seen, n)
        ids, guess = model.pad_view(ids), model.pad_view(guess)
        nll = nll - jnp.take_along_axis(jax.nn.log_softmax(lg), ids[..., None], -1)[..., 0]
        right = right & (lg.argmax(-1) == ids)
        base = base & (guess == ids)
    n = jnp.maximum(weight.sum(), 1)
    surprise = jnp.sum(nll * weight)
    status_mse = jnp.mean((model.status_head(h[-1]) - target.status) ** 2) if hidden is None else 0.0
    return surprise / n + status_mse, surprise, jnp.sum(right * weight) / n, jnp.sum(base * weight) / n


def pixel_loss(model: Model, h: Float[Array, "P1 d"], target: Obs, baseline: Obs | None, hidden):
    """Gaussian likelihood of the frame painted by the decoder. Returns (loss, surprise, MSE, copy MSE).

    (No copy pathway: the decoder paints the whole frame.)
    """
    err = (model.eye.decode(h) - target.image) ** 2
    copy = jnp.mean((baseline.image - target.image) ** 2) if baseline is not None else jnp.nan
    return err.mean() / (2 * PIXEL_VAR), err.sum() / (2 * PIXEL_VAR), err.mean(), copy


def nearest_before(plan: Plan, k: int, kinds: str) -> Segment | None:
    """The real segment of one of ``kinds`` that comes before target ``k`` and is nearest to it in time."""
    seg = plan.targets[k][0]
    order = plan.segments.index(seg)
    before = [s for s in plan.segments[:order] if s.kind in kinds]
    return min(before, key=lambda s: (abs(s.time - seg.time), -s.time)) if before else None


def target_loss(model: Model, plan: Plan, seen: Seen, rows: tuple[int, int], win: Window,
                starts_: np.ndarray) -> dict:
    """Per-instance loss, surprise and prequential scores of one objective's instances.

    Scores (one per instance, averaged over targets of a kind): ``action_acc``; ``cell_acc`` and its
    baseline ``cell_base`` (copy the nearest state given, or for hidden cells the most common visible
    id); ``pixel_err`` and ``pixel_copy`` (MSE); ``reward_err`` (squared error); ``place_err`` (cells
    between the decoded and the true position) and ``place_copy`` (if it had stayed put); ``latent_err``
    and ``latent_copy``; ``recall_acc`` / ``recall_err`` and their baseline (the view now, as a guess of
    the view long ago). ``targets/action`` and ``targets/reward`` hold the true values (for the online
    majority and mean baselines).
    """
    h = seen.h[rows[0]:rows[1]]
    loss, surprise, scores = 0.0, 0.0, {}

    def add(key, v):
        scores.setdefault(key, []).append(v)

    for k, (seg, pos) in enumerate(plan.targets):
        hq, t = h[:, np.array(pos)], seg.time
        if seg.kind == "a":
            logits = jax.vmap(model.action_head)(hq[:, 0])
            a = win.action[starts_ + t]
            nll = -jnp.take_along_axis(jax.nn.log_softmax(logits), a[:, None], -1)[:, 0]
            loss, surprise = loss + nll, surprise + nll
            add("action_acc", (logits.argmax(-1) == a).astype(jnp.float32))
            add("targets/action", a)
        elif seg.kind == "r":
            err = (jax.vmap(model.reward_head)(hq[:, 0]) - win.reward[starts_ + t]) ** 2
            loss, surprise = loss + err, surprise + 0.5 * err
            add("reward_err", err)
            add("targets/reward", win.reward[starts_ + t])
        elif seg.kind == "s":
            near = nearest_before(plan, k, "s")
            lean = near is None or near.time != t  # an autoencoder may not lean on a copy of its own target
            hidden = None
            if any(s.kind == "m" and s.time == t for s in plan.segments):
                hidden, near = jax.vmap(lambda a: hidden_cells(model, a))(state_at(win, starts_, t).age), None
            fn = pixel_loss if model.eye is not None else partial(cell_loss, lean=lean)
            base = state_at(win, starts_, near.time) if near is not None else None
            out = jax.vmap(fn, in_axes=(None, 0, 0, 0 if base is not None else None, 0 if hidden is not None
                                        else None))(model, hq, state_at(win, starts_, t), base, hidden)
            loss, surprise = loss + out[0], surprise + out[1]
            names = ("pixel_err", "pixel_copy") if model.eye is not None else ("cell_acc", "cell_base")
            add(names[0], out[2])
            add(names[1], out[3])
        elif seg.kind == "l":
            centres = place_centres(model.spec.world_size)
            where = state_at(win, starts_, t).pos
            before = state_at(win, starts_, t - 1).pos  # where I was: a copy pathway, like the cells'
            prior = jax.vmap(place_log_code, in_axes=(0, None))(before, centres)
            logp = jax.nn.log_softmax(jax.vmap(model.place_head)(hq[:, 0]) + model.copy_gain[3] * prior)
            logq = jax.vmap(place_log_code, in_axes=(0, None))(where, centres)
            kl = jnp.sum(jnp.exp(logq) * (logq - logp), -1)
            loss, surprise = loss + kl, surprise + kl
            guess = jnp.exp(logp) @ centres
            add("place_err", jnp.linalg.norm(guess - where, axis=-1))
            add("place_copy", jnp.linalg.norm(before - where, axis=-1))
        elif seg.kind == "z":
            z = seen.z  # rows obs_0..obs_T-1, now: z_t of an instance is row start + t
            goal = jax.lax.stop_gradient(z[starts_ + t])
            err = jnp.mean((hq - goal) ** 2, (1, 2))
            loss, surprise = loss + err, surprise + 0.5 * jnp.sum((hq - goal) ** 2, (1, 2))
            add("latent_err", err)
            add("latent_copy", jnp.mean((jax.lax.stop_gradient(z[starts_ + t - 1]) - goal) ** 2, (1, 2)))
        elif seg.kind == "v":  # the view --recall-delay steps before s0, from the delay line; s0 is the copy baseline
            goal = jax.tree.map(lambda x: x[starts_ + t], win.recall)
            fn = pixel_loss if model.eye is not None else cell_loss
            out = jax.vmap(fn, in_axes=(None, 0, 0, 0, None))(model, hq, goal, state_at(win, starts_, 0), None)
            loss, surprise = loss + out[0], surprise + out[1]
            names = RECALL_SCORES[model.eye is not None]
            add(names[0], out[2])
            add(names[1], out[3])
        elif seg.kind == "n":
            goal = jax.vmap(partial(random_features, model.spec))(state_at(win, starts_, t))
            pred = jax.vmap(model.rnd_head)(hq[:, 0])
            err = jnp.mean((pred - goal) ** 2, -1)
            loss, surprise = loss + err, surprise + 0.5 * jnp.sum((pred - goal) ** 2, -1)
            add("rnd_err", err)
            add("rnd_zero", jnp.mean(goal**2, -1))
        else:
            raise ValueError(f"no loss for target kind {seg.kind!r}")
    out = {k: (jnp.stack(v, 1) if k.startswith("targets/") else jnp.mean(jnp.stack(v), 0)) for k, v in scores.items()}
    return dict(loss=loss, surprise=surprise, **out)


# Prequential scores per kind of target: the model's, then its online baseline's
SCORES = {"a": ("action_acc", "action_majority"), "r": ("reward_err", "reward_mean_err"),
          "l": ("place_err", "place_copy"), "z": ("latent_err", "latent_copy"), "n": ("rnd_err", "rnd_zero")}
STATE_SCORES = {False: ("cell_acc", "cell_base"), True: ("pixel_err", "pixel_copy")}  # by pixels or not
RECALL_SCORES = {False: ("recall_acc", "recall_base"), True: ("recall_err", "recall_copy")}


def score_keys(plan: Plan, pixels: bool) -> tuple[str, ...]:
    pairs = dict(SCORES, s=STATE_SCORES[pixels], v=RECALL_SCORES[pixels])
    kinds = {s.kind for s in plan.segments if s.target}
    return tuple(k for kind in "arslznv" if kind in kinds for k in pairs[kind])


def gae(rint, values, done, gamma: float, lam: float):
    """Generalised advantage estimation over the window; ``values`` has T + 1 entries (bootstrap last)."""

    def back(carry, x):
        r, v, v_next, d = x
        delta = r + gamma * v_next * (1 - d) - v
        carry = delta + gamma * lam * (1 - d) * carry
        return carry, carry

    _, adv = jax.lax.scan(back, 0.0, (rint, values[:-1], values[1:], done.astype(jnp.float32)), reverse=True)
    return adv, adv + values[:-1]


def actor_critic_loss(model: Model, h: Float[Array, "T1 d"], win: Window, rint, *, gamma, lam, clip, ent_coef,
                      value_coef):
    """PPO-style clipped policy gradient + value regression over the window, on intrinsic reward only.

    ``h``: the prefix outputs of s_0..s_T-1 and of the current observation (last).
    """
    logits = jax.vmap(model.policy_head)(h)  # [T+1, A]; the last is the current observation
    values = jax.vmap(model.value_head)(h)  # [T+1]
    adv, ret = gae(rint, jax.lax.stop_gradient(values), win.done, gamma, lam)
    logp_all = jax.nn.log_softmax(logits[:-1])
    logp = jnp.take_along_axis(logp_all, win.action[:, None], -1)[:, 0]
    ratio = jnp.exp(logp - win.logp)
    pg = -jnp.minimum(ratio * adv, jnp.clip(ratio, 1 - clip, 1 + clip) * adv)
    entropy = -jnp.sum(jnp.exp(logp_all) * logp_all, -1)
    w = win.valid.astype(jnp.float32) / jnp.maximum(win.valid.sum(), 1)
    loss = jnp.sum(w * (pg + value_coef * 0.5 * (values[:-1] - ret) ** 2 - ent_coef * entropy))
    return loss, dict(entropy=jnp.sum(w * entropy), value=values[-1], logits=logits[-1],
                      adv=jnp.sum(w * jnp.abs(adv)), value_err=jnp.sum(w * (values[:-1] - ret) ** 2))
