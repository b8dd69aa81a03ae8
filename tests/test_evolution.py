"""Evolution: births from the pool, knockouts, inheritance, splits, selection, instincts, fitness noise, resume,
no recompiles, errors.

One tiny body (d=32, 3 genes in 4 slots) and one tiny population of 2 serve every test here and in
test_development.py, so each function compiles once.
"""

import dataclasses
import json
import shutil
import subprocess
import sys
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import compare
import compare_evolution
import develop
import evolve
import instincts
import population
import study
import train
import world

ROOT = Path(__file__).resolve().parents[1]
# the window learner: its policy loss trains the genes too, so a grown gate opens within the tests' budget
EVO = train.Config.of(d_model=32, n_heads=2, layers=3, slots=4, window=4, chunk=32, steps=64, population=2,
                      generations=3, pool=6, turnover=1, checkpoint_every=32, gif_steps=0, learner="window",
                      curiosity="surprise", gamma=0.95, lam=0.9)


BOTH = EVO.replace(evolve="both")  # genes and instincts: the same compiled lives (instincts are data to the step)
P, N, LAYERS = 6, 2, 3  # EVO's pool, population and expressed genes


def new_pool(cfg, key):
    """A fresh pool and its ledger for a config."""
    ledger = evolve.new_ledger(cfg.evolution.pool_size(cfg.life.body.layers))
    return evolve.new_pool(cfg.life, key, len(ledger.ids)), ledger


def end_of_life(cfg, *args):
    return evolve.end_of_life(cfg.life, cfg.evolution, *args)


def leaves_equal(a, b) -> bool:
    return all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def trunk_leaves(model):
    """Every weight of a model but its gene stack."""
    return jax.tree.leaves(eqx.tree_at(lambda m: m.stack, model, None))


@pytest.fixture(scope="session")
def lived():
    """A pool, two newborns drawn from it, and the same two after 32 steps of life."""
    pool, ledger = new_pool(EVO, jax.random.PRNGKey(3))
    keys, k_born = train.first_keys(EVO)
    newborns, states = population.born_population(EVO.life, k_born)
    genomes = evolve.draw("evolve", LAYERS, ledger, np.random.default_rng(0), N)
    orgs = evolve.birth(newborns, pool, jnp.asarray(genomes))
    after, _, _ = population.live_threads(EVO.life, orgs, states, keys, 32, population.threads_for(N))
    return pool, ledger, genomes, newborns, orgs, after


def test_birth_puts_exactly_the_chosen_pool_genes_into_the_slots(lived):
    pool, _, genomes, newborns, orgs, _ = lived
    for i in range(N):
        assert len(set(genomes[i])) == LAYERS  # no gene twice in one genome
        for s in range(LAYERS):
            assert leaves_equal(jax.tree.map(lambda g: g[i, s], orgs.model.stack.genes),
                                jax.tree.map(lambda g: g[genomes[i, s]], pool.genes))
        mine = jax.tree.map(lambda x: x[i], orgs.model)
        for a, b in zip(trunk_leaves(mine), trunk_leaves(pool.trunk)):
            np.testing.assert_array_equal(a, b)
    assert leaves_equal(orgs.opt_state, newborns.opt_state)  # a fresh optimizer
    np.testing.assert_array_equal(orgs.model.stack.gates, newborns.model.stack.gates)


def test_knocking_out_an_active_gene_changes_the_loss_and_an_inactive_one_does_not(lived):
    *_, after = lived
    knock = np.asarray(evolve.knockout(EVO.life, after))
    assert knock.shape == (N, 4) and np.all(knock[:, :3] != 0)
    np.testing.assert_array_equal(knock[:, 3], 0.0)  # the free slot
    off = eqx.tree_at(lambda o: o.model.stack.active, after, after.model.stack.active.at[:, 1].set(False))
    knock_off = np.asarray(evolve.knockout(EVO.life, off))
    np.testing.assert_array_equal(knock_off[:, 1], 0.0)
    assert np.all(knock_off[:, [0, 2]] != 0)


def fresh_ledger(ledger):
    return evolve.Ledger.from_json(json.loads(json.dumps(ledger.to_json())))


