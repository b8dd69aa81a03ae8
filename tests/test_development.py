"""Development: insertion at every depth is exact, the optimizer state follows the genes, the gate opens,
the triggers (plateau, schedule, gap), resume across a growth event, no recompiles, errors.

The body is test_evolution's (d=32, 3 genes in 4 slots, a population of 2): every function compiles once.
"""

import json

import equinox as eqx
import jax
import numpy as np
import pytest
from test_evolution import EVO, leaves_equal

import compare
import compare_development
import develop
import genes
import life
import objectives as O
import optim
import population
import train

DEV = EVO.replace(generations=1, grow="plateau", plateau_span=32, grow_gap=64, plateau_drop=0.5,
                          steps=192)


@pytest.fixture(scope="session")
def young():
    """Two organisms (3 genes in 4 slots) after 64 steps of life: a real window, moments and counts."""
    keys, k_born = train.first_keys(DEV)
    orgs, states = population.born_population(DEV.life, k_born)
    orgs, states, _ = population.live_threads(DEV.life, orgs, states, keys, 32, population.threads_for(2))
    orgs, states, _ = population.live_threads(DEV.life, orgs, states, keys + 1, 32, population.threads_for(2))
    return orgs, states, keys


@eqx.filter_jit
def outputs(cfg, org):
    """Every output of the model on the organism's window: all tokens' final features and the loss."""
    seen = O.forward(org.model, cfg.batch, org.window, org.now)
    return seen, life.world_model_loss(org.model, cfg, org.window, org.now, life.prior_of(org.tally))[0]


def one(tree, i=0):
    return jax.tree.map(lambda x: x[i], tree)


@pytest.mark.parametrize("gene", ["copy", "fresh"])
def test_a_gene_inserted_at_any_depth_leaves_every_output_bit_identical(young, gene):
    orgs, *_ = young
    before = outputs(DEV.life, one(orgs))
    for k in range(4):  # below gene 0, between 0 and 1, between 1 and 2, above gene 2
        grown = develop.grow(DEV.life, gene, orgs, np.array([True, False]), np.array([k, k]),
                             jax.random.split(jax.random.PRNGKey(k), 2))
        g = one(grown)
        assert leaves_equal(outputs(DEV.life, g), before), k
        assert list(np.asarray(g.model.stack.active)) == [True] * 4
        assert float(g.model.stack.gates[k]) == 0.0
        old, new = one(orgs).model.stack, g.model.stack
        for s in range(4):  # the genes below stay, the ones above moved up one slot
            if s != k:
                src = s if s < k else s - 1
                assert leaves_equal(one(new.genes, s), one(old.genes, src))
        if gene == "copy":
            assert leaves_equal(one(new.genes, k), one(old.genes, max(k - 1, 0)))
        assert leaves_equal(one(grown, 1), one(orgs, 1))  # organism 1 was told not to grow
    # --grow-gate g: a gene grown behind a small open gate is near-identical: the outputs move in proportion
    # to g (a tenth of the gate, a tenth of the change, within a factor 1.5) and at g = 0.01 the loss by < 1 %
    org = one(orgs)
    moved = {}
    for g in (0.1, 0.01):
        stack = genes.insert(org.model.stack, 1, one(org.model.stack.genes, 0), g)
        assert float(stack.gates[1]) == np.float32(g)
        (feats, loss), (feats0, loss0) = outputs(DEV.life, eqx.tree_at(lambda o: o.model.stack, org, stack)), before
        moved[g] = max(float(np.max(np.abs(np.asarray(a) - np.asarray(b))))
                       for a, b in zip(jax.tree.leaves(feats), jax.tree.leaves(feats0)))
        assert moved[g] > 0
    assert 10 / 1.5 < moved[0.1] / moved[0.01] < 10 * 1.5, moved
    assert abs(float(loss) - float(loss0)) < 0.01 * abs(float(loss0))


