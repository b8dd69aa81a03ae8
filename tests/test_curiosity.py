"""Curiosity that senses no reward: Craftax's reward never reaches the animal (no model, no curiosity, no
learner: a life with it replaced by noise is bit-identical); novelty is higher for what is new; the curiosity
study runs end to end."""

import functools
from functools import partial

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import compare
import compare_curiosity
import curiosity as C
import life
import objectives as O
import targets
import train
import world
from model import Model

TINY = train.Config.of(d_model=16, n_heads=2, layers=1, chunk=50, gif_steps=0, window=4)
NAMES_REWARD = tuple(n for n in O.LAYOUTS if any(s.kind == "r" for s in O.parse(O.LAYOUTS[n])))


@functools.cache
def walk():
    """One real world under random actions: its first state, then 13 steps (each act and the world after
    it), compiled once for every config below."""
    cfg = TINY.replace(policy="random").life
    first = jax.jit(life.new_world, static_argnums=0)(cfg, jax.random.PRNGKey(3))

    @jax.jit
    def step(env_state, key):
        a = life.act(cfg, None, env_state, key)  # a random policy never reads the organism
        return (a, *life.reborn_alone(cfg, a))

    steps, env_state = [], first
    for i in range(13):
        a, obs, env_state = step(env_state, jax.random.PRNGKey(i))
        steps.append((a, obs, env_state))
    return first, steps


def lived_twice(cfg):
    """An organism lives 13 real steps twice from one birth: with Craftax's rewards, and with each replaced by
    noise (``Act.reward`` is the only way Craftax's reward enters a step; the actions the walk takes are the
    same, so what differs is what the organism made of the reward). Returns both (organism, last record)."""
    cfg = cfg.life
    first, steps = walk()
    model = life.new_model(cfg, jax.random.PRNGKey(0))  # op by op: each op compiles once for all configs here
    born = jax.jit(lambda m: life.new_organism(cfg, m, first))(model)
    learn = jax.jit(partial(life.learn, cfg))
    noise = 5.0 * jax.random.normal(jax.random.PRNGKey(9), (len(steps),))
    lives = []
    for noisy in (False, True):
        org = born
        for i, (a, obs, env_state) in enumerate(steps):
            org, rec = learn(org, eqx.tree_at(lambda x: x.reward, a, noise[i]) if noisy else a, obs, env_state)
        lives.append((org, rec))
    return lives


def same(a, b) -> bool:
    la, lb = jax.tree.leaves(eqx.filter(a, eqx.is_array)), jax.tree.leaves(eqx.filter(b, eqx.is_array))
    return len(la) == len(lb) and all(np.array_equal(x, y, equal_nan=True) for x, y in zip(la, lb))


# every curiosity but the oracle control, each with a reward layout (its reward is the animal's own), and the
# three learners; surprise is paid by the error of predicting its own reward, icm beside every reward layout
LIVES = [(n, "stream", ("reward", "inverse_dynamics")) for n in C.CURIOSITIES if not C.CURIOSITIES[n].control]
LIVES = [(n, {"count": "window", "effects+sleep": "body"}.get(n, lr), NAMES_REWARD if n == "icm" else o)
         for n, lr, o in LIVES]


@pytest.mark.parametrize("curiosity, learner, objective", LIVES, ids=[f"{c}-{lr}" for c, lr, _ in LIVES])
def test_craftax_reward_never_reaches_the_animal(curiosity, learner, objective):
    """A life with Craftax's reward replaced by noise is bit-identical, weights, optimiser, traces, tallies and
    all, for every curiosity but the oracle control, with the reward layouts learning (their reward is the
    animal's own) and every learner (the window's, the stream learner apart and through the body)."""
    cfg = TINY.replace(objective=objective, curiosity=curiosity, learner=learner, ac_hidden=8, window=6)
    (org, rec), (org2, rec2) = lived_twice(cfg)
    assert same(org.model, org2.model) and same(org.opt_state, org2.opt_state) and same(org.traces, org2.traces)
    assert same((org.ret, org.ret_moments, org.episodic, org.features, org.window, org.tally),
                (org2.ret, org2.ret_moments, org2.episodic, org2.features, org2.window, org2.tally))
    assert rec.signal == rec2.signal and rec.reward != rec2.reward
    assert rec.losses["reward"] != 0.0 and rec.scores["reward/n"] == 1.0  # the reward layout did learn


