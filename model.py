"""The body: token embeddings, senses (age, grid cells), the gene stack and the prediction heads.

One transformer makes every prediction. A sequence is a row of tokens; what a token *is* comes from
its content (a patch of the local view, the status values, an action, a reward, the model's own output
for a state, or nothing for a query), plus a type embedding, the time step it belongs to within its
layout, and its slot (which patch). The layouts themselves live in ``objectives.py``; this file only
knows how to embed, mix and read out.

Sizes: d = ``d_model``; a state is P patch tokens + 1 status token (P = patches of the local view; with
pixels, P = 4 quarters of a CNN feature map + 1 global token, see ``pixels.py``).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from einops import rearrange
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray

import world
from genes import GeneStack, layer_norm
from pixels import N_TOKENS as PIXEL_TOKENS
from pixels import PixelEye
from world import EnvSpec

GATE_BIAS = -2.0  # a memory write's gate starts at sigmoid(-2) = 0.12 of each dimension (memory.py; --write-bias)
RND_DIM = 32  # size of a fixed random network's state embedding that the rnd layout predicts (curiosity.py)

MAX_TIME = 16  # time steps a layout may span
AGE_FREQS = 8  # sinusoids of log(1 + age)
GRID_SCALES = 5  # grid-cell modules; periods 3, 4.2, 5.9, 8.2, 11.5 cells (ratio 1.4)
PLACE_SPACING = 4  # place cells sit on a lattice this many cells apart, each tuned this wide (Gaussian std)


@dataclass(frozen=True)
class Body:
    """The body: the world it lives in and the transformer that makes every prediction."""

    env: str = "Craftax-Classic-Symbolic-v1"
    """which Craftax world to live in: Craftax-Classic-Symbolic-v1 or Craftax-Symbolic-v1"""
    obs: Literal["symbolic", "pixels"] = "symbolic"
    """what the agent sees: decoded cells, or the 63x63 RGB frame through a small CNN (Classic only)"""
    d_model: int = 64
    """width of the residual stream"""
    n_heads: int = 4
    """attention heads per gene"""
    layers: int = 0
    """gene slots expressed at birth; 0: 2, or 3 for an evolution (its depth bins need early, mid and late genes)"""
    slots: int = 0
    """gene slots in the body (>= layers); the free ones are for growth and never cost a recompile; 0: --layers"""
    mlp_ratio: int = 2
    """hidden width of each gene's MLP, in multiples of d_model"""
    patch: tuple[int, int] = (4, 9)
    """cells per state token (rows, columns) of the local view"""
    cell_dim: int = 8
    """embedding size of one cell (block + item + mob + position)"""

    @property
    def world(self) -> str:
        """The Craftax env id: --env with its observation kind switched to --obs."""
        return self.env.replace("-Symbolic-", "-Pixels-") if self.obs == "pixels" else self.env

    def sized(self, evolving: bool) -> Body:
        """This body with its automatic sizes (0) worked out."""
        layers = self.layers or (3 if evolving else 2)
        return dataclasses.replace(self, layers=layers, slots=self.slots or layers)

    def check(self) -> None:
        """One clear line for an impossible body (its sizes worked out), before anything is compiled."""
        symbolic = [e for e in world.ENVS if "-Symbolic-" in e]  # --env names these; --obs pixels switches
        if self.env not in symbolic:
            raise ValueError(f"unknown env {self.env!r}; choose one of {', '.join(symbolic)} "
                             "(for pixels: --obs pixels)")
        if self.obs == "pixels" and self.world not in world.ENVS:
            raise ValueError(f"--obs pixels is available for Craftax-Classic-Symbolic-v1 only, not {self.env}")
        for ok, msg in [
            (1 <= self.layers <= self.slots,
             f"--layers must be between 1 and --slots ({self.slots}), got {self.layers}"),
            (self.d_model > 0 and self.n_heads > 0 and self.d_model % self.n_heads == 0,
             f"--d-model ({self.d_model}) must be a positive multiple of --n-heads ({self.n_heads})"),
            (min(self.patch) >= 1, f"--patch sizes must be positive, got {self.patch}"),
            (self.mlp_ratio >= 1, f"--mlp-ratio must be at least 1, got {self.mlp_ratio}"),
            (self.cell_dim >= 1, f"--cell-dim must be at least 1, got {self.cell_dim}"),
        ]:
            if not ok:
                raise ValueError(msg)


