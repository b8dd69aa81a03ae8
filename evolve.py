"""Evolution: a pool of genes shaped by selection across generations.

The body is a residual stream that a few genes (transformer layers) add to, so a body is a sequence of
genes. A pool of P genes is kept. Each generation, every organism's genome (one pool position per
expressed slot, in order, no gene twice) is drawn from the pool; birth gathers those genes into its
stack; it lives one life of ``--steps`` steps, learning online (dying in Craftax only starts a new
episode); its fitness then credits the genes it carried, by depth. Then selection: the least-credited
genes that were carried enough are discarded, the most-credited split in two (an exact copy and a
mutated copy, both with new ids and the parent's id), so the pool keeps its size; and the next genomes
are drawn by credit per depth, so a gene can move to another depth.

    fitness   survival (mean episode length over the life), prediction (mean prequential log-likelihood of
              the world model's targets: how well it learned), crafter (the Crafter score of the life: the
              environment's achievements judge the organism, they are never a reward to the learner)
    credit    carriers' fitness as centred ranks within their generation (-0.5 worst .. +0.5 best), summed per
              depth bin (early / mid / late = thirds of the expressed slots), shrunk by one pseudo-carrier
              towards a prior (0, or the parent's credit for a split's children); a gene's credit is that of
              its best bin, so genes are compared within their depth (a late gene is not unfit for being late)
    inherit   darwinian: what a life learned dies with it; the pool changes by selection and mutation only.
              lamarckian: each carried gene's learned weights from its fittest carrier go back into the pool,
              and the fittest organism's learned trunk becomes the next trunk. Genes grown during a life
              (develop.py) never enter the pool under either rule: they carry no pool id and no record.

Besides its genes an organism is born with the *trunk* (embeddings, senses, final norm and heads), one for
the whole population, which follows the same rule: fixed from generation 0 under darwinian, the fittest
organism's learned trunk under lamarckian. Gates start at 1 and the optimizer state starts fresh at every
birth under both rules (Adam's moments describe one life's gradients, not a gene). ``--selection none`` is
the control: genomes are drawn uniformly and nothing is selected; the darwinian pool never changes, while a
lamarckian one still takes learned weights back, from carriers (and a trunk) chosen at random instead of the
fittest: inherited learning without selection.

Arrays (the pool's genes and trunk) are a ``Pool``, checkpointed with the organisms; everything else (ids,
parents, statistics per gene) is a host-side ``Ledger`` written to ``pool.json``. Every array operation
here has a fixed shape, so nothing compiles after the first generation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import tyro

import instincts
import life
import world
from genes import Gene, express
from model import Model

BINS = ("early", "mid", "late")
MIN_CARRIED = 2  # a gene is judged (discarded or split) only after this many carriers
TEMPERATURE = 0.2  # genomes are drawn with probability ~ exp(credit / TEMPERATURE); credits lie in [-0.5, 0.5]
POOL_PER_SLOT = 4  # the default pool: this many genes per expressed slot


# ----------------------------------------------------------------------------- fitness: one entry each


@dataclass(frozen=True)
class Fitness:
    """What selection may favour: its value per organism and its sampling error (how far it would move if the
    same organism lived its life again in another world), each from the life's tallies ``t`` and the age of
    the unfinished episode (``life_now``), [N] each; ``help``: what it is, for --fitness."""

    value: Callable
    error: Callable
    help: str


def survival(t, life_now: np.ndarray) -> np.ndarray:
    """Mean episode length over the life (the unfinished episode counts too)."""
    return (t.length_sum + life_now) / (t.episodes + 1)


def survival_error(t, life_now: np.ndarray) -> np.ndarray:
    """The standard error of a mean of episode lengths."""
    n = t.episodes + 1
    mean = (t.length_sum + life_now) / n
    return np.sqrt(np.maximum((t.length_sq + life_now**2) / n - mean**2, 0.0) / n)


def prediction(t, life_now: np.ndarray) -> np.ndarray:
    """The mean prequential log-likelihood of the world model's targets: how well it learned."""
    names = {k.split("/")[0] for k in t.scores}
    return -sum(t.scores[f"{n}/surprise"] / np.maximum(t.scores[f"{n}/n"], 1) for n in sorted(names))