def test_the_oracle_control_does_sense_the_reward():
    """The control (the test above can fail): the oracle's life changes when Craftax's rewards do, and its
    signal is Craftax's reward."""
    (org, rec), (org2, rec2) = lived_twice(TINY.replace(objective=("inverse_dynamics", "reward"), curiosity="oracle",
                                                        ac_hidden=8, window=6))
    assert not same(org.model, org2.model) and not same(org.traces, org2.traces)
    assert rec.signal == rec.reward and rec2.signal == rec2.reward


def frames(transitions):
    """Real Classic frames (one random walk): each with its coarse view hash."""
    win, _ = transitions
    spec = world.env_spec("Craftax-Classic-Symbolic-v1")
    obs = win.next_obs
    buckets = np.asarray(jax.vmap(partial(C.view_bucket, spec))(obs))
    return spec, obs, buckets


def test_counts_pay_less_for_a_view_seen_many_times_and_forget_at_death(transitions):
    spec, obs, buckets = frames(transitions)
    new = int(np.flatnonzero(buckets != buckets[0])[0])  # the walk reached another view
    counts = C.CURIOSITIES["count"].memory(16)
    for _ in range(9):
        _, counts = C.count_bonus(counts, jnp.asarray(buckets[0]), jnp.array(False))
    again, counts = C.count_bonus(counts, jnp.asarray(buckets[0]), jnp.array(False))
    fresh, counts = C.count_bonus(counts, jnp.asarray(buckets[new]), jnp.array(True))
    assert np.isclose(again, 1 / np.sqrt(10)) and fresh == 1.0 and float(counts.sum()) == 0.0  # death clears it
    # a cow walking through the view, or hunger, is not a new view; a new tool is
    first = jax.tree.map(lambda x: x[0], obs)
    mob = eqx.tree_at(lambda o: o.mob, first, (first.mob + 1) % (spec.n_mob + 1))
    hungry = eqx.tree_at(lambda o: o.status, first, first.status.at[13].add(-0.3))
    tool = eqx.tree_at(lambda o: o.status, first, first.status.at[6].set(0.1))
    hashed = [int(C.view_bucket(spec, o)) for o in (mob, hungry, tool)]
    assert hashed[:2] == [buckets[0]] * 2 and hashed[2] != buckets[0]


def test_the_elliptical_bonus_pays_less_for_familiar_features(transitions):
    """E3B in a real model's standardised features of real frames: a frame met ten times earns less than
    one never met; a life's end resets the memory."""
    spec, obs, buckets = frames(transitions)
    new = int(np.flatnonzero(buckets != buckets[0])[0])
    model = Model(spec, d=32, n_heads=2, layers=1, slots=1, mlp_ratio=2, patch=(4, 9), cell_dim=8,
                  key=jax.random.PRNGKey(0), **targets.model_kinds())
    batch = O.make_batch(("inverse_dynamics",), 4, model.n_patches)
    win, now = transitions
    small = jax.tree.map(lambda x: x[:4], win)
    stats = C.new_feature_stats(model.n_patches + 1, 32)
    feature = jax.jit(lambda now: O.forward(model, batch, small, now, stats).z[-1, -1] / np.sqrt(32))
    phis = [feature(jax.tree.map(lambda x, i=i: x[i], obs)) for i in (0, new)]
    cinv = C.CURIOSITIES["e3b"].memory(32)
    first, cinv = C.elliptical_bonus(cinv, phis[0], jnp.array(False))
    for _ in range(9):
        again, cinv = C.elliptical_bonus(cinv, phis[0], jnp.array(False))
    fresh, _ = C.elliptical_bonus(cinv, phis[1], jnp.array(False))
    assert again < 0.2 * first and fresh > 2 * again
    _, reset = C.elliptical_bonus(cinv, phis[1], jnp.array(True))
    assert np.allclose(reset, C.CURIOSITIES["e3b"].memory(32))


