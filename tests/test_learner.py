"""The learner: stream AC(lambda) against a hand computation, steps the animal did not choose, effect novelty."""

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import curiosity as C
import learner
import objectives as O
import targets
import world
from model import ActorCritic

GAMMA, LAM, LR, KAPPA_PI, KAPPA_V, ENT, ADAM_LR = 0.9, 0.8, 0.5, 3.0, 2.0, 0.1, 0.05


def linear_ac(n: int, actions: int) -> ActorCritic:
    """An actor and a critic with no hidden layer: logits = W s + b, V = w s + c, all weights random."""
    ac = ActorCritic(n, actions, hidden=1, depth=0, key=jax.random.PRNGKey(0))
    k1, k2 = jax.random.split(jax.random.PRNGKey(1))
    return eqx.tree_at(lambda a: (a.actor.layers[0].weight, a.critic.layers[0].weight), ac,
                       (jax.random.normal(k1, (actions, n)), jax.random.normal(k2, (1, n))))


def by_hand(ac: ActorCritic, chain, adam: bool = False):
    """The same steps in numpy, from the formulas: z <- gamma lam z + grad; delta; alpha' = alpha /
    max(1, alpha kappa max(|delta|, 1) |z|_1); w <- w + alpha' delta z; traces zeroed at a life's end; the
    actor's gradient is that of log pi(a|s) + c sign(delta) H(pi(s)), and nothing when the action was not chosen.
    ``adam``: instead u = clip(delta, +-1) z, m <- b1 m + (1 - b1) u, v <- b2 v + (1 - b2) u^2,
    w <- w + lr (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps), the moments kept at a life's end."""
    W, b = np.array(ac.actor.layers[0].weight, np.float64), np.array(ac.actor.layers[0].bias, np.float64)
    w, c = np.array(ac.critic.layers[0].weight[0], np.float64), float(ac.critic.layers[0].bias[0])
    zW, zb, zw, zc = np.zeros_like(W), np.zeros_like(b), np.zeros_like(w), 0.0
    (b1, b2), moments = learner.ADAM_BETAS, [[np.zeros_like(x), np.zeros_like(x)] for x in (W, b, w, np.zeros(1))]

    def adam_step(t, i, z, delta):
        m, v = moments[i]
        u = np.clip(delta, -1.0, 1.0) * z
        m, v = b1 * m + (1 - b1) * u, b2 * v + (1 - b2) * u * u
        moments[i] = [m, v]
        return ADAM_LR * (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + learner.ADAM_EPS)

    for t, (s, a, r, s2, done, chosen) in enumerate(chain, 1):
        delta = r + GAMMA * (1 - done) * (w @ s2 + c) - (w @ s + c)
        zw, zc = GAMMA * LAM * zw + s, GAMMA * LAM * zc + 1.0
        logits = W @ s + b
        p = np.exp(logits - logits.max())
        p /= p.sum()
        logp = np.log(p)
        # d/dlogits of log p[a] is onehot - p; of H = -sum p log p it is -p * (log p + H)
        g = np.eye(len(p))[a] - p + ENT * np.sign(delta) * (-p * (logp - np.sum(p * logp)))
        g = g * chosen
        zW, zb = GAMMA * LAM * zW + np.outer(g, s), GAMMA * LAM * zb + g
        if adam:
            W, b, w, c = (x + adam_step(t, i, z, delta) for i, (x, z) in enumerate(((W, zW), (b, zb), (w, zw),
                                                                                    (c, np.array([zc])))))
            c = float(c[0])
        for kappa, zs in ((KAPPA_PI, (zW, zb)), (KAPPA_V, (zw, np.array([zc])))) if not adam else ():
            norm = sum(np.abs(z).sum() for z in zs)
            step = LR / max(1.0, LR * kappa * max(abs(delta), 1.0) * norm)
            if kappa == KAPPA_PI:
                W, b = W + step * delta * zW, b + step * delta * zb
            else:
                w, c = w + step * delta * zw, c + step * delta * zc
        if done:
            zW, zb, zw, zc = 0 * zW, 0 * zb, 0 * zw, 0.0
    return W, b, w, c


