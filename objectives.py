"""Objectives are layouts: which tokens are given and which are targets (the kinds: ``targets.py``).

A layout reads like ``"s0 s1 ; a0"``: segments before ``;`` are given, segments after it are targets,
each predicted from everything before it. A segment is a kind (a letter of ``targets.KINDS``: s a state,
a an action, r the animal's own reward, m a masked state, l where am I, z the model's own features, n random features,
v the view long ago) and a time step within the layout.

Adding an objective is adding a line to ``LAYOUTS`` (and, for a new kind of target, one entry in
``targets.py``). The reward a layout names is the animal's own, the one its curiosity pays it (the design's
"[state tokens, action token; intrinsic reward]"); Craftax's reward is never an input or a target of any
model: it reaches only the oracle control's learner (``--curiosity oracle``), as that control's own reward.

A target segment enters the sequence as *query* tokens: a type embedding, its time and slot, and no
content. Queries see the given segments and the real tokens of earlier targets, never their own
content nor anything after it; that is the whole attention mask.

Every layout is instantiated at each start in the short-term window (the last T transitions). All
layouts are padded to one length and run through the model as one batch: one forward pass per step
serves acting, the intrinsic reward, the prequential scores and the gradient. Layouts that read ``z``
tokens need the model's outputs first: they run as a second pass over the same model.
"""

from __future__ import annotations

from dataclasses import dataclass

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int

from curiosity import standardise
from model import Model, Obs
from targets import KINDS, hidden_cells, stack_obs, state_row, type_id

LAYOUTS = {
    # one step of experience
    "inverse_dynamics": "s0 s1 ; a0",  # which action led from s to s'?
    "forward_dynamics": "s0 a0 ; s1",  # what will I see next?
    "reward": "s0 a0 ; r0",  # what will this action pay me? (the animal's own reward, what its curiosity pays)
    "forward_reward": "s0 a0 s1 ; r0",  # the reward, once the outcome is seen
    "backward_dynamics": "s1 a0 ; s0",  # where did I come from?
    "location": "s0 a0 ; l1",  # where am I after this action? (path integration onto place cells)
    "masked_state": "m0 ; s0",  # fill in the hidden cells of a view (BERT style)
    "autoencoder": "s0 ; s0",  # state -> tokens -> state; with --obs pixels, image -> latent -> image
    # several steps
    "trajectory": "s0 ; a0 s1 a1 s2",  # imagine two steps ahead, actions and all
    "trajectory_reward": "s0 ; a0 r0 s1 a1 r1 s2",  # ... with each reward before the next state
    "trajectory_reward_after": "s0 ; a0 s1 r0 a1 s2 r1",  # ... with each reward after its outcome
    "two_state_prefix": "s0 s1 ; a0 s2 a1 s3",  # from two frames: the action between, the frame after, ...
    "two_state_prefix_reward": "s0 s1 ; a0 r0 s2 a1 r1 s3",
    # on the model's own outputs
    "latent_inverse": "z0 z1 ; a0",  # inverse dynamics in the model's feature space (ICM's inverse model)
    "latent_forward": "z0 a0 ; z1",  # forward dynamics in that space; its error is ICM curiosity
    # novelty
    "rnd": "s0 ; n0",  # random network distillation: its error is high on rarely seen states (curiosity.py)
    "disagreement": "s0 a0 ; d1",  # an ensemble of forward models: where they disagree is new (curiosity.py)
    # memory
    "recall": "s0 ; v0",  # what did I see --recall-delay steps ago? (a probe of memory: the window no longer has it)
}
POLICY = "s0 ;"  # a bare state: the actor-critic reads its prefix output (used only when no objective can host it)
PAY_LAG = 2  # a reward of the window is known once it is two steps old (Plan.lag)
GIVEN_CONTENT = "samrz"  # kinds whose real content the content table holds (``Table``): the only ones a layout gives