def test_the_control_leaves_the_pool_bit_identical(lived):
    pool, ledger, genomes, *_, after = lived
    cfg = EVO.replace(selection="none")
    ledger = fresh_ledger(ledger)
    new, ledger, line, _ = end_of_life(cfg, pool, ledger, genomes, after, jax.random.PRNGKey(0))
    assert leaves_equal(new, pool) and line["pool"]["ids"] == list(range(P))
    assert sum(g["carried"] for g in ledger.genes.values()) == N * LAYERS  # still credited


def test_lamarckian_writes_back_exactly_the_fittest_carriers_learned_weights(lived):
    pool, ledger, genomes, *_, after = lived
    cfg = EVO.replace(inherit="lamarckian", turnover=0)
    f = evolve.fitness(after)[cfg.evolution.fitness]
    new, *_ = end_of_life(cfg, pool, fresh_ledger(ledger), genomes, after, jax.random.PRNGKey(0))
    best = int(np.argmax(f))
    for p in range(P):
        carriers = [(i, s) for i in range(N) for s in range(LAYERS) if genomes[i, s] == p]
        got = jax.tree.map(lambda g: g[p], new.genes)
        if not carriers:
            assert leaves_equal(got, jax.tree.map(lambda g: g[p], pool.genes))
            continue
        i, s = max(carriers, key=lambda c: (f[c[0]], -c[0]))  # the fittest carrier (first on a tie)
        assert leaves_equal(got, jax.tree.map(lambda g: g[i, s], after.model.stack.genes))
        assert not leaves_equal(got, jax.tree.map(lambda g: g[p], pool.genes))  # it learned something
    for a, b in zip(trunk_leaves(new.trunk), trunk_leaves(jax.tree.map(lambda x: x[best], after.model))):
        np.testing.assert_array_equal(a, b)


def test_the_lamarckian_control_writes_back_random_carriers_and_selects_nothing(lived):
    pool, ledger, genomes, *_, after = lived
    cfg = EVO.replace(inherit="lamarckian", selection="none")
    best = int(np.argmax(evolve.fitness(after)[cfg.evolution.fitness]))
    writers = []
    for k in range(8):
        new, _, line, _ = end_of_life(cfg, pool, fresh_ledger(ledger), genomes, after, jax.random.PRNGKey(k))
        assert line["pool"]["ids"] == list(range(P)) and not line["pool"]["discarded"]  # nothing selected
        for p in set(genomes.ravel()):  # each carried gene: the learned weights of one of its carriers
            got = jax.tree.map(lambda g: g[p], new.genes)
            assert any(leaves_equal(got, jax.tree.map(lambda g: g[i, s], after.model.stack.genes))
                       for i in range(N) for s in range(LAYERS) if genomes[i, s] == p)
        writers += [i for i in range(N) if all(np.array_equal(a, b) for a, b in zip(
            trunk_leaves(new.trunk), trunk_leaves(jax.tree.map(lambda x: x[i], after.model))))]
    assert len(writers) == 8 and set(writers) != {best}  # the trunk of an organism drawn at random, not the fittest


def test_genes_grown_in_life_move_the_genome_but_never_enter_the_pool(lived):
    pool, ledger, genomes, *_, after = lived
    grown = develop.grow(EVO.life, "copy", after, np.ones(2, bool), np.array([1, 1]),
                         jax.random.split(jax.random.PRNGKey(0), 2))
    placed = np.array([[0, 2, 3]] * 2)  # the genome's second and third genes moved up one slot
    cfg = EVO.replace(inherit="lamarckian", turnover=0)
    new, *_ = end_of_life(cfg, pool, fresh_ledger(ledger), genomes, grown, jax.random.PRNGKey(0), placed)
    f = evolve.fitness(grown)[cfg.evolution.fitness]
    for p in set(genomes.ravel()):
        i, s = max(((i, s) for i in range(2) for s in range(3) if genomes[i, s] == p), key=lambda c: (f[c[0]], -c[0]))
        assert leaves_equal(jax.tree.map(lambda g: g[p], new.genes),
                            jax.tree.map(lambda g: g[i, placed[i, s]], grown.model.stack.genes))
    darwinian = EVO.replace(turnover=0)
    same, *_ = end_of_life(darwinian, pool, fresh_ledger(ledger), genomes, grown, jax.random.PRNGKey(0), placed)
    assert leaves_equal(same.genes, pool.genes)