def test_the_optimizer_state_follows_the_genes_and_starts_fresh_for_a_new_one(young):
    orgs, states, keys = young
    grown = develop.grow(DEV.life, "copy", orgs, np.array([True, True]), np.array([1, 1]),
                         jax.random.split(jax.random.PRNGKey(0), 2))
    adam = one(grown.opt_state.slots[0])  # ScaleByAdamState of organism 0: count [D], mu, nu [D, n]
    old = one(orgs.opt_state.slots[0])
    assert list(np.asarray(adam.count)) == [64, 0, 64, 64]
    np.testing.assert_array_equal(adam.mu[1], 0.0)
    np.testing.assert_array_equal(adam.mu[2], old.mu[1])  # moved up with its gene
    # one more update: the new gate moves by lr (Adam's first step is lr * sign(g)), not by the ~3 lr that a
    # bias correction meant for 64 steps of history would give
    lr = DEV.learning.lr
    step = eqx.filter_jit(eqx.filter_vmap(lambda m, o: optim.update(m, jax.tree.map(
        lambda x: 0.01 + 0 * x, eqx.filter(m, eqx.is_inexact_array)), o, lr=lr, max_grad_norm=100.0)))
    model, opt = step(grown.model, grown.opt_state)
    moved = np.abs(np.asarray(model.stack.gates[:, 1] - grown.model.stack.gates[:, 1]))
    np.testing.assert_allclose(moved, lr, rtol=1e-5)
    assert list(np.asarray(one(opt.slots[0]).count)) == [65, 1, 65, 65]


def test_a_new_gate_opens_within_a_few_hundred_steps_without_recompiling(young):
    orgs, states, keys = young
    grown = develop.grow(DEV.life, "copy", orgs, np.array([True, True]), np.array([1, 1]),
                         jax.random.split(jax.random.PRNGKey(0), 2))
    before = train.COMPILES[0]
    for c in range(10):  # 320 steps, in the chunks the other tests compiled
        grown, states, _ = population.live_threads(DEV.life, grown, states, keys + 10 + c, 32,
                                                   population.threads_for(2))
    assert train.COMPILES[0] == before  # a grown body is the same shapes: nothing compiles
    gates = np.abs(np.asarray(grown.model.stack.gates[:, 1]))
    assert np.all(gates > 5 * DEV.learning.lr), gates  # the gate left 0 by more than a few Adam steps
    copy = one(grown.model.stack.genes, 1)  # and with g != 0 the gene's own weights learn
    assert not leaves_equal(copy, one(orgs.model.stack.genes, 0))


def test_a_plateau_triggers_growth_and_a_falling_loss_does_not():
    cfg = DEV.replace(plateau_span=200, grow_gap=600, plateau_drop=0.01).growth
    growth = develop.Development(2, 3)
    active = np.array([3, 3])
    grew = []
    for c in range(1, 21):  # organism 0: flat at 2.0; organism 1: falling 2% per chunk
        mask, k, why = develop.decide(cfg, 6, 100, growth, 100 * c, 100, [2.0, 2.0 * 0.98**c], active)
        grew.append(list(mask))
        active = active + mask
    steps = [100 * (c + 1) for c, m in enumerate(grew) if m[0]]
    assert steps == [600, 1200, 1800]  # the gap after birth and after each insertion; then the 6 slots are full
    assert not any(m[1] for m in grew)  # a falling loss never grows
    assert growth.placed[0] == [0, 1, 5] and growth.placed[1] == [0, 1, 2]  # genes above the new ones moved up


