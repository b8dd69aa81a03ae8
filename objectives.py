"""Objectives are layouts: which tokens are given, which are targets, and the losses on the targets.

A layout reads like ``"s0 s1 ; a0"``: segments before ``;`` are given, segments after it are targets,
each predicted from everything before it. A segment is a kind and a time step: ``s`` a state (P patch
tokens + a status token) or ``a`` an action. Adding an
objective is adding a line to ``LAYOUTS`` (and, for a new kind of target, its loss in ``target_loss``).

A target segment enters the sequence as *query* tokens: a type embedding, its time and slot, and no
content. Queries see the given segments and the real tokens of earlier targets, never their own
content nor anything after it; that is the whole attention mask. ``s`` is a state, ``a`` an action.

Every layout is instantiated at each start in the short-term window (the last T transitions), all
layouts are padded to one length and run through the model as one batch: one forward pass per step
serves acting, the intrinsic reward, the prequential scores and the gradient.
"""

from __future__ import annotations

from dataclasses import dataclass

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int

from model import TYPE, Model

LAYOUTS = {
    "inverse_dynamics": "s0 s1 ; a0",  # which action led from s to s'?  surprise: -log p(a | s, s')
    "forward_dynamics": "s0 a0 ; s1",  # what will I see next?  surprise: -log p(s' | s, a), summed over cells
}
POLICY = "s0 ;"  # a bare state: the actor-critic reads its prefix output (used only when no objective can host it)


class Obs(eqx.Module):
    """A tokenized observation and the senses that go with it (any leading batch shape)."""

    block: Int[Array, "*b H W"]
    item: Int[Array, "*b H W"]
    mob: Int[Array, "*b H W"]
    status: Float[Array, "*b S"]
    pos: Float[Array, "*b 2"]  # the player's position in its world (for the grid-cell sense)
    age: Float[Array, "*b"]  # steps the organism has lived


class Window(eqx.Module):
    """The short-term window: the last T transitions, oldest first (a fixed-size shift register)."""

    obs: Obs  # [T] what the agent saw ...
    next_obs: Obs  # [T] ... and what came next (the last frame of a life if ``done``)
    action: Int[Array, " T"]
    logp: Float[Array, " T"]  # log-prob of the action under the policy that took it
    reward: Float[Array, " T"]  # extrinsic reward: logged, never a learning signal
    rint: Float[Array, " T"]  # normalised intrinsic reward: the policy's only reward
    done: Bool[Array, " T"]
    valid: Bool[Array, " T"]  # False until the window has filled

    def push(self, **new) -> Window:
        """Drop the oldest transition, append ``new`` (every field of one transition) at the end."""
        shift = lambda old, x: jnp.concatenate([old[1:], jnp.asarray(x, old.dtype)[None]])  # noqa: E731
        return Window(**{k: jax.tree.map(shift, getattr(self, k), v) for k, v in new.items()})


# ----------------------------------------------------------------------------- layouts → token plans


@dataclass(frozen=True)
class Segment:
    kind: str  # s (state) or a (action)
    time: int
    target: bool


def parse(layout: str) -> tuple[Segment, ...]:
    given, sep, targets = layout.partition(";")
    if not sep:
        raise ValueError(f"layout {layout!r} needs a ';' between given and target segments")
    segs = []
    for part, is_target in ((given, False), (targets, True)):
        for word in part.split():
            kind = word.rstrip("0123456789")
            if kind not in ("s", "a") or kind == word:
                raise ValueError(f"bad segment {word!r} in layout {layout!r}")
            segs.append(Segment(kind, int(word[len(kind):]), is_target))
    return tuple(segs)


@dataclass(frozen=True)
class Plan:
    """A layout turned into static token arrays (numpy): built once, at trace time."""

    name: str
    segments: tuple[Segment, ...]
    types: np.ndarray  # int [N]
    times: np.ndarray  # int [N]
    slots: np.ndarray  # int [N]  patch index for state tokens (status = P), P+1 for the rest
    sources: tuple  # per token: (kind, time, slot) of its real content, or None for a query / pad
    mask: np.ndarray  # bool [N, N]  mask[i, j]: token i may attend to token j
    targets: tuple  # per target segment: (segment, token positions of its queries)
    span: int  # transitions one instance covers
    readout: int | None  # the s0 status token, if the layout starts with a given s0: policy and value read it

    @property
    def length(self) -> int:
        return len(self.types)