def test_a_gene_grown_from_the_pool_is_exactly_the_drawn_pool_gene(lived):
    pool, ledger, *_, after = lived
    k = np.array([1, 3])  # in the middle of one organism's genes, above the other's
    given = evolve.donors(ledger, pool, np.random.default_rng(0), k, np.array([3, 3]))
    grown = develop.grow(EVO.life, "pool", after, np.ones(2, bool), k, jax.random.split(jax.random.PRNGKey(0), 2),
                         given)
    for i in range(2):
        new = jax.tree.map(lambda g: g[i, k[i]], grown.model.stack.genes)
        assert leaves_equal(new, jax.tree.map(lambda g: g[i], given))
        assert any(leaves_equal(new, jax.tree.map(lambda g: g[p], pool.genes)) for p in range(P))
        assert float(grown.model.stack.gates[i, k[i]]) == 0.0


def test_a_split_makes_two_new_genes_that_differ_by_the_mutation_only():
    pool, ledger = new_pool(EVO, jax.random.PRNGKey(0))
    for p, rec in enumerate(ledger.genes.values()):  # every gene judged; position 4 best, position 1 worst
        rec.update(carried=2, carried_by_bin=[2, 0, 0], rank_sum=[{4: 0.8, 1: -0.8}.get(p, 0.1 * p - 0.3), 0, 0])
    old = list(ledger.ids)
    new, discarded, splits = evolve.select(EVO.evolution, pool, ledger, jax.random.PRNGKey(1))
    assert discarded == [old[1]] and len(ledger.ids) == P
    (parent, a, b), = splits
    assert parent == old[4] and ledger.ids[4] == a and ledger.ids[1] == b
    assert a not in old and b not in old and a != b
    assert ledger.genes[a]["parent"] == ledger.genes[b]["parent"] == parent
    assert ledger.genes[parent]["fate"] == "split" and ledger.genes[old[1]]["fate"] == "discarded"
    gene = lambda tree, p: jax.tree.map(lambda g: g[p], tree)  # noqa: E731
    assert leaves_equal(gene(new.genes, 4), gene(pool.genes, 4))  # the copy
    for x, y in zip(jax.tree.leaves(gene(new.genes, 1)), jax.tree.leaves(gene(pool.genes, 4))):
        x, y = np.asarray(x), np.asarray(y)
        rms = np.sqrt(np.mean(y**2))
        if rms > 0:  # the mutant: the parent plus noise of about mutation x RMS
            assert 0.3 * EVO.evolution.mutation < np.std(x - y) / rms < 3 * EVO.evolution.mutation
    for p in (0, 2, 3, 5):
        assert leaves_equal(gene(new.genes, p), gene(pool.genes, p)) and ledger.ids[p] == old[p]


def test_a_planted_fitness_lets_one_genes_descendants_take_over():
    cfg = EVO.replace(population=8, pool=12, turnover=2)
    pool, ledger = new_pool(cfg, jax.random.PRNGKey(0))
    favoured, rng = ledger.ids[5], np.random.default_rng(0)
    share = []
    for g in range(8):
        genomes = evolve.draw("evolve", LAYERS, ledger, rng, 8)
        # fitness: how many descendants of the favoured gene the genome carries (plus a little noise)
        f = np.array([sum(evolve.root(ledger, ledger.ids[p]) == favoured for p in row) for row in genomes],
                     float) + 0.01 * rng.random(8)
        evolve.record(ledger, genomes, f, np.zeros((8, 3)), np.ones((8, 3)))
        pool, _, _ = evolve.select(cfg.evolution, pool, ledger, jax.random.PRNGKey(g))
        ledger.generation += 1
        share.append(np.mean([evolve.root(ledger, i) == favoured for i in ledger.ids]))
    assert share[-1] >= 0.5, share  # from 1 gene in 12


@pytest.fixture(scope="session")
def evolutions(tmp_path_factory):
    """The same 3-generation evolution of genes and instincts run uninterrupted; as 2 generations extended to 3 by
    --resume; and stopped mid-life in generation 1, then resumed."""
    d = tmp_path_factory.mktemp("evolution")
    whole = BOTH.replace(run_dir=str(d / "whole"))
    train.train(whole, progress=False)
    extended = BOTH.replace(run_dir=str(d / "extended"), generations=2)
    train.train(extended, progress=False)
    train.train(extended.replace(generations=3, resume=True), progress=False)

    stopped = BOTH.replace(run_dir=str(d / "stopped"))
    real, calls = population.live_threads, [0]

    def stop_on_fourth_chunk(*args):
        calls[0] += 1
        if calls[0] == 4:  # generation 1, its second chunk: the checkpoint is mid-life (step 96)
            raise KeyboardInterrupt
        return real(*args)

    population.live_threads = stop_on_fourth_chunk
    try:
        with pytest.raises(KeyboardInterrupt):
            train.train(stopped, progress=False)
    finally:
        population.live_threads = real
    mid = json.loads(open(Path(stopped.run.run_dir) / "checkpoint.eqx", "rb").readline())["step"]
    train.train(stopped.replace(resume=True), progress=False)
    return d, mid