def test_rnd_error_falls_on_a_state_it_learns_and_stays_high_on_a_new_one(transitions):
    """Random network distillation on real frames: after learning one view, its error there is far below its
    error on a view it never saw (novelty, not noise: the target is a fixed function of the state)."""
    spec, obs, buckets = frames(transitions)
    new = int(np.flatnonzero(buckets != buckets[0])[-1])
    model = Model(spec, d=32, n_heads=2, layers=1, slots=1, mlp_ratio=2, patch=(4, 9), cell_dim=8,
                  key=jax.random.PRNGKey(0), **targets.model_kinds())
    batch = O.make_batch(("rnd",), 4, model.n_patches)
    win, now = transitions
    one = jax.tree.map(lambda x: jnp.repeat(x[:1], 4, 0), win)  # the same transition four times
    other = jax.tree.map(lambda x: jnp.repeat(x[new:new + 1], 4, 0), win)
    plan, rows = batch.plans[0], batch.ranges[0]

    def err(model, w):
        seen = O.forward(model, batch, w, now)
        return targets.target_loss(model, plan, seen, rows, w, O.starts(plan, 4))["loss"].mean()

    opt = optax.adam(3e-3)
    params, static = eqx.partition(model, eqx.is_inexact_array)

    @jax.jit
    def fit(params):
        def body(carry, _):
            p, s = carry
            g = jax.grad(lambda p: err(eqx.combine(p, static), one))(p)
            u, s = opt.update(g, s, p)
            return (optax.apply_updates(p, u), s), None

        return jax.lax.scan(body, (params, opt.init(params)), None, length=150)[0][0]

    fitted = eqx.combine(fit(params), static)
    before = float(err(model, one))
    assert float(err(fitted, one)) < 0.1 * before
    assert float(err(fitted, other)) > 5 * float(err(fitted, one))


def test_a_curiosity_brings_the_objectives_it_needs_and_bad_arms_are_refused(tmp_path):
    icm = train.Config.of(curiosity="icm", weights=(2.0,)).learning
    assert icm.objectives == ("inverse_dynamics", "latent_inverse", "latent_forward")
    assert icm.loss_weights == (2.0, 1.0, 1.0) and icm.curious == "latent_forward"
    assert train.Config.of(curiosity="rnd").learning.objectives == ("inverse_dynamics", "rnd")
    assert train.Config.of(curiosity="count").learning.objectives == ("inverse_dynamics",)
    assert train.Config.of(curiosity="icm").replace(window=8).life.mind.bptt == 7  # sizes are worked out afresh
    with pytest.raises(ValueError, match="unknown arm 'nope'"):
        compare.main(compare.Compare(what="curiosity", arms=("random", "nope"),
                                     base=TINY.replace(run_dir=str(tmp_path))))
    assert all(c.help and f"'{name}' = {c.help}" in C.help_text() for name, c in C.CURIOSITIES.items())
    with pytest.raises(ValueError, match="--long >= 0"):
        compare.main(compare.Compare(what="curiosity", arms=("random",), long=-1,
                                     base=TINY.replace(run_dir=str(tmp_path))))


def test_the_curiosity_study_screens_then_lives_the_best_long(tmp_path):
    """compare.py curiosity on a tiny budget: the screen, the long stage of the random policy and the default,
    the tables (score +- s.e., distance from random, sleep, achievements, the action mix) and the curves. (The
    default arm shares its compiled chunks with test_population's tiny population, not with test_compare,
    whose rows use the surprise curiosity; the finalists' choice is tested below.)"""
    from test_population import TINY as BODY

    c = compare.Compare(what="curiosity", long=400, seeds=4, arms=("random", "effects"), finalists=1, fresh=False,
                        base=BODY.replace(steps=200, run_dir=str(tmp_path)))
    text = compare.main(c).read_text()
    stages = text.split("## ")[1:]
    assert [s.split(":")[0] for s in stages] == ["Screen", "Long lives"]
    rows = lambda s: [ln.split("|")[1].strip() for ln in s.splitlines() if ln.startswith("| ") and "---" not in ln]  # noqa: E731
    screen = rows(stages[0].split("Each achievement")[0])
    assert screen[1:] == ["random policy", "effects (default)"]
    assert rows(stages[1].split("Each achievement")[0])[1:] == screen[1:]
    assert "± " in text and "| – |" in text  # standard errors; the random policy is not compared with itself
    assert "steps asleep %" in text and "The action mix" in text and "| noop |" in text
    assert "Crafter score %, last " in text  # skill by age: the score of the life's last span, beside the whole
    assert (tmp_path / "curiosity-200.png").stat().st_size > 0 and (tmp_path / "curiosity-400.png").exists()
    assert (tmp_path / "400" / "effects-default" / "summary.json").exists()


def test_the_long_stage_takes_the_random_policy_the_oracle_the_default_and_the_best_others():
    c = compare.Compare(what="curiosity", finalists=3, base=TINY)
    screen = {a: [{"crafter_score": x}, {"crafter_score": x + 0.1}]
              for a, x in [("random", 1.7), ("oracle", 2.5), ("effects", 1.0), ("count", 1.2), ("rnd", 1.5),
                           ("e3b", 0.1), ("oracle-window", 3.0)]}
    assert compare_curiosity.finalists(c, screen) == ["random", "oracle", "effects", "rnd", "count"]


