"""Every objective can learn: each overfits a fixed set of real transitions."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.flatten_util import ravel_pytree

import objectives as O
import train
import world
from model import Model


def test_config_lists_every_layout():
    from typing import get_args

    assert set(get_args(train.Objective)) == set(O.LAYOUTS)


@pytest.mark.parametrize("name", list(O.LAYOUTS))
def test_each_objective_overfits_real_transitions(name, transitions):
    win, now = transitions
    spec = world.env_spec("Craftax-Classic-Symbolic-v1")
    model = Model(spec, d=64, n_heads=4, layers=2, slots=2, mlp_ratio=2, patch=(4, 9), cell_dim=8,
                  key=jax.random.PRNGKey(1))
    T = win.action.shape[0]
    batch = O.make_batch((name,), T, model.n_patches)
    plan, (b0, b1) = batch.plans[0], batch.ranges[0]
    st = O.starts(plan, T)

    def loss(model):
        h = O.forward(model, batch, win, now)
        return O.target_loss(model, plan, h[b0:b1], win, st)["loss"].mean()

    params, static = eqx.partition(model, eqx.is_inexact_array)
    flat, unravel = ravel_pytree(params)
    opt = optax.adam(3e-3)

    @jax.jit
    def fit(flat):
        def body(carry, _):
            flat, s = carry
            value, g = jax.value_and_grad(lambda f: loss(eqx.combine(unravel(f), static)))(flat)
            u, s = opt.update(g, s, flat)
            return (flat + u, s), value

        return jax.lax.scan(body, (flat, opt.init(flat)), None, length=400)[1]

    curve = np.asarray(fit(flat))
    assert np.all(np.isfinite(curve))
    assert curve[-10:].mean() < 0.1 * curve[0], (name, curve[0], curve[-10:].mean())


def test_gae_matches_a_hand_computation():
    r = jnp.array([1.0, 0.0, 2.0])
    v = jnp.array([0.5, 0.2, 0.1, 0.3])
    done = jnp.array([False, True, False])
    adv, ret = O.gae(r, v, done, gamma=0.9, lam=0.8)
    d2 = 2.0 + 0.9 * 0.3 - 0.1
    d1 = 0.0 - 0.2  # life ended: no bootstrap
    d0 = 1.0 + 0.9 * 0.2 - 0.5
    expect = np.array([d0 + 0.9 * 0.8 * d1, d1, d2])
    np.testing.assert_allclose(np.asarray(adv), expect, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(np.asarray(ret), expect + np.asarray(v[:-1]), rtol=1e-6, atol=1e-6)


def test_a_layout_that_cannot_host_the_policy_gets_a_bare_policy_sequence(transitions, monkeypatch):
    """Backward dynamics does not start with a given s0: the batch adds an ``s0 ;`` layout for the policy."""
    monkeypatch.setitem(O.LAYOUTS, "backward", "s1 a0 ; s0")
    win, now = transitions
    spec = world.env_spec("Craftax-Classic-Symbolic-v1")
    model = Model(spec, d=32, n_heads=2, layers=1, slots=1, mlp_ratio=2, patch=(4, 9), cell_dim=8,
                  key=jax.random.PRNGKey(2))
    T = win.action.shape[0]
    batch = O.make_batch(("backward",), T, model.n_patches)
    assert [p.name for p in batch.plans] == ["backward", "policy"]
    assert batch.plans[0].readout is None and batch.readout == model.n_patches
    assert len(batch.policy_rows) == T + 1 and batch.policy_rows.min() >= batch.ranges[0][1]
    h = jax.jit(lambda m: O.forward(m, batch, win, now))(model)
    loss, aux = O.actor_critic_loss(model, h[batch.policy_rows, batch.readout], win, win.rint, gamma=0.9, lam=0.9,
                                    clip=0.2, ent_coef=0.01, value_coef=0.5)
    assert np.isfinite(float(loss)) and aux["logits"].shape == (spec.n_actions,)
    # the policy sequence on the current observation sees nothing but it
    now2 = eqx.tree_at(lambda o: o.block, now, (now.block + 1) % 18)
    h2 = jax.jit(lambda m: O.forward(m, batch, win, now2))(model)
    assert not np.allclose(np.asarray(h[batch.policy_rows[-1]]), np.asarray(h2[batch.policy_rows[-1]]))
    np.testing.assert_array_equal(np.asarray(h[batch.policy_rows[:-1]]), np.asarray(h2[batch.policy_rows[:-1]]))