def test_an_evolution_writes_its_files_and_compiles_nothing_after_its_first_generation(evolutions):
    d, _ = evolutions
    run = d / "whole"
    gens = [json.loads(x) for x in (run / "generations.jsonl").read_text().splitlines()]
    assert [g["generation"] for g in gens] == [0, 1, 2]
    assert [g["compiles"] for g in gens[1:]] == [0, 0]
    assert all(len(g["genomes"]) == N and len(g["genomes"][0]) == LAYERS for g in gens)
    pool = json.loads((run / "pool.json").read_text())
    splits = sum(len(g["pool"]["splits"]) for g in gens)
    assert splits >= 1 and len(pool["pool"]) == P and len(pool["genes"]) == P + 2 * splits
    ids = [g["id"] for g in pool["genes"]]
    assert len(set(ids)) == len(ids)  # an id is never reused
    split = [g for g in pool["genes"] if g["fate"] == "split"]
    assert split and all(sum(c["parent"] == g["id"] for c in pool["genes"]) == 2 for g in split)
    carried = [g for g in pool["genes"] if g["carried"]]
    assert all(g["knockout"] is not None and g["final_gate"] is not None for g in carried)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["evolution"]["generations"] == 3 and summary["evolution"]["compiles_after_first_generation"] == 0
    from conftest import tensorboard_scalars

    board = tensorboard_scalars(run)  # TensorBoard: each generation's record at its generation, each organism apart
    assert [g for g, _ in board["generation/best"]] == [0, 1, 2]
    assert [v for _, v in board["generation/best"]] == pytest.approx([g["best"] for g in gens], rel=1e-6)
    assert all(f"organism{i}/rint" in board for i in range(N))
    assert (run / "evolution.png").stat().st_size > 0
    metrics = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [m["generation"] for m in metrics] == [0, 0, 1, 1, 2, 2]


def test_instincts_are_drawn_selected_recorded_and_carried(evolutions):
    """Generation 0's instincts come from the prior; after each generation the least fit organism takes a
    mutated copy of the fittest one's, the other keeps its own; the lives carry exactly what is recorded."""
    d, _ = evolutions
    gens = [json.loads(x) for x in (d / "whole" / "generations.jsonl").read_text().splitlines()]
    for g in gens:
        for r in instincts.TABLE:
            assert len(g["instincts"][r.name]) == N and all(r.low <= v <= r.high for v in g["instincts"][r.name])
    for g, nxt in zip(gens, gens[1:]):
        (best, worst), = g["instincts_next"]["copied"]
        assert g["fitness"][best] >= g["fitness"][worst]
        was, now = (np.array([x["instincts"][n] for n in instincts.NAMES]).T for x in (g, nxt))
        np.testing.assert_array_equal(now[best], was[best])  # kept
        assert not np.array_equal(now[worst], was[best])  # mutated ...
        assert abs(np.log(now[worst][0] / was[best][0])) < 6 * instincts.TABLE[0].mutation  # ... by about its scale
    _, (orgs, *_), meta = train.load_run(BOTH, d / "whole" / "checkpoint.eqx", free=("run_dir",))
    lived = np.array([gens[-1]["instincts"][n] for n in instincts.NAMES]).T
    np.testing.assert_allclose(instincts.rows(orgs.instincts), lived, rtol=1e-6)
    assert (d / "whole" / "instincts.png").stat().st_size > 0


