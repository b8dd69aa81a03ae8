"""The tokenizer against real Craftax states, for both games."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import world


@pytest.mark.parametrize("name", [e for e in world.ENVS if "Symbolic" in e])
def test_tokenizer_matches_the_map_around_the_player(name):
    spec = world.env_spec(name)
    env, params = world.make_env(name)
    obs, state = world.reset(env, params, jax.random.PRNGKey(3))
    assert obs.shape == (spec.obs_size,)

    @jax.jit
    def walk(state, key):
        def body(state, k):
            k_a, k_s = jax.random.split(k)
            a = jax.random.randint(k_a, (), 0, spec.n_actions)
            nxt, state, _, _ = world.advance(env, params, state, a, k_s)  # no rebirth: a dead world stays dead
            tok = world.tokenize(spec, nxt)
            return state, (tok["block"], tok["mob"], tok["status"], world.local_map(spec, state))

        return jax.lax.scan(body, state, jax.random.split(key, 40))[1]

    block, mob, status, truth = map(np.asarray, walk(state, jax.random.PRNGKey(4)))
    visible = block > 0  # full Craftax zeroes cells in the dark; Classic sees everything
    assert visible.mean() > 0.5
    np.testing.assert_array_equal(block[visible], truth[visible])
    assert status.shape == (40, spec.n_status)
    assert mob.min() >= 0 and mob.max() <= spec.n_mob
    # the status value the spec names 'sleeping' is the one that says so (curiosity effects+sleep reads it)
    awake, asleep = (np.asarray(world.tokenize(spec, env.get_obs(state.replace(is_sleeping=v)))["status"])
                     for v in (False, True))
    assert np.flatnonzero(awake != asleep).tolist() == [spec.sleeping] and asleep[spec.sleeping] == 1


def test_pixel_observations_are_rgb_frames_of_the_view():
    spec = world.env_spec("Craftax-Classic-Pixels-v1")
    env, params = world.make_env(spec.name)
    obs, state = world.reset(env, params, jax.random.PRNGKey(3))
    image = np.asarray(world.tokenize(spec, obs)["image"])
    assert image.shape == spec.image == (63, 63, 3)
    assert image.min() >= 0 and image.max() <= 1 and image.std() > 0.05
    assert world.tokenize(spec, obs).keys() == {"image"}


def test_tokenizer_decodes_mobs_where_the_state_puts_them():
    spec = world.env_spec("Craftax-Classic-Symbolic-v1")
    env, params = world.make_env(spec.name)
    obs, state = world.reset(env, params, jax.random.PRNGKey(0))
    # put a cow (mob channel 1 -> id 2) right next to the player
    pos = state.player_position + jnp.array([1, 0])
    cows = state.cows.replace(position=state.cows.position.at[0].set(pos), mask=state.cows.mask.at[0].set(True))
    obs = env.get_obs(state.replace(cows=cows))
    tok = world.tokenize(spec, obs)
    H, W = spec.view
    assert int(tok["mob"][H // 2 + 1, W // 2]) == 2


def test_unknown_env_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown env"):
        world.env_spec("Craftax-Nope-v0")


def test_crafter_score():
    assert world.crafter_score(np.zeros(22)) == 0.0
    assert abs(world.crafter_score(np.ones(22)) - 100.0) < 1e-9