def prediction_error(t, life_now: np.ndarray) -> np.ndarray:
    """The standard error of a mean over the scored steps (a lower bound: neighbouring steps are correlated)."""
    var = 0.0
    for name, q in t.surprise_sq.items():
        k = np.maximum(t.scores[f"{name}/n"], 1)
        m = t.scores[f"{name}/surprise"] / k
        var = var + np.maximum(q / k - m**2, 0.0) / k
    return np.sqrt(var)


def crafter(t, life_now: np.ndarray) -> np.ndarray:
    """The life's Crafter score (the environment's achievements judge the organism; never a reward to it)."""
    return np.array([world.crafter_score(a / e) if e else 0.0 for a, e in zip(t.achievements, t.episodes)])


def crafter_error(t, life_now: np.ndarray) -> np.ndarray:
    """The delta method on each achievement's success rate (binomial over the episodes)."""
    E = np.maximum(t.episodes, 1)[:, None]
    p = t.achievements / E  # [N, K]
    score = np.array([world.crafter_score(r) for r in p])
    grad = (score[:, None] + 1.0) * 100.0 / (1.0 + 100.0 * p) / p.shape[1]
    return np.sqrt(np.sum(grad**2 * p * (1 - p) / E, axis=1))


FITNESSES: dict[str, Fitness] = {
    "survival": Fitness(survival, survival_error, "mean episode length over the life"),
    "prediction": Fitness(prediction, prediction_error, "the mean prequential log-likelihood of the world "
                          "model's targets (how well it learned)"),
    "crafter": Fitness(crafter, crafter_error, "the life's Crafter score (the environment's achievements judge "
                       "the organism; never a reward to the learner)"),
}  # a new fitness is one entry here


FITNESS_HELP = ("what selection favours: " + "; ".join(f"'{k}' = {f.help}" for k, f in FITNESSES.items())
                + ". Each is reported beside its sampling error (FITNESSES: its value and its error)")


def noise(t, life_now: np.ndarray) -> dict[str, np.ndarray]:
    """Each fitness's sampling error per organism ([N] each)."""
    return {name: np.asarray(f.error(t, life_now), np.float64) for name, f in FITNESSES.items()}


def signal_to_noise(f: np.ndarray, se: np.ndarray) -> dict:
    """The spread of a fitness between organisms (standard deviation) beside its sampling error (root mean
    square over the organisms), and their ratio: below about 1, selection mostly sees luck."""
    spread = float(np.std(f, ddof=1)) if len(f) > 1 else 0.0
    err = float(np.sqrt(np.mean(np.square(se))))
    return {"spread": spread, "noise": err, "signal_to_noise": spread / err if err > 0 else None}