def test_selection_and_the_control_of_instincts():
    """Truncation selection replaces the worst quarter by mutated copies of the best quarter; the control
    draws afresh from the prior; mutations stay in range and move a learning rate by about x1.28."""
    rng = np.random.default_rng(0)
    values = instincts.prior(rng, 8)
    f = np.arange(8.0)  # organism 7 fittest
    nxt, line = instincts.next_generation("evolve", values, f, rng)
    assert sorted(map(tuple, line["copied"])) == [(6, 1), (7, 0)]
    np.testing.assert_array_equal(nxt[2:], values[2:])
    assert not np.allclose(nxt[:2], values[[7, 6]])
    control, line = instincts.next_generation("none", values, f, rng)
    assert line["copied"] == [] and not np.isin(control, values).any()
    many = instincts.mutate(np.tile([9.5e-4, 0.95, 0.98, 0.8, 1.5, 0.5, 0.5], (4000, 1)), rng)  # mid-range
    for i, r in enumerate(instincts.TABLE):
        assert np.all((many[:, i] >= r.low) & (many[:, i] <= r.high))
    assert 0.2 < np.std(np.log(many[:, 0])) < 0.3


def test_an_organism_reads_its_instincts_as_data(lived):
    """Changing one organism's instincts changes what it learns and nothing of the other's, with the same
    compiled lives."""
    pool, ledger, genomes, newborns, orgs, after = lived
    keys, k_born = train.first_keys(EVO)
    _, states = population.born_population(EVO.life, k_born)
    rows = instincts.rows(orgs.instincts)
    rows[0] = [3e-3, 0.5, 0.9, 0.5, 2.0, 0.7, 0.3]
    changed = eqx.tree_at(lambda o: o.instincts, orgs, instincts.from_rows(rows))
    before = train.COMPILES[0]
    again, _, _ = population.live_threads(EVO.life, changed, states, keys, 32, population.threads_for(N))
    assert train.COMPILES[0] == before
    pick = lambda tree, i: jax.tree.map(lambda x: x[i], tree)  # noqa: E731
    assert leaves_equal(pick(again.model, 1), pick(after.model, 1))
    assert not leaves_equal(pick(again.model, 0), pick(after.model, 0))
    assert float(again.ent_coef[0]) != float(after.ent_coef[0])  # its own entropy target (2.0) moved it


def test_each_fitness_has_its_sampling_error(monkeypatch):
    """survival: the standard error of a mean of episode lengths (the unfinished one counts); crafter: the delta
    method on binomial success rates (against a numerical derivative); prediction: of a mean of surprises."""
    from types import SimpleNamespace

    K = 22
    ach = np.zeros((1, K))
    ach[0, :3] = [1, 2, 3]
    t = SimpleNamespace(episodes=np.array([3.0]), length_sum=np.array([60.0]), length_sq=np.array([1400.0]),
                        achievements=ach, scores={"a/n": np.array([4.0]), "a/surprise": np.array([10.0])},
                        surprise_sq={"a": np.array([30.0])})
    se = evolve.noise(t, np.array([40.0]))
    lengths = np.array([10.0, 20.0, 30.0, 40.0])
    np.testing.assert_allclose(se["survival"], np.std(lengths) / 2)
    np.testing.assert_allclose(se["prediction"], np.sqrt((30 / 4 - (10 / 4) ** 2) / 4))
    p, eps = ach[0] / 3, 1e-7
    grad = [(world.crafter_score(p + eps * np.eye(K)[i]) - world.crafter_score(p)) / eps for i in range(K)]
    np.testing.assert_allclose(se["crafter"], np.sqrt(np.sum(np.square(grad) * p * (1 - p) / 3)), rtol=1e-4)
    snr = evolve.signal_to_noise(np.array([1.0, 3.0]), np.array([0.5, 0.5]))
    assert np.isclose(snr["spread"], np.sqrt(2)) and np.isclose(snr["signal_to_noise"], np.sqrt(2) / 0.5)
    # a new fitness is one registry entry: its value and its error come with it
    monkeypatch.setitem(evolve.FITNESSES, "toy", evolve.Fitness(lambda t, now: 2 * t.episodes,
                                                                lambda t, now: now / 10, "twice the episodes"))
    np.testing.assert_allclose(evolve.noise(t, np.array([40.0]))["toy"], [4.0])


