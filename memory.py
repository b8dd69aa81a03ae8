"""Memory and thinking: M memory vectors carried from step to step, and K thinking tokens before acting.

The short-term memory is the window (the last T transitions, in the context); the long-term memory is
the weights. In between, ``--memory M`` gives the organism M vectors of width d that it carries from step
to step (and in its checkpoint):

- **Read.** Every sequence of a step starts with M memory tokens (the vectors, plus a learned embedding
  per slot); every token may attend to them. An instance whose first frame is ``obs_x`` reads the memory
  that has seen frames up to ``obs_{x-1}`` and actions up to ``a_{x-2}``: nothing any layout predicts
  (its targets are at times >= 0: s0 in backward dynamics and masked states, a0 in inverse dynamics,
  whose ``z1`` tokens are prefix outputs that themselves read memory one step later).
- **Write (the debrief).** After the outcome of a transition, one more sequence, ``[memory] s a s'
  [debrief]``, runs through the same model; the outputs at its M debrief tokens are the new memory,
  through a gate: ``m <- (1 - g) * m + g * out``, ``g = sigmoid(W out + b)`` per dimension (b starts at
  ``--write-bias``, -2: memory starts mostly kept; the parameters are ``model.MindParams``). At death the
  memory is cleared: a new life starts blank.
- **Truncated backprop through time** (``--bptt K``, as in the recurrent memory transformer and
  block-recurrent transformers, Bulatov et al. 2022, Hutchins et al. 2022; truncated BPTT, Williams &
  Peng 1990). Each step recomputes the last K writes from the memory stored K writes back, with the
  current weights, from the transitions the window still holds (so K <= T - 1): the gradient of every
  loss flows back through at most K memory updates and stops there (``stop_gradient`` on the stored
  memory). Older memories are read as stored: the window keeps the memory each of its rows read.
- **The gate's gradient over the whole life** (``--rtrl``, real-time recurrent learning, Williams & Zipser
  1989, on the diagonal recurrence of the gate). A gate ``g = sigmoid(W out + b)`` decides how long memory
  keeps what it holds, but backprop sees only K writes. With ``--no-write-reads-memory`` (a write sees its
  transition only, so ``out`` does not depend on the memory) the memory's derivative with respect to W and b
  is carried online, ``e' = (1 - g) e + (out - m) g (1 - g) [out, 1]`` (``trace_step``, [M, d, d+1] beside
  the memory), and enters the gradient where truncated backprop stops (``with_trace``): the gate's gradient
  is then exact over the whole life, the rest of the model's over K writes (tested against full backprop).

``--think K`` adds K content-less tokens after the state the policy reads (pause tokens, Goyal et al.
2024): the policy and the value read the last one's output, and every later token of that layout may
attend to them; each sees the state, the memory and the thoughts before it. ``--think-mode recurrent``
feeds each thought's output back as the next thought's input (K passes of the policy's sequences, a
continuous chain of thought).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int

from model import Model, Obs
from objectives import memory_tokens
from targets import DELAY_BINS, type_id


@dataclass(frozen=True)
class Mind:
    """Memory and thinking: the short-term window, memory vectors carried from step to step, thoughts."""

    window: int = 4
    """T: transitions in the short-term window that every update trains on"""
    memory: int = 0
    """M: memory vectors carried from step to step, read by every token and written after each outcome by a
    debrief through a gate (memory.py); 0: no memory"""
    bptt: int = 0
    """K: memory updates the gradient flows back through (truncated backprop through time; at most --window
    - 1, the window holds the transitions it recomputes); 0: --window - 1"""
    think: int = 0
    """K thinking tokens after the state the policy reads, before it acts (pause tokens; memory.py)"""
    think_mode: Literal["pause", "recurrent"] = "pause"
    """'pause': content-less thoughts; 'recurrent': each thought's output is the next thought's input"""
    write_bias: float = -2.0
    """the memory write gate's starting bias: a write replaces sigmoid(b) of each dimension at first (-2: 12 %);
    lower keeps more of what memory holds by default (-4: 2 %)"""
    write_reads_memory: bool = True
    """whether a write's debrief reads the memory it updates; off (--no-write-reads-memory): each write sees only
    its transition, so memory is a gated linear recurrence of what the writes make of the transitions"""
    rtrl: bool = False
    """the write gate's exact gradient over the whole life, carried online beside the memory (real-time recurrent
    learning on the diagonal gate), on top of the K writes of backprop: a gate learns to keep what is asked
    about later than backprop reaches. Needs --no-write-reads-memory (what makes the gradient exact)"""
    recall_delay: int = 8
    """the recall probe (--objective recall) predicts the view seen this many steps before, longer ago than
    --window: only memory can know it (with --recall-min, the longest delay it asks about)"""
    recall_min: int = 0
    """the recall probe's shortest delay: each step's probe asks for the view a delay drawn uniformly from
    [--recall-min, --recall-delay] steps before, and its query senses that delay (the recall curve: scored
    by delay); 0: always --recall-delay"""

    def sized(self) -> Mind:
        """This mind with its automatic size (--bptt 0) worked out."""
        return dataclasses.replace(self, bptt=self.bptt or self.window - 1)

    def check(self, objectives: tuple[str, ...], reach: int) -> None:
        """One clear line for impossible settings (sizes worked out); ``reach``: the longest layout's reach (its
        span, and for a reward the two steps before it is paid: ``objectives.Plan.reach``)."""
        for ok, msg in [
            (self.window >= reach + 1, f"--window must be at least {reach + 1}: the window holds at least two "
                                       f"instances of each layout (the longest reaches {reach} step{'s' * (reach > 1)}"
                                       f" back, a reward's two more than its span), got {self.window}"),
            (self.memory >= 0 and self.think >= 0, "--memory and --think cannot be negative"),
            (self.memory == 0 or 1 <= self.bptt <= self.window - 1,
             f"--bptt must be between 1 and --window - 1 = {self.window - 1} (the window holds the transitions that "
             f"backprop recomputes), got {self.bptt}"),
            (self.think_mode == "pause" or self.think >= 2, "--think-mode recurrent needs --think 2 or more"),
            (not self.rtrl or (self.memory and not self.write_reads_memory),
             "--rtrl needs --memory and --no-write-reads-memory (its gradient is exact only when a write does not "
             "read the memory it updates)"),
            (abs(self.write_bias) <= 20,
             f"--write-bias must lie in [-20, 20] (a sigmoid's gate), got {self.write_bias}"),
            ("recall" not in objectives or self.recall_delay > self.window,
             f"--recall-delay must be more than --window ({self.window}): the probe asks for what the window no "
             f"longer holds, got {self.recall_delay}"),
            ("recall" not in objectives or self.recall_delay < DELAY_BINS[-1],
             f"--recall-delay must be below {DELAY_BINS[-1]} (the recall curve's last bin), got {self.recall_delay}"),
            (self.recall_min == 0 or 1 <= self.recall_min <= self.recall_delay,
             f"--recall-min must be 0 (a fixed delay) or between 1 and --recall-delay ({self.recall_delay}), "
             f"got {self.recall_min}"),
        ]:
            if not ok:
                raise ValueError(msg)


RECALL_SEED = 23  # the recall probe's delays: a fixed draw per age (the same in every run, resumed or not)


def recall_delay(mind: Mind, age: Float[Array, ""]) -> Int[Array, ""]:
    """The delay the recall probe asks about for the frame seen at ``age``: --recall-delay, or with --recall-min
    a draw from [--recall-min, --recall-delay] fixed by the age."""
    if not mind.recall_min:
        return jnp.asarray(mind.recall_delay, jnp.int32)
    key = jax.random.fold_in(jax.random.PRNGKey(RECALL_SEED), age.astype(jnp.int32))
    return jax.random.randint(key, (), mind.recall_min, mind.recall_delay + 1, jnp.int32)


def blank(memory: int, d: int) -> Float[Array, "M d"]:
    """The memory of a newborn (and of every new life)."""
    return jnp.zeros((memory, d))


def write_mask(M: int, P1: int, reads: bool = True) -> np.ndarray:
    """Causal by segment: [memory] [s] [a] [s'] [debrief]; a token sees its own segment and earlier ones (and
    no token but memory's sees the memory when the write does not read it)."""
    rank = np.repeat(np.arange(5), [M, P1, 1, P1, M])
    mask = rank[None, :] <= rank[:, None]
    if not reads:
        mask[M:, :M] = False
    return mask


def debrief(model: Model, mem: Float[Array, "M d"], obs: Obs, action: Int[Array, ""], next_obs: Obs,
            reads: bool = True) -> tuple[Float[Array, "M d"], Float[Array, "M d"]]:
    """What one transition's debrief writes and through which gate: (out, g), the write ``(1 - g) m + g out``."""
    M, d = mem.shape
    s0, s1 = model.embed_state(obs), model.embed_state(next_obs)  # [P+1, d] each
    P1 = s0.shape[0]
    state_types = jnp.array([type_id("patch")] * (P1 - 1) + [type_id("status")])
    state = model.type_emb[state_types] + model.slot_emb[:P1]
    other = model.slot_emb[P1]
    a = model.embed_action(action) + model.type_emb[type_id("action")] + other + model.time_emb[0]
    debrief = model.mind.debrief_emb + model.type_emb[type_id("debrief")] + other + model.time_emb[1]
    x = jnp.concatenate([memory_tokens(model, mem) + other + model.time_emb[0], s0 + state + model.time_emb[0],
                         a[None], s1 + state + model.time_emb[1], debrief])
    x = x + model.sense_age(obs.age)
    out = model(x, jnp.asarray(write_mask(M, P1, reads)))[-M:]
    return out, jax.nn.sigmoid(jax.vmap(model.mind.gate)(out))


def write(model: Model, mem: Float[Array, "M d"], obs: Obs, action: Int[Array, ""], next_obs: Obs,
          done: Bool[Array, ""], valid: Bool[Array, ""], reads: bool = True) -> Float[Array, "M d"]:
    """The debrief of one transition: the new memory (blank after a death; unchanged for an empty row)."""
    out, g = debrief(model, mem, obs, action, next_obs, reads)
    return update(mem, out, g, done, valid)


def update(mem: Float[Array, "M d"], out: Float[Array, "M d"], g: Float[Array, "M d"], done: Bool[Array, ""],
           valid: Bool[Array, ""]) -> Float[Array, "M d"]:
    """``(1 - g) m + g out``; blank after a death, unchanged for an empty row."""
    return jnp.where(done, 0.0, jnp.where(valid, (1 - g) * mem + g * out, mem))


def blank_trace(memory: int, d: int) -> Float[Array, "M d d1"]:
    """A newborn's trace of how its memory depends on the write gate's parameters: none."""
    return jnp.zeros((memory, d, d + 1))


def trace_step(e: Float[Array, "M d d1"], mem: Float[Array, "M d"], out: Float[Array, "M d"], g: Float[Array, "M d"],
               done: Bool[Array, ""], valid: Bool[Array, ""]) -> Float[Array, "M d d1"]:
    """RTRL through one write. ``e[j, i, k]`` = d m[j, i] / d W[i, k] (k < d) and d m[j, i] / d b[i] (k = d), for
    the gate ``g = sigmoid(W out + b)``: m' = (1 - g) m + g out gives e' = (1 - g) e + (out - m) g (1 - g) [out, 1]
    (exact when ``out`` does not depend on m, --no-write-reads-memory)."""
    e, mem, out, g = (jax.lax.stop_gradient(x) for x in (e, mem, out, g))
    x = jnp.concatenate([out, jnp.ones((out.shape[0], 1))], axis=-1)  # [M, d+1]
    new = (1 - g)[..., None] * e + ((out - mem) * g * (1 - g))[..., None] * x[:, None, :]
    return jnp.where(done, 0.0, jnp.where(valid, new, e))


def with_trace(model: Model, mem: Float[Array, "M d"], e: Float[Array, "M d d1"]) -> Float[Array, "M d"]:
    """``mem`` as it is, whose gradient reaches the write gate through the trace ``e``: dL/dW[i, k] gains
    sum_j dL/dm[j, i] e[j, i, k] (and dL/db likewise), the gate's share of everything before backprop's reach."""
    gate = model.mind.gate
    dW = gate.weight - jax.lax.stop_gradient(gate.weight)  # 0, with the gradient of the weight
    db = gate.bias - jax.lax.stop_gradient(gate.bias)
    d = mem.shape[-1]
    return jax.lax.stop_gradient(mem) + jnp.einsum("jik,ik->ji", e[..., :d], dW) + e[..., d] * db


def unroll(model: Model, mem: Float[Array, "M d"], obs: Obs, action: Int[Array, " L"], next_obs: Obs,
           done: Bool[Array, " L"], valid: Bool[Array, " L"], bptt: int, reads: bool = True,
           trace: Float[Array, "M d d1"] | None = None):
    """L writes in a row from ``mem``: the memory after each. The gradient flows back through the last
    ``bptt`` writes only: the memory entering an earlier write is cut (``stop_gradient``). With ``trace`` (the
    RTRL trace of ``mem``): (the memory after each write, the trace after the last)."""
    L = action.shape[0]

    def step(carry, x):
        m, e = carry
        i, o, a, n, dn, v = x
        m = jnp.where(i < L - bptt, jax.lax.stop_gradient(m), m)
        out, g = debrief(model, m, o, a, n, reads)
        if e is not None:
            e = trace_step(e, m, out, g, dn, v)
        m = update(m, out, g, dn, v)
        return (m, e), m

    (_, e), ms = jax.lax.scan(step, (mem, trace), (jnp.arange(L), obs, action, next_obs, done, valid))
    return ms if trace is None else (ms, e)


def read_rows(model: Model, win, mind: Mind):
    """(the memory each window row reads, the RTRL trace of what now reads or None): rows obs_0..obs_T-1,
    then now, the last ``mind.bptt`` recomputed.

    Row r reads the memory after the write of row r - 2 (cleared if the life ended at row r - 1). The
    stored memory of row T - K starts K writes (rows T-K-1 .. T-2) with the current weights: the reads of
    rows T-K+1 .. T-1 and of now. Older rows read their stored memory. ``win.memory``: [T, M, d]. With
    --rtrl the stored memory carries its trace (``win.memory_trace``) into the gradient of the gate.
    """
    T, K = win.action.shape[0], mind.bptt
    rows = slice(T - 1 - K, T - 1)
    take = lambda tree: jax.tree.map(lambda x: x[rows], tree)  # noqa: E731
    start = jax.lax.stop_gradient(win.memory[T - K])
    args = (take(win.obs), win.action[rows], take(win.next_obs), win.done[rows], win.valid[rows], K,
            mind.write_reads_memory)
    trace = None
    if mind.rtrl:
        after, trace = unroll(model, with_trace(model, start, win.memory_trace[T - K]), *args,
                              trace=win.memory_trace[T - K])
        trace = jnp.where(win.done[-1], 0.0, trace)  # now, in a new life, reads a blank memory
    else:
        after = unroll(model, start, *args)  # [K, M, d]
    reads = jnp.where(win.done[T - K:, None, None], 0.0, after)
    return jnp.concatenate([jax.lax.stop_gradient(win.memory[:T - K + 1]), reads]), trace
