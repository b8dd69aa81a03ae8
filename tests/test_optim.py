"""The optimizer is ``optax.chain(clip_by_global_norm, adam)`` on the model's parameters, slot by slot."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import life
import optim
import train

CFG = train.Config.of(d_model=16, n_heads=2, layers=2, slots=3, gif_steps=0, learner="window")  # all of it Adam's


@pytest.mark.parametrize("max_norm", [1e6, 0.5])  # never clipped, always clipped
def test_the_update_is_the_optax_chain_it_stands_for(max_norm):
    model = life.new_model(CFG.life, jax.random.PRNGKey(0))
    params = eqx.filter(model, eqx.is_inexact_array)
    lr = CFG.learning.lr
    chain = optax.chain(optax.clip_by_global_norm(max_norm), optax.adam(lr))
    state, opt = chain.init(params), optim.init(model, lr)
    ours, theirs = model, params
    update = eqx.filter_jit(lambda m, g, o: optim.update(m, g, o, lr=lr, max_grad_norm=max_norm))

    @jax.jit  # one program each, not one per op and leaf shape
    def reference(grads, state, params):
        step, state = chain.update(grads, state, params)
        return optax.apply_updates(params, step), state

    noise = jax.jit(lambda i: jax.tree.map(lambda x: jax.random.normal(jax.random.PRNGKey(i), x.shape), params))
    for i in range(3):
        grads = noise(i)
        ours, opt = update(ours, grads, opt)
        theirs, state = reference(grads, state, theirs)
    for a, b in zip(jax.tree.leaves(eqx.filter(ours, eqx.is_inexact_array)), jax.tree.leaves(theirs)):
        # equal within float rounding (XLA fuses the flat vectors' arithmetic differently: a last bit may differ)
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    assert not jnp.allclose(ours.stack.gates, model.stack.gates)  # it moved


def test_gate_lr_multiplies_the_step_of_grown_genes_gates_only():
    """--gate-lr: the gate of a gene grown in this life (its slot's Adam count behind the others') moves that many
    times Adam's step; the born genes' gates and every other weight move as without it. At 1 (the default) the
    update's program is the one without the option."""
    model = life.new_model(CFG.life, jax.random.PRNGKey(0))
    grads = jax.tree.map(lambda x: jax.random.normal(jax.random.PRNGKey(1), x.shape),
                         eqx.filter(model, eqx.is_inexact_array))
    opt = optim.init(model, 1e-3)
    adam = opt.slots[0]
    opt = eqx.tree_at(lambda o: o.slots, opt, (adam._replace(count=jnp.array([5, 0, 5], adam.count.dtype)),
                                               *opt.slots[1:]))  # slot 1: a gene grown 5 steps after birth
    step = eqx.filter_jit(lambda m, g, o, s: optim.update(m, g, o, lr=1e-3, max_grad_norm=100.0, gate_lr=s))
    (plain, _), (fast, _) = step(model, grads, opt, 1.0), step(model, grads, opt, 10.0)
    moved = lambda m: np.asarray(m.stack.gates - model.stack.gates)  # noqa: E731
    np.testing.assert_allclose(moved(fast)[1], 10 * moved(plain)[1], rtol=1e-4)
    np.testing.assert_allclose(moved(fast)[[0, 2]], moved(plain)[[0, 2]], rtol=1e-4, atol=1e-6)
    rest = lambda m: jax.tree.leaves(eqx.filter(eqx.tree_at(lambda x: x.stack.gates, m, None),  # noqa: E731
                                                eqx.is_inexact_array))
    for a, b in zip(rest(plain), rest(fast)):  # another program (gate_lr is static): equal within float rounding
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-8)


def test_the_actor_critic_is_not_adams():
    cfg = train.Config.of(d_model=16, n_heads=2, layers=1, gif_steps=0, learner="stream", ac_hidden=8)
    model = life.new_model(cfg.life, jax.random.PRNGKey(0))
    grads = jax.tree.map(jnp.ones_like, eqx.filter(model, eqx.is_inexact_array))
    new, _ = eqx.filter_jit(optim.update)(model, grads, optim.init(model, 1e-3), lr=1e-3, max_grad_norm=100.0)
    for a, b in zip(jax.tree.leaves(model.ac), jax.tree.leaves(new.ac)):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(model.policy_head.weight, new.policy_head.weight)
