"""Memory and thinking: truncated backprop, no leaks for any layout, a recall task, resume, bad values."""


import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.flatten_util import ravel_pytree
from test_model import perturb, reads
from test_train import resumed_equals_whole

import compare
import compare_memory
import life
import memory
import objectives as O
import targets
import train
import world
from model import Model, Obs
from targets import type_id

SPEC = world.env_spec("Craftax-Classic-Symbolic-v1")


def tiny(memory_=2, think=0, layers=1, key=0):
    return Model(SPEC, d=32, n_heads=2, layers=layers, slots=layers, mlp_ratio=2, patch=(4, 9), cell_dim=8,
                 key=jax.random.PRNGKey(key), memory=memory_, think=think, **targets.model_kinds())


def test_gradient_flows_back_through_bptt_writes_and_not_one_more(transitions):
    """d(newest memory)/d(memory L writes back) is exactly zero when L > bptt, and not zero when L <= bptt."""
    win, _ = transitions
    model = tiny()
    m0 = jax.random.normal(jax.random.PRNGKey(1), (2, 32))
    K = 2

    def grad_norm(L):
        part = jax.tree.map(lambda x: x[:L], (win.obs, win.action, win.next_obs, win.done, win.valid))
        f = lambda m: memory.unroll(model, m, *part, bptt=K)[-1].sum()  # noqa: E731
        return float(jnp.abs(jax.jit(jax.grad(f))(m0)).sum())

    norms = {L: grad_norm(L) for L in (1, K, K + 1)}
    assert norms[1] > 0 and norms[K] > 0, norms
    assert norms[K + 1] == 0.0, norms


def test_memory_is_written_kept_and_cleared_at_death(transitions):
    win, _ = transitions
    model = tiny()
    m0 = jnp.zeros((2, 32))
    o, n = (jax.tree.map(lambda x: x[0], s) for s in (win.obs, win.next_obs))
    m1 = memory.write(model, m0, o, win.action[0], n, jnp.array(False), jnp.array(True))
    assert float(jnp.abs(m1).max()) > 0  # a write changes a blank memory
    np.testing.assert_array_equal(memory.write(model, m1, o, win.action[0], n, jnp.array(False), jnp.array(False)),
                                  m1)  # an empty row keeps it
    np.testing.assert_array_equal(memory.write(model, m1, o, win.action[0], n, jnp.array(True), jnp.array(True)),
                                  0 * m1)  # a death clears it


