"""The world: real Craftax behind a small pure wrapper, and the tokenizer that reads its observations.

Craftax symbolic observations are cell-major: ``obs[:H*W*C].reshape(H, W, C)`` is the local view with
the player at the centre cell; the rest are status values (inventory, vitals, direction, light, ...).
The tokenizer decodes each cell into small integer ids (block, item, mob) so that the model can embed
them; nothing is thrown away except which of several overlapping mobs sits on a cell.

Episode ends are handled with ``lax.cond`` on an ``auto_reset=False`` env: the auto-reset wrapper builds a
whole new world on every step (about 10x slower) and throws it away.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
from craftax.craftax import constants as FULL  # imported here: Craftax makes arrays at import, never in a trace
from craftax.craftax_classic import constants as CLASSIC
from craftax.craftax_env import make_craftax_env_from_name
from jaxtyping import Array, Float, Int

OUT_OF_BOUNDS = 1  # BlockType.OUT_OF_BOUNDS.value in both games
NOOP = 0  # Action.NOOP.value in both games: what Craftax steps while the player sleeps
ENVS = ("Craftax-Classic-Symbolic-v1", "Craftax-Symbolic-v1", "Craftax-Classic-Pixels-v1")


@dataclass(frozen=True)
class EnvSpec:
    """Static facts about an env's observation layout (hashable: safe as a jit static)."""

    name: str
    view: tuple[int, int]  # (H, W) cells of the local view, player at the centre
    n_block: int  # block one-hot channels
    n_item: int  # item one-hot channels (0 in Classic)
    n_mob: int  # mob channels (Classic: zombie, cow, skeleton, arrow; full: 8 * class + type)
    has_light: bool  # a last channel that says the cell is visible (full Craftax)
    n_status: int  # inventory, vitals, direction, ... after the map
    n_actions: int
    achievements: tuple[str, ...]
    world_size: tuple[int, int]  # cells of the whole map (for place cells)
    image: tuple[int, int, int] | None = None  # (h, w, 3) for pixel observations, None for symbolic
    action_names: tuple[str, ...] = ()
    n_inventory: int = 0  # the first status values: what the player holds (counts / 10, or their square roots)
    sleeping: int = -1  # the status value that says the player is asleep (curiosity 'effects+sleep')

    @property
    def channels(self) -> int:
        return self.n_block + self.n_item + self.n_mob + int(self.has_light)

    @property
    def obs_size(self) -> int:
        return self.view[0] * self.view[1] * self.channels + self.n_status


def env_spec(name: str) -> EnvSpec:
    if name in ("Craftax-Classic-Symbolic-v1", "Craftax-Classic-Pixels-v1"):
        C = CLASSIC
        px = C.BLOCK_PIXEL_SIZE_AGENT  # pixels: the 7x9 view and 2 inventory rows, 7 pixels per cell
        image = (C.OBS_DIM[1] * px, (C.OBS_DIM[0] + C.INVENTORY_OBS_HEIGHT) * px, 3) if "Pixels" in name else None
        return EnvSpec(name, tuple(C.OBS_DIM), len(C.BlockType), 0, 4, False, 22, 17,
                       tuple(a.name.lower() for a in C.Achievement), (64, 64), image,
                       tuple(a.name.lower() for a in C.Action), n_inventory=12, sleeping=21)
    if name == "Craftax-Symbolic-v1":
        C = FULL
        return EnvSpec(name, tuple(C.OBS_DIM), len(C.BlockType), len(C.ItemType), 40, True, 51,
                       len(C.Action), tuple(a.name.lower() for a in C.Achievement), (48, 48),
                       action_names=tuple(a.name.lower() for a in C.Action), n_inventory=22, sleeping=44)
    raise ValueError(f"unknown env {name!r}; choose one of {', '.join(ENVS)}")


@functools.lru_cache(maxsize=None)
def make_env(name: str):
    """The env without auto-reset, and its default params: made once, eagerly (a pixel env loads textures,
    which must be arrays, not tracers of whichever function first asked for the env)."""
    env_spec(name)  # clear error for unknown names
    with jax.ensure_compile_time_eval():
        env = make_craftax_env_from_name(name, auto_reset=False)
        return env, env.default_params


# ----------------------------------------------------------------------------- tokenizer