@pytest.mark.parametrize("adam", [False, True], ids=["obgd", "adam"])
def test_stream_ac_matches_a_hand_computation_on_a_tiny_chain(adam):
    """Five steps of a 4-feature, 3-action chain (a reward, a life's end, an asleep step), against numpy: the
    ObGD step and Adam's (--ac-step adam)."""
    rng = np.random.default_rng(0)
    states = rng.normal(size=(6, 4))
    chain = [(states[t], t % 3, [0.0, 1.0, 0.0, -0.5, 2.0][t], states[t + 1], t == 2, t != 3) for t in range(5)]
    ac = linear_ac(4, 3)
    traces = learner.zeros_like(ac, adam)
    step = jax.jit(lambda ac, z, s, a, r, s2, d, ch: learner.update(
        ac, z, s, s2, a, r, d, ch, gamma=GAMMA, lam=LAM, lr=LR, kappa_actor=KAPPA_PI, kappa_critic=KAPPA_V,
        ent_coef=ENT, adam_lr=ADAM_LR))
    for s, a, r, s2, done, chosen in chain:
        ac, traces, _ = step(ac, traces, jnp.asarray(s, jnp.float32), jnp.asarray(a), jnp.asarray(r, jnp.float32),
                             jnp.asarray(s2, jnp.float32), jnp.asarray(done), jnp.asarray(chosen))
    W, b, w, c = by_hand(linear_ac(4, 3), chain, adam)
    np.testing.assert_allclose(ac.actor.layers[0].weight, W, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(ac.actor.layers[0].bias, b, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(ac.critic.layers[0].weight[0], w, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(ac.critic.layers[0].bias[0], c, rtol=1e-4, atol=1e-5)
    assert not np.allclose(W, np.array(linear_ac(4, 3).actor.layers[0].weight))  # it learned


def test_a_step_the_game_overrode_reaches_no_policy_gradient_and_no_action_target(transitions):
    """Asleep, Craftax steps noop whatever was chosen: the actor's trace only decays (from an empty trace, the
    actor stays as it was while the critic learns), the window learner's policy gradient is zero, and no
    layout predicts that action."""
    ac, s, s2 = linear_ac(4, 3), jnp.ones(4), jnp.zeros(4)
    new, traces, u = learner.update(ac, learner.zeros_like(ac), s, s2, jnp.asarray(1), jnp.asarray(1.0),
                                    jnp.asarray(False), jnp.asarray(False), gamma=GAMMA, lam=LAM, lr=LR,
                                    kappa_actor=KAPPA_PI, kappa_critic=KAPPA_V, ent_coef=ENT)
    assert float(u.delta) != 0
    for x, y in zip(jax.tree.leaves(new.actor), jax.tree.leaves(ac.actor)):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(new.critic.layers[0].weight, ac.critic.layers[0].weight)
    assert all(float(jnp.abs(z).sum()) == 0 for z in jax.tree.leaves(traces.actor))

    win, now = transitions
    win = jax.tree.map(lambda x: x[:4], win)
    asleep = eqx.tree_at(lambda w: w.chosen, win, jnp.array([True, False, True, False]), is_leaf=lambda x: x is None)
    for name in ("inverse_dynamics", "trajectory"):  # an action target at the asleep step: the instance is out
        plan = O.make_plan(name, O.LAYOUTS[name], 2)
        st = O.starts(plan, 4)
        ok, ok_asleep = (np.asarray(O.instance_valid(plan, w, st)) for w in (win, asleep))
        covers = [any(not asleep.chosen[s + t.time] for t, _ in plan.targets if t.kind == "a") for s in st]
        assert list(ok_asleep) == [o and not cov for o, cov in zip(ok, covers)] and any(covers)
    forward = O.make_plan("forward_dynamics", O.LAYOUTS["forward_dynamics"], 2)  # a given action still counts
    assert list(np.asarray(O.instance_valid(forward, asleep, O.starts(forward, 4)))) == \
        list(np.asarray(O.instance_valid(forward, win, O.starts(forward, 4))))

    class Heads(eqx.Module):  # the window learner's heads, on fixed features
        policy_head: eqx.nn.Linear
        value_head: eqx.nn.Linear

    heads = Heads(eqx.nn.Linear(8, 17, key=jax.random.PRNGKey(0)),
                  eqx.nn.Linear(8, "scalar", key=jax.random.PRNGKey(1)))
    h = jax.random.normal(jax.random.PRNGKey(2), (5, 8))
    rint = jnp.array([1.0, -2.0, 0.5, 3.0])
    never = eqx.tree_at(lambda w: w.chosen, win, jnp.zeros(4, bool), is_leaf=lambda x: x is None)

    def policy_grad(w):
        loss = lambda m: learner.actor_critic_loss(m, h, w, rint, gamma=0.9, lam=0.9, clip=0.2, ent_coef=0.0,  # noqa: E731
                                                   value_coef=0.5)[0]
        return jax.grad(loss)(heads).policy_head.weight

    assert float(jnp.abs(policy_grad(never)).sum()) == 0.0 and float(jnp.abs(policy_grad(win)).sum()) > 0


def test_effect_novelty_pays_less_for_a_familiar_effect_nothing_for_no_effect_and_forgets_at_death(transitions):
    win, _ = transitions
    spec = world.env_spec("Craftax-Classic-Symbolic-v1")
    before = jax.tree.map(lambda x: x[0], win.obs)
    wood = eqx.tree_at(lambda o: o.status, before, before.status.at[0].add(0.1))  # one more wood
    drink = eqx.tree_at(lambda o: o.status, before, before.status.at[14].add(0.1))  # drank
    bucket, changed = C.effect_bucket(spec, before, wood)
    assert bool(changed) and int(C.effect_bucket(spec, before, drink)[0]) != int(bucket)
    still, nothing = C.effect_bucket(spec, before, before)
    counts = C.CURIOSITIES["effects"].memory(16)
    pays = []
    for _ in range(4):
        bonus, counts = C.effect_bonus(counts, bucket, changed, jnp.asarray(False))
        pays.append(float(bonus))
    np.testing.assert_allclose(pays, 1 / np.sqrt([1, 2, 3, 4]), rtol=1e-6)  # the familiar pays less and less
    new, counts = C.effect_bonus(counts, *C.effect_bucket(spec, before, drink), jnp.asarray(False))
    idle, counts = C.effect_bonus(counts, still, nothing, jnp.asarray(True))
    assert float(new) == 1.0 and not bool(nothing) and float(idle) == 0.0 and float(counts.sum()) == 0.0
    # effects+sleep: waking up (the status value that says asleep falls) is an effect, a different one from
    # falling asleep; plain effects does not see it
    asleep = eqx.tree_at(lambda o: o.status, before, before.status.at[spec.sleeping].set(1.0))
    woke, changed = C.effect_bucket(spec, asleep, before, sleep=True)
    fell, changed2 = C.effect_bucket(spec, before, asleep, sleep=True)
    assert bool(changed) and bool(changed2) and int(woke) != int(fell)
    assert not bool(C.effect_bucket(spec, asleep, before)[1])


def test_changes_hash_every_cell_and_status_entry_that_changed_none_named(transitions):
    """--curiosity changes: no change pays nothing; a cell's new block, a mob, any status entry (one effects
    does not read, too) each make a change of their own; the same change hashes the same; counted like effects."""
    win, _ = transitions
    spec = world.env_spec("Craftax-Classic-Symbolic-v1")
    before = jax.tree.map(lambda x: x[0], win.obs)
    assert not bool(C.change_bucket(spec, before, before)[1])
    table = eqx.tree_at(lambda o: o.block, before, before.block.at[3, 4].set(before.block[3, 4] % 5 + 1))
    other = eqx.tree_at(lambda o: o.block, before, before.block.at[3, 4].set(before.block[3, 4] % 5 + 2))
    cow = eqx.tree_at(lambda o: o.mob, before, before.mob.at[1, 1].set((before.mob[1, 1] + 1) % (spec.n_mob + 1)))
    last = spec.n_status - 1  # past the inventory and the vitals: an entry effect novelty does not read
    turned = eqx.tree_at(lambda o: o.status, before, before.status.at[last].add(0.5))
    buckets = []
    for after in (table, other, cow, turned):
        bucket, changed = C.change_bucket(spec, before, after)
        assert bool(changed)
        buckets.append(int(bucket))
    assert len(set(buckets)) == 4
    assert int(C.change_bucket(spec, before, table)[0]) == buckets[0]
    assert not bool(C.effect_bucket(spec, before, turned)[1])
    signal, counts, row = C.changes_signal(C.Step(spec=spec, win=jax.tree.map(lambda x: x[-1:], win),
                                                  surprise=jnp.zeros(1), ok=jnp.ones(1, bool),
                                                  last_surprise=jnp.zeros(2), episodic=C.counts(16),
                                                  phi=jnp.zeros(16)))
    bucket, changed = C.change_bucket(spec, jax.tree.map(lambda x: x[-1], win.obs),
                                      jax.tree.map(lambda x: x[-1], win.next_obs))
    assert row == -1 and float(signal) == float(changed) and float(counts.sum()) == float(changed) * \
        (1 - float(win.done[-1]))



def test_changes_world_sees_a_scroll_as_no_change_and_the_same_deed_anywhere_as_one(transitions):
    """--curiosity changes-world: a view scrolled by one cell (any of the four moves) and nothing else is no
    change, though every cell differs where it is seen; a table put in front of the animal is the same change
    whether it stood still or moved; on real transitions it finds fewer kinds of change than plain changes."""
    win, _ = transitions
    spec = world.env_spec("Craftax-Classic-Symbolic-v1")
    before = jax.tree.map(lambda x: x[0], win.obs)

    def scrolled(o, dr, dc):  # the animal moved by (dr, dc): new ground (block 1) comes into view at the far edge
        def one(x):
            x = jnp.roll(x, (-dr, -dc), (0, 1))
            if dr:
                x = x.at[-1 if dr > 0 else 0].set(1)
            if dc:
                x = x.at[:, -1 if dc > 0 else 0].set(1)
            return x
        return eqx.tree_at(lambda o: (o.block, o.item, o.mob), o, (one(o.block), one(o.item), one(o.mob)))

    put = lambda o: eqx.tree_at(lambda o: o.block, o, o.block.at[3, 5].set(o.block[3, 5] % 5 + 1))  # noqa: E731
    for dr, dc in C.SHIFTS[1:]:
        after = scrolled(before, dr, dc)
        assert bool(C.change_bucket(spec, before, after)[1])  # seen where it is seen: everything changed
        assert not bool(C.change_bucket(spec, before, after, aligned=True)[1]), (dr, dc)
        moved_put = C.change_bucket(spec, before, put(after), aligned=True)
        assert bool(moved_put[1]) and int(moved_put[0]) == int(C.change_bucket(spec, before, put(before), True)[0])
    kinds = lambda aligned: len({int(C.change_bucket(spec, jax.tree.map(lambda x: x[t], win.obs),  # noqa: E731
                                                     jax.tree.map(lambda x: x[t], win.next_obs), aligned)[0])
                                 for t in range(win.done.shape[0])})
    assert kinds(True) < kinds(False)  # each move of plain changes is a change never seen before
    assert C.CURIOSITIES["changes-world"].symbolic  # refused on pixels, in one line (test_curiosity)

def test_mix_pays_what_effects_pays_at_weights_zero_and_its_weights_price_sleep_and_new_views(transitions):
    """--curiosity mix: with both weights 0 its reward over 32 real transitions is exactly effect novelty's;
    with weights (the organism's instincts, data to the step) falling asleep and waking up each pay their
    weight / sqrt(times this episode), and a new view pays its weight more than a familiar one."""
    import instincts

    win, _ = transitions
    spec = world.env_spec("Craftax-Classic-Symbolic-v1")

    def weights(sleep, count):
        return instincts.Instincts(**{n: jnp.asarray(v, jnp.float32) for n, v in zip(
            instincts.NAMES, [1e-3, 1.0, 0.99, 0.8, 1.5, sleep, count])})

    def pay(name, w, inst, memory):
        step = C.Step(spec=spec, win=w, surprise=jnp.zeros(1), ok=jnp.ones(1, bool), last_surprise=jnp.zeros(2),
                      episodic=memory, phi=jnp.zeros(4), instincts=inst)
        signal, memory, row = C.CURIOSITIES[name].signal(step)
        assert row == -1
        return float(signal), memory

    def rows(i):
        return jax.tree.map(lambda x: x[i:i + 1], win)

    mems = {n: C.CURIOSITIES[n].memory(4) for n in ("effects", "mix")}
    for i in range(win.action.shape[0]):
        (e, mems["effects"]), (m, mems["mix"]) = (pay(n, rows(i), weights(0.0, 0.0), mems[n]) for n in mems)
        assert e == m
    before = jax.tree.map(lambda x: x[0], win.obs)
    asleep = eqx.tree_at(lambda o: o.status, before, before.status.at[spec.sleeping].set(1.0))

    def one(b, a):  # a one-step window from state b to state a, the life going on
        return eqx.tree_at(lambda w: (w.obs, w.next_obs, w.done), rows(0),
                           (jax.tree.map(lambda x: x[None], b), jax.tree.map(lambda x: x[None], a), jnp.zeros(1, bool)))

    memory, got = C.CURIOSITIES["mix"].memory(4), []
    for b, a in ((before, asleep), (asleep, before), (before, asleep), (asleep, before)):
        e, _ = pay("effects", one(b, a), weights(0.0, 0.0), C.CURIOSITIES["effects"].memory(4))
        m, memory = pay("mix", one(b, a), weights(0.5, 0.0), memory)
        got.append(m - e)  # what sleeping earned beside the effects
    np.testing.assert_allclose(got, 0.5 / np.sqrt([1, 1, 2, 2]), rtol=1e-6)  # fell, woke, fell again, woke again
    memory, views = C.CURIOSITIES["mix"].memory(4), []
    for _ in range(3):
        m, memory = pay("mix", one(before, before), weights(0.0, 1.0), memory)  # nothing changed: no effect
        views.append(m)
    np.testing.assert_allclose(views, 1 / np.sqrt([1, 2, 3]), rtol=1e-6)  # the same view, less each time
    done = eqx.tree_at(lambda w: w.done, one(before, before), jnp.ones(1, bool))
    _, memory = pay("mix", done, weights(0.0, 1.0), memory)
    assert float(memory.sum()) == 0.0  # a life's end forgets every count

def test_an_entropy_target_moves_the_coefficient_towards_it_and_the_life_carries_it():
    """--entropy-target: the coefficient grows while the policy is more certain than the target, shrinks
    while it is less, never changes sign or leaves its range; in a real life it is carried, used and logged
    (the two lives share one compiled step: the target is the organism's instinct, data to the step)."""
    from test_curiosity import TINY, lived_twice

    c = jnp.asarray(0.01)
    up, down = (learner.adapt_entropy_coef(c, jnp.asarray(h), 1.5) for h in (0.5, 2.5))
    assert float(down) < 0.01 < float(up) and np.isclose(float(up) * float(down), 0.01**2)
    lo, hi = learner.ENTROPY_COEF_RANGE
    assert np.isclose(float(learner.adapt_entropy_coef(jnp.asarray(hi), jnp.asarray(0.0), 2.0)), hi, rtol=1e-6)
    assert np.isclose(float(learner.adapt_entropy_coef(jnp.asarray(lo), jnp.asarray(2.8), 0.1)), lo, rtol=1e-6)
    (org, rec), _ = lived_twice(TINY.replace(entropy_target=1.0, ac_hidden=8))  # a new policy is near uniform
    assert 0 < float(org.ent_coef) < 0.01 and float(rec.ent_coef) == float(org.ent_coef)
    (fixed, rec), _ = lived_twice(TINY.replace(ac_hidden=8, entropy_target=0.0))
    assert float(fixed.ent_coef) == float(rec.ent_coef) == np.float32(0.01)  # a target of 0: the coefficient stays


# ----------------------------------------------------------------------------- stream AC(lambda) through the body


def tiny_body(memory=0, think=0, slots=2):
    from model import Model

    return Model(world.env_spec("Craftax-Classic-Symbolic-v1"), d=16, n_heads=2, layers=1, slots=slots, mlp_ratio=1,
                 patch=(4, 9), cell_dim=4, key=jax.random.PRNGKey(3), memory=memory, think=think,
                 **targets.model_kinds())


def test_the_readout_through_the_body_is_the_forward_pass_own_policy_output(transitions):
    """``objectives.readout`` (the two short sequences the learner through the body differentiates) gives the
    output ``forward`` gives at the policy's rows, for the newest state and now: plain, with memory tokens
    and with recurrent thoughts."""
    win, now = transitions
    T = 4
    win = jax.tree.map(lambda x: x[:T], win)
    for memory, think, recurrent in ((0, 0, False), (2, 2, True)):
        model = tiny_body(memory, think)
        batch = O.make_batch(("inverse_dynamics", "forward_dynamics"), T, 2, memory=memory, think=think,
                             recurrent=recurrent)
        rows = jax.random.normal(jax.random.PRNGKey(4), (T + 1, memory, 16)) if memory else None
        seen = O.forward(model, batch, win, now, None, rows)
        want = seen.h[batch.policy_rows[-2:], batch.readout]
        states = jax.tree.map(lambda w, n: jnp.stack([w[-1], n]), win.obs, now)
        got = O.readout(model, batch, states, None if rows is None else rows[-2:])
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_stream_ac_through_the_body_matches_a_step_by_step_computation(transitions):
    """Three steps of ``learner.body_update`` (a reward, an overridden action, a life's end) against the
    formulas computed leaf by leaf with ``jax.grad`` on the model itself: z <- gamma lam z + grad; the ObGD
    step of each trace with its own kappa; the change w + step delta z on every weight, genes and embeddings
    included; traces zeroed at the end. The readout is a plain differentiable function of the model here."""
    import optim

    model = tiny_body()
    win, now = transitions
    batch = O.make_batch(("inverse_dynamics",), 4, 2)
    obs = jax.tree.map(lambda x: x[:4], win.obs)

    def readout_at(t):
        states = jax.tree.map(lambda x: x[t:t + 2], obs)
        return lambda m: O.readout(m, batch, states)

    params, static = eqx.partition(model, eqx.is_inexact_array)

    def head(p, t, what, a=0):
        m = eqx.combine(p, static)
        h = readout_at(t)(m)
        if what == "v":
            return m.value_head(h[0])
        logp = jax.nn.log_softmax(m.policy_head(h[0]))
        return logp[a] if what == "logp" else -jnp.sum(jnp.exp(logp) * logp)

    steps = [(0, 1, 0.5, False, True), (1, 2, -1.0, False, False), (2, 3, 2.0, True, True)]  # t, a, r, done, chosen
    traces = learner.body_traces(model)
    zeros = jax.tree.map(jnp.zeros_like, params)
    z_pi, z_v = zeros, zeros
    m_body, m_hand = model, params
    for t, a, r, done, chosen in steps:
        change, traces, u, _ = learner.body_update(
            m_body, traces, readout_at(t), jnp.asarray(a), jnp.asarray(r), jnp.asarray(done), jnp.asarray(chosen),
            gamma=GAMMA, lam=LAM, lr=LR, kappa_actor=KAPPA_PI, kappa_critic=KAPPA_V, ent_coef=ENT)
        trunk, slots, rebuild = optim.flatten(m_body)
        m_body = rebuild(trunk + change[0], slots + change[1])
        # by hand, leaf by leaf
        v, v_next = head(m_hand, t, "v"), eqx.combine(m_hand, static).value_head(readout_at(t)(
            eqx.combine(m_hand, static))[1])
        delta = r + GAMMA * (1 - done) * v_next - v
        g_v = jax.grad(head)(m_hand, t, "v")
        g_pi = jax.tree.map(lambda x, y: chosen * (x + ENT * jnp.sign(delta) * y), jax.grad(head)(m_hand, t, "logp", a),
                            jax.grad(head)(m_hand, t, "h"))
        z_v = jax.tree.map(lambda z, g: GAMMA * LAM * z + g, z_v, g_v)
        z_pi = jax.tree.map(lambda z, g: GAMMA * LAM * z + g, z_pi, g_pi)
        new = m_hand
        for z, kappa in ((z_pi, KAPPA_PI), (z_v, KAPPA_V)):
            norm = sum(float(jnp.abs(x).sum()) for x in jax.tree.leaves(z))
            step = LR / max(1.0, LR * kappa * max(abs(float(delta)), 1.0) * norm)
            new = jax.tree.map(lambda w, z_: w + step * delta * z_, new, z)
        m_hand = new
        np.testing.assert_allclose(float(u.delta), float(delta), rtol=1e-4, atol=1e-6)
        if done:
            z_pi, z_v = zeros, zeros
    got, want = optim.flatten(m_body), optim.flatten(eqx.combine(m_hand, static))
    for x, y in zip(got[:2], want[:2]):
        np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-6)
    moved = optim.flatten(model)
    assert float(jnp.abs(got[1] - moved[1]).sum()) > 0 and float(jnp.abs(got[0] - moved[0]).sum()) > 0  # genes too
    emptied = [x for z in (traces.actor, traces.critic) for x in (z.trunk, z.slots)]
    assert all(float(jnp.abs(x).sum()) == 0 for x in emptied)  # zeroed at the life's end


def test_asleep_the_action_stored_is_the_noop_that_ran_not_the_one_sampled():
    """Craftax steps noop while the player sleeps: ``life.act`` reports that action (what the window stores,
    what the layouts learn from and the action mix counts), with ``chosen`` False; awake, the sampled one."""
    import dataclasses

    import life
    import train

    cfg = train.Config()
    cfg = dataclasses.replace(cfg, learning=dataclasses.replace(cfg.learning, policy="random")).life
    env, params = world.make_env(cfg.body.world)
    state = world.reset(env, params, jax.random.PRNGKey(0))[1]
    asleep = state.replace(is_sleeping=jnp.asarray(True))
    keys = jax.random.split(jax.random.PRNGKey(1), 16)
    act = jax.jit(jax.vmap(lambda s, k: life.act(cfg, None, s, k), in_axes=(None, 0)))
    awake, slept = act(state, keys), act(asleep, keys)
    assert np.all(np.asarray(slept.action) == world.NOOP) and not np.any(np.asarray(slept.chosen))
    assert len(set(np.asarray(awake.action).tolist())) > 1 and np.all(np.asarray(awake.chosen))


def fresh(n, m):
    """An empty flat trace: a trunk of n weights, two gene slots of m."""
    return learner.Trace(jnp.zeros(n), jnp.zeros((2, m)), jnp.zeros(n), jnp.zeros((2, m)), jnp.zeros(()),
                         jnp.zeros(n), jnp.zeros((2, m)))


def test_adams_step_through_the_body_is_adam_on_the_clipped_trace_update_computed_in_numpy():
    """--learner body --ac-step adam: four steps of ``adam_flat`` (a TD error beyond the clip, a life's end
    emptying the trace but not the moments) equal Adam on u = clip(delta, +-1) z written in numpy; its first
    step moves every weight by lr sign(delta z) exactly, whatever the gradient's scale."""
    n, m, lr, decay = 7, 3, 1e-3, 0.99 * 0.8
    b1, b2 = learner.ADAM_BETAS
    rng = np.random.default_rng(0)
    z, zn, mn, vn = fresh(n, m), np.zeros(n + 2 * m), np.zeros(n + 2 * m), np.zeros(n + 2 * m)
    for t, (delta, done) in enumerate([(0.3, False), (-2.5, False), (0.8, True), (-0.1, False)], start=1):
        g = rng.normal(size=n + 2 * m) * 10.0 ** rng.integers(-3, 2)
        g_trunk, g_slots = jnp.asarray(g[:n], jnp.float32), jnp.asarray(g[n:].reshape(2, m), jnp.float32)
        z, change, _ = learner.adam_flat(z, g_trunk, g_slots, jnp.asarray(delta), jnp.asarray(float(t)), lr=lr,
                                         decay=decay)
        zn = decay * zn + g
        u = np.clip(delta, -1, 1) * zn
        mn, vn = b1 * mn + (1 - b1) * u, b2 * vn + (1 - b2) * u * u
        want = lr * (mn / (1 - b1**t)) / (np.sqrt(vn / (1 - b2**t)) + learner.ADAM_EPS)
        got = np.concatenate([np.asarray(change[0]), np.asarray(change[1]).reshape(-1)])
        np.testing.assert_allclose(got, want, rtol=2e-4, atol=1e-9)
        if t == 1:
            np.testing.assert_allclose(got, lr * np.sign(delta * g), rtol=1e-4)
        if done:  # what life.learn's body_update does at a life's end: the trace empties, the moments stay
            z = eqx.tree_at(lambda x: (x.trunk, x.slots), z, (jnp.zeros(n), jnp.zeros((2, m))))
            zn = np.zeros_like(zn)


def test_a_fresh_intentional_step_moves_a_linear_output_by_eta_times_delta():
    """The intentional step's promise, on a linear output y = w . x (its gradient is x): on a fresh trace it
    moves y by eta delta exactly, whatever the number of weights and the gradient's scale. ObGD's bounded step
    moves it by delta |x|^2 / (kappa |x|_1), the size of a typical gradient entry: 100 times less for a
    gradient 100 times smaller (a gradient spread thin over a big body)."""
    delta, decay, obgd = jnp.asarray(0.7), 0.99 * 0.8, {}
    for n, m in ((50, 3), (5000, 30)):
        for scale in (1.0, 0.01):
            x = scale * jax.random.normal(jax.random.PRNGKey(n), (n + 2 * m,))
            g = (x[:n], x[n:].reshape(2, m))
            new, change, _ = learner.intentional_flat(fresh(n, m), *g, delta, jnp.asarray(1.0), eta=0.5, decay=decay)
            moved = float(g[0] @ change[0] + jnp.sum(g[1] * change[1]))
            np.testing.assert_allclose(moved, 0.5 * 0.7, rtol=1e-3)
            np.testing.assert_allclose(new.trunk, g[0])
            _, ob, _ = learner.obgd_flat(fresh(n, m), *g, delta, lr=1.0, decay=decay, kappa=2.0)
            obgd[n, scale] = float(g[0] @ ob[0] + jnp.sum(g[1] * ob[1]))
            want = 0.7 * float(jnp.sum(x**2)) / max(1.0, 2.0 * float(jnp.sum(jnp.abs(x))))
            np.testing.assert_allclose(obgd[n, scale], want, rtol=1e-3)
    np.testing.assert_allclose(obgd[5000, 0.01] / obgd[5000, 1.0], 0.01, rtol=1e-3)


def test_the_observation_input_is_each_cell_one_hot_and_the_status_standardised_beside_the_features(transitions):
    """--ac-input: the observation vector has observation_size entries, one hot per cell and channel group
    (block, mob in Classic) then the status; ac_inputs standardises it by the running statistics it was given,
    puts it after the features ('both') or alone ('observation'), and updates the statistics with s_t+1 only."""
    import life

    win, now = transitions
    import train

    cfg = train.Config().life
    spec = cfg.spec
    assert spec.name == "Craftax-Classic-Symbolic-v1"
    x = learner.observation_vector(spec, now)
    H, W = spec.view
    assert x.shape == (learner.observation_size(spec),)
    nb = H * W * (spec.n_block + 1)
    blocks = x[:nb].reshape(H, W, -1)
    mobs = x[nb: -spec.n_status].reshape(H, W, spec.n_mob + 1)
    np.testing.assert_array_equal(blocks.sum(-1), 1.0)  # one block id per cell (0: dark)
    np.testing.assert_array_equal(mobs.sum(-1), 1.0)  # one mob id per cell (0: none)
    np.testing.assert_array_equal(blocks.argmax(-1), now.block)
    np.testing.assert_array_equal(mobs.argmax(-1), now.mob)
    np.testing.assert_array_equal(x[-spec.n_status:], now.status)
    K, F = x.shape[0], 6
    mean, var = jnp.full((1, K), 0.5), jnp.full((1, K), 4.0)
    stats = jnp.stack([mean, var])
    feats = jnp.arange(2 * F, dtype=jnp.float32).reshape(2, F)
    for ac_input, width in (("both", F + K), ("observation", K), ("features", F)):
        c = dataclasses.replace(cfg, learning=dataclasses.replace(cfg.learning, ac_input=ac_input))
        phi, phi_next, after = life.ac_inputs(c, feats, win.obs, now, stats)
        assert phi.shape == phi_next.shape == (width,)
        if ac_input == "features":
            np.testing.assert_array_equal(phi, feats[0])
            continue
        s_t = learner.observation_vector(spec, jax.tree.map(lambda o: o[-1], win.obs))
        np.testing.assert_allclose(phi[-K:], (s_t - 0.5) / np.sqrt(4.0 + 1e-6), rtol=1e-5)
        np.testing.assert_allclose(phi_next[-K:], (x - 0.5) / np.sqrt(4.0 + 1e-6), rtol=1e-5)
        if ac_input == "both":
            np.testing.assert_array_equal(phi[:F], feats[0])
        np.testing.assert_allclose(after, C.update_feature_stats(stats, x[None], now.age), rtol=1e-6)