def test_resume_continues_the_evolution_exactly(evolutions):
    d, mid = evolutions
    assert mid % EVO.run.steps != 0  # the stopped run was resumed from the middle of a life
    whole = (d / "whole" / "generations.jsonl").read_text()
    for other in ("extended", "stopped"):
        for a, b in zip(whole.splitlines(), (d / other / "generations.jsonl").read_text().splitlines(),
                        strict=True):
            a, b = json.loads(a), json.loads(b)
            for k in ("fitness", "genomes", "pool", "all_fitness", "instincts", "instincts_next", "fitness_se"):
                assert a[k] == b[k], (other, k)
        assert (d / other / "pool.json").read_text() == (d / "whole" / "pool.json").read_text()
        x, y = (open(d / r / "checkpoint.eqx", "rb").read().split(b"\n", 1)[1] for r in ("whole", other))
        assert x == y  # every leaf: organisms, worlds, keys and the pool


def test_init_from_starts_new_lives_from_an_evolved_pool_or_a_checkpoint(evolutions, tmp_path):
    d, _ = evolutions
    cfg = BOTH.replace(generations=1, steps=32, seed=50, init_from=str(d / "whole"))
    _, (_, _, _, pool), meta = train.load_run(BOTH, d / "whole" / "checkpoint.eqx", free=("run_dir",))
    keys, k_born = train.first_keys(cfg)
    orgs, states = population.born_population(cfg.life, k_born)
    founded, inherited = train.founders(cfg, orgs)
    last = json.loads((d / "whole" / "generations.jsonl").read_text().splitlines()[-1])
    assert inherited.tolist() == meta["instincts"] and len(inherited) == N  # what the next generation would get
    lived = np.array([last["instincts"][n] for n in instincts.NAMES]).T
    (best, worst), = last["instincts_next"]["copied"]
    kept = [i for i in range(N) if i != worst]
    np.testing.assert_array_equal(inherited[kept], lived[kept])  # the others keep theirs
    assert not np.array_equal(inherited[worst], lived[worst])  # the least fit took a mutated copy
    for i in range(N):
        for s in range(LAYERS):
            mine = jax.tree.map(lambda g: g[i, s], founded.model.stack.genes)
            assert any(leaves_equal(mine, jax.tree.map(lambda g: g[p], pool.genes)) for p in range(P))
        for a, b in zip(trunk_leaves(jax.tree.map(lambda x: x[i], founded.model)), trunk_leaves(pool.trunk)):
            np.testing.assert_array_equal(a, b)
    # from a run without evolution: its organisms' weights
    plain = cfg.replace(init_from="", run_dir=str(tmp_path / "plain"))
    train.train(plain, progress=False)
    _, (saved, *_), _ = train.load_run(plain, Path(plain.run.run_dir) / "checkpoint.eqx", free=())
    again, _ = train.founders(cfg.replace(init_from=plain.run.run_dir), orgs)
    assert leaves_equal(again.model, saved.model)
    assert leaves_equal(again.opt_state, orgs.opt_state)  # a fresh optimizer
    other = cfg.replace(init_from=plain.run.run_dir, slots=cfg.life.body.slots + 1)  # refused before compiling
    with pytest.raises(ValueError, match=f"another body.*give --slots {cfg.life.body.slots}"):
        train.validate(other)
    # on the command line, the body comes from the run it starts from (a bare command line gives the default body)
    parsed = train.parse(["--init-from", str(d / "whole"), "--population", "2"])
    assert parsed.life.body == BOTH.life.body and parsed.life.body != train.Config().life.body
    assert parsed.learning.objective == BOTH.learning.objective and parsed.run.population == 2
    assert train.parse(["--init-from", str(d / "whole"), "--d-model", "8"]).body.d_model == 8  # a flag still wins
    summary = train.train(cfg.replace(run_dir=str(tmp_path / "judged")), progress=False)
    assert summary["population"] == 2 and summary["steps"] == 32
    lived = [[o["instincts"][n] for n in instincts.NAMES] for o in summary["organisms"]]
    np.testing.assert_allclose(lived, inherited, rtol=1e-6)  # the judged lives carry the evolved instincts