def _ids(onehot: Float[Array, "H W C"]) -> Int[Array, "H W"]:
    """argmax + 1 where any channel is on, 0 where none is (dark cell / no mob / no item)."""
    return jnp.where(onehot.max(-1) > 0.5, onehot.argmax(-1) + 1, 0).astype(jnp.int32)


def tokenize(spec: EnvSpec, obs: Float[Array, "..."]) -> dict[str, Array]:
    """Decode one symbolic observation into cell ids and the status vector.

    Returns ``block``, ``item``, ``mob``: int32 [H, W] (0 = unknown / none, k = channel k-1 on) and
    ``status``: float32 [n_status]. A pixel observation is passed on as ``image`` (float32 [h, w, 3]).
    """
    if spec.image is not None:
        return dict(image=obs.astype(jnp.float32).reshape(spec.image))
    H, W = spec.view
    grid = obs[: H * W * spec.channels].reshape(H, W, spec.channels)
    b, i = spec.n_block, spec.n_item
    block = _ids(grid[..., :b])
    item = _ids(grid[..., b : b + i]) if i else jnp.zeros((H, W), jnp.int32)
    mob = _ids(grid[..., b + i : b + i + spec.n_mob])
    status = obs[H * W * spec.channels :].astype(jnp.float32)
    return dict(block=block, item=item, mob=mob, status=status)


def local_map(spec: EnvSpec, state) -> Int[Array, "H W"]:
    """The block ids (+1, like :func:`tokenize`) of the map around ``state.player_position``.

    Read straight from the env state, independently of the observation: the tokenizer's test oracle.
    """
    H, W = spec.view
    grid = state.map if state.map.ndim == 2 else state.map[state.player_level]
    pad = max(H, W) + 2
    padded = jnp.pad(grid, pad, constant_values=OUT_OF_BOUNDS)
    corner = state.player_position - jnp.array([H // 2, W // 2]) + pad
    return jax.lax.dynamic_slice(padded, corner, (H, W)) + 1


# ----------------------------------------------------------------------------- stepping


def reset(env, params, key) -> tuple[Array, object]:
    """A new world, with every leaf of its state a typed array exactly like ``step`` returns.

    (Craftax's world generation leaves some Python ints in the state; a jitted loop would otherwise see
    a different input type after its first call and compile twice.)
    """
    obs, state = env.reset_env(key, params)
    like = jax.eval_shape(lambda s: env.step_env(key, s, 0, params)[1], state)
    return obs, jax.tree.map(lambda x, s: jnp.asarray(x, s.dtype), state, like)


def advance(env, params, state, action, key) -> tuple[Array, object, Array, Array]:
    """One env step and nothing else: (next_obs, next_state, reward, done); a dead world stays dead."""
    next_obs, next_state, reward, done, _ = env.step_env(key, state, action, params)
    return next_obs, next_state, reward.astype(jnp.float32), done


def step(env, params, state, action, key) -> tuple[Array, object, Array, Array, Array, object]:
    """One env step with a ``lax.cond`` reset.

    Returns (next_obs, terminal_state, reward, done, obs_to_act_from, state_to_continue). On ``done`` the
    first two are the end of the old life and the last two the start of a new world; otherwise they agree.
    """
    k_step, k_reset = jax.random.split(key)
    next_obs, next_state, reward, done = advance(env, params, state, action, k_step)
    obs, cont = jax.lax.cond(
        done,
        lambda: env.reset_env(k_reset, params),
        lambda: (next_obs, next_state),
    )
    return next_obs, next_state, reward, done, obs, cont


def crafter_score(success_rates: np.ndarray) -> float:
    """Crafter score: exp(mean ln(1 + rate%)) - 1 over all achievements (rates as fractions)."""
    pct = 100.0 * np.asarray(success_rates, dtype=np.float64)
    return float(np.exp(np.mean(np.log1p(pct))) - 1.0)


def render_frames(env_name: str, states, pixel_size: int = 16) -> np.ndarray:
    """Render a stacked run of env states with Craftax's own pixel renderer: uint8 [T, h, w, 3]."""
    if "Classic" in env_name:
        from craftax.craftax_classic.renderer import make_craftax_pixel_renderer
    else:
        from craftax.craftax.renderer import make_craftax_pixel_renderer
    render = jax.jit(jax.vmap(make_craftax_pixel_renderer(pixel_size)))
    frames = np.asarray(render(states))
    return np.clip(frames, 0, 255).astype(np.uint8)