def make_plan(name: str, layout: str, n_patches: int, length: int | None = None) -> Plan:
    """Token types, content sources, and the attention mask of a layout, padded to ``length``.

    Segments are causal in the order written: a real token sees real tokens of its own and earlier
    segments; a query sees real tokens of earlier segments and the other queries of its own segment.
    So the output at a given state's tokens has seen nothing after that state (its "prefix output").
    """
    P = n_patches
    segs = parse(layout)
    types, times, slots, sources, rank, is_query, targets = [], [], [], [], [], [], []

    def add(kind, t, query, r):
        names = ["patch"] * P + ["status"] if kind == "s" else ["action"]
        pos = []
        for slot, nm in enumerate(names):
            pos.append(len(types))
            types.append(TYPE["q_" + nm if query else nm])
            times.append(t)
            slots.append(slot if kind == "s" else P + 1)
            sources.append(None if query else (kind, t, slot))
            rank.append(r)
            is_query.append(query)
        return tuple(pos)

    n_targets = sum(s.target for s in segs)
    k = 0
    for r, seg in enumerate(segs):
        if not seg.target:
            add(seg.kind, seg.time, False, 2 * r)
            continue
        k += 1
        targets.append((seg, add(seg.kind, seg.time, True, 2 * r)))
        if k < n_targets:  # later targets see this one's real content
            add(seg.kind, seg.time, False, 2 * r + 1)
    n = len(types)
    if length is not None and length < n:
        raise ValueError(f"layout {name!r} has {n} tokens, more than {length}")
    N = length or n
    g, q = np.array(rank), np.array(is_query)
    mask = np.zeros((N, N), bool)
    mask[:n, :n] = np.where(q[:, None], (~q[None] & (g[None] < g[:, None])) | (q[None] & (g[None] == g[:, None])),
                            ~q[None] & (g[None] <= g[:, None]))
    mask[np.arange(n, N), np.arange(n, N)] = True  # padding only sees itself, nobody sees padding
    pad = N - n
    span = max([max(s.time, 1) for s in segs if s.kind == "s"] + [s.time + 1 for s in segs if s.kind == "a"])
    first = segs[0]
    readout = P if (first.kind, first.time, first.target) == ("s", 0, False) else None
    return Plan(name, segs, np.array(types + [TYPE["pad"]] * pad), np.array(times + [0] * pad),
                np.array(slots + [P + 1] * pad), tuple(sources + [None] * pad), mask, tuple(targets), span,
                readout)


def starts(plan: Plan, T: int) -> np.ndarray:
    return np.arange(T - plan.span + 1)


def state_row(T: int, start, t: int):
    """Row of state ``s_t`` of an instance starting at ``start``, in [obs_0..obs_T-1, next_0..next_T-1, now]."""
    return start if t == 0 else T + start + t - 1


def content_index(plan: Plan, T: int, P: int, starts_: np.ndarray, now: bool = False) -> np.ndarray:
    """Where each token's content sits in the window's content table: int [len(starts), N].

    Table rows: (2T + 1) states x (P + 1) tokens, then T actions, then one zero row (queries, padding).
    ``now``: an instance whose s0 is the current observation (row 2T) and everything else empty: the
    policy reads its prefix output to act.
    """
    zero = (2 * T + 1) * (P + 1) + T
    idx = np.full((len(starts_), plan.length), zero)
    for n, src in enumerate(plan.sources):
        if src is None:
            continue
        kind, t, slot = src
        if now:
            if (kind, t) == ("s", 0):
                idx[:, n] = 2 * T * (P + 1) + slot
        elif kind == "s":
            idx[:, n] = state_row(T, starts_, t) * (P + 1) + slot
        else:
            idx[:, n] = (2 * T + 1) * (P + 1) + starts_ + t
    return idx


def instance_valid(plan: Plan, win: Window, starts_: np.ndarray) -> Bool[Array, " n"]:
    """An instance counts when all its transitions are real and no life ends inside it."""
    ok = jnp.ones(len(starts_), bool)
    for j in range(plan.span):
        ok &= win.valid[starts_ + j]
        if j < plan.span - 1:
            ok &= ~win.done[starts_ + j]
    return ok


# ----------------------------------------------------------------------------- the batch


@dataclass(frozen=True)
class Batch:
    """All active layouts' instances, stacked: the static half of one forward pass.

    The policy and value read the prefix output of s0 in the first objective's instances (one per
    window step, plus one on the current observation), so acting costs no extra sequence. When the first
    objective cannot serve (it spans several steps or does not start with a given s0), a bare ``s0``
    policy layout is added instead.
    """

    plans: tuple[Plan, ...]  # the objectives (and the policy layout, if one is needed), in order
    ranges: tuple[tuple[int, int], ...]  # each objective's window instances: rows of the batch
    policy_rows: np.ndarray  # [T + 1] rows whose prefix output is s_0..s_T-1, then now
    readout: int  # token position of that prefix output
    idx: np.ndarray  # [B, N] content rows
    types: np.ndarray
    times: np.ndarray
    slots: np.ndarray
    mask: np.ndarray  # [B, N, N]
    age_row: np.ndarray  # [B] whose age each instance senses (row in obs_0..obs_T-1, now=T)