class Obs(eqx.Module):
    """A tokenized observation and the senses that go with it (any leading batch shape).

    Symbolic worlds fill ``block``/``item``/``mob``/``status``; pixel worlds fill ``image`` (the rest None).
    """

    block: Int[Array, "*b H W"] | None
    item: Int[Array, "*b H W"] | None
    mob: Int[Array, "*b H W"] | None
    status: Float[Array, "*b S"] | None
    image: Float[Array, "*b h w 3"] | None
    pos: Float[Array, "*b 2"]  # the player's position in its world (grid cells and place cells)
    age: Float[Array, "*b"]  # steps the organism has lived


def patch_grid(view: tuple[int, int], patch: tuple[int, int]) -> tuple[int, int]:
    """How many patches fit the (zero-padded) local view along each axis."""
    return math.ceil(view[0] / patch[0]), math.ceil(view[1] / patch[1])


def age_code(age: Float[Array, ""]) -> Float[Array, " age_code"]:
    """A smooth multi-scale code of steps lived: sin/cos of log(1 + age) at octave frequencies."""
    phase = jnp.log1p(age) * 2.0 ** jnp.linspace(-2.0, 2.0, AGE_FREQS)  # periods from ~1.6 to ~25 in log age
    return jnp.concatenate([jnp.sin(phase), jnp.cos(phase)])


def grid_code(pos: Float[Array, " 2"]) -> Float[Array, " grid_code"]:
    """Grid cells: cos/sin of three plane waves 60 degrees apart, at several scales (ratio 1.4)."""
    angles = jnp.array([0.0, jnp.pi / 3, 2 * jnp.pi / 3])
    dirs = jnp.stack([jnp.cos(angles), jnp.sin(angles)], -1)  # [3, 2]
    periods = 3.0 * 1.4 ** jnp.arange(GRID_SCALES)  # [S]
    phase = 2 * jnp.pi * (dirs @ pos)[None, :] / periods[:, None]  # [S, 3]
    return jnp.concatenate([jnp.cos(phase).ravel(), jnp.sin(phase).ravel()])


def place_centres(world_size: tuple[int, int]) -> np.ndarray:
    """Centres of the place cells: a lattice over the whole map, float [K, 2]."""
    rows, cols = (np.arange(PLACE_SPACING / 2, n, PLACE_SPACING) for n in world_size)
    return np.stack(np.meshgrid(rows, cols, indexing="ij"), -1).reshape(-1, 2).astype(np.float32)


def place_log_code(pos: Float[Array, " 2"], centres: np.ndarray) -> Float[Array, " K"]:
    """Place-cell activity at ``pos`` as a log-distribution (Gaussian bumps): the target of "where am I"."""
    d2 = jnp.sum((jnp.asarray(centres) - pos) ** 2, -1)
    return jax.nn.log_softmax(-d2 / (2 * PLACE_SPACING**2))


class MindParams(eqx.Module):
    """The parameters of memory and thought (memory.py; the model's ``mind``, None when both are off)."""

    read_emb: Float[Array, "M d"]  # which memory slot a memory token is
    debrief_emb: Float[Array, "M d"]  # which slot a debrief token writes
    think_emb: Float[Array, "K d"]  # which thought a thinking token is
    gate: eqx.nn.Linear  # d -> d: how much of each memory dimension a write replaces

    def __init__(self, memory: int, think: int, d: int, *, key: PRNGKeyArray, write_bias: float = GATE_BIAS):
        k1, k2, k3, k4 = jax.random.split(key, 4)
        self.read_emb = 0.02 * jax.random.normal(k1, (memory, d))
        self.debrief_emb = 0.02 * jax.random.normal(k2, (memory, d))
        self.think_emb = 0.02 * jax.random.normal(k3, (think, d))
        gate = eqx.nn.Linear(d, d, key=k4)
        self.gate = eqx.tree_at(lambda g: g.bias, gate, jnp.full(d, write_bias, jnp.float32))

    @property
    def slots(self) -> int:
        return self.read_emb.shape[0]


# ----------------------------------------------------------------------------- the stream learner's actor and critic


SPARSITY = 0.9  # share of each unit's incoming weights that start at zero (sparse initialisation)


def normalise(x: Float[Array, " n"]) -> Float[Array, " n"]:
    """LayerNorm without parameters."""
    mu = x.mean()
    return (x - mu) * jax.lax.rsqrt(jnp.mean((x - mu) ** 2) + 1e-5)