class Window(eqx.Module):
    """The short-term window: the last T transitions, oldest first (a fixed-size shift register)."""

    obs: Obs  # [T] what the agent saw ...
    next_obs: Obs  # [T] ... and what came next (the last frame of a life if ``done``)
    action: Int[Array, " T"]
    logp: Float[Array, " T"]  # log-prob of the action under the policy that took it
    rint: Float[Array, " T"]  # the animal's own reward, normalised: the learners' reward and the r tokens' content
    done: Bool[Array, " T"]
    valid: Bool[Array, " T"]  # False until the window has filled
    chosen: Bool[Array, " T"] | None = None  # False where the game overrode the action (asleep: noop); None: all chosen
    memory: Float[Array, "T M d"] | None = None  # the memory each row read (memory.py; None: no memory)
    memory_trace: Float[Array, "T M d d1"] | None = None  # its RTRL trace (--rtrl; memory.py)
    recall: Obs | None = None  # [T] the view --recall-delay steps before each row: a delay line only losses read
    recall_ok: Bool[Array, " T"] | None = None  # ... seen in the same life
    recall_delay: Int[Array, " T"] | None = None  # ... how many steps before (--recall-min: drawn per row)

    def push(self, **new) -> Window:
        """Drop the oldest transition, append ``new`` (every field of one transition) at the end."""
        shift = lambda old, x: jnp.concatenate([old[1:], jnp.asarray(x, old.dtype)[None]])  # noqa: E731
        return Window(**{k: jax.tree.map(shift, getattr(self, k), v) for k, v in new.items()})


# ----------------------------------------------------------------------------- layouts → token plans


@dataclass(frozen=True)
class Segment:
    kind: str  # one of KINDS
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
            if len(kind) != 1 or kind not in KINDS or kind == word:
                raise ValueError(f"bad segment {word!r} in layout {layout!r}")
            k = KINDS[kind]
            if (is_target and not k.predicted) or (not is_target and not (k.given and kind in GIVEN_CONTENT)):
                raise ValueError(f"{word!r} in layout {layout!r}: '{kind}' can only be "
                                 f"{'given' if not is_target else 'predicted'}")
            segs.append(Segment(kind, int(word[len(kind):]), is_target))
    return tuple(segs)


def span_of(segs) -> int:
    """Transitions one instance covers: a state-time x_t (s, z, l, ...) needs transition t-1, a_t/r_t/m_t
    need transition t."""
    return max(max(s.time, 1) if KINDS[s.kind].at_state else s.time + 1 for s in segs)


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
    owner: np.ndarray  # int [N]  index of the segment each token belongs to (-1: padding)
    span: int  # transitions one instance covers
    readout: int | None  # the s0 status token (or the last thought), if the layout starts with a given s0: policy and
    # value read it
    thinks: tuple = ()  # token positions of the thinking tokens (after a given s0; memory.py)

    @property
    def length(self) -> int:
        return len(self.types)

    @property
    def lag(self) -> int:
        """Steps a layout with a reward starts further back: the newest transition's reward is paid after this
        step's loss (learning progress pays the one before it then), so only older rewards are known."""
        return PAY_LAG if any(s.kind == "r" for s in self.segments) else 0

    @property
    def reach(self) -> int:
        """Transitions of the window an instance needs behind the newest: its span and its lag."""
        return self.span + self.lag

    @property
    def latent(self) -> bool:
        """Reads the model's own outputs (``z``): runs in the second pass."""
        return any(s.kind == "z" for s in self.segments)


