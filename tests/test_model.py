"""The body: gene gates, attention masks, and what query tokens may and may not see."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import objectives as O
import world
from model import TYPE, Model


def jitted_forward(batch):
    return eqx.filter_jit(lambda model, win, now: O.forward(model, batch, win, now))


def small_model(slots=3, layers=2, key=0):
    spec = world.env_spec("Craftax-Classic-Symbolic-v1")
    return Model(spec, d=32, n_heads=2, layers=layers, slots=slots, mlp_ratio=2, patch=(4, 9), cell_dim=8,
                 key=jax.random.PRNGKey(key))


def test_a_gene_with_zero_gate_leaves_the_output_exactly_unchanged(transitions):
    win, now = transitions
    model = small_model()
    forward = jitted_forward(O.make_batch(("inverse_dynamics", "forward_dynamics"), 32, model.n_patches))
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
    plan = O.make_plan(name, O.LAYOUTS[name], n_patches=2, length=20)
    order = {seg: i for i, seg in enumerate(plan.segments)}
    seg_of = {}  # token -> (segment index, is_query)
    for seg, pos in plan.targets:
        for p in pos:
            seg_of[p] = (order[seg], True)
    for n, src in enumerate(plan.sources):
        if src is not None:
            kind, t, _ = src
            seg_of[n] = (next(i for i, s in enumerate(plan.segments) if (s.kind, s.time) == (kind, t)), False)
    for seg, pos in plan.targets:
        k = order[seg]
        for p in pos:
            for j in np.flatnonzero(plan.mask[p]):
                if j in seg_of:
                    sj, query = seg_of[j]
                    assert (query and sj == k) or (not query and sj < k), (name, p, j)
    # padding is invisible to every real token
    pad = np.flatnonzero(plan.types == TYPE["pad"])
    assert len(pad) and not plan.mask[: pad[0], pad].any()


def perturb(win, seg):
    """The window with the data of one segment (kind, time) changed."""
    if seg.kind == "a":
        return eqx.tree_at(lambda w: w.action, win, (win.action + 5) % 17)
    pick = (lambda w: w.obs.block) if seg.time == 0 else (lambda w: w.next_obs.block)
    return eqx.tree_at(pick, win, (pick(win) + 3) % 18)


@pytest.mark.parametrize("name", list(O.LAYOUTS))
def test_given_segments_carry_content_and_targets_do_not(name, transitions):
    """Change a target's data: its predictions must not move. Change a given segment's: they must."""
    win, now = transitions
    model = small_model()
    batch = O.make_batch((name,), 32, model.n_patches)
    plan, (b0, b1) = batch.plans[0], batch.ranges[0]
    forward = jitted_forward(batch)
    h0 = forward(model, win, now)[b0:b1]
    for seg, pos in plan.targets:
        queries = list(pos)
        for other in plan.segments:
            h1 = forward(model, perturb(win, other), now)[b0:b1]
            same = np.allclose(np.asarray(h0[:, queries]), np.asarray(h1[:, queries]), atol=1e-6)
            assert same == other.target, (name, seg, other)


def test_layout_parser_rejects_nonsense():
    for bad in ("s0 s1 a0", "s0 ; x1", "s0 ; s"):
        with pytest.raises(ValueError):
            O.parse(bad)


def test_grid_cells_and_age_are_smooth_and_distinct():
    from model import age_code, grid_code

    a, b = grid_code(jnp.array([10.0, 10.0])), grid_code(jnp.array([10.0, 11.0]))
    assert 0 < float(jnp.linalg.norm(a - b)) < float(jnp.linalg.norm(a - grid_code(jnp.array([30.0, 5.0]))))
    assert float(jnp.linalg.norm(age_code(jnp.array(100.0)) - age_code(jnp.array(101.0)))) < 0.1