def test_resume_across_a_growth_event_equals_an_uninterrupted_life(tmp_path):
    whole = train.train(DEV.replace(run_dir=str(tmp_path / "whole")), progress=False)
    part = DEV.replace(run_dir=str(tmp_path / "part"), steps=96)
    train.train(part, progress=False)
    train.train(part.replace(steps=DEV.run.steps, resume=True), progress=False)
    lines = {r: [json.loads(x) for x in (tmp_path / r / "metrics.jsonl").read_text().splitlines()]
             for r in ("whole", "part")}
    events = [e for m in lines["whole"] for e in m.get("growth", [])]
    assert events and events[0]["step"] <= 96 < DEV.run.steps  # the run was resumed after a growth event
    assert [m.get("growth") for m in lines["part"]] == [m.get("growth") for m in lines["whole"]]
    assert [m["organisms"][0]["gates"] for m in lines["part"]] == [m["organisms"][0]["gates"] for m in lines["whole"]]
    x, y = ((tmp_path / r / "checkpoint.eqx").read_bytes().split(b"\n", 1)[1] for r in ("whole", "part"))
    assert x == y
    assert whole["prequential"] and (tmp_path / "whole" / "gates.png").stat().st_size > 0
    # compare.py development's figures of this run: the grown genes found behind their gates, compute, overfitting
    assert compare_development.born_slots(3, [{"slot": 1}, {"slot": 0}]) == [1, 3, 4]
    f = compare_development.growth_figures(DEV.replace(run_dir=str(tmp_path / "whole")), 3,
                                           DEV.learning.objective[0])
    grew = [len([e for e in events if e["organism"] == i]) for i in range(2)]
    assert f["active"] == [3 + g for g in grew] and f["insertions"] == sum(grew) / 2
    for i in range(2):
        assert (f["grown"][i] is None) == (grew[i] == 0) and f["born"][i] > 0
        assert (f["ko_grown"][i] is None) == (grew[i] == 0) and f["ko_born"][i] != 0  # a born gene matters
        assert 3 * DEV.run.steps / 1e6 <= f["gene_steps"][i] <= (3 + grew[i]) * DEV.run.steps / 1e6
    assert all(np.isfinite(f["gap"])) and f["wall"] > 0


@pytest.mark.parametrize("change, message", [
    (dict(slots=3), "free slots"), (dict(grow="schedule", grow_every=50), "--grow-every"),
    (dict(plateau_span=48), "--plateau-span"), (dict(grow_depth=1.5), "--grow-depth"),
    (dict(grow_gap=-1), "--grow-gap"), (dict(grow_gene="pool"), "needs an evolution's pool"),
    (dict(grow_gate=2.0), "--grow-gate must lie in"), (dict(gate_lr=0.0), "--gate-lr must be positive"),
])
def test_bad_development_values_are_one_line_errors(change, message):
    with pytest.raises(ValueError, match=message):
        train.validate(DEV.replace(**change))


def test_compare_development_makes_its_tables_and_plots(tmp_path):
    """``compare.py development`` end to end on tiny lives (2 seeds, up to 2 genes): every row runs, the
    growth table has every row with its gates, knockouts and compute, and the overfitting plot is drawn."""
    from test_population import TINY

    c = compare.Compare(what="development", seeds=2, grown=2, fresh=False,
                        base=TINY.replace(steps=400, run_dir=str(tmp_path)))
    text = compare.main(c).read_text()
    growth = text.split("Growth (mean")[1]
    rows = [ln.split("|")[1].strip() for ln in growth.splitlines() if ln.startswith("| ") and "---" not in ln][1:]
    assert rows == [r.name for r in compare_development.rows(c)]
    line = next(ln for ln in growth.splitlines() if ln.startswith("| born 1 gene, grows on schedule"))
    cells = [x.strip() for x in line.split("|")[1:-1]]
    assert cells[1] == "2.0 ± 0.0" and cells[2] == "1.0"  # grew its one gene (at step 200), in both organisms
    assert "–" not in cells[3] and "–" not in cells[4]  # gates and knockouts of the grown gene and the born one
    assert (tmp_path / "overfitting.png").stat().st_size > 0 and (tmp_path / "compare.png").stat().st_size > 0