def make_plan(name: str, layout: str, n_patches: int, length: int | None = None, think: int = 0) -> Plan:
    """Token types, content sources, and the attention mask of a layout, padded to ``length``.

    Segments are causal in the order written: a real token sees real tokens of its own and earlier
    segments; a query sees real tokens of earlier segments and the other queries of its own segment.
    So the output at a given state's tokens has seen nothing after that state (its "prefix output").
    ``think``: thinking tokens after a given s0 (content-less; each sees s0 and the thoughts before it;
    everything after sees them); the readout becomes the last thought.
    """
    P = n_patches
    segs = parse(layout)
    types, times, slots, sources, rank, is_query, targets, owner = [], [], [], [], [], [], [], []

    def add(kind, t, query, r):
        pos = []
        for slot, nm in enumerate(KINDS[kind].token_names(P, query)):
            pos.append(len(types))
            owner.append(r // 2)
            types.append(type_id(nm))
            times.append(t)
            slots.append(slot if KINDS[kind].state_like else P + 1)
            sources.append(None if query else (kind, t, slot))
            rank.append(r)
            is_query.append(query)
        return tuple(pos)

    n_targets = sum(s.target for s in segs)
    k = 0
    thinks = []
    for r, seg in enumerate(segs):
        if not seg.target:
            add(seg.kind, seg.time, False, 2 * r)
            if r == 0 and (seg.kind, seg.time) == ("s", 0):
                for i in range(think):  # ranks between s0's (0) and the next segment's (2), in order
                    thinks.append(len(types))
                    owner.append(0)
                    types.append(type_id("think"))
                    times.append(0)
                    slots.append(P + 1)
                    sources.append(None)
                    rank.append(0.5 + (i + 1) / (2 * think + 2))
                    is_query.append(False)
            continue
        k += 1
        targets.append((seg, add(seg.kind, seg.time, True, 2 * r)))
        if k < n_targets and KINDS[seg.kind].shown_after:  # later targets see this one's real content
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
    first = segs[0]
    readout = P if (first.kind, first.time, first.target) == ("s", 0, False) else None
    if thinks:
        readout = thinks[-1]
    return Plan(name, segs, np.array(types + [type_id("pad")] * pad), np.array(times + [0] * pad),
                np.array(slots + [P + 1] * pad), tuple(sources + [None] * pad), mask, tuple(targets),
                np.array(owner + [-1] * pad), span_of(segs), readout, tuple(thinks))


def think_index(plan: Plan) -> np.ndarray:
    """Which thought each token of ``plan`` is: int [N], -1 for none."""
    k = np.full(plan.length, -1)
    k[list(plan.thinks)] = np.arange(len(plan.thinks))
    return k


def starts(plan: Plan, T: int) -> np.ndarray:
    return np.arange(T - plan.reach + 1)


@dataclass(frozen=True)
class Table:
    """Row offsets of the content table every token gathers from (T window steps, P + 1 tokens per state).

    States (obs_0..obs_T-1, next_0..next_T-1, now) x (P + 1), actions T, rewards T, masked states
    (obs_0..obs_T-1) x (P + 1), one zero row (queries, padding); then, in the second pass only, the
    prefix outputs of obs_0..obs_T-1 and now x (P + 1).
    """

    T: int
    P: int

    @property
    def actions(self) -> int:
        return (2 * self.T + 1) * (self.P + 1)

    @property
    def rewards(self) -> int:
        return self.actions + self.T

    @property
    def masked(self) -> int:
        return self.rewards + self.T

    @property
    def zero(self) -> int:
        return self.masked + self.T * (self.P + 1)

    @property
    def latent(self) -> int:
        return self.zero + 1

    def row(self, kind: str, start, t: int, slot: int):
        T, P1 = self.T, self.P + 1
        return {"s": lambda: state_row(T, start, t) * P1 + slot, "a": lambda: self.actions + start + t,
                "r": lambda: self.rewards + start + t, "m": lambda: self.masked + (start + t) * P1 + slot,
                "z": lambda: self.latent + (start + t) * P1 + slot}[kind]()


def content_index(plan: Plan, T: int, P: int, starts_: np.ndarray, now: bool = False) -> np.ndarray:
    """Where each token's content sits in the content table (see ``Table``): int [len(starts), N].

    ``now``: an instance whose s0 is the current observation (row 2T) and everything else empty: the
    policy reads its prefix output to act.
    """
    tab = Table(T, P)
    idx = np.full((len(starts_), plan.length), tab.zero)
    for n, src in enumerate(plan.sources):
        if src is None:
            continue
        kind, t, slot = src
        if now:
            if (kind, t) == ("s", 0):
                idx[:, n] = 2 * T * (P + 1) + slot
        else:
            idx[:, n] = tab.row(kind, starts_, t, slot)
    return idx


def instance_valid(plan: Plan, win: Window, starts_: np.ndarray) -> Bool[Array, " n"]:
    """An instance counts when all its transitions are real, no life ends inside it, and each of its
    targets meets its kind's condition (an action predicted was chosen by the animal, not overridden by the
    game while asleep; the recall probe's view is of the same life).

    (A one-step layout may end on a life's last frame; one that reads ``z`` may not, because the model's
    output at the next step belongs to the new life.)
    """
    ok = jnp.ones(len(starts_), bool)
    for j in range(plan.span):
        ok &= win.valid[starts_ + j]
        if j < plan.span - 1 or plan.latent:
            ok &= ~win.done[starts_ + j]
    for s in plan.segments:  # a kind's own condition on its targets (an action that was chosen, ...)
        valid = KINDS[s.kind].valid
        if s.target and valid is not None and (v := valid(win, starts_, s.time)) is not None:
            ok &= v
    return ok


# ----------------------------------------------------------------------------- the batch


@dataclass(frozen=True)
class Batch:
    """All active layouts' instances, stacked: the static half of one step's forward passes.

    Rows: the first pass (every layout on raw tokens, then one instance on the current observation),
    then the second pass (layouts that read the model's own outputs). The policy and value read the
    prefix output of s0 in the first objective's instances (one per window step, plus the one on the
    current observation), so acting costs no extra sequence. When the first objective cannot serve (it
    spans several steps or does not start with a given s0), a bare ``s0`` policy layout is added instead.
    """

    plans: tuple[Plan, ...]  # the objectives (and the policy layout, if one is needed), in config order
    ranges: tuple[tuple[int, int], ...]  # each objective's window instances: rows of the batch
    policy_rows: np.ndarray  # [T + 1] rows whose prefix output is s_0..s_T-1, then now
    readout: int  # token position of that prefix output
    first_pass: int  # rows [0, first_pass) run first; the rest read their outputs
    hides: bool  # some layout reads masked states
    idx: np.ndarray  # [B, N] content rows
    types: np.ndarray
    times: np.ndarray
    slots: np.ndarray
    mask: np.ndarray  # [B, M + N, M + N] (M memory tokens first, seen by every token)
    age_row: np.ndarray  # [B] whose age (and memory) each instance senses (row in obs_0..obs_T-1, now=T)
    think: np.ndarray  # [B, N] which thought each token is (-1: none)
    host: int  # the plan the policy reads from
    memory: int = 0  # M: memory tokens at the start of every sequence (memory.py)
    recurrent: bool = False  # thoughts feed their outputs forward (--think-mode recurrent)

    @property
    def thinks(self) -> tuple:
        """Token positions of the thoughts in the policy's sequences (rows ``policy_rows``)."""
        return self.plans[self.host].thinks


def make_batch(objectives: tuple[str, ...], T: int, P: int, memory: int = 0, think: int = 0,
               recurrent: bool = False) -> Batch:
    """The batch of every objective's instances; ``memory`` tokens in each, ``think`` tokens in the policy's."""
    layouts = [(name, LAYOUTS[name]) for name in objectives]
    first = make_plan(*layouts[0], P)
    if first.readout is None or first.span != 1 or first.lag:
        layouts.append(("policy", POLICY))
    host = 0 if len(layouts) == len(objectives) else len(layouts) - 1  # the plan the policy reads from
    N = max(make_plan(n, lay, P, think=think if i == host else 0).length for i, (n, lay) in enumerate(layouts))
    plans = tuple(make_plan(n, lay, P, N, think=think if i == host else 0) for i, (n, lay) in enumerate(layouts))
    order = [i for i, p in enumerate(plans) if not p.latent] + ["now"] + [i for i, p in enumerate(plans) if p.latent]
    parts, ranges, b = [], {}, 0
    for i in order:
        plan = plans[host if i == "now" else i]
        st = np.array([T]) if i == "now" else starts(plan, T)
        idx = content_index(plan, T, P, np.array([0]) if i == "now" else st, now=i == "now")
        parts.append((plan, idx, st))
        if i == "now":
            first_pass = b + 1
        else:
            ranges[i] = (b, b + len(st))
        b += len(st)
    h0 = ranges[host][0]
    policy_rows = np.concatenate([h0 + starts(plans[host], T), [first_pass - 1]])
    cat = np.concatenate
    reps = [len(p[2]) for p in parts]
    mask = cat([np.tile(p[0].mask, (r, 1, 1)) for p, r in zip(parts, reps)])
    if memory:  # M memory tokens first: they see each other, every token sees them
        B = len(mask)
        full = np.zeros((B, memory + N, memory + N), bool)
        full[:, :, :memory] = True
        full[:, memory:, memory:] = mask
        mask = full

    return Batch(plans, tuple(ranges[i] for i in range(len(objectives))), policy_rows, plans[host].readout,
                 first_pass, any(s.kind == "m" for p in plans for s in p.segments),
                 cat([p[1] for p in parts]),
                 cat([np.tile(p[0].types, (r, 1)) for p, r in zip(parts, reps)]),
                 cat([np.tile(p[0].times, (r, 1)) for p, r in zip(parts, reps)]),
                 cat([np.tile(p[0].slots, (r, 1)) for p, r in zip(parts, reps)]),
                 mask, cat([p[2] for p in parts]),
                 cat([np.tile(think_index(p[0]), (r, 1)) for p, r in zip(parts, reps)]),
                 host, memory, recurrent and think > 1)


class Seen(eqx.Module):
    """What one step's forward passes produced: every token's output, and the states' prefix outputs."""

    h: Float[Array, "B N d"]
    z: Float[Array, "T1 P1 d"]  # prefix outputs of obs_0..obs_T-1 and now, standardised (the ``z`` tokens' content)
    z_now: Float[Array, "P1 d"]  # the prefix output of now as it is (what the running statistics take in)


def forward(model: Model, batch: Batch, win: Window, now: Obs, features: Float[Array, "2 P1 d"] | None = None,
            memory: Float[Array, "T1 M d"] | None = None) -> Seen:
    """Embed the window once, gather every instance's tokens, and run them all through the model.

    ``features``: the running mean and variance of the prefix outputs that standardise them (curiosity.py;
    None: as they are). ``memory``: what each row reads (obs_0..obs_T-1, now; ``memory.read_rows``), when
    the batch has memory tokens."""
    T = win.action.shape[0]
    states = stack_obs(win.obs, win.next_obs, jax.tree.map(lambda x: x[None], now))  # [2T+1]
    s_tok = jax.vmap(model.embed_state)(states)
    n, P1, d = s_tok.shape
    if batch.hides:
        masked = jax.vmap(model.embed_state)(win.obs, jax.vmap(lambda a: hidden_cells(model, a))(win.obs.age))
    else:
        masked = jnp.zeros((T, P1, d))
    table = jnp.concatenate([s_tok.reshape(-1, d), jax.vmap(model.embed_action)(win.action),
                             jax.vmap(model.embed_reward)(win.rint), masked.reshape(-1, d), jnp.zeros((1, d))])
    ages = jnp.concatenate([win.obs.age, now.age[None]])
    M = batch.memory
    asks = np.asarray(batch.types) == type_id("q_recall")  # [B, N]: the recall probe's query tokens
    delays = None if win.recall_delay is None or not asks.any() else \
        jnp.concatenate([win.recall_delay, jnp.zeros(1, win.recall_delay.dtype)]).astype(jnp.float32)

    def embed(rows, table):
        content = table[batch.idx[rows]]
        if delays is not None:  # the probe's query senses the delay it asks about (in the age sense's code)
            content = content + jnp.where(asks[rows][..., None],
                                          jax.vmap(model.sense_age)(delays[batch.age_row[rows]])[:, None], 0.0)
        rows_memory = memory[batch.age_row[rows]] if M else None
        return embed_tokens(model, content, batch.types[rows], batch.times[rows], batch.slots[rows],
                            batch.think[rows] if batch.thinks else None, ages[batch.age_row[rows]], rows_memory)

    def run(rows, table):
        return model(embed(rows, table), jnp.asarray(batch.mask[rows]))[:, M:]

    f = batch.first_pass
    x = embed(slice(0, f), table)
    if batch.recurrent:  # each thought's output becomes the next thought's input: one pass per thought
        pr = batch.policy_rows
        x = x.at[pr].set(think_through(model, x[pr], jnp.asarray(batch.mask[pr]), M + np.array(batch.thinks)))
    h = model(x, jnp.asarray(batch.mask[:f]))[:, M:]
    raw = h[batch.policy_rows, : P1]  # [T+1, P+1, d]: the model's view of each state, having seen only it
    z = raw if features is None else standardise(raw, features)
    if f < len(batch.idx):
        h = jnp.concatenate([h, run(slice(f, None), jnp.concatenate([table, z.reshape(-1, d)]))])
    return Seen(h, z, raw[-1])


def embed_tokens(model: Model, content: Float[Array, "B N d"], types, times, slots, think, age: Float[Array, " B"],
                 memory: Float[Array, "B M d"] | None = None) -> Float[Array, "B MN d"]:
    """Sequences' input tokens: each token's content plus its type, time and slot embeddings and the age its
    sequence senses; the thought each thinking token is (``think``: [B, N], -1 for none; None: no thoughts);
    with ``memory``, M memory tokens first."""
    a = jax.vmap(model.sense_age)(age)[:, None]
    x = content + model.type_emb[types] + model.time_emb[times] + model.slot_emb[slots] + a
    if think is not None:
        x = x + jnp.where(think[..., None] >= 0, model.mind.think_emb[np.maximum(think, 0)], 0.0)
    if memory is not None:
        x = jnp.concatenate([memory_tokens(model, memory) + a, x], axis=1)
    return x


def think_through(model: Model, x: Float[Array, "B N d"], mask, at: np.ndarray) -> Float[Array, "B N d"]:
    """Recurrent thoughts: each thought's output (tokens ``at``, in order) added to the next thought's input,
    one pass per thought."""
    for k in range(1, len(at)):
        x = x.at[:, at[k]].add(model(x, mask)[:, at[k - 1]])
    return x


def readout(model: Model, batch: Batch, states: Obs, memory: Float[Array, "b M d"] | None = None
            ) -> Float[Array, "b d"]:
    """The output the policy and the value read (the host layout's readout token) for each of a few states
    (``states``: leading axis b; ``memory``: what each reads), run alone: the state's tokens and the
    thoughts after it, with the host layout's embeddings and mask. It is the output ``forward`` gives at
    ``batch.policy_rows`` (nothing there sees past the readout), for the price of b short sequences: what
    the stream learner through the body (``learner.body_update``) differentiates."""
    plan, L, M = batch.plans[batch.host], batch.readout + 1, batch.memory
    s_tok = jax.vmap(model.embed_state)(states)  # [b, P+1, d]
    b, P1, d = s_tok.shape
    content = jnp.concatenate([s_tok, jnp.zeros((b, L - P1, d))], axis=1)  # the thoughts have no content
    tile = lambda a: np.tile(a[:L], (b, 1))  # noqa: E731
    think = tile(think_index(plan)) if plan.thinks else None
    x = embed_tokens(model, content, tile(plan.types), tile(plan.times), tile(plan.slots), think, states.age,
                     memory if M else None)
    mask = batch.mask[batch.policy_rows[-1], : M + L, : M + L]
    mask = jnp.asarray(np.tile(mask, (b, 1, 1)))
    if batch.recurrent:
        x = think_through(model, x, mask, M + np.array(plan.thinks))
    return model(x, mask)[:, M + batch.readout]


def memory_tokens(model: Model, mem: Float[Array, "*b M d"]) -> Float[Array, "*b M d"]:
    """Memory vectors as input tokens: the content plus its slot's embedding and the memory type."""
    return mem + model.mind.read_emb + model.type_emb[type_id("memory")]


def last_outcome(win: Window) -> Obs:
    """What the newest transition led to (the last frame of a life if it ended there)."""
    return jax.tree.map(lambda x: x[-1], win.next_obs)