def test_rtrl_carries_the_gates_exact_gradient_past_backprop(transitions):
    """With writes that do not read the memory (--no-write-reads-memory), the write gate's gradient of a loss on
    the memory after L writes is the same from backprop through all L writes as from backprop through the
    last one alone started from the RTRL trace of the first L - 1 (float rounding apart); without the trace
    the truncated gradient differs. A death clears the trace."""
    win, _ = transitions
    model, L = tiny(), 6
    part = jax.tree.map(lambda x: x[:L], (win.obs, win.action, win.next_obs, win.done, win.valid))
    head, tail = (jax.tree.map(lambda x: x[:L - 1], part), jax.tree.map(lambda x: x[L - 1:], part))
    m0 = 0.5 * jax.random.normal(jax.random.PRNGKey(1), (2, 32))
    c = jax.random.normal(jax.random.PRNGKey(2), (2, 32))
    gate = lambda f: eqx.filter_jit(eqx.filter_grad(f))(model).mind.gate  # noqa: E731
    full = gate(lambda m: (memory.unroll(m, m0, *part, bptt=L, reads=False)[-1] * c).sum())
    ms, e = memory.unroll(model, m0, *head, bptt=1, reads=False, trace=memory.blank_trace(2, 32))
    rtrl = gate(lambda m: (memory.unroll(m, memory.with_trace(m, ms[-1], e), *tail, bptt=1, reads=False)[-1]
                           * c).sum())
    cut = gate(lambda m: (memory.unroll(m, ms[-1], *tail, bptt=1, reads=False)[-1] * c).sum())
    assert not bool(np.asarray(part[3]).any())  # no death inside: the trace runs through all L - 1 writes
    for a, b in ((rtrl.weight, full.weight), (rtrl.bias, full.bias)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    assert float(jnp.abs(cut.bias - full.bias).max()) > 1e-3 * float(jnp.abs(full.bias).max())
    out, g = memory.debrief(model, ms[-1], *(jax.tree.map(lambda x: x[0], t) for t in tail[:3]), reads=False)
    np.testing.assert_array_equal(memory.trace_step(e, ms[-1], out, g, jnp.array(True), jnp.array(True)), 0 * e)


@pytest.fixture(scope="module")
def remembering(transitions):
    """Every layout in one batch with 2 memory tokens and 2 recurrent thoughts; the forward pass recomputes
    the last K = 4 memory writes from the perturbed window, as a step of life does."""
    win, now = transitions
    model = tiny(think=2)
    T, K = 32, 4
    win = eqx.tree_at(lambda w: w.memory, win, jax.random.normal(jax.random.PRNGKey(2), (T, 2, 32)),
                      is_leaf=lambda x: x is None)
    batch = O.make_batch(tuple(O.LAYOUTS), T, model.n_patches, memory=2, think=2, recurrent=True)
    mind = memory.Mind(window=T, memory=2, bptt=K)
    forward = eqx.filter_jit(lambda m, w, n: O.forward(m, batch, w, n, None, memory.read_rows(m, w, mind)[0]).h)
    return model, batch, forward, win, now, forward(model, win, now)


def sees_in_memory(where, row, T):
    """Whether the memory that ``row`` reads has seen ``where`` (the writes of rows up to row - 2)."""
    stream, j = where
    return stream in ("obs", "next", "action", "reward") and j <= row - 2


@pytest.mark.parametrize("where", [("obs", 29), ("next", 29), ("action", 29), ("action", 30), ("obs", 31),
                                   ("next", 31), ("now", 0)])
def test_memory_and_thoughts_let_no_target_see_itself_or_the_future(where, remembering):
    """For every layout and every instance: a target's predictions move only if a segment before it reads
    the changed data, or the memory that instance (or one of its ``z`` tokens) reads has seen it; and they
    do move when a segment before it reads it."""
    model, batch, forward, win, now, h0 = remembering
    h1 = forward(model, *perturb(win, now, where))
    T, by_memory = 32, 0
    for name, plan, (b0, b1) in zip(O.LAYOUTS, batch.plans, batch.ranges):
        for i in range(b1 - b0):
            for seg, pos in plan.targets:
                before = plan.segments[:plan.segments.index(seg)]
                given = any(reads(s, i, T) == where for s in before)
                remembered = any(sees_in_memory(where, r, T) for r in [i] + [i + s.time for s in before
                                                                             if s.kind == "z"])
                moved = not np.allclose(np.asarray(h0[b0 + i, list(pos)]), np.asarray(h1[b0 + i, list(pos)]),
                                        atol=1e-6)
                assert moved <= (given or remembered), (name, i, seg, where)
                assert moved >= given, (name, i, seg, where)
                by_memory += moved and not given
    if where[0] in ("obs", "action") and where[1] <= 29:
        assert by_memory > 0  # memory carries what the window's layouts no longer give


def test_thoughts_sit_between_the_state_and_the_rest_and_the_policy_reads_the_last(remembering):
    model, batch, *_ = remembering
    plan = batch.plans[batch.host]
    P = model.n_patches
    assert plan.thinks == (P + 1, P + 2) and batch.readout == P + 2
    assert all(plan.types[t] == type_id("think") for t in plan.thinks)
    m = plan.mask
    assert m[P + 2, P + 1] and not m[P + 1, P + 2]  # causal among thoughts
    assert not m[:P + 1, list(plan.thinks)].any()  # the state (its prefix output) does not see its thoughts
    assert m[P + 3:, P + 1].any()  # what comes after does
    assert all(p.thinks == () for i, p in enumerate(batch.plans) if i != batch.host)


def recall_task(model, n, key, L=4):
    """n episodes of L uniform frames (a random block id fills the view): the recall layout on the last
    frame asks for the first. Memory written over the first L - 1 transitions (none without memory)."""
    ids = jax.random.randint(key, (n, L), 1, SPEC.n_block + 1)
    H, W = SPEC.view

    def frame(i, t):
        return Obs(block=jnp.full((H, W), i), item=jnp.zeros((H, W), jnp.int32), mob=jnp.zeros((H, W), jnp.int32),
                   status=jnp.zeros(SPEC.n_status), image=None, pos=jnp.zeros(2), age=jnp.asarray(t, jnp.float32))

    frames = jax.vmap(jax.vmap(frame))(ids, jnp.broadcast_to(jnp.arange(L), (n, L)))
    batch = O.make_batch(("recall",), 1, model.n_patches, memory=model.mind.slots if model.mind else 0)

    def one(fr):
        at = lambda t: jax.tree.map(lambda x: x[t], fr)  # noqa: E731
        first = lambda tree: jax.tree.map(lambda x: x[None], tree)  # noqa: E731
        win = O.Window(obs=first(at(L - 1)), next_obs=first(at(L - 1)), action=jnp.zeros(1, jnp.int32),
                       logp=jnp.zeros(1), rint=jnp.zeros(1), done=jnp.zeros(1, bool),
                       valid=jnp.ones(1, bool), recall=first(at(0)), recall_ok=jnp.ones(1, bool))
        rows = None
        if batch.memory:
            head = jax.tree.map(lambda x: x[:L - 1], fr)
            tail = jax.tree.map(lambda x: x[1:], fr)
            m = memory.unroll(model, memory.blank(batch.memory, 32), head, jnp.zeros(L - 1, jnp.int32), tail,
                              jnp.zeros(L - 1, bool), jnp.ones(L - 1, bool), bptt=L - 1)[-1]
            rows = jnp.stack([m, m])
        seen = O.forward(model, batch, win, at(L - 1), None, rows)
        out = targets.target_loss(model, batch.plans[0], seen, batch.ranges[0], win, np.array([0]))
        return out["loss"][0], out["recall_changed_accuracy"][0]

    loss, accuracy = jax.vmap(one)(frames)
    return loss, accuracy, ids[:, 0] != ids[:, -1]  # (the probe scores episodes whose first and last frames differ)


def train_recall(model, steps=500):
    params, static = eqx.partition(model, eqx.is_inexact_array)
    flat, unravel = ravel_pytree(params)
    opt = optax.adam(3e-3)

    @jax.jit
    def run(flat):
        def body(carry, k):
            flat, s = carry
            loss = lambda f: recall_task(eqx.combine(unravel(f), static), 32, k)[0].mean()  # noqa: E731
            g = jax.grad(loss)(flat)
            u, s = opt.update(g, s, flat)
            return (flat + u, s), None

        flat = jax.lax.scan(body, (flat, opt.init(flat)), jax.random.split(jax.random.PRNGKey(7), steps))[0][0]
        _, accuracy, changed = recall_task(eqx.combine(unravel(flat), static), 256, jax.random.PRNGKey(99))
        return jnp.sum(accuracy * changed) / jnp.sum(changed)

    return float(run(flat))


def test_memory_solves_a_recall_task_that_the_window_cannot():
    """What filled the first of 4 frames, asked on the last one (17 block ids, fresh episodes for the test):
    with 2 memory tokens it is learned; without memory the answer is not in the input and it stays at chance."""
    with_memory, without = train_recall(tiny(memory_=2)), train_recall(tiny(memory_=0))
    chance = 1 / SPEC.n_block
    assert with_memory > 0.8, with_memory
    assert without < chance + 0.1, without


MEM = train.Config.of(d_model=32, n_heads=2, layers=1, chunk=100, gif_steps=0, memory=2, think=2,
                   objective=("inverse_dynamics", "recall"), recall_delay=12, recall_min=2, rtrl=True,
                   write_reads_memory=False)


def test_memory_and_the_delay_line_resume_exactly(tmp_path):
    """A run with memory (and its RTRL trace), thoughts and the recall probe over a range of delays (2-12),
    stopped and resumed, equals the uninterrupted run; every probe's target is the frame seen exactly its drawn
    delay before (its age says so), the delays vary, and the recall curve is in the summary and compare.py
    memory's table."""
    whole = MEM.replace(steps=300, run_dir=str(tmp_path / "whole"))
    s, (org, *_) = resumed_equals_whole(tmp_path, whole, 200)
    assert float(jnp.abs(org.memory).max()) > 0 and org.delay.block.shape[1] == 12  # carried, and in the checkpoint
    assert float(jnp.abs(org.memory_trace).max()) > 0 and org.memory_trace.shape[1:] == (2, 32, 33)
    win = jax.tree.map(lambda x: x[0], org.window)  # organism 0's window
    asked = np.asarray(win.recall_delay)
    ages = np.asarray(win.obs.age)
    assert np.all((asked >= 2) & (asked <= 12))
    np.testing.assert_array_equal(asked, [int(memory.recall_delay(MEM.life.mind, jnp.asarray(a))) for a in ages])
    ok = np.asarray(win.recall_ok)
    np.testing.assert_array_equal(np.asarray(win.recall.age)[ok], (ages - asked)[ok])  # from the delay line, no leak
    assert len({int(memory.recall_delay(MEM.life.mind, jnp.asarray(float(a)))) for a in range(50)}) > 5
    recall = s["prequential"]["recall"]
    assert recall["scored"] > 100 and 0 <= recall["recall_changed_accuracy"]["model"] <= 1
    assert recall["recall_changed_accuracy"]["view_now"] == 0.0  # the view now is wrong on every changed cell
    curve = recall["by_delay"]
    assert set(curve) <= {"delay2_3", "delay4_7", "delay8_15"} and "delay8_15" in curve and len(curve) >= 2
    assert sum(b["scored"] for b in curve.values()) == recall["scored"]
    # compare.py memory's table of what memory buys, on this run's summary (as two seeds of two rows)
    rows = {"off": [{**s, "steady_sps": 100.0}] * 2, "on": [{**s, "steady_sps": 50.0}] * 2}
    text = compare_memory.table(compare.Compare(what="memory"), rows)
    assert f"| on | {recall['recall_changed_accuracy']['model']:.4f} ± 0.0000 |" in text and "| 50 (0.50) |" in text
    assert "delay 2–3" in text or "delay 4–7" in text
    # the headline column: recall at delays of 8 steps and more, minus the first row, seed by seed
    far = curve["delay8_15"]["model"]
    moved = lambda x: {**s, "steady_sps": 50.0, "prequential": {**s["prequential"], "recall": {  # noqa: E731
        **recall, "by_delay": {**curve, "delay8_15": {**curve["delay8_15"], "model": far + x}}}}}
    text = compare_memory.table(compare.Compare(what="memory"), {"off": rows["off"], "on": [moved(.01), moved(.02)]})
    assert "| +0.0150 ± 0.0050 (+3.0 s.e.) |" in text and "delays ≥ 8: minus the first row" in text
    assert compare_memory.plot_recall(rows, tmp_path / "recall.png").stat().st_size > 0


def test_write_bias_sets_the_gate_a_newborn_writes_through():
    for b in (-2.0, -4.0):
        model = life.new_model(MEM.replace(write_bias=b).life, jax.random.PRNGKey(0))
        np.testing.assert_array_equal(model.mind.gate.bias, b)


@pytest.mark.parametrize("change, message", [
    (dict(memory=-1), "--memory and --think cannot be negative"),
    (dict(bptt=4), "--bptt must be between 1 and --window - 1 = 3"),
    (dict(think=1, think_mode="recurrent"), "--think-mode recurrent needs --think 2"),
    (dict(recall_delay=4, recall_min=0), "--recall-delay must be more than --window"),
    (dict(recall_min=13), "--recall-min must be 0"), (dict(recall_delay=200), "--recall-delay must be below 128"),
    (dict(write_bias=-50.0), "--write-bias must lie in"),
    (dict(write_reads_memory=True), "--rtrl needs --memory and --no-write-reads-memory"),
    (dict(memory=0, think=0), "--rtrl needs --memory"),
])
def test_bad_memory_values_are_one_line_errors(change, message):
    with pytest.raises(ValueError, match=message):
        train.validate(MEM.replace(**change))
