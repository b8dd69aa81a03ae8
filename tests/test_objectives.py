"""Every objective can learn: each overfits a fixed set of real transitions."""


import json

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.flatten_util import ravel_pytree

import curiosity as C
import learner
import life
import objectives as O
import plots
import targets
import train
import world
from model import Model


def fit(model, objectives, win, now, steps=500, lr=3e-3):
    """Adam on the objectives' summed losses over a fixed window; returns each objective's loss curve."""
    T = win.action.shape[0]
    batch = O.make_batch(objectives, T, model.n_patches)

    def by_obj(model):
        seen = O.forward(model, batch, win, now)
        return jnp.stack([targets.target_loss(model, plan, seen, rows, win, O.starts(plan, T))["loss"].mean()
                          for plan, rows in zip(batch.plans, batch.ranges)])

    params, static = eqx.partition(model, eqx.is_inexact_array)
    flat, unravel = ravel_pytree(params)

    def total(flat):  # the summed loss, and each objective's
        losses = by_obj(eqx.combine(unravel(flat), static))
        return losses.sum(), losses
    opt = optax.adam(lr)

    @jax.jit
    def run(flat):
        def body(carry, _):  # one forward and backward a step; the curve is each step's losses before its update
            flat, s = carry
            (_, losses), g = jax.value_and_grad(total, has_aux=True)(flat)
            u, s = opt.update(g, s, flat)
            return (flat + u, s), losses

        return jax.lax.scan(body, (flat, opt.init(flat)), None, length=steps)[1]

    return np.asarray(run(flat))  # [steps, objectives]


def test_every_objective_overfits_real_transitions(transitions):
    """Every objective learns 16 fixed real transitions: its loss falls by 90% (the recall probe, without
    memory, by remembering which old frame goes with which frame now).

    All train together in one model, except latent_forward, whose target is the model's own features:
    the other objectives keep moving those, so it is fitted with its ICM partner latent_inverse alone (and
    disagreement beside them, whose five heads would otherwise crowd the recall probe's 400 steps).
    """
    win, now = transitions
    later = jax.tree.map(lambda x: x[16:], win.obs)  # the recall probe's targets: other real frames
    win = eqx.tree_at(lambda w: (w.recall, w.recall_ok), jax.tree.map(lambda x: x[:16], win),
                      (later, jnp.ones(16, bool)), is_leaf=lambda x: x is None)
    spec = world.env_spec("Craftax-Classic-Symbolic-v1")
    model = Model(spec, d=64, n_heads=4, layers=2, slots=2, mlp_ratio=2, patch=(4, 9), cell_dim=8,
                  key=jax.random.PRNGKey(1), **targets.model_kinds())
    apart = ("latent_inverse", "latent_forward", "disagreement")
    for names in (tuple(n for n in O.LAYOUTS if n not in apart[1:]), apart):
        curves = fit(model, names, win, now, steps=400)
        assert np.all(np.isfinite(curves))
        for i, name in enumerate(names):
            assert curves[-10:, i].mean() < 0.1 * curves[0, i], (name, curves[0, i], curves[-10:, i].mean())


def test_pixel_objectives_overfit_real_frames():
    """With --obs pixels, the CNN eye and its decoder learn 8 real Craftax frames (autoencoder, forward, location,
    RND on the pooled frame); the count bonus's coarse hash tells the frames of a walk apart."""
    from conftest import collect

    win, now = collect("Craftax-Classic-Pixels-v1", 8, seed=0)
    spec = world.env_spec("Craftax-Classic-Pixels-v1")
    model = Model(spec, d=64, n_heads=4, layers=2, slots=2, mlp_ratio=2, patch=(4, 9), cell_dim=8,
                  key=jax.random.PRNGKey(1), **targets.model_kinds())
    names = ("autoencoder", "forward_dynamics", "location", "rnd")
    curves = fit(model, names, win, now, steps=300)
    assert np.all(np.isfinite(curves))
    for i, name in enumerate(names):
        assert curves[-10:, i].mean() < 0.1 * curves[0, i], (name, curves[0, i], curves[-10:, i].mean())
    buckets = jax.vmap(lambda o: C.view_bucket(spec, o))(win.next_obs)
    assert len(set(np.asarray(buckets).tolist())) > 1


def test_a_multi_objective_update_is_the_weighted_sum_of_single_ones(transitions):
    """Layouts of different lengths (padded together) and passes: the gradient of the mix is the weighted sum."""
    win, now = transitions
    win = jax.tree.map(lambda x: x[:8], win)
    cfg = train.Config.of(d_model=32, n_heads=2, layers=1, window=8)
    spec = world.env_spec(cfg.body.world)
    model = Model(spec, d=32, n_heads=2, layers=1, slots=2, mlp_ratio=2, patch=(4, 9), cell_dim=8,
                  key=jax.random.PRNGKey(3), **targets.model_kinds())
    prior = targets.Prior(majority=jnp.array(0), mean_reward=jnp.array(0.0))

    def grad(objectives, weights):
        c = cfg.replace(objective=objectives, weights=weights).life
        g = eqx.filter_jit(eqx.filter_grad(lambda m: life.world_model_loss(m, c, win, now, prior)[0]))(model)
        return ravel_pytree(eqx.filter(g, eqx.is_inexact_array))[0]

    names, weights = ("forward_dynamics", "latent_inverse", "trajectory_reward"), (1.0, 0.5, 2.0)
    mixed = grad(names, weights)
    alone = sum(w * grad((n,), ()) for n, w in zip(names, weights))
    assert float(jnp.linalg.norm(mixed)) > 0
    np.testing.assert_allclose(np.asarray(mixed), np.asarray(alone), rtol=1e-4, atol=1e-6)