def test_disagreement_is_the_ensembles_spread_and_each_member_learns_on_its_own_half(transitions):
    """``targets.disagreement_loss``: the surprise is the variance of the members' predictions (0 when they
    agree), computed without the outcome; each member's loss reaches only its own bootstrap draw of the
    transitions (about half, a different half per member, the same draw for the same transition)."""
    win, _ = transitions
    spec = world.env_spec("Craftax-Classic-Symbolic-v1")
    model = Model(spec, d=16, n_heads=2, layers=1, slots=1, mlp_ratio=1, patch=(4, 9), cell_dim=4,
                  key=jax.random.PRNGKey(0), **targets.model_kinds())
    E, K = targets.ENSEMBLE, model.heads["d"].weight.shape[0] // targets.ENSEMBLE
    starts = np.arange(24)
    h = jax.random.normal(jax.random.PRNGKey(1), (len(starts), 1, 16))
    prior = targets.Prior(majority=jnp.zeros((), jnp.int32), mean_reward=jnp.zeros(()))

    def query(m, hh=h, st=starts):
        return targets.Query(m, hh, 1, (("s", 0), ("a", 0)), win, st, jnp.zeros((1, 1, 16)), prior)

    loss, spread, mse, zero = targets.disagreement_loss(query(model))
    pred = jax.vmap(model.heads["d"])(h[:, 0]).reshape(len(starts), E, K)
    np.testing.assert_allclose(spread, np.var(np.asarray(pred), 1).sum(-1), rtol=1e-4)
    assert np.all(np.asarray(spread) > 0) and np.all(np.asarray(mse) < np.asarray(zero) * 100)
    agree = eqx.tree_at(lambda m: (m.heads["d"].weight, m.heads["d"].bias), model,
                        (jnp.tile(model.heads["d"].weight[:K], (E, 1)), jnp.tile(model.heads["d"].bias[:K], E)))
    np.testing.assert_allclose(targets.disagreement_loss(query(agree))[1], 0.0, atol=1e-6)
    # whose loss reaches which member
    grads = jax.jacrev(lambda w: targets.disagreement_loss(query(eqx.tree_at(lambda m: m.heads["d"].weight, model,
                                                                             w)))[0])(model.heads["d"].weight)
    reached = np.abs(np.asarray(grads)).reshape(len(starts), E, K, -1).sum((2, 3)) > 0  # [instance, member]
    assert 0.25 < reached.mean() < 0.75 and len({tuple(r) for r in reached.T}) == E  # halves, each its own
    # the draw belongs to the transition, not to its place in the window: the same transitions one row later
    g2 = jax.jacrev(lambda w: targets.disagreement_loss(query(eqx.tree_at(lambda m: m.heads["d"].weight, model, w),
                                                                  h[1:], starts[1:]))[0])(model.heads["d"].weight)
    assert np.array_equal(np.abs(np.asarray(g2)).reshape(len(starts) - 1, E, K, -1).sum((2, 3)) > 0, reached[1:])


def test_every_curiosity_on_pixels_traces_or_is_refused_in_one_line():
    """Curiosity x --obs, the pixel column (the symbolic one: every curiosity lives above): each curiosity is
    refused by ``train.validate`` in one line that names it and the pixels, or one whole step of its life
    (birth, act, learn) traces (``jax.eval_shape``: every shape and every field it reads, nothing compiled)."""
    obs = "pixels"
    for name, c in C.CURIOSITIES.items():
        cfg = TINY.replace(obs=obs, curiosity=name, ac_hidden=8)
        try:
            train.validate(cfg)
        except ValueError as e:
            assert obs == "pixels" and c.symbolic and f"--curiosity {name}" in str(e) and "pixels" in str(e), e
            assert "\n" not in str(e)
            continue
        assert not (obs == "pixels" and c.symbolic), f"{name} reads named status entries, yet passed on pixels"
        lc = cfg.life

        def step(key):
            org = life.new_organism(lc, life.new_model(lc, key), life.new_world(lc, key))
            a = life.act(lc, org, life.new_world(lc, key), key)
            obs_, env_state = life.reborn_alone(lc, a)
            return life.learn(lc, org, a, obs_, env_state)

        org, rec = jax.eval_shape(step, jax.random.PRNGKey(0))
        assert rec.signal.shape == () and org.window.rint.shape == (lc.mind.window,)
