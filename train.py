"""Train curious organisms online in Craftax: ``python train.py --objective inverse_dynamics``.

This file is the tyro ``Config`` and the one run loop that ties the other files together. The config is in
groups, one per concept, each defined and checked beside its own code: the run (here), the body
(``model.Body``), learning (``learner.Learning``), the mind (``memory.Mind``), evolution
(``evolve.Evolution``) and growth (``develop.Growth``); every field is a short flag (``--steps``,
``--generations``) and ``--help`` lists them by group. The organism and its life are in ``life.py``, many
lives at once in ``population.py``. Between jitted chunks of life the host logs, draws the progress bar,
lets growth and evolution act, and writes checkpoints. ``--population N`` runs N organisms at once
(organism i is the single life of seed + i), vmapped in one jitted chunk and sharded over the devices.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import equinox as eqx
import jax
import numpy as np
import tyro
from jax.sharding import Mesh, NamedSharding, PartitionSpec

import hosts

if __name__ == "__main__":  # --processes: JAX joins its distributed runtime before Craftax makes its first arrays
    try:
        hosts.join_from(sys.argv[1:])
    except (ValueError, TimeoutError) as e:
        sys.exit(f"error: {e}")

import develop  # noqa: E402
import evolve  # noqa: E402
import instincts  # noqa: E402
import life  # noqa: E402
import objectives as O  # noqa: E402
import plots  # noqa: E402
import population  # noqa: E402
from checkpoint import load_checkpoint, read_header, save_checkpoint  # noqa: E402
from develop import Growth  # noqa: E402
from evolve import Evolution  # noqa: E402
from learner import Learning  # noqa: E402
from memory import Mind  # noqa: E402
from model import Body  # noqa: E402

Group = tyro.conf.OmitArgPrefixes  # a group's flags keep their short names: --steps, not --run.steps


@dataclass(frozen=True)
class Run:
    """The run: how long, which seeds, where its files go (nothing here changes what a life computes)."""

    steps: int = 60_000
    """total environment steps of the run (of each generation's lives, in an evolution)"""
    seed: int = 0
    """random seed: same seed, same run"""
    population: int = 1
    """organisms living at once (vmapped, sharded over the devices); organism i is the single life of
    --seed + i, so a population of N reproduces N single runs"""
    threads: int = 0
    """host threads that run equal slices of the population side by side (each slice is reborn on its
    own); 0: on a CPU with one device, as many as there are cores (dividing the population), else 1"""
    run_dir: str = ""
    """where the run's files go; empty means runs/<objectives joined by +>-<policy>[-<curiosity>]-s<seed>
    [-n<population>]-<time> (an oracle run's name says 'oracle': it is a control, not the animal)"""
    resume: bool = False
    """continue the run in --run-dir from its latest checkpoint, with the flags in its config.json (give
    --steps or --generations to extend it)"""
    chunk: int = 1000
    """steps per jitted chunk; metrics are logged once per chunk"""
    checkpoint_every: int = 10_000
    """steps between checkpoints (rounded up to whole chunks); one is always written at the end"""
    gif_steps: int = 200
    """length of the life GIF written at the end (0: none)"""
    gif_organism: int = 0
    """which organism of the population the GIF shows"""
    tensorboard: bool = True
    """also write each chunk's metrics (each organism's too) as TensorBoard event files in the run directory:
    ``tensorboard --logdir runs`` watches every run live"""
    processes: int = 1
    """processes that share the population (JAX's distributed runtime: one per host or per GPU), each living
    an equal slice; process 0 writes the run directory. 0: as the cluster says (Slurm, Open MPI, Kubernetes)"""
    process_id: int = 0
    """this process's rank among --processes (0 is the coordinator and writes the run directory)"""
    coordinator: str = ""
    """HOST:PORT where process 0 meets the others (empty: $JAX_COORDINATOR_ADDRESS)"""
    join_timeout: int = 120
    """seconds to wait for every process to join (or for a silent process, once running) before stopping"""

    def check(self) -> None:
        for ok, msg in [
            (self.steps > 0, f"--steps must be positive, got {self.steps}"),
            (self.chunk > 0, f"--chunk must be positive, got {self.chunk}"),
            (self.checkpoint_every > 0, f"--checkpoint-every must be positive, got {self.checkpoint_every}"),
            (self.gif_steps >= 0, "--gif-steps cannot be negative"),
            (not self.resume or self.run_dir, "--resume needs --run-dir"),
            (self.population >= 1, f"--population must be at least 1, got {self.population}"),
            (self.threads >= 0 and self.population % max(self.threads, 1) == 0,
             f"--threads ({self.threads}) must divide --population ({self.population})"),
            (0 <= self.gif_organism < self.population,
             f"--gif-organism must name one of the {self.population} organisms (0 to {self.population - 1})"),
        ]:
            if not ok:
                raise ValueError(msg)
        hosts.check(self.processes, self.process_id, self.join_timeout, self.population)


@dataclass(frozen=True)
class Config:
    """An online, intrinsically motivated agent in Craftax. Every field of every group is a flag."""

    run: Group[Run] = Run()
    body: Group[Body] = Body()
    learning: Group[Learning] = Learning()
    mind: Group[Mind] = Mind()
    evolution: Group[Evolution] = Evolution()
    growth: Group[Growth] = Growth()

    @property
    def life(self) -> life.Life:
        """What an organism's life computes from, sizes worked out (jitted functions take it)."""
        return life.Life(self.body.sized(self.evolution.evolving), self.learning, self.mind.sized())

    @property
    def total_steps(self) -> int:
        """Steps of the whole run (of each organism line): every generation's lives."""
        return self.evolution.generations * self.run.steps

    def flat(self) -> dict:
        """{field: value} over every group (field names are unique across groups)."""
        return {k: v for group in dataclasses.asdict(self).values() for k, v in group.items()}

    def replace(self, **fields) -> Config:
        """A copy with any fields changed, named without their group: ``cfg.replace(steps=10, window=8)``."""
        groups = {g.name: getattr(self, g.name) for g in dataclasses.fields(self)}
        for name, value in fields.items():
            owner = [g for g, grp in groups.items() if name in {f.name for f in dataclasses.fields(grp)}]
            if not owner:
                raise TypeError(f"Config has no field {name!r}")
            groups[owner[0]] = dataclasses.replace(groups[owner[0]], **{name: value})
        return Config(**groups)

    @staticmethod
    def of(**fields) -> Config:
        """A config from fields named without their group: ``Config.of(d_model=16, chunk=50)``."""
        return Config().replace(**fields)

    @staticmethod
    def from_json(saved: dict) -> Config:
        """The config a run's config.json (or checkpoint header) holds: grouped, or flat as older runs wrote it."""
        grouped = all(isinstance(v, dict) for v in saved.values())
        flat = {k: v for g in saved.values() for k, v in g.items()} if grouped else saved
        return Config.of(**{k: tuple(v) if isinstance(v, list) else v for k, v in flat.items()})


# the default multi-objective mix: bench.py's multi_sps row, compare.py's mix row
MIX = dict(objective=("forward_dynamics", "inverse_dynamics"), weights=(1.0, 0.5))


def validate(cfg: Config) -> None:
    """Reject impossible configs with one clear line, before anything is compiled; each group checks itself."""
    c = cfg.life
    c.body.check()
    cfg.run.check()
    c.learning.check()
    if c.learning.entropy_target >= math.log(c.spec.n_actions):
        raise ValueError(f"--entropy-target must lie below the uniform policy's entropy, ln {c.spec.n_actions} = "
                         f"{math.log(c.spec.n_actions):.2f} nats, got {c.learning.entropy_target}")
    reach = max(O.make_plan(n, O.LAYOUTS[n], 1).reach for n in c.objectives)
    c.mind.check(c.objectives, reach)
    if cfg.body.obs == "pixels" and "masked_state" in c.objectives:
        raise ValueError("masked_state needs --obs symbolic")
    if cfg.body.obs == "pixels" and c.curiosity.symbolic:
        raise ValueError(f"--curiosity {c.learning.curiosity} {c.curiosity.symbolic}; "
                         "with --obs pixels choose one that does not (surprise, forward, progress, rnd, count, ...)")
    cfg.evolution.check(c.body.layers)
    instincts.check(c.learning, cfg.evolution.instincts)
    cfg.growth.check(c.body, cfg.run.chunk, cfg.evolution.evolving)
    if cfg.evolution.init_from:
        same_body(cfg)  # there, readable, and of the same body
    if cfg.run.population % jax.process_count():
        raise ValueError(f"--population {cfg.run.population} cannot be shared evenly over {jax.process_count()} "
                         "processes")
    devices = len(jax.devices())
    if cfg.run.population > 1 and cfg.run.population % devices:
        raise ValueError(f"--population {cfg.run.population} cannot be shared evenly over the {devices} devices"
                         f"{f' of {jax.process_count()} processes' if jax.process_count() > 1 else ''}; "
                         f"choose a multiple of {devices}")


# ----------------------------------------------------------------------------- the run's directory and keys


def default_run_dir(cfg: Config) -> str:
    r, lrn = cfg.run, cfg.learning
    pop = f"-n{r.population}" if r.population > 1 else ""
    why = f"-{lrn.curiosity}" if lrn.policy == "learned" else ""
    return f"runs/{'+'.join(lrn.objectives)}-{lrn.policy}{why}-s{r.seed}{pop}-{time.strftime('%Y%m%d-%H%M%S')}"


def prepare_run_dir(cfg: Config) -> Path:
    """The run directory, made and checked writable before anything compiles (one clear line if not); only
    process 0 writes there (over several processes, a resumed run's directory must be one they all see)."""
    if jax.process_count() > 1 and not cfg.run.run_dir:
        raise ValueError("--processes needs --run-dir (every process must name the same directory)")
    run = Path(cfg.run.run_dir or default_run_dir(cfg))
    if cfg.run.resume and not (run / "checkpoint.eqx").exists():
        raise FileNotFoundError(f"no checkpoint at {run / 'checkpoint.eqx'}")
    if not cfg.run.resume and (run / "checkpoint.eqx").exists():
        raise FileExistsError(f"{run} already holds a run; pass --resume to continue it, or choose another --run-dir")
    if jax.process_index() > 0:
        return run
    try:
        run.mkdir(parents=True, exist_ok=True)
        probe = run / ".write-test.tmp"
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        raise ValueError(f"--run-dir {run} cannot be written: {e.strerror or e}") from None
    return run


def first_keys(cfg: Config):
    """(run keys, birth keys), each [N, 2]: organism i's are exactly those of the single life of seed + i."""
    seeds = cfg.run.seed + np.arange(cfg.run.population)
    keys = jax.vmap(jax.random.split)(jax.vmap(jax.random.PRNGKey)(seeds))
    return keys[:, 0], keys[:, 1]


def generation_keys(cfg: Config, g: int):
    """``first_keys`` for generation 0; folded with ``g`` for the later ones (new lives in new worlds)."""
    keys, born = first_keys(cfg)
    if g == 0:
        return keys, born
    fold = jax.vmap(lambda k: jax.random.fold_in(k, g))
    return fold(keys), fold(born)


def evolution_key(cfg: Config, what: int):
    """Keys of evolution and development: 0 makes the first pool, 1 + g the mutations after generation g,
    -1 (folded with the step) the fresh genes grown during life."""
    return jax.random.fold_in(jax.random.PRNGKey(cfg.run.seed), (1 << 20) + what)


@functools.lru_cache(maxsize=8)
def state_like(cfg: Config):
    """The shapes of a run's checkpointed state, (organisms, worlds, keys, pool or None), computing nothing."""
    c = cfg.life
    keys = jax.ShapeDtypeStruct((cfg.run.population, 2), jax.numpy.uint32)
    orgs, env_states = eqx.filter_eval_shape(population.born_population, c, keys)
    pool = None
    if cfg.evolution.evolving:
        P = cfg.evolution.pool_size(c.body.layers)
        pool = eqx.filter_eval_shape(evolve.new_pool, c, jax.ShapeDtypeStruct((2,), jax.numpy.uint32), P)
    return orgs, env_states, keys, pool


def resume_free(cfg: Config, saved: dict) -> tuple[str, ...]:
    """Fields a resumed run may change: the run's own, and --generations of an evolution (not --steps: a
    generation is one life of --steps)."""
    was = saved.get("generations", 1)
    if (was > 1) != cfg.evolution.evolving:
        raise ValueError(f"{cfg.run.run_dir} was run with --generations {was}: a run cannot be resumed into or "
                         f"out of evolution (--generations {cfg.evolution.generations})")
    run_fields = tuple(f.name for f in dataclasses.fields(Run))
    if cfg.evolution.evolving:
        return tuple(f for f in run_fields if f != "steps") + ("generations",)
    return run_fields


def load_run(cfg: Config, path: Path, free: tuple[str, ...] | None = None):
    """(step, (orgs, worlds, keys, pool), meta) from a run's checkpoint made with ``cfg`` (but ``free``)."""
    header = read_header(path)
    saved = Config.from_json(header["config"]).flat()
    free = resume_free(cfg, saved) if free is None else free
    step, state = load_checkpoint(path, cfg.flat(), state_like(cfg), free, saved)
    return step, state, header["meta"]


def sharding(cfg: Config) -> NamedSharding | None:
    """This process's slice of the population spread over its devices (None: one device or one organism,
    plain vmap)."""
    devices = jax.local_devices()
    if cfg.run.population // jax.process_count() == 1 or len(devices) == 1:
        return None
    return NamedSharding(Mesh(np.array(devices), ("population",)), PartitionSpec("population"))


def pick(tree, i: int):
    """Organism ``i`` of a population (every leaf has a leading population axis)."""
    return jax.tree.map(lambda x: x[i], tree)


COMPILES = [0]  # XLA compilations in this process (generations.jsonl: none after the first generation)


def _count_compiles(name: str, *_, **__) -> None:
    if name == "/jax/core/compile/backend_compile_duration":
        COMPILES[0] += 1


jax.monitoring.register_event_duration_secs_listener(_count_compiles)


# ----------------------------------------------------------------------------- the lives of a run


class Lives:
    """A run's state between chunks: the organisms, their worlds and keys, the step, and the host-side state
    of evolution (pool, ledger, genomes) and development.

    Over several processes ``orgs``, ``env_states`` and ``keys`` hold this process's slice of the population
    (organisms ``self.mine``); everything else (development, the pool, the ledger, genomes, instincts) is the
    whole population's, the same in every process."""

    def __init__(self, cfg: Config, run: Path):
        self.cfg, self.run, self.step = cfg, run, 0
        self.place, self.mine = sharding(cfg), hosts.mine(cfg.run.population)
        self.orgs = self.env_states = self.keys = self.pool = self.ledger = self.genomes = self.instincts = None
        N, evo = cfg.run.population, cfg.evolution
        self.development = develop.Development(N, cfg.life.body.layers)
        if cfg.run.resume:
            at = read_header(run / "checkpoint.eqx")["step"]
            if at > cfg.total_steps:
                raise ValueError(f"{run} is at step {at}, beyond this run's end ({cfg.total_steps}: "
                                 f"{'--generations x ' if evo.evolving else ''}--steps); a run cannot go back")
            self.step, (orgs, env_states, keys, self.pool), meta = load_run(cfg, run / "checkpoint.eqx")
            self.put(*self.cut((orgs, env_states, keys)))  # each process restores its slice
            if "growth" in meta:
                self.development = develop.Development.from_json(meta["growth"])
            if evo.evolving:
                self.ledger = evolve.Ledger.from_json(meta["ledger"])
                self.genomes = np.array(meta["genomes"], np.int32)
            if evo.instincts:
                self.instincts = np.array(meta["instincts"], np.float64)
        else:
            if evo.evolving:
                self.ledger = evolve.new_ledger(evo.pool_size(cfg.life.body.layers))
                self.pool = evolve.new_pool(cfg.life, evolution_key(cfg, 0), len(self.ledger.ids))
            if evo.instincts:  # generation 0's instincts: drawn from their prior
                self.instincts = instincts.prior(np.random.default_rng([cfg.run.seed, 1 << 21]), N)

    def cut(self, tree):
        """This process's organisms of a tree of the whole population."""
        return jax.tree.map(lambda x: x[self.mine], tree)

    def whole(self):
        """(orgs, worlds, keys) of the whole population, gathered from every process (a collective)."""
        return hosts.gather((self.orgs, self.env_states, self.keys))

    def everyone(self) -> Lives:
        """These lives with the whole population's organisms, worlds and keys (a collective; itself in one
        process)."""
        if jax.process_count() == 1:
            return self
        other = copy.copy(self)
        other.orgs, other.env_states, other.keys = self.whole()
        return other

    def expressed(self):
        """(gates, active flags) of every organism's gene slots, [N, slots] each (a collective)."""
        return hosts.gather((np.asarray(self.orgs.model.stack.gates), np.asarray(self.orgs.model.stack.active)))

    def put(self, orgs, env_states, keys) -> None:
        if self.place is not None:
            orgs, env_states, keys = jax.device_put((orgs, env_states, keys), self.place)
        self.orgs, self.env_states, self.keys = orgs, env_states, keys

    @property
    def generation(self) -> int:
        return self.step // self.cfg.run.steps

    def newborns(self) -> None:
        """A new generation is born (generation 0: the run's first lives): from the pool in an evolution, from
        another run with --init-from."""
        cfg, g = self.cfg, self.generation
        keys, k_born = self.cut(generation_keys(cfg, g))
        orgs, env_states = population.born_population(cfg.life, k_born)
        if cfg.evolution.evolving:
            rng = np.random.default_rng([cfg.run.seed, g])
            self.genomes = evolve.draw("evolve" if cfg.evolution.genes else "none", cfg.life.body.layers,
                                       self.ledger, rng, cfg.run.population)
            orgs = evolve.birth(orgs, self.pool, jax.numpy.asarray(self.genomes[self.mine]))
        if cfg.evolution.init_from:
            orgs, inherited = founders(cfg, orgs, np.arange(cfg.run.population)[self.mine])
            if inherited is not None and cfg.evolution.instincts:  # the evolved instincts, not a fresh draw
                self.instincts = inherited
        if self.instincts is not None:
            orgs = eqx.tree_at(lambda o: o.instincts, orgs, instincts.from_rows(self.instincts[self.mine]))
        self.development = develop.Development(cfg.run.population, cfg.life.body.layers)
        self.put(orgs, env_states, keys)

    def live(self, n: int, threads: int):
        """n steps of every life: the chunk's records, [N, n] each (as numpy; every process's, gathered)."""
        split = jax.vmap(jax.random.split)(self.keys)
        self.keys, k = split[:, 0], split[:, 1]
        self.orgs, self.env_states, rec = population.live_threads(self.cfg.life, self.orgs, self.env_states, k, n,
                                                                  threads)
        self.step += n
        return hosts.gather(jax.device_get(rec))

    def grow(self, at: int, n: int, per: list[dict]) -> list[dict]:
        """Development after a chunk: whoever has stalled (or is due) grows a gene now; the growth events."""
        cfg = self.cfg
        g = cfg.growth
        active = self.expressed()[1].sum(1)
        surprise = [p.get(f"{cfg.learning.curious}/surprise") for p in per]
        mask, k, why = develop.decide(g, cfg.life.body.slots, cfg.run.chunk, self.development, at, n, surprise, active)
        if not mask.any():
            return []
        given = None
        if g.grow_gene == "pool":
            given = evolve.donors(self.ledger, self.pool, np.random.default_rng([cfg.run.seed, self.step]), k, active)
        keys = jax.random.split(jax.random.fold_in(evolution_key(cfg, -1), self.step), cfg.run.population)
        mine = self.cut((mask, k, keys, given))
        orgs = develop.grow(cfg.life, g.grow_gene, self.orgs, *mine, g.grow_gate)
        self.put(orgs, self.env_states, self.keys)
        return [{"step": self.step, "organism": int(i), "slot": int(k[i]), "active_before": int(active[i]),
                 "gene": g.grow_gene, "why": why[i]} for i in np.flatnonzero(mask)]

    def end_of_generation(self, seconds: float, compiles: int) -> dict:
        """Credit, inheritance and selection: the generation's line of generations.jsonl."""
        cfg = self.cfg
        ended = self.generation - 1  # the generation whose lives just ended
        self.pool, self.ledger, line, nxt = evolve.end_of_life(
            cfg.life, cfg.evolution, self.pool, self.ledger, self.genomes, hosts.gather(self.orgs),
            evolution_key(cfg, 1 + ended),
            np.array(self.development.placed), self.instincts)
        if nxt is not None:
            self.instincts = nxt
        line.update(seconds=seconds, compiles=compiles)
        return line

    def save(self) -> None:
        meta = {"growth": self.development.to_json()} if self.cfg.growth.grow != "never" else {}
        if self.cfg.evolution.evolving:
            meta.update(ledger=self.ledger.to_json(), genomes=self.genomes.tolist())
        if self.instincts is not None:  # the instincts of the lives now, or of the next generation's at its end
            meta.update(instincts=self.instincts.tolist())
        whole = self.whole()  # one checkpoint of the whole population, written by process 0
        if jax.process_index() == 0:
            save_checkpoint(self.run / "checkpoint.eqx", self.cfg, self.step, (*whole, self.pool), meta)


def same_body(cfg: Config) -> Config:
    """``--init-from``: the config of the run it starts from, after checking that its body agrees with this one
    (one clear line naming the flags that differ, before anything is compiled)."""
    theirs = Config.from_json(read_header(Path(cfg.evolution.init_from) / "checkpoint.eqx")["config"])
    same = ("body", "objectives", "learner", "memory", "think")
    describe = lambda c: {**dataclasses.asdict(c.body), "objectives": c.objectives,  # noqa: E731
                          "learner": c.learning.learner, "memory": c.mind.memory, "think": c.mind.think}
    a, b = describe(cfg.life), describe(theirs.life)
    diff = [k for k in a if json.loads(json.dumps(a[k])) != json.loads(json.dumps(b[k]))]
    if diff:
        sizes = ("layers", "slots", "d_model", "n_heads", "mlp_ratio", "cell_dim", "memory", "think")
        flags = " ".join(f"--{k.replace('_', '-')} {b[k]}" for k in diff if k in sizes)
        raise ValueError(f"--init-from {cfg.evolution.init_from} has another body ({', '.join(same)} must agree): "
                         + ", ".join(f"{k}={b[k]!r} (here {a[k]!r})" for k in diff)
                         + (f"; give {flags}" if flags else ""))
    return theirs


def founders(cfg: Config, orgs, index: np.ndarray | None = None):
    """``--init-from``: newborns (organisms ``index`` of the population; default all) that start from another run's
    organisms or final pool (``evolve.founders``), and the instincts they would inherit from it ([N, I]:
    organism i takes row i mod N' of the instincts its next generation would have been born with), or None if
    it kept none (its instincts were its flags)."""
    path = Path(cfg.evolution.init_from) / "checkpoint.eqx"
    theirs = same_body(cfg)
    mine = cfg.life
    _, (their_orgs, _, _, their_pool), meta = load_run(theirs, path, free=())
    ledger = evolve.Ledger.from_json(meta["ledger"]) if their_pool is not None else None
    inherited = None
    if "instincts" in meta:
        rows = np.array(meta["instincts"], np.float64)
        inherited = rows[np.arange(cfg.run.population) % len(rows)]
    return evolve.founders(orgs, their_orgs, their_pool, ledger, "evolve" if theirs.evolution.genes else "none",
                           mine.body.layers, cfg.run.seed, index, cfg.run.population), inherited


def check_finite(rec, step: int, n: int, population: int, last_ckpt: str) -> None:
    """The run stops at the first non-finite loss, and says where."""
    if np.all(rec.finite):
        return
    who, when = np.argwhere(~rec.finite.astype(bool))[0]
    whose = f" (organism {who})" if population > 1 else ""
    raise FloatingPointError(f"non-finite loss at step {step - n + when}{whose}; stopping (last checkpoint: "
                             f"{last_ckpt}). Try a lower --lr.")


def train(cfg: Config, progress: bool = True) -> dict:
    """Run (or resume) the lives of a population (one organism by default), generation after generation
    when evolving, in this process or as one of ``--processes``; write the run directory; return the summary
    (process 0's: the others write nothing and return {})."""
    import report

    r = cfg.run
    r.check()  # before joining: a process id out of range is one line, not a process that waits
    hosts.join(r.processes, r.process_id, r.coordinator, r.join_timeout, r.population)
    validate(cfg)
    run = prepare_run_dir(cfg)
    lives = Lives(cfg, run)
    log = report.Log(cfg, run, lives.step, progress) if jax.process_index() == 0 else None  # process 0 writes
    L, threads = r.steps, population.threads_for(r.population // jax.process_count(), r.threads)
    last_ckpt, compiles, born_at = lives.step, COMPILES[0], time.perf_counter()
    while lives.step < cfg.total_steps:
        at = lives.step % L
        if at == 0:  # a new generation is born (generation 0: the run's first lives)
            lives.newborns()
            compiles, born_at = COMPILES[0], time.perf_counter()
        n = min(cfg.run.chunk, L - at)  # a shorter last chunk costs one more compile
        t0 = time.perf_counter()
        rec = lives.live(n, threads)
        check_finite(rec, lives.step, n, cfg.run.population, f"{run / 'checkpoint.eqx'}, step {last_ckpt}")
        seconds = time.perf_counter() - t0
        per = report.chunk_metrics(rec)
        events = lives.grow(at + n, n, per) if cfg.growth.grow != "never" else []
        expressed = lives.expressed()
        if log:
            log.chunk(per, lives.step, n, seconds, lives.generation - (lives.step % L == 0), events, *expressed)
        if cfg.evolution.evolving and lives.step % L == 0:  # the end of a generation's lives
            line = lives.end_of_generation(time.perf_counter() - born_at, COMPILES[0] - compiles)
            if log:
                log.generation(line, lives.ledger)
        if cfg.evolution.evolving and lives.step % L == 0 or lives.step - last_ckpt >= cfg.run.checkpoint_every \
                or lives.step >= cfg.total_steps:
            lives.save()
            last_ckpt = lives.step
    everyone = lives.everyone()
    if not log:
        return {}  # the summary is process 0's
    summary = log.finish(everyone)
    plots.draw(cfg, run, everyone)
    log.tell(summary)
    return summary


def parse(argv: list[str] | None = None) -> Config:
    """The command line's config. ``--resume`` starts from the run's config.json: its flags need not be
    typed again, and a flag given that contradicts the run is refused when its checkpoint is read."""
    cfg = tyro.cli(Config, args=argv)
    if cfg.run.resume and cfg.run.run_dir:
        path = Path(cfg.run.run_dir) / "config.json"
        if not path.exists():
            raise FileNotFoundError(f"no run to resume at {cfg.run.run_dir} (no config.json)")
        try:
            saved = Config.from_json(json.loads(path.read_text()))
        except (ValueError, TypeError) as e:
            raise ValueError(f"{path} is corrupt or unreadable ({type(e).__name__}: {e})") from None
        launch = dict(processes=1, process_id=0, coordinator="")  # how this command runs, not the run's
        cfg = tyro.cli(Config, args=argv, default=saved.replace(resume=True, **launch))
    elif cfg.evolution.init_from and (Path(cfg.evolution.init_from) / "checkpoint.eqx").exists():
        cfg = tyro.cli(Config, args=argv, default=body_of(cfg.evolution.init_from))
    return cfg


def body_of(run: str) -> Config:
    """``--init-from``: the defaults a run that starts from ``run`` takes, its body (every body flag, sizes
    worked out), objectives, learner, memory and thoughts; flags given on the command line still win (and
    ``same_body`` refuses, in one line, those that disagree). Not its curiosity: a run started from the
    oracle control is not made a control itself (a curiosity that needs other objectives is refused)."""
    theirs = Config.from_json(read_header(Path(run) / "checkpoint.eqx")["config"])
    body = theirs.life.body
    return Config().replace(**{f.name: getattr(body, f.name) for f in dataclasses.fields(theirs.body)},
                            objective=theirs.learning.objective, weights=theirs.learning.weights,
                            learner=theirs.learning.learner,
                            memory=theirs.mind.memory, think=theirs.mind.think)


def main(argv: list[str] | None = None) -> None:
    try:
        train(parse(argv))
    except (ValueError, FileNotFoundError, FileExistsError, FloatingPointError, TimeoutError) as e:
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    main()