def make_batch(objectives: tuple[str, ...], T: int, P: int) -> Batch:
    layouts = [(name, LAYOUTS[name]) for name in objectives]
    first = make_plan(*layouts[0], P)
    if first.readout is None or first.span != 1:
        layouts.append(("policy", POLICY))
    N = max(make_plan(n, lay, P).length for n, lay in layouts)
    plans = tuple(make_plan(n, lay, P, N) for n, lay in layouts)
    host = 0 if len(plans) == len(objectives) else len(plans) - 1  # the plan the policy reads from
    parts, ranges, b = [], [], 0
    for i, plan in enumerate(plans):
        st = starts(plan, T)
        parts.append((plan, content_index(plan, T, P, st), st))
        ranges.append((b, b + len(st)))
        if i == host:
            policy_rows = np.concatenate([b + st, [-1]])
        b += len(st)
    hplan = plans[host]
    parts.append((hplan, content_index(hplan, T, P, np.array([0]), now=True), np.array([T])))
    policy_rows[-1] = b
    cat = np.concatenate
    reps = [len(p[2]) for p in parts]
    return Batch(plans, tuple(ranges[: len(objectives)]), policy_rows, hplan.readout,
                 cat([p[1] for p in parts]),
                 cat([np.tile(p[0].types, (r, 1)) for p, r in zip(parts, reps)]),
                 cat([np.tile(p[0].times, (r, 1)) for p, r in zip(parts, reps)]),
                 cat([np.tile(p[0].slots, (r, 1)) for p, r in zip(parts, reps)]),
                 cat([np.tile(p[0].mask, (r, 1, 1)) for p, r in zip(parts, reps)]),
                 cat([p[2] for p in parts]))


def stack_obs(*obs: Obs) -> Obs:
    return jax.tree.map(lambda *xs: jnp.concatenate(xs), *obs)


def forward(model: Model, batch: Batch, win: Window, now: Obs) -> Float[Array, "B N d"]:
    """Embed the window once, gather every instance's tokens, and run them all through the model."""
    states = stack_obs(win.obs, win.next_obs, jax.tree.map(lambda x: x[None], now))  # [2T+1]
    s_tok = jax.vmap(model.embed_state)(states.block, states.item, states.mob, states.status, states.pos)
    d = s_tok.shape[-1]
    table = jnp.concatenate([s_tok.reshape(-1, d), jax.vmap(model.embed_action)(win.action), jnp.zeros((1, d))])
    ages = jnp.concatenate([win.obs.age, now.age[None]])
    x = (table[batch.idx] + model.type_emb[batch.types] + model.time_emb[batch.times]
         + model.slot_emb[batch.slots] + jax.vmap(model.sense_age)(ages[batch.age_row])[:, None])
    return model(x, jnp.asarray(batch.mask))


# ----------------------------------------------------------------------------- losses


def state_at(win: Window, starts_: np.ndarray, t: int) -> Obs:
    T = win.action.shape[0]
    both = stack_obs(win.obs, win.next_obs)
    return jax.tree.map(lambda x: x[state_row(T, starts_, t)], both)


def state_loss(model: Model, h: Float[Array, "P1 d"], target: Obs, given: Obs):
    """Cross-entropy of every cell's block / item / mob id, plus MSE of the status values.

    Returns (loss, surprise = -log p of the whole view in nats, cell accuracy, copy-baseline accuracy).
    """
    s = model.spec
    logits = model.cell_logits(h[:-1])  # [Hp, Wp, V]
    splits = np.cumsum([s.n_block + 1, s.n_item + 1])
    valid = jnp.asarray(model.cell_valid())
    nll, right, copy = 0.0, True, True
    for lg, ids, old in zip(jnp.split(logits, splits, axis=-1), (target.block, target.item, target.mob),
                            (given.block, given.item, given.mob)):
        ids, old = model.pad_view(ids), model.pad_view(old)
        nll = nll - jnp.take_along_axis(jax.nn.log_softmax(lg), ids[..., None], -1)[..., 0]
        right = right & (lg.argmax(-1) == ids)
        copy = copy & (old == ids)
    surprise = jnp.sum(nll * valid)
    status_mse = jnp.mean((model.status_head(h[-1]) - target.status) ** 2)
    n = valid.sum()
    return surprise / n + status_mse, surprise, jnp.sum(right * valid) / n, jnp.sum(copy * valid) / n


def target_loss(model: Model, plan: Plan, h: Float[Array, "n N d"], win: Window, starts_: np.ndarray) -> dict:
    """Per-instance loss, surprise and prequential scores of one objective's instances."""
    out = dict(loss=0.0, surprise=0.0)
    for seg, pos in plan.targets:
        hq = h[:, np.array(pos)]
        if seg.kind == "a":
            logits = jax.vmap(model.action_head)(hq[:, 0])
            a = win.action[starts_ + seg.time]
            nll = -jnp.take_along_axis(jax.nn.log_softmax(logits), a[:, None], -1)[:, 0]
            out.update(loss=out["loss"] + nll, surprise=out["surprise"] + nll,
                       action_correct=(logits.argmax(-1) == a).astype(jnp.float32))
        elif seg.kind == "s":
            given = state_at(win, starts_, seg.time - 1 if seg.time else 0)
            loss, surprise, acc, copy = jax.vmap(state_loss, in_axes=(None, 0, 0, 0))(
                model, hq, state_at(win, starts_, seg.time), given)
            out.update(loss=out["loss"] + loss, surprise=out["surprise"] + surprise, cell_accuracy=acc,
                       cell_copy=copy)
        else:
            raise ValueError(f"no loss for target kind {seg.kind!r}")
    return out


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
    return loss, dict(entropy=jnp.sum(w * entropy), value=values[-1], logits=logits[-1])
