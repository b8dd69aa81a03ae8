"""The body: gene gates, attention masks, and what query tokens may and may not see."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import objectives as O
import targets
import world
from model import Model
from targets import type_id


def jitted_forward(batch):
    return eqx.filter_jit(lambda model, win, now: O.forward(model, batch, win, now).h)


def small_model(slots=3, layers=2, key=0):
    spec = world.env_spec("Craftax-Classic-Symbolic-v1")
    return Model(spec, d=32, n_heads=2, layers=layers, slots=slots, mlp_ratio=2, patch=(4, 9), cell_dim=8,
                 key=jax.random.PRNGKey(key), **targets.model_kinds())


def test_a_gene_with_zero_gate_leaves_the_output_exactly_unchanged(transitions):
    win, now = transitions
    model = small_model()
    forward = jitted_forward(O.make_batch(("inverse_dynamics", "latent_forward"), 32, model.n_patches))
    before = forward(model, win, now)
    # express slot 2 (random weights) behind a closed gate
    grown = eqx.tree_at(lambda m: (m.stack.active, m.stack.gates), model,
                        (model.stack.active.at[2].set(True), model.stack.gates.at[2].set(0.0)))
    np.testing.assert_array_equal(np.asarray(forward(grown, win, now)), np.asarray(before))
    # ... and a slightly open gate does change it
    opened = eqx.tree_at(lambda m: m.stack.gates, grown, grown.stack.gates.at[2].set(0.1))
    assert not np.allclose(np.asarray(forward(opened, win, now)), np.asarray(before))


@pytest.mark.parametrize("name", list(O.LAYOUTS))
def test_no_target_sees_itself_or_the_future(name):
    plan = O.make_plan(name, O.LAYOUTS[name], n_patches=2, length=30)
    query = np.zeros(plan.length, bool)
    for k, (seg, pos) in enumerate(plan.targets):
        query[list(pos)] = True
    for seg, pos in plan.targets:
        k = plan.segments.index(seg)
        for p in pos:
            for j in np.flatnonzero(plan.mask[p]):
                # a query sees real tokens of earlier segments and its own segment's queries: nothing else
                assert (query[j] and plan.owner[j] == k) or (not query[j] and 0 <= plan.owner[j] < k), (name, p, j)
    # given tokens carry content, queries carry none; every target has queries
    for n in range(plan.length):
        if plan.owner[n] >= 0:
            assert (plan.sources[n] is None) == query[n], (name, n)
    assert len(plan.targets) == sum(s.target for s in plan.segments) > 0
    # padding is invisible to every real token
    pad = np.flatnonzero(plan.types == type_id("pad"))
    assert len(pad) and not plan.mask[: pad[0], pad].any()


def reads(seg, i, T):
    """Which piece of window data segment ``seg`` of the instance starting at ``i`` is made of."""
    t = seg.time
    if seg.kind in "sl":
        return ("obs", i) if t == 0 else ("next", i + t - 1)
    if seg.kind == "m":
        return ("obs", i + t)
    if seg.kind == "z":
        return ("obs", i + t) if i + t < T else ("now", 0)
    return ({"a": "action", "r": "reward"}[seg.kind], i + t)


def perturb(win, now, where):
    """The window with one piece of data changed: a state's cells and position, an action, or a reward."""
    stream, j = where
    if stream == "now":
        return win, eqx.tree_at(lambda o: (o.block, o.pos), now, ((now.block + 3) % 18, now.pos + 1))
    if stream in ("obs", "next"):
        part = (lambda w: w.obs) if stream == "obs" else (lambda w: w.next_obs)
        pick = lambda w: (part(w).block, part(w).pos)  # noqa: E731
        block, pos = pick(win)
        return eqx.tree_at(pick, win, (block.at[j].set((block[j] + 3) % 18), pos.at[j].add(1.0))), now
    if stream == "action":
        return eqx.tree_at(lambda w: w.action, win, win.action.at[j].set((win.action[j] + 5) % 17)), now
    return eqx.tree_at(lambda w: w.rint, win, win.rint.at[j].add(1.0)), now


SYMBOLIC = tuple(O.LAYOUTS)


@pytest.fixture(scope="module")
def all_layouts(transitions):
    win, now = transitions
    model = small_model()
    batch = O.make_batch(SYMBOLIC, 32, model.n_patches)
    forward = eqx.filter_jit(lambda model, win, now: O.forward(model, batch, win, now).h)
    return model, batch, forward, forward(model, win, now)


@pytest.mark.parametrize("where", [("obs", 6), ("next", 6), ("action", 6), ("reward", 6), ("now", 0)])
def test_given_segments_carry_content_and_targets_do_not(where, transitions, all_layouts):
    """Change one piece of data: a target's predictions move iff a segment before it in its layout reads it."""
    win, now = transitions
    model, batch, forward, h0 = all_layouts
    h1 = forward(model, *perturb(win, now, where))
    T = 32
    for name, plan, (b0, b1) in zip(SYMBOLIC, batch.plans, batch.ranges):
        for i in range(b1 - b0):
            for k, (seg, pos) in enumerate(plan.targets):
                order = plan.segments.index(seg)
                expect = any(reads(s, i, T) == where for s in plan.segments[:order])
                moved = not np.allclose(np.asarray(h0[b0 + i, list(pos)]), np.asarray(h1[b0 + i, list(pos)]),
                                        atol=1e-6)
                assert moved == expect, (name, i, seg, where)


def test_masked_state_hides_its_hidden_cells(transitions, all_layouts):
    """Changing hidden cells leaves the masked-state predictions unchanged; changing a visible one does not."""
    win, now = transitions
    model, batch, forward, h0 = all_layouts
    b0, b1 = batch.ranges[SYMBOLIC.index("masked_state")]
    j = 6
    hidden = np.asarray(O.hidden_cells(model, win.obs.age[j]))[:7, :9]
    assert 0 < hidden.sum() < hidden.size
    block = win.obs.block.at[j].set(jnp.where(hidden, (win.obs.block[j] + 3) % 18, win.obs.block[j]))
    h1 = forward(model, eqx.tree_at(lambda w: w.obs.block, win, block), now)
    np.testing.assert_allclose(np.asarray(h0[b0:b1]), np.asarray(h1[b0:b1]), atol=1e-6)
    block = win.obs.block.at[j].set(jnp.where(~hidden, (win.obs.block[j] + 3) % 18, win.obs.block[j]))
    h2 = forward(model, eqx.tree_at(lambda w: w.obs.block, win, block), now)
    assert not np.allclose(np.asarray(h0[b0 + j]), np.asarray(h2[b0 + j]), atol=1e-6)


def test_layout_parser_rejects_nonsense():
    for bad in ("s0 s1 a0", "s0 ; x1", "s0 ; s", "s0 ; m1", "l1 ; a0", "s0 ; ss1"):
        with pytest.raises(ValueError):
            O.parse(bad)


def test_grid_cells_and_age_are_smooth_and_distinct():
    from model import age_code, grid_code

    a, b = grid_code(jnp.array([10.0, 10.0])), grid_code(jnp.array([10.0, 11.0]))
    assert 0 < float(jnp.linalg.norm(a - b)) < float(jnp.linalg.norm(a - grid_code(jnp.array([30.0, 5.0]))))
    assert float(jnp.linalg.norm(age_code(jnp.array(100.0)) - age_code(jnp.array(101.0)))) < 0.1