@dataclass(frozen=True)
class Evolution:
    """Evolution: lives born from a gene pool that selection shapes, generation after generation (evolve.py)."""

    generations: int = 1
    """lives of --steps steps, one generation after another, each born from a gene pool that selection shapes;
    1 = a population without evolution. --resume may extend it"""
    pool: int = 0
    """genes in the pool; 0: 4 per expressed slot (--layers)"""
    fitness: Annotated[Literal[tuple(FITNESSES)], tyro.conf.arg(help=FITNESS_HELP)] = "crafter"
    inherit: Literal["darwinian", "lamarckian"] = "darwinian"
    """'darwinian': life learning dies with the organism; 'lamarckian': each gene's fittest carrier writes its
    learned weights back into the pool, and the fittest organism's trunk (embeddings, heads) is kept"""
    selection: Literal["evolve", "none"] = "evolve"
    """'none' is the control: genomes drawn uniformly, instincts from their prior, no gene discarded or split;
    with --inherit lamarckian, random carriers (not the fittest) write their learned weights back"""
    evolve: Literal["genes", "instincts", "both"] = "genes"
    """what selection shapes: 'genes' = the pool of layers; 'instincts' = each organism's learner numbers
    (instincts.py: learning rates, gamma, lambda, entropy target; the pool stays as drawn); 'both'. With
    instincts, generation 0's are drawn from their prior (with --generations 1 too)"""
    mutation: float = 0.02
    """a split's mutated copy adds Gaussian noise of this times each weight array's RMS"""
    turnover: int = 2
    """genes discarded, and genes split, per generation (the pool keeps its size)"""
    init_from: str = ""
    """a run directory to start from: an evolution's final pool (genomes drawn from it by credit, with its
    trunk), or any run's checkpoint weights; fresh optimizers, seeds and worlds"""

    @property
    def evolving(self) -> bool:
        return self.generations > 1

    @property
    def instincts(self) -> bool:
        """Whether the organisms' instincts are drawn and selected here (else they are the learner's flags)."""
        return self.evolve in ("instincts", "both")

    @property
    def genes(self) -> bool:
        """Whether selection shapes the pool of genes."""
        return self.selection == "evolve" and self.evolve in ("genes", "both")

    def pool_size(self, layers: int) -> int:
        return self.pool or POOL_PER_SLOT * layers

    def check(self, layers: int) -> None:
        """One clear line for impossible evolution settings (``layers``: the body's expressed slots)."""
        P = self.pool_size(layers)
        checks = [
            (self.generations >= 1, f"--generations must be at least 1, got {self.generations}"),
            (not self.evolving or layers >= 3, f"evolution needs a body of at least 3 expressed slots (early, "
                                               f"mid and late genes): --layers {layers}"),
            (P >= layers, f"--pool {P} is smaller than one genome needs (--layers {layers} distinct genes)"),
            (self.turnover >= 0 and 2 * self.turnover <= P,
             f"--turnover {self.turnover} must lie between 0 and half the pool ({P // 2})"),
            (self.mutation >= 0, f"--mutation cannot be negative, got {self.mutation}"),
            (not (self.init_from and self.evolving), "--init-from starts new lives, not an evolution: "
                                                     "use it with --generations 1"),
            (not (self.evolve == "instincts" and self.inherit == "lamarckian"),
             "--inherit lamarckian writes learned genes back into the pool: it needs --evolve genes or both"),
        ]
        for ok, msg in checks:
            if not ok:
                raise ValueError(msg)


