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

    def check(self, objectives: tuple[str, ...], span: int) -> None:
        """One clear line for impossible settings (sizes worked out); ``span``: the longest layout's span."""
        for ok, msg in [
            (self.window >= span + 1, f"--window must be at least {span + 1}: the window holds at least two instances "
                                      f"of each layout (the longest spans {span} step{'s' * (span > 1)}), "
                                      f"got {self.window}"),
            (self.memory >= 0 and self.think >= 0, "--memory and --think cannot be negative"),
            (self.memory == 0 or 1 <= self.bptt <= self.window - 1,
             f"--bptt must be between 1 and --window - 1 = {self.window - 1} (the window holds the transitions that "
             f"backprop recomputes), got {self.bptt}"),
            (self.think_mode == "pause" or self.think >= 2, "--think-mode recurrent needs --think 2 or more"),
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


def write_mask(M: int, P1: int) -> np.ndarray:
    """Causal by segment: [memory] [s] [a] [s'] [debrief]; a token sees its own segment and earlier ones."""
    rank = np.repeat(np.arange(5), [M, P1, 1, P1, M])
    return rank[None, :] <= rank[:, None]


def write(model: Model, mem: Float[Array, "M d"], obs: Obs, action: Int[Array, ""], next_obs: Obs,
          done: Bool[Array, ""], valid: Bool[Array, ""]) -> Float[Array, "M d"]:
    """The debrief of one transition: the new memory (blank after a death; unchanged for an empty row)."""
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
    out = model(x, jnp.asarray(write_mask(M, P1)))[-M:]
    g = jax.nn.sigmoid(jax.vmap(model.mind.gate)(out))
    new = (1 - g) * mem + g * out
    return jnp.where(done, 0.0, jnp.where(valid, new, mem))


def unroll(model: Model, mem: Float[Array, "M d"], obs: Obs, action: Int[Array, " L"], next_obs: Obs,
           done: Bool[Array, " L"], valid: Bool[Array, " L"], bptt: int) -> Float[Array, "L M d"]:
    """L writes in a row from ``mem``: the memory after each. The gradient flows back through the last
    ``bptt`` writes only: the memory entering an earlier write is cut (``stop_gradient``)."""
    L = action.shape[0]

    def step(m, x):
        i, o, a, n, dn, v = x
        m = jnp.where(i < L - bptt, jax.lax.stop_gradient(m), m)
        m = write(model, m, o, a, n, dn, v)
        return m, m

    return jax.lax.scan(step, mem, (jnp.arange(L), obs, action, next_obs, done, valid))[1]


def read_rows(model: Model, win, bptt: int) -> Float[Array, "T1 M d"]:
    """The memory each window row reads (rows obs_0..obs_T-1, then now), the last ``bptt`` recomputed.

    Row r reads the memory after the write of row r - 2 (cleared if the life ended at row r - 1). The
    stored memory of row T - K starts K writes (rows T-K-1 .. T-2) with the current weights: the reads of
    rows T-K+1 .. T-1 and of now. Older rows read their stored memory. ``win.memory``: [T, M, d].
    """
    T, K = win.action.shape[0], bptt
    rows = slice(T - 1 - K, T - 1)
    take = lambda tree: jax.tree.map(lambda x: x[rows], tree)  # noqa: E731
    after = unroll(model, jax.lax.stop_gradient(win.memory[T - K]), take(win.obs), win.action[rows],
                   take(win.next_obs), win.done[rows], win.valid[rows], K)  # [K, M, d]
    reads = jnp.where(win.done[T - K:, None, None], 0.0, after)
    return jnp.concatenate([jax.lax.stop_gradient(win.memory[:T - K + 1]), reads])
