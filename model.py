"""The body: token embeddings, senses (age, grid cells), the gene stack and the prediction heads.

One transformer makes every prediction. A sequence is a row of tokens; what a token *is* comes from
its content (a patch of the local view, the status values, an action, a reward, or nothing for a
query), plus a type embedding, the time step it belongs to within its layout, and its slot (which
patch). The layouts themselves live in ``objectives.py``; this file only knows how to embed, mix and
read out.

Sizes: d = ``d_model``; a state is P patch tokens + 1 status token (P = patches of the local view).
"""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from einops import rearrange
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray

from genes import GeneStack, layer_norm
from world import EnvSpec

# Every kind of token the model knows. Targets are read from query tokens ("q_*"), which carry no content.
TOKEN_TYPES = ("pad", "patch", "status", "action", "reward", "q_patch", "q_status", "q_action", "q_reward")
TYPE = {name: i for i, name in enumerate(TOKEN_TYPES)}
MAX_TIME = 16  # time steps a layout may span
AGE_FREQS = 8  # sinusoids of log(1 + age)
GRID_SCALES = 5  # grid-cell modules; periods 3, 4.2, 5.9, 8.2, 11.5 cells (ratio 1.4)


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


class Model(eqx.Module):
    spec: EnvSpec = eqx.field(static=True)
    patch: tuple[int, int] = eqx.field(static=True)
    # cell and state embeddings
    block_emb: eqx.nn.Embedding
    item_emb: eqx.nn.Embedding
    mob_emb: eqx.nn.Embedding
    cell_pos: Float[Array, "Hp Wp c"]
    patch_in: eqx.nn.Linear
    status_in: eqx.nn.Linear
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
    cell_out: Float[Array, "Hp Wp d"]
    cell_head: eqx.nn.Linear
    status_head: eqx.nn.Linear

    def __init__(self, spec: EnvSpec, *, d: int, n_heads: int, layers: int, slots: int, mlp_ratio: int,
                 patch: tuple[int, int], cell_dim: int, key: PRNGKeyArray):
        ks = iter(jax.random.split(key, 24))
        gh, gw = patch_grid(spec.view, patch)
        P, cells = gh * gw, patch[0] * patch[1]
        self.spec, self.patch = spec, tuple(patch)
        self.block_emb = eqx.nn.Embedding(spec.n_block + 1, cell_dim, key=next(ks))
        self.item_emb = eqx.nn.Embedding(spec.n_item + 1, cell_dim, key=next(ks))
        self.mob_emb = eqx.nn.Embedding(spec.n_mob + 1, cell_dim, key=next(ks))
        self.cell_pos = 0.02 * jax.random.normal(next(ks), (gh * patch[0], gw * patch[1], cell_dim))
        self.patch_in = eqx.nn.Linear(cells * cell_dim, d, key=next(ks))
        self.status_in = eqx.nn.Linear(spec.n_status, d, key=next(ks))
        self.action_emb = eqx.nn.Embedding(spec.n_actions, d, key=next(ks))
        self.reward_in = eqx.nn.Linear(1, d, key=next(ks))
        self.type_emb = 0.02 * jax.random.normal(next(ks), (len(TOKEN_TYPES), d))
        self.time_emb = 0.02 * jax.random.normal(next(ks), (MAX_TIME, d))
        self.slot_emb = 0.02 * jax.random.normal(next(ks), (P + 2, d))  # patches, status, other
        self.age_in = eqx.nn.Linear(2 * AGE_FREQS, d, key=next(ks))
        self.grid_in = eqx.nn.Linear(6 * GRID_SCALES, d, key=next(ks))
        self.stack = GeneStack(slots, layers, d, n_heads, mlp_ratio, key=next(ks))
        self.ln_f = jnp.stack([jnp.ones(d), jnp.zeros(d)])
        self.policy_head = eqx.nn.Linear(d, spec.n_actions, key=next(ks))
        self.value_head = eqx.nn.Linear(d, "scalar", key=next(ks))
        self.action_head = eqx.nn.Linear(d, spec.n_actions, key=next(ks))
        self.cell_out = 0.02 * jax.random.normal(next(ks), (gh * patch[0], gw * patch[1], d))
        self.cell_head = eqx.nn.Linear(d, self.cell_classes, key=next(ks))
        self.status_head = eqx.nn.Linear(d, spec.n_status, key=next(ks))

    # ------------------------------------------------------------------ sizes
    @property
    def n_patches(self) -> int:
        gh, gw = patch_grid(self.spec.view, self.patch)
        return gh * gw

    @property
    def cell_classes(self) -> int:
        """Logits per cell: block ids, then item ids, then mob ids (each with 0 = none/unknown)."""
        s = self.spec
        return (s.n_block + 1) + (s.n_item + 1) + (s.n_mob + 1)

    # ------------------------------------------------------------------ embeddings
    def pad_view(self, ids: Int[Array, "H W"]) -> Int[Array, "Hp Wp"]:
        Hp, Wp = self.cell_pos.shape[:2]
        H, W = self.spec.view
        return jnp.pad(ids, ((0, Hp - H), (0, Wp - W)))

    def embed_state(self, block: Int[Array, "H W"], item: Int[Array, "H W"], mob: Int[Array, "H W"],
                    status: Float[Array, " S"], pos: Float[Array, " 2"]) -> Float[Array, "P1 d"]:
        """A state: P patch tokens and one status token, each carrying the grid-cell code of ``pos``."""
        ph, pw = self.patch
        cells = (jax.vmap(jax.vmap(self.block_emb))(self.pad_view(block))
                 + jax.vmap(jax.vmap(self.item_emb))(self.pad_view(item))
                 + jax.vmap(jax.vmap(self.mob_emb))(self.pad_view(mob))
                 + self.cell_pos)  # [Hp, Wp, c]
        patches = rearrange(cells, "(gh ph) (gw pw) c -> (gh gw) (ph pw c)", ph=ph, pw=pw)
        tokens = jnp.concatenate([jax.vmap(self.patch_in)(patches), self.status_in(status)[None]])
        return tokens + self.grid_in(grid_code(pos))  # [P+1, d]

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
        Hp, Wp = self.cell_pos.shape[:2]
        H, W = self.spec.view
        return (np.arange(Hp)[:, None] < H) & (np.arange(Wp)[None, :] < W)