def sparse_linear(fan_in: int, fan_out: int, key: PRNGKeyArray) -> eqx.nn.Linear:
    """A linear map with uniform(+-1/sqrt(fan_in)) weights, ``SPARSITY`` of each output's inputs zeroed,
    zero bias."""
    k_w, k_mask = jax.random.split(key)
    bound = 1.0 / math.sqrt(fan_in)
    w = jax.random.uniform(k_w, (fan_out, fan_in), minval=-bound, maxval=bound)
    zeros = math.ceil(SPARSITY * fan_in)
    order = jax.vmap(lambda k: jax.random.permutation(k, fan_in))(jax.random.split(k_mask, fan_out))
    w = jnp.where(jnp.argsort(order, axis=1) < zeros, 0.0, w)  # each row: a random ``zeros`` of its inputs
    lin = eqx.filter_eval_shape(eqx.nn.Linear, fan_in, fan_out, key=key)  # its shape only: no draws
    return eqx.tree_at(lambda m: (m.weight, m.bias), lin, (w, jnp.zeros(fan_out)))


class Net(eqx.Module):
    """input -> [Linear -> LayerNorm -> leaky ReLU] x hidden layers -> Linear."""

    layers: tuple[eqx.nn.Linear, ...]

    def __init__(self, fan_in: int, hidden: int, out: int, depth: int, *, key: PRNGKeyArray):
        sizes = [fan_in] + [hidden] * depth + [out]
        keys = jax.random.split(key, len(sizes) - 1)
        self.layers = tuple(sparse_linear(a, b, k) for a, b, k in zip(sizes[:-1], sizes[1:], keys))

    def __call__(self, x: Float[Array, " n"]) -> Float[Array, " out"]:
        for layer in self.layers[:-1]:
            x = jax.nn.leaky_relu(normalise(layer(x)))
        return self.layers[-1](x)


class ActorCritic(eqx.Module):
    """The actor (action logits) and the critic (value) of the state features."""

    actor: Net
    critic: Net

    def __init__(self, fan_in: int, n_actions: int, hidden: int, depth: int, *, key: PRNGKeyArray):
        k1, k2 = jax.random.split(key)
        self.actor = Net(fan_in, hidden, n_actions, depth, key=k1)
        self.critic = Net(fan_in, hidden, 1, depth, key=k2)

    def logits(self, phi: Float[Array, " n"]) -> Float[Array, " A"]:
        return self.actor(phi)

    def value(self, phi: Float[Array, " n"]) -> Float[Array, ""]:
        return self.critic(phi)[0]



# ----------------------------------------------------------------------------- the model