def test_compare_evolution_runs_its_arms_and_judges_them_on_fresh_seeds(tmp_path, monkeypatch):
    c = compare.Compare(what="evolution", seeds=1, fresh=False,
                        base=EVO.replace(steps=32, generations=2, population=2, run_dir=str(tmp_path)))
    compare.main(c)
    table = (tmp_path / "evolution.md").read_text()
    rows = [ln.split("|")[1].strip() for ln in table.splitlines() if ln.startswith("| ") and "arm" not in ln]
    with_instincts = [a for a in compare_evolution.ARMS if a != "darwinian, genes"]
    assert rows == [*compare_evolution.ARMS, *with_instincts, *compare_evolution.ARMS]  # the table, the instincts
    # chosen (arms that select or redraw them), the answers to the design's questions
    assert (tmp_path / "evolution.png").stat().st_size > 0 and (tmp_path / "instincts.png").stat().st_size > 0
    assert "What evolution chose" in table and table.count("(0.0003..0.003)") == 1  # one instincts table
    arm = study.slug("darwinian, genes and instincts")
    judged = json.loads((tmp_path / f"{arm}-s0-judged" / "config.json").read_text())
    assert judged["evolution"]["init_from"].endswith(f"{arm}-s0") and judged["evolution"]["evolve"] == "both"
    assert judged["run"]["seed"] == compare_evolution.JUDGE_SEED
    assert "| flags |" in table and table.count("| flags |") == 1  # only the genes-only arm keeps its flags
    # more generations: each evolution goes on from its checkpoint (its first two generations kept), and its
    # judgement is made again from the longer evolution's pool
    evo, judged = tmp_path / f"{arm}-s0", tmp_path / f"{arm}-s0-judged"
    gens, before = (evo / "generations.jsonl").read_text().splitlines(), (judged / "summary.json").read_text()
    compare.main(dataclasses.replace(c, base=c.base.replace(generations=3)))
    now = (evo / "generations.jsonl").read_text().splitlines()
    assert len(now) == 3 and now[:2] == gens
    assert json.loads((judged / "summary.json").read_text()) != json.loads(before)
    # --arms: only those arms are run and reported (here reused as they are); an unknown arm is a one-line error
    ctl = "control (no selection), lamarckian"
    compare.main(dataclasses.replace(c, base=c.base.replace(generations=3), arms=(ctl,)))
    table = (tmp_path / "evolution.md").read_text()
    rows = [ln.split("|")[1].strip() for ln in table.splitlines() if ln.startswith("| ") and "arm" not in ln]
    assert rows == [ctl] * 3 and (evo / "generations.jsonl").read_text().splitlines() == now
    first = next(ln for ln in table.splitlines() if ln.startswith(f"| {ctl} |"))
    assert first.split("|")[5].strip() == "–"  # its control, the darwinian one, did not run
    with pytest.raises(ValueError, match="unknown evolution arm"):
        compare.main(dataclasses.replace(c, arms=("lamarck",)))
    # the same runs named by a relative path from elsewhere are reused, not wiped and run again
    monkeypatch.chdir(tmp_path.parent)
    ctl_runs = tmp_path / f"{study.slug(ctl)}-s0"
    made = [ctl_runs / "checkpoint.eqx", Path(f"{ctl_runs}-judged") / "summary.json"]
    was = [f.stat().st_mtime_ns for f in made]
    compare.main(dataclasses.replace(c, base=c.base.replace(generations=3, run_dir=tmp_path.name), arms=(ctl,)))
    assert [f.stat().st_mtime_ns for f in made] == was


@pytest.mark.parametrize("change, message", [
    (dict(pool=2), "smaller than one genome needs"),
    (dict(generations=0), "--generations must be at least 1"), (dict(layers=2, slots=2), "at least 3"),
    (dict(turnover=4), "--turnover"), (dict(init_from="/nonexistent"), "--init-from"),
    (dict(evolve="instincts", inherit="lamarckian"), "needs --evolve genes or both"),
    (dict(evolve="both", policy="random"), "needs --policy learned"),
])
def test_bad_evolution_values_are_one_line_errors(change, message):
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        train.validate(EVO.replace(**change))


def test_a_resumed_evolution_cannot_change_the_length_of_a_life(evolutions, tmp_path):
    d, _ = evolutions
    shutil.copytree(d / "whole", tmp_path / "run")
    with pytest.raises(ValueError, match="steps"):
        train.train(BOTH.replace(run_dir=str(tmp_path / "run"), steps=128, resume=True), progress=False)
    out = subprocess.run([sys.executable, str(ROOT / "train.py"), "--generations", "2", "--pool", "2"],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode != 0 and out.stderr.strip().splitlines()[-1].startswith("error: --pool 2 is smaller")
    out = subprocess.run([sys.executable, str(ROOT / "train.py"), "--generations", "2", "--fitness", "speed"],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode != 0 and "invalid choice 'speed' for argument '--fitness'" in out.stderr