def test_gae_matches_a_hand_computation():
    r = jnp.array([1.0, 0.0, 2.0])
    v = jnp.array([0.5, 0.2, 0.1, 0.3])
    done = jnp.array([False, True, False])
    adv, ret = learner.gae(r, v, done, gamma=0.9, lam=0.8)
    d2 = 2.0 + 0.9 * 0.3 - 0.1
    d1 = 0.0 - 0.2  # life ended: no bootstrap
    d0 = 1.0 + 0.9 * 0.2 - 0.5
    expect = np.array([d0 + 0.9 * 0.8 * d1, d1, d2])
    np.testing.assert_allclose(np.asarray(adv), expect, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(np.asarray(ret), expect + np.asarray(v[:-1]), rtol=1e-6, atol=1e-6)


def test_a_layout_that_cannot_host_the_policy_gets_a_bare_policy_sequence(transitions):
    """Backward dynamics does not start with a given s0: the batch adds an ``s0 ;`` layout for the policy."""
    win, now = transitions
    spec = world.env_spec("Craftax-Classic-Symbolic-v1")
    model = Model(spec, d=32, n_heads=2, layers=1, slots=1, mlp_ratio=2, patch=(4, 9), cell_dim=8,
                  key=jax.random.PRNGKey(2), **targets.model_kinds())
    T = win.action.shape[0]
    batch = O.make_batch(("backward_dynamics",), T, model.n_patches)
    assert [p.name for p in batch.plans] == ["backward_dynamics", "policy"]
    assert batch.plans[0].readout is None and batch.readout == model.n_patches
    assert len(batch.policy_rows) == T + 1 and batch.policy_rows.min() >= batch.ranges[0][1]
    h = jax.jit(lambda m: O.forward(m, batch, win, now).h)(model)
    loss, aux = learner.actor_critic_loss(model, h[batch.policy_rows, batch.readout], win, win.rint, gamma=0.9,
                                          lam=0.9, clip=0.2, ent_coef=0.01, value_coef=0.5)
    assert np.isfinite(float(loss)) and aux["logits"].shape == (spec.n_actions,)
    # the policy sequence on the current observation sees nothing but it
    now2 = eqx.tree_at(lambda o: o.block, now, (now.block + 1) % 18)
    h2 = jax.jit(lambda m: O.forward(m, batch, win, now2).h)(model)
    assert not np.allclose(np.asarray(h[batch.policy_rows[-1]]), np.asarray(h2[batch.policy_rows[-1]]))
    np.testing.assert_array_equal(np.asarray(h[batch.policy_rows[:-1]]), np.asarray(h2[batch.policy_rows[:-1]]))


def test_a_new_kind_of_target_is_one_entry_in_the_registry(tmp_path):
    """A toy kind registered here (the energy of the next state, from a head of its own) and a layout that
    predicts it: it trains, and it appears in the losses, the metrics, the summary and the plot."""

    def energy_loss(q):
        pred = jax.vmap(q.model.heads["e"])(q.h[:, 0])[:, 0]
        energy, before = q.state(q.t).status[:, 15], q.state(q.t - 1).status[:, 15]
        err = (pred - energy) ** 2
        return err, 0.5 * err, err, (before - energy) ** 2

    targets.register(targets.Kind("e", ("energy",), False, True, True, loss=energy_loss, head=1, score=targets.Score(
        "energy_squared_error", "as_before", False, "energy: squared error (dashed: as before)", "the energy before")))
    O.LAYOUTS["energy"] = "s0 a0 ; e1"
    try:
        cfg = train.Config.of(objective=("inverse_dynamics", "energy"), d_model=16, n_heads=2, layers=1, steps=200,
                              chunk=100, gif_steps=0, run_dir=str(tmp_path / "toy"))
        summary = train.train(cfg, progress=False)
        fig = summary["prequential"]["energy"]["energy_squared_error"]
        assert fig["baseline_is"] == "the energy before" and np.isfinite(fig["model"]) and fig["as_before"] >= 0
        line = json.loads((tmp_path / "toy" / "metrics.jsonl").read_text().splitlines()[-1])
        assert np.isfinite(line["loss/energy"]) and "energy/energy_squared_error/as_before" in line
        assert "energy: squared error (dashed: as before)" in [sc.title for sc in plots.score_panels(line)]
        assert (tmp_path / "toy" / "curves.png").stat().st_size > 0
    finally:
        del targets.KINDS["e"], O.LAYOUTS["energy"]