class Model(eqx.Module):
    spec: EnvSpec = eqx.field(static=True)
    patch: tuple[int, int] = eqx.field(static=True)
    # cell and state embeddings (symbolic worlds) ...
    block_emb: eqx.nn.Embedding | None
    item_emb: eqx.nn.Embedding | None
    mob_emb: eqx.nn.Embedding | None
    mask_emb: Float[Array, " c"] | None  # stands in for a hidden cell (masked state modelling)
    cell_pos: Float[Array, "Hp Wp c"] | None
    patch_in: eqx.nn.Linear | None
    status_in: eqx.nn.Linear | None
    # ... or the pixel eye (pixel worlds)
    eye: PixelEye | None
    # other tokens and per-token embeddings
    action_emb: eqx.nn.Embedding
    reward_in: eqx.nn.Linear
    type_emb: Float[Array, "types d"]
    time_emb: Float[Array, "max_time d"]
    slot_emb: Float[Array, "P2 d"]
    # senses
    age_in: eqx.nn.Linear
    grid_in: eqx.nn.Linear
    # body and heads
    stack: GeneStack
    ln_f: Float[Array, "2 d"]
    policy_head: eqx.nn.Linear
    value_head: eqx.nn.Linear
    action_head: eqx.nn.Linear
    reward_head: eqx.nn.Linear
    place_head: eqx.nn.Linear
    cell_out: Float[Array, "Hp Wp d"] | None
    cell_head: eqx.nn.Linear | None
    status_head: eqx.nn.Linear | None
    rnd_head: eqx.nn.Linear  # the prediction of a fixed random network's embedding (curiosity.py)
    copy_gain: Float[Array, " 4"]  # how much predictions lean on the nearest given state: block, item, mob, place
    mind: MindParams | None  # memory and thinking tokens (memory.py), or None
    heads: dict  # the heads of target kinds registered with their own (targets.py): letter -> Linear
    ac: ActorCritic | None  # the stream learner's actor and critic on the state's features (learner.py), or None

    def __init__(self, spec: EnvSpec, *, d: int, n_heads: int, layers: int, slots: int, mlp_ratio: int,
                 patch: tuple[int, int], cell_dim: int, key: PRNGKeyArray, types: int, heads: dict[str, int],
                 memory: int = 0, think: int = 0, ac_hidden: int = 0, ac_depth: int = 1, ac_fan_in: int = 0,
                 write_bias: float = GATE_BIAS):
        """``types``, ``heads``: how many token types there are and the extra heads (letter -> outputs), which
        the registry of target kinds knows (``targets.model_kinds()``: it reads this file, not this file it)."""
        ks = iter(jax.random.split(key, 25))
        gh, gw = patch_grid(spec.view, patch)
        self.spec, self.patch = spec, tuple(patch)
        P = n_patches(spec, patch)
        symbolic = spec.image is None
        cells = patch[0] * patch[1]
        self.block_emb = eqx.nn.Embedding(spec.n_block + 1, cell_dim, key=next(ks)) if symbolic else None
        self.item_emb = eqx.nn.Embedding(spec.n_item + 1, cell_dim, key=next(ks)) if symbolic else None
        self.mob_emb = eqx.nn.Embedding(spec.n_mob + 1, cell_dim, key=next(ks)) if symbolic else None
        self.mask_emb = jax.random.normal(next(ks), (cell_dim,)) if symbolic else None
        self.cell_pos = 0.02 * jax.random.normal(next(ks), (gh * patch[0], gw * patch[1], cell_dim)) \
            if symbolic else None
        self.patch_in = eqx.nn.Linear(cells * cell_dim, d, key=next(ks)) if symbolic else None
        self.status_in = eqx.nn.Linear(spec.n_status, d, key=next(ks)) if symbolic else None
        self.eye = None if symbolic else PixelEye(spec.image, d, key=next(ks))
        self.action_emb = eqx.nn.Embedding(spec.n_actions, d, key=next(ks))
        self.reward_in = eqx.nn.Linear(1, d, key=next(ks))
        self.type_emb = 0.02 * jax.random.normal(next(ks), (types, d))  # token types: targets.py
        self.time_emb = 0.02 * jax.random.normal(next(ks), (MAX_TIME, d))
        self.slot_emb = 0.02 * jax.random.normal(next(ks), (P + 2, d))  # patches, status, other
        self.age_in = eqx.nn.Linear(2 * AGE_FREQS, d, key=next(ks))
        self.grid_in = eqx.nn.Linear(6 * GRID_SCALES, d, key=next(ks))
        self.stack = GeneStack(slots, layers, d, n_heads, mlp_ratio, key=next(ks))
        self.ln_f = jnp.stack([jnp.ones(d), jnp.zeros(d)])
        self.policy_head = eqx.nn.Linear(d, spec.n_actions, key=next(ks))
        self.value_head = eqx.nn.Linear(d, "scalar", key=next(ks))
        self.action_head = eqx.nn.Linear(d, spec.n_actions, key=next(ks))
        self.reward_head = eqx.nn.Linear(d, "scalar", key=next(ks))
        self.place_head = eqx.nn.Linear(d, len(place_centres(spec.world_size)), key=next(ks))
        self.cell_out = 0.02 * jax.random.normal(next(ks), (gh * patch[0], gw * patch[1], d)) if symbolic else None
        self.cell_head = eqx.nn.Linear(d, self.cell_classes, key=next(ks)) if symbolic else None
        self.status_head = eqx.nn.Linear(d, spec.n_status, key=next(ks)) if symbolic else None
        self.copy_gain = jnp.full(4, 2.0, jnp.float32)  # a strong type: weak-typed leaves recompile the step
        self.rnd_head = eqx.nn.Linear(d, RND_DIM, key=next(ks))
        self.mind = MindParams(memory, think, d, key=next(ks), write_bias=write_bias) if memory or think else None
        self.heads = {k: eqx.nn.Linear(d, n, key=jax.random.fold_in(key, 2 + i))
                      for i, (k, n) in enumerate(sorted(heads.items()))}
        self.ac = ActorCritic(ac_fan_in or (P + 1) * d, spec.n_actions, ac_hidden, ac_depth,
                              key=jax.random.fold_in(key, 1)) if ac_hidden else None

    # ------------------------------------------------------------------ sizes
    @property
    def n_patches(self) -> int:
        return n_patches(self.spec, self.patch)

    @property
    def cell_classes(self) -> int:
        """Logits per cell: block ids, then item ids, then mob ids (each with 0 = none/unknown)."""
        s = self.spec
        return (s.n_block + 1) + (s.n_item + 1) + (s.n_mob + 1)

    # ------------------------------------------------------------------ embeddings
    def pad_view(self, ids: Int[Array, "H W"]) -> Int[Array, "Hp Wp"]:
        Hp, Wp = padded_view(self.spec, self.patch)
        H, W = self.spec.view
        return jnp.pad(ids, ((0, Hp - H), (0, Wp - W)))

    def embed_state(self, obs: Obs, hide: Bool[Array, "Hp Wp"] | None = None) -> Float[Array, "P1 d"]:
        """A state: P patch tokens and one status token, each carrying the grid-cell code of ``obs.pos``.

        ``hide``: cells to mask (their ids replaced by one learned "hidden" embedding), for masked state modelling.
        """
        if self.eye is not None:
            return self.eye.encode(obs.image) + self.grid_in(grid_code(obs.pos))
        ph, pw = self.patch
        cells = (jax.vmap(jax.vmap(self.block_emb))(self.pad_view(obs.block))
                 + jax.vmap(jax.vmap(self.item_emb))(self.pad_view(obs.item))
                 + jax.vmap(jax.vmap(self.mob_emb))(self.pad_view(obs.mob)))  # [Hp, Wp, c]
        if hide is not None:
            cells = jnp.where(hide[..., None], self.mask_emb, cells)
        patches = rearrange(cells + self.cell_pos, "(gh ph) (gw pw) c -> (gh gw) (ph pw c)", ph=ph, pw=pw)
        tokens = jnp.concatenate([jax.vmap(self.patch_in)(patches), self.status_in(obs.status)[None]])
        return tokens + self.grid_in(grid_code(obs.pos))  # [P+1, d]

    def embed_action(self, a: Int[Array, ""]) -> Float[Array, " d"]:
        return self.action_emb(a)

    def embed_reward(self, r: Float[Array, ""]) -> Float[Array, " d"]:
        return self.reward_in(jnp.sign(r)[None] * jnp.log1p(jnp.abs(r))[None])

    def sense_age(self, age: Float[Array, ""]) -> Float[Array, " d"]:
        return self.age_in(age_code(age))

    # ------------------------------------------------------------------ body
    def __call__(self, x: Float[Array, "*b N d"], mask: Bool[Array, "*b N N"]) -> Float[Array, "*b N d"]:
        """Mix sequences through the gene stack; returns the final-LN outputs, one per token."""
        return layer_norm(self.stack(x, mask), *self.ln_f)

    # ------------------------------------------------------------------ heads
    def cell_logits(self, h: Float[Array, "P d"]) -> Float[Array, "Hp Wp V"]:
        """Read a predicted local view from P patch-query outputs: logits per cell.

        Each cell's logits come from its patch's output plus a learned embedding of the cell's place, through
        one small shared linear map (far fewer weights than a map per cell).
        """
        ph, pw = self.patch
        gh, gw = patch_grid(self.spec.view, self.patch)
        h = rearrange(h, "(gh gw) d -> gh gw d", gh=gh, gw=gw)
        per_cell = jnp.repeat(jnp.repeat(h, ph, axis=0), pw, axis=1) + self.cell_out  # [Hp, Wp, d]
        return jax.nn.gelu(per_cell) @ self.cell_head.weight.T + self.cell_head.bias  # [Hp, Wp, V]

    def cell_valid(self) -> np.ndarray:
        """Which cells of the padded view are real (not padding): bool [Hp, Wp]."""
        Hp, Wp = padded_view(self.spec, self.patch)
        H, W = self.spec.view
        return (np.arange(Hp)[:, None] < H) & (np.arange(Wp)[None, :] < W)


def n_patches(spec: EnvSpec, patch: tuple[int, int]) -> int:
    """P: state tokens besides the status token."""
    gh, gw = patch_grid(spec.view, patch)
    return PIXEL_TOKENS if spec.image else gh * gw


def padded_view(spec: EnvSpec, patch: tuple[int, int]) -> tuple[int, int]:
    gh, gw = patch_grid(spec.view, patch)
    return gh * patch[0], gw * patch[1]