def depth_bin(slot: int, expressed: int) -> int:
    """0 early, 1 mid, 2 late: which third of the expressed slots ``slot`` lies in."""
    return min(3 * slot // expressed, 2)


class Pool(eqx.Module):
    """The pool's arrays: P genes stacked on a leading axis, and the trunk (a whole model whose non-gene
    weights every organism is born with; its own gene stack is never used)."""

    genes: Gene
    trunk: Model


@dataclass
class Ledger:
    """The pool's bookkeeping: which gene sits at each pool position, and a record of every gene ever made."""

    ids: list[int]
    genes: dict[int, dict]
    next_id: int
    generation: int = 0  # generations completed

    def new_gene(self, parent: int | None, prior) -> int:
        i = self.next_id
        self.next_id += 1
        self.genes[i] = dict(id=i, parent=parent, born=self.generation, discarded=None, fate="alive", carried=0,
                             carried_by_bin=[0, 0, 0], fitness_sum=[0.0, 0.0, 0.0], rank_sum=[0.0, 0.0, 0.0],
                             prior=[float(p) for p in prior], knockout_sum=0.0, gate=None, last_carried=None)
        return i

    def to_json(self) -> dict:
        return {"ids": self.ids, "genes": list(self.genes.values()), "next_id": self.next_id,
                "generation": self.generation}

    @staticmethod
    def from_json(d: dict) -> Ledger:
        return Ledger(ids=list(d["ids"]), genes={g["id"]: g for g in d["genes"]}, next_id=d["next_id"],
                      generation=d["generation"])


def credit_by_bin(rec: dict) -> np.ndarray:
    """[3] credit of a gene at each depth: its carriers' centred ranks there, shrunk towards its prior."""
    return (np.array(rec["rank_sum"]) + np.array(rec["prior"])) / (np.array(rec["carried_by_bin"]) + 1.0)


def credit(rec: dict) -> float:
    """A gene's credit: that of its best depth bin among those it was carried in (its prior if never carried)."""
    c, seen = credit_by_bin(rec), np.array(rec["carried_by_bin"]) > 0
    return float(c[seen].max()) if seen.any() else float(np.max(rec["prior"]))


def centred_ranks(x: np.ndarray) -> np.ndarray:
    """Ranks scaled to [-0.5, 0.5] (ties share their mean rank): fitness of any scale becomes comparable."""
    x = np.asarray(x, np.float64)
    if len(x) < 2:
        return np.zeros(len(x))
    ranks = np.empty(len(x))
    ranks[np.argsort(x, kind="stable")] = np.arange(len(x))
    for v in np.unique(x):
        ranks[x == v] = ranks[x == v].mean()
    return ranks / (len(x) - 1) - 0.5


# ----------------------------------------------------------------------------- the pool and births


def new_ledger(P: int) -> Ledger:
    """The records of a fresh pool of P genes."""
    ledger = Ledger(ids=[], genes={}, next_id=0)
    ledger.ids = [ledger.new_gene(None, (0.0, 0.0, 0.0)) for _ in range(P)]
    return ledger


def new_pool(cfg: life.Life, key, P: int) -> Pool:
    """P fresh genes and a fresh trunk, from ``key`` (op by op, as ``life.born`` draws weights)."""
    b = cfg.body
    k_genes, k_trunk = jax.random.split(key)
    genes = eqx.filter_vmap(lambda k: Gene(b.d_model, b.n_heads, b.mlp_ratio, key=k))(jax.random.split(k_genes, P))
    return Pool(genes=genes, trunk=life.new_model(cfg, k_trunk))


def draw(selection: str, layers: int, ledger: Ledger, rng: np.random.Generator, n: int) -> np.ndarray:
    """n genomes, [n, layers] pool positions: by credit at each slot's depth (``selection evolve``), or
    uniformly (``selection none``); no gene twice in one genome."""
    P, L = len(ledger.ids), layers
    logits = np.stack([credit_by_bin(ledger.genes[i]) for i in ledger.ids]) / TEMPERATURE  # [P, 3]
    out = np.zeros((n, L), np.int32)
    for org in range(n):
        free = np.ones(P, bool)
        for s in range(L):
            z = logits[:, depth_bin(s, L)] if selection == "evolve" else np.zeros(P)
            p = np.where(free, np.exp(z - z[free].max()), 0.0)
            out[org, s] = rng.choice(P, p=p / p.sum())
            free[out[org, s]] = False
    return out


def donors(ledger: Ledger, pool: Pool, rng: np.random.Generator, slots, active) -> Gene:
    """Genes for ``--grow-gene pool``: for each organism, a pool gene drawn by credit at the depth its new
    slot will have (of ``active + 1`` expressed genes), as genomes are drawn; stacked, one per organism."""
    credit_at = np.stack([credit_by_bin(ledger.genes[i]) for i in ledger.ids]) / TEMPERATURE  # [P, 3]
    picks = []
    for k, n in zip(slots, active):
        z = credit_at[:, depth_bin(int(k), int(n) + 1)]
        p = np.exp(z - z.max())
        picks.append(rng.choice(len(p), p=p / p.sum()))
    return jax.tree.map(lambda g: g[jnp.asarray(picks)], pool.genes)


@eqx.filter_jit
def birth(orgs: life.Organism, pool: Pool, genomes) -> life.Organism:
    """Newborns (a population, fresh from ``population.born_population``) given the pool's trunk and, in their
    first slots, exactly the pool genes their genomes name ([N, layers] positions). Gates, active flags,
    the free slots and the (fresh) optimizer state stay the newborns' own."""

    def one(org, genome):
        stack = express(org.model.stack, jax.tree.map(lambda g: g[genome], pool.genes))
        return eqx.tree_at(lambda o: o.model, org, eqx.tree_at(lambda m: m.stack, pool.trunk, stack))

    return eqx.filter_vmap(one)(orgs, genomes)


# ----------------------------------------------------------------------------- the end of a life


def fitness(orgs: life.Organism) -> dict[str, np.ndarray]:
    """Every fitness of every organism ([N] each, float64), from its life's tallies."""
    t = jax.tree.map(lambda x: np.asarray(x, np.float64), orgs.tally)
    life_now = np.asarray(orgs.life, np.float64)
    return {name: np.asarray(f.value(t, life_now), np.float64) for name, f in FITNESSES.items()}


@eqx.filter_jit
def knockout(cfg: life.Life, orgs: life.Organism):
    """[N, slots]: how much each organism's world-model loss on its last window rises when one slot's gate
    is set to 0 (an inactive slot: exactly 0)."""

    def one(org):
        gates = org.model.stack.gates
        D = gates.shape[0]

        def loss(i):  # slot i's gate set to 0; i = D: none (one batch, so the baseline rounds like the rest)
            m = eqx.tree_at(lambda m: m.stack.gates, org.model, jnp.where(jnp.arange(D) == i, 0.0, gates))
            return life.world_model_loss(m, cfg, org.window, org.now, life.prior_of(org.tally), org.features)[0]

        losses = jax.vmap(loss)(jnp.arange(D + 1))
        return losses[:D] - losses[D]

    return eqx.filter_vmap(one)(orgs)


@eqx.filter_jit
def write_back(pool: Pool, orgs: life.Organism, carrier, slot, carried, best) -> Pool:
    """Lamarckian inheritance: pool position p takes the learned gene in slot ``slot[p]`` of organism
    ``carrier[p]`` where ``carried[p]``; the trunk becomes organism ``best``'s learned model."""
    learned = jax.tree.map(lambda g: g[carrier, slot], orgs.model.stack.genes)

    def keep(new, old):
        return jnp.where(carried.reshape((-1,) + (1,) * (old.ndim - 1)), new, old)

    trunk = jax.tree.map(lambda x: x[best], orgs.model)
    return Pool(genes=jax.tree.map(keep, learned, pool.genes), trunk=trunk)


@eqx.filter_jit
def regroup(pool: Pool, src, scale, key) -> Pool:
    """Pool position p takes the gene at ``src[p]``, plus Gaussian noise of ``scale[p]`` times the root mean
    square of each of its weight arrays (0: an exact copy)."""
    leaves, tree = jax.tree.flatten(pool.genes)

    def one(x, k):
        parent = x[src]
        rms = jnp.sqrt(jnp.mean(jnp.square(parent), axis=tuple(range(1, x.ndim)), keepdims=True))
        s = scale.reshape((-1,) + (1,) * (x.ndim - 1))
        return parent + s * rms * jax.random.normal(k, parent.shape, parent.dtype)

    keys = jax.random.split(key, len(leaves))
    return Pool(genes=jax.tree.unflatten(tree, [one(x, k) for x, k in zip(leaves, keys)]), trunk=pool.trunk)


@jax.jit
def spread(genes: Gene):
    """The pool's diversity: mean distance between two of its genes, over the mean size of a gene."""
    flat = jnp.concatenate([x.reshape(x.shape[0], -1) for x in jax.tree.leaves(genes)], axis=1)
    d = jnp.sqrt(jnp.maximum(jnp.sum(jnp.square(flat[:, None] - flat[None]), -1), 0.0))
    P = flat.shape[0]
    return d.sum() / (P * (P - 1)) / jnp.mean(jnp.linalg.norm(flat, axis=1))


def root(ledger: Ledger, i: int) -> int:
    while ledger.genes[i]["parent"] is not None:
        i = ledger.genes[i]["parent"]
    return i


def select(cfg: Evolution, pool: Pool, ledger: Ledger, key) -> tuple[Pool, list, list]:
    """Discard the ``turnover`` least-credited genes carried at least MIN_CARRIED times; split as many of the
    most-credited into an exact copy (at the parent's position) and a mutated copy (at a discarded one's),
    both with new ids. Returns (pool, discarded ids, [(parent, copy, mutant)])."""
    P = len(ledger.ids)
    recs = [ledger.genes[i] for i in ledger.ids]
    eligible = sorted((p for p in range(P) if recs[p]["carried"] >= MIN_CARRIED),
                      key=lambda p: (credit(recs[p]), recs[p]["id"]))
    k = min(cfg.turnover, len(eligible) // 2)
    worst, best = eligible[:k], eligible[::-1][:k]
    src, scale = np.arange(P), np.zeros(P, np.float32)
    discarded, splits = [], []
    g = ledger.generation
    for parent, hole in zip(best, worst):
        src[hole], scale[hole] = parent, cfg.mutation
        old, dead = ledger.ids[parent], ledger.ids[hole]
        ledger.genes[dead].update(discarded=g, fate="discarded")
        ledger.genes[old].update(discarded=g, fate="split")
        prior = credit_by_bin(ledger.genes[old])
        ledger.generation += 1  # children are born into the next generation
        a, b = ledger.new_gene(old, prior), ledger.new_gene(old, prior)
        ledger.generation -= 1
        ledger.ids[parent], ledger.ids[hole] = a, b
        discarded.append(dead)
        splits.append((old, a, b))
    return regroup(pool, jnp.asarray(src), jnp.asarray(scale), key), discarded, splits


def record(ledger: Ledger, genomes: np.ndarray, f: np.ndarray, knock: np.ndarray, gates: np.ndarray) -> None:
    """Credit this generation's carriers: each organism's fitness ``f`` (and its centred rank) goes to every
    gene it carried, in the depth bin of its slot, with the gene's knockout effect and final gate."""
    N, L = genomes.shape
    ranks = centred_ranks(f)
    g = ledger.generation
    gate_now: dict[int, list] = {}
    for i in range(N):
        for s in range(L):
            rec, b = ledger.genes[ledger.ids[genomes[i, s]]], depth_bin(s, L)
            rec["carried"] += 1
            rec["carried_by_bin"][b] += 1
            rec["fitness_sum"][b] += float(f[i])
            rec["rank_sum"][b] += float(ranks[i])
            rec["knockout_sum"] += float(knock[i, s])
            rec["last_carried"] = g
            gate_now.setdefault(rec["id"], []).append(float(gates[i, s]))
    for i, gs in gate_now.items():
        ledger.genes[i]["gate"] = float(np.mean(gs))


def end_of_life(life_cfg: life.Life, cfg: Evolution, pool: Pool, ledger: Ledger, genomes: np.ndarray,
                orgs: life.Organism, key, placed=None, inst: np.ndarray | None = None):
    """Credit, inheritance and selection after a generation's lives: (pool, ledger, its generations.jsonl line,
    the next generation's instincts or None). ``ledger`` is updated in place. ``placed`` [N, layers]: the slot
    each genome gene sits in now (genes grown during life (develop.py) push those above them up; they have no
    pool id and never enter the pool). ``inst`` [N, I]: the instincts this generation lived with, when
    selection shapes them (``--evolve instincts`` or ``both``)."""
    N, L = genomes.shape
    placed = np.tile(np.arange(L), (N, 1)) if placed is None else np.asarray(placed)
    fits = fitness(orgs)
    errs = noise(jax.tree.map(lambda x: np.asarray(x, np.float64), orgs.tally), np.asarray(orgs.life, np.float64))
    f = fits[cfg.fitness]
    at = lambda x: np.take_along_axis(np.asarray(x), placed, axis=1)  # noqa: E731  [N, slots] -> [N, L]
    record(ledger, genomes, f, at(knockout(life_cfg, orgs)), at(orgs.model.stack.gates))
    line = {"generation": ledger.generation, "fitness_kind": cfg.fitness, "fitness": [float(x) for x in f],
            "best": float(np.max(f)), "mean": float(np.mean(f)),
            **{f"{k}_mean": float(np.mean(v)) for k, v in fits.items()},
            "all_fitness": {k: v.tolist() for k, v in fits.items()},
            "fitness_se": errs[cfg.fitness].tolist(), **signal_to_noise(f, errs[cfg.fitness]),
            "all_signal_to_noise": {k: signal_to_noise(fits[k], errs[k])["signal_to_noise"] for k in fits},
            "genomes": [[ledger.ids[p] for p in row] for row in genomes]}
    nxt = None
    if inst is not None:
        line["instincts"] = {n: inst[:, i].tolist() for i, n in enumerate(instincts.NAMES)}
        nxt, line["instincts_next"] = instincts.next_generation(cfg.selection, inst, f,
                                                                np.random.default_rng(np.asarray(key)))
    if cfg.inherit == "lamarckian":  # each carried gene's fittest carrier writes its learned weights back
        P = len(ledger.ids)
        carrier, slot, carried = np.zeros(P, np.int32), np.zeros(P, np.int32), np.zeros(P, bool)
        order = f if cfg.selection == "evolve" else \
            np.random.default_rng(np.asarray(jax.random.fold_in(key, 1))).permutation(N)  # the control: at random
        for i in sorted(range(N), key=lambda i: (order[i], -i)):  # the fittest carrier (first on a tie) writes last
            for s in range(L):
                carrier[genomes[i, s]], slot[genomes[i, s]], carried[genomes[i, s]] = i, placed[i, s], True
        pool = write_back(pool, orgs, jnp.asarray(carrier), jnp.asarray(slot), jnp.asarray(carried),
                          jnp.asarray(int(np.argmax(order)), jnp.int32))
    discarded, splits = [], []
    if cfg.genes:
        pool, discarded, splits = select(cfg, pool, ledger, key)
    ledger.generation += 1
    line["pool"] = {"ids": list(ledger.ids), "discarded": discarded, "splits": splits,
                    "lineages": len({root(ledger, i) for i in ledger.ids}), "spread": float(spread(pool.genes))}
    return pool, ledger, line, nxt


# ----------------------------------------------------------------------------- files and founders


def pool_json(ledger: Ledger) -> dict:
    """pool.json: every gene ever made, with its carriers' fitness (mean, and by depth), credit, knockout
    effect (mean rise of its carriers' loss without it) and final gate (mean over its last carriers)."""
    genes = []
    for rec in ledger.genes.values():
        n, nb = rec["carried"], np.array(rec["carried_by_bin"])
        fs = np.array(rec["fitness_sum"])
        genes.append({
            **{k: rec[k] for k in ("id", "parent", "born", "discarded", "fate", "carried", "carried_by_bin")},
            "in_pool": rec["id"] in ledger.ids,
            "fitness": float(fs.sum() / n) if n else None,
            "fitness_by_depth": {b: (float(fs[j] / nb[j]) if nb[j] else None) for j, b in enumerate(BINS)},
            "credit": credit(rec), "credit_by_depth": dict(zip(BINS, map(float, credit_by_bin(rec)))),
            "knockout": rec["knockout_sum"] / n if n else None, "final_gate": rec["gate"]})
    return {"generation": ledger.generation, "pool": ledger.ids, "genes": genes}


def founders(orgs: life.Organism, their_orgs: life.Organism, their_pool: Pool | None, ledger: Ledger | None,
             selection: str, layers: int, seed: int, index: np.ndarray | None = None,
             population: int | None = None) -> life.Organism:
    """``--init-from RUN_DIR``: newborns (fresh optimizers, their own new worlds) that start from another run
    (its organisms, pool and ledger as its checkpoint holds them; ``train.py`` loads it).

    An evolution's run: genomes drawn from its final pool as its next generation would be (by credit, or
    uniformly for its ``selection`` none, with this run's ``seed``), with its trunk. Any other run: organism i
    starts from the weights of organism i mod N' of its checkpoint. ``index``: which organisms of a population
    of ``population`` ``orgs`` are (a process's slice; default all of them).
    """
    index = np.arange(orgs.now.age.shape[0]) if index is None else np.asarray(index)
    N = len(index) if population is None else population
    if their_pool is None:
        n = their_orgs.now.age.shape[0]
        models = jax.tree.map(lambda x: x[index % n], their_orgs.model)
        return eqx.tree_at(lambda o: o.model, orgs, models)
    genomes = draw(selection, layers, ledger, np.random.default_rng([seed, 7919]), N)
    return birth(orgs, their_pool, jnp.asarray(genomes[index]))
