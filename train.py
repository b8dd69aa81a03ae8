"""Train curious organisms online in Craftax: ``python train.py --objective inverse_dynamics``.

This file is the tyro ``Config`` and the one run loop that ties the other files together. The organism
and its life (birth, one pure step, ``live`` chunks) are in ``life.py``, many lives at once in
``population.py``; every flag is a field of ``Config``, whose docstrings are the ``--help``. Between
jitted chunks of life the host logs, draws the progress bar and writes checkpoints. ``--population N``
runs N organisms at once (organism i is the single life of seed + i), vmapped in one jitted chunk and
sharded over the devices.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import equinox as eqx
import jax
import numpy as np
import tyro
from jax.sharding import Mesh, NamedSharding, PartitionSpec

import develop
import evolve
import life
import objectives as O
import population
import world
from checkpoint import load_checkpoint, read_header, save_checkpoint

Objective = Literal[
    "inverse_dynamics", "forward_dynamics", "reward", "forward_reward", "backward_dynamics", "location",
    "masked_state", "autoencoder", "trajectory", "trajectory_reward", "trajectory_reward_after",
    "two_state_prefix", "two_state_prefix_reward", "latent_inverse", "latent_forward", "rnd", "recall"]


@dataclass(frozen=True)
class Config:
    """An online, intrinsically motivated agent in Craftax. Every field is a flag: --steps, --objective ..."""

    env: str = "Craftax-Classic-Symbolic-v1"
    """which Craftax world to live in: Craftax-Classic-Symbolic-v1 or Craftax-Symbolic-v1"""
    obs: Literal["symbolic", "pixels"] = "symbolic"
    """what the agent sees: decoded cells, or the 63x63 RGB frame through a small CNN (Classic only)"""
    objective: tuple[Objective, ...] = ("inverse_dynamics",)
    """what the model learns to predict besides its policy: one or more layout names (see objectives.py)"""
    weights: tuple[float, ...] = ()
    """loss weight of each objective, in the same order; empty means 1 each"""
    curiosity: Literal["surprise", "forward", "inverse", "progress", "icm", "rnd", "count", "e3b", "effects",
                       "oracle"] = "surprise"
    """the intrinsic reward: 'surprise' = -log p of the first objective's targets on the newest step;
    'forward' / 'inverse' = the surprise of forward_dynamics / inverse_dynamics; 'progress' = how much one
    update lowered the first objective's surprise on the same data (learning progress); 'icm' =
    latent_forward's error in the model's standardised features (shaped by latent_inverse); 'rnd' = the
    error of predicting a fixed random network's embedding of the state; 'count' = 1/sqrt(visits of this
    view, coarsely hashed, in this life); 'e3b' = an elliptical episodic bonus in the model's features
    (novelty.py); 'effects' = 1/sqrt(times this change of inventory and vitals happened in this life). A curiosity that needs objectives adds those missing from --objective (weight 1). 'oracle' is
    a CONTROL, not the animal: Craftax's own reward (achievements, health) through the same learner, to judge the
    learner apart from any curiosity"""
    policy: Literal["learned", "random"] = "learned"
    """'random' acts uniformly at random (the baseline) but learns its predictions the same way"""
    steps: int = 60_000
    """total environment steps of the run (a resumed run continues up to this)"""
    seed: int = 0
    """random seed: same seed, same run"""
    population: int = 1
    """organisms living at once (vmapped, sharded over the devices); organism i is the single life of
    --seed + i, so a population of N reproduces N single runs"""
    threads: int = 0
    """host threads that run equal slices of the population side by side (each slice is reborn on its
    own); 0: on a CPU with one device, as many as there are cores (dividing the population), else 1"""
    run_dir: str = ""
    """where the run's files go; empty means runs/<objectives joined by +>-<policy>[-<curiosity> unless
    surprise]-s<seed>[-n<population>]-<time>"""
    resume: bool = False
    """continue the run in --run-dir from its latest checkpoint"""
    chunk: int = 1000
    """steps per jitted chunk; metrics are logged once per chunk"""
    checkpoint_every: int = 10_000
    """steps between checkpoints (rounded up to whole chunks); one is always written at the end"""
    window: int = 4
    """T: transitions in the short-term window that every update trains on"""
    d_model: int = 64
    """width of the residual stream"""
    n_heads: int = 4
    """attention heads per gene"""
    layers: int = 0
    """gene slots expressed at birth; 0: 2, or 3 for an evolution (its depth bins need early, mid and late genes)"""
    slots: int = 0
    """gene slots in the body (>= layers); the free ones are for growth and never cost a recompile; 0: --layers"""
    mlp_ratio: int = 2
    """hidden width of each gene's MLP, in multiples of d_model"""
    patch: tuple[int, int] = (4, 9)
    """cells per state token (rows, columns) of the local view"""
    cell_dim: int = 8
    """embedding size of one cell (block + item + mob + position)"""
    lr: float = 1e-3
    """Adam learning rate"""
    max_grad_norm: float = 100.0
    """gradient clipping (global norm); a safety net only: clipping at 1 slowed learning several-fold"""
    gamma: float = 0.95
    """discount of intrinsic returns"""
    lam: float = 0.9
    """GAE lambda"""
    clip: float = 0.2
    """PPO ratio clip"""
    ent_coef: float = 0.01
    """entropy bonus of the policy"""
    value_coef: float = 0.5
    """weight of the value loss"""
    learner: Literal["window", "stream"] = "window"
    """how reward becomes behaviour: 'window' = a PPO-style loss over the window (GAE), in the model's own update;
    'stream' = stream AC(lambda) (learner.py): an actor and a critic of their own on the model's features,
    eligibility traces, the ObGD step"""
    ac_hidden: int = 128
    """--learner stream: width of the actor's and the critic's hidden layers"""
    ac_depth: int = 2
    """--learner stream: hidden layers of the actor and of the critic"""
    ac_lr: float = 1.0
    """--learner stream: the ObGD step size alpha"""
    kappa_policy: float = 3.0
    """--learner stream: the actor's ObGD bound kappa"""
    kappa_value: float = 2.0
    """--learner stream: the critic's ObGD bound kappa"""
    gif_steps: int = 200
    """length of the life GIF written at the end (0: none)"""
    gif_organism: int = 0
    """which organism of the population the GIF shows"""
    generations: int = 1
    """evolution (evolve.py): lives of --steps steps, one generation after another, each born from a gene
    pool that selection shapes; 1 = a population without evolution. --resume may extend it"""
    pool: int = 0
    """genes in the pool; 0: 4 per expressed slot (--layers)"""
    fitness: Literal["survival", "prediction", "crafter"] = "survival"
    """what selection favours: 'survival' = mean episode length over the life; 'prediction' = the mean
    prequential log-likelihood of the world model's targets (how well it learned); 'crafter' = the life's
    Crafter score (selection on the environment's achievements; never a reward to the learner)"""
    inherit: Literal["darwinian", "lamarckian"] = "darwinian"
    """'darwinian': life learning dies with the organism; 'lamarckian': each gene's fittest carrier writes its
    learned weights back into the pool, and the fittest organism's trunk (embeddings, heads) is kept"""
    selection: Literal["evolve", "none"] = "evolve"
    """'none' is the control: the pool never changes and genomes are drawn uniformly"""
    mutation: float = 0.02
    """a split's mutated copy adds Gaussian noise of this times each weight array's RMS"""
    turnover: int = 2
    """genes discarded, and genes split, per generation (the pool keeps its size)"""
    grow: Literal["never", "schedule", "plateau"] = "never"
    """development (develop.py): grow a gene into a free slot during life, behind a closed gate;
    'schedule' every --grow-every steps, 'plateau' when learning stalls; growth stops when --slots are full"""
    grow_every: int = 10_000
    """--grow schedule: steps between insertions (a multiple of --chunk)"""
    plateau_span: int = 5_000
    """--grow plateau: the curious objective's prequential surprise is compared over two spans of this many
    steps (a multiple of --chunk)"""
    plateau_drop: float = 0.01
    """--grow plateau: learning has stalled when the surprise fell by less than this fraction of itself"""
    grow_gap: int = 10_000
    """--grow plateau: at least this many steps from birth or the last insertion to the next"""
    grow_gene: Literal["copy", "fresh", "pool"] = "copy"
    """what grows: a copy of the gene below the new slot (stacking), a freshly initialised gene, or (in an
    evolution) a pool gene drawn by its credit at the new slot's depth"""
    grow_depth: float = 0.5
    """where a gene grows, as a fraction of the active stack (0: below every gene, 1: above, 0.5: the middle)"""
    memory: int = 0
    """M: memory vectors carried from step to step, read by every token and written after each outcome by a
    debrief through a gate (memory.py); 0: no memory"""
    bptt: int = 0
    """K: memory updates the gradient flows back through (truncated backprop through time; at most --window
    - 1, the window holds the transitions it recomputes); 0: --window - 1"""
    think: int = 0
    """K thinking tokens after the state the policy reads, before it acts (pause tokens; memory.py)"""
    think_mode: Literal["pause", "recurrent"] = "pause"
    """'pause': content-less thoughts; 'recurrent': each thought's output is the next thought's input"""
    recall_delay: int = 8
    """the recall probe (--objective recall) predicts the view seen this many steps before, longer ago than
    --window: only memory can know it"""
    init_from: str = ""
    """a run directory to start from: an evolution's final pool (genomes drawn from it by credit, with its
    trunk), or any run's checkpoint weights; fresh optimizers, seeds and worlds"""

    def __post_init__(self):  # the body's automatic sizes (0) and a curiosity's objectives are filled in at once
        extra = tuple(n for n in life.NEEDS.get(self.curiosity, ()) if n not in self.objective)
        if extra:
            if self.weights and len(self.weights) == len(self.objective):
                object.__setattr__(self, "weights", tuple(self.weights) + (1.0,) * len(extra))
            object.__setattr__(self, "objective", tuple(self.objective) + extra)
        if self.layers == 0:
            object.__setattr__(self, "layers", 3 if self.generations > 1 else 2)
        if self.slots == 0:
            object.__setattr__(self, "slots", self.layers)
        if self.bptt == 0:
            object.__setattr__(self, "bptt", self.window - 1)

    @property
    def loss_weights(self) -> tuple[float, ...]:
        return self.weights or (1.0,) * len(self.objective)

    @property
    def world(self) -> str:
        """The Craftax env id: --env with its observation kind switched to --obs."""
        return self.env.replace("-Symbolic-", "-Pixels-") if self.obs == "pixels" else self.env


# the default multi-objective mix: bench.py's multi_sps row, compare.py's mix row
MIX = dict(objective=("forward_dynamics", "inverse_dynamics"), weights=(1.0, 0.5))



def validate(cfg: Config) -> None:
    """Reject impossible configs with one clear line, before anything is compiled."""
    symbolic = [e for e in world.ENVS if "-Symbolic-" in e]  # --env names these; --obs pixels switches
    if cfg.env not in symbolic:
        raise ValueError(f"unknown env {cfg.env!r}; choose one of {', '.join(symbolic)} (for pixels: --obs pixels)")
    if cfg.obs == "pixels" and cfg.world not in world.ENVS:
        raise ValueError(f"--obs pixels is available for Craftax-Classic-Symbolic-v1 only, not {cfg.env}")
    world.env_spec(cfg.world)
    for name in cfg.objective:
        if name not in O.LAYOUTS:
            raise ValueError(f"unknown objective {name!r}; choose from {', '.join(O.LAYOUTS)}")
    span = max((O.make_plan(n, O.LAYOUTS[n], 1).span for n in cfg.objective), default=1)
    checks = [
        (cfg.generations >= 1, f"--generations must be at least 1, got {cfg.generations}"),
        (len(cfg.objective) >= 1, "--objective needs at least one name"),
        (not cfg.weights or len(cfg.weights) == len(cfg.objective),
         f"--weights has {len(cfg.weights)} values for {len(cfg.objective)} objectives ({' '.join(cfg.objective)}; "
         f"a curiosity adds the objectives it needs, with weight 1)"),
        (cfg.steps > 0, f"--steps must be positive, got {cfg.steps}"),
        (cfg.chunk > 0, f"--chunk must be positive, got {cfg.chunk}"),
        (cfg.checkpoint_every > 0, f"--checkpoint-every must be positive, got {cfg.checkpoint_every}"),
        (cfg.window >= span + 1, f"--window must be at least {span + 1}: the window holds at least two instances "
                                 f"of each layout (the longest spans {span} step{'s' * (span > 1)}), "
                                 f"got {cfg.window}"),
        (len(set(cfg.objective)) == len(cfg.objective), "--objective lists a name twice"),
        (cfg.obs == "symbolic" or "masked_state" not in cfg.objective, "masked_state needs --obs symbolic"),
        (1 <= cfg.layers <= cfg.slots, f"--layers must be between 1 and --slots ({cfg.slots}), got {cfg.layers}"),
        (cfg.d_model > 0 and cfg.n_heads > 0 and cfg.d_model % cfg.n_heads == 0,
         f"--d-model ({cfg.d_model}) must be a positive multiple of --n-heads ({cfg.n_heads})"),
        (min(cfg.patch) >= 1 and cfg.mlp_ratio >= 1 and cfg.cell_dim >= 1, "sizes must be positive"),
        (cfg.lr > 0, f"--lr must be positive, got {cfg.lr}"),
        (0 <= cfg.gamma <= 1 and 0 <= cfg.lam <= 1, "--gamma and --lam must lie in [0, 1]"),
        (cfg.gif_steps >= 0, "--gif-steps cannot be negative"),
        (not cfg.resume or cfg.run_dir, "--resume needs --run-dir"),
        (cfg.population >= 1, f"--population must be at least 1, got {cfg.population}"),
        (cfg.threads >= 0 and (cfg.population < 1 or cfg.population % max(cfg.threads, 1) == 0),
         f"--threads ({cfg.threads}) must divide --population ({cfg.population})"),
        (0 <= cfg.gif_organism < max(cfg.population, 1),
         f"--gif-organism must name one of the {cfg.population} organisms (0 to {cfg.population - 1})"),
        (cfg.memory >= 0 and cfg.think >= 0, "--memory and --think cannot be negative"),
        (cfg.memory == 0 or 1 <= cfg.bptt <= cfg.window - 1,
         f"--bptt must be between 1 and --window - 1 = {cfg.window - 1} (the window holds the transitions that "
         f"backprop recomputes), got {cfg.bptt}"),
        (cfg.think_mode == "pause" or cfg.think >= 2, "--think-mode recurrent needs --think 2 or more"),
        ("recall" not in cfg.objective or cfg.recall_delay > cfg.window,
         f"--recall-delay must be more than --window ({cfg.window}): the probe asks for what the window no longer "
         f"holds, got {cfg.recall_delay}"),
    ]
    for ok, msg in checks:
        if not ok:
            raise ValueError(msg)
    if cfg.generations > 1 or cfg.init_from:
        evolve.check(cfg)
    if cfg.grow != "never":
        develop.check(cfg)
    devices = len(jax.devices())
    if cfg.population > 1 and cfg.population % devices:
        raise ValueError(f"--population {cfg.population} cannot be shared evenly over the {devices} devices; "
                         f"choose a multiple of {devices}")


# ----------------------------------------------------------------------------- the run


def default_run_dir(cfg: Config) -> str:
    pop = f"-n{cfg.population}" if cfg.population > 1 else ""
    why = f"-{cfg.curiosity}" if cfg.policy == "learned" and cfg.curiosity != "surprise" else ""
    return f"runs/{'+'.join(cfg.objective)}-{cfg.policy}{why}-s{cfg.seed}{pop}-{time.strftime('%Y%m%d-%H%M%S')}"


def prepare_run_dir(cfg: Config) -> Path:
    """The run directory, made and checked writable before anything compiles (one clear line if not)."""
    run = Path(cfg.run_dir or default_run_dir(cfg))
    if cfg.resume and not (run / "checkpoint.eqx").exists():
        raise FileNotFoundError(f"no checkpoint at {run / 'checkpoint.eqx'}")
    try:
        run.mkdir(parents=True, exist_ok=True)
        probe = run / ".write-test.tmp"
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        raise ValueError(f"--run-dir {run} cannot be written: {e.strerror or e}") from None
    if not cfg.resume and (run / "checkpoint.eqx").exists():
        raise FileExistsError(f"{run} already holds a run; pass --resume to continue it, or choose another --run-dir")
    return run


def first_keys(cfg: Config):
    """(run keys, birth keys), each [N, 2]: organism i's are exactly those of the single life of seed + i."""
    keys = jax.vmap(jax.random.split)(jax.vmap(jax.random.PRNGKey)(cfg.seed + np.arange(cfg.population)))
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
    return jax.random.fold_in(jax.random.PRNGKey(cfg.seed), (1 << 20) + what)


@functools.lru_cache(maxsize=8)
def state_like(cfg: Config):
    """The shapes of a run's checkpointed state, (organisms, worlds, keys, pool or None), computing nothing
    (tracing once per config)."""
    world.make_env(cfg.world)
    keys = jax.ShapeDtypeStruct((cfg.population, 2), jax.numpy.uint32)
    orgs, env_states = eqx.filter_eval_shape(population._born_population, life.core(cfg), keys)
    pool = None
    if cfg.generations > 1:
        pool = eqx.filter_eval_shape(evolve._new_pool, life.core(cfg), jax.ShapeDtypeStruct((2,), jax.numpy.uint32),
                                     evolve.pool_size(cfg))
    return orgs, env_states, keys, pool


def resume_free(cfg: Config, saved: dict) -> tuple[str, ...]:
    """Fields a resumed run may change: the run's own, and --generations of an evolution (not --steps: a
    generation is one life of --steps)."""
    if (saved.get("generations", 1) > 1) != (cfg.generations > 1):
        raise ValueError(f"{cfg.run_dir} was run with --generations {saved.get('generations', 1)}: a run cannot "
                         f"be resumed into or out of evolution (--generations {cfg.generations})")
    if cfg.generations > 1:
        return tuple(f for f in life.RUN_FIELDS if f != "steps") + ("generations",)
    return life.RUN_FIELDS


def sharding(cfg: Config) -> NamedSharding | None:
    """The population axis spread over every device (None: one device or one organism, plain vmap)."""
    devices = jax.devices()
    if cfg.population == 1 or len(devices) == 1:
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


def earlier_speed(run: Path) -> float | None:
    """The steps/s of the run's summary so far (None if none): kept when this call timed no chunk after its
    first (which includes compiling), so a short resumption does not erase the figure."""
    try:
        return json.loads((run / "summary.json").read_text())["steps_per_second"]
    except (OSError, ValueError, KeyError):
        return None


def kept_lines(path: Path, keep) -> None:
    """Rewrite a .jsonl file with only the lines ``keep`` accepts (a resumed run drops what came after its
    checkpoint)."""
    lines = path.read_text().splitlines() if path.exists() else []
    path.write_text("".join(ln + "\n" for ln in lines if ln.strip() and keep(json.loads(ln))))


def train(cfg: Config, progress: bool = True) -> dict:
    """Run (or resume) the lives of a population (one organism by default), generation after generation
    when evolving; write the run directory; return the summary."""
    validate(cfg)
    from tqdm import tqdm

    import report

    run = prepare_run_dir(cfg)
    ckpt = run / "checkpoint.eqx"
    N, L = cfg.population, cfg.steps
    evolving = cfg.generations > 1
    total = cfg.generations * L  # steps of the whole run (of each organism line)
    pool = ledger = genomes = orgs = None
    growth = develop.Growth(N, cfg.layers)
    step = 0
    if cfg.resume:
        header = read_header(ckpt)
        if header["step"] > total:
            raise ValueError(f"{run} is at step {header['step']}, beyond this run's end ({total}: "
                             f"{'--generations x ' if evolving else ''}--steps); a run cannot go back")
        step, (orgs, env_states, keys, pool) = load_checkpoint(ckpt, cfg, state_like(cfg),
                                                               resume_free(cfg, header["config"]))
        if "growth" in header["meta"]:
            growth = develop.Growth.from_json(header["meta"]["growth"])
        if evolving:
            ledger = evolve.Ledger.from_json(header["meta"]["ledger"])
            genomes = np.array(header["meta"]["genomes"], np.int32)
    elif evolving:
        pool, ledger = evolve.new_pool(cfg, evolution_key(cfg, 0))
    place = sharding(cfg)
    if place is not None and orgs is not None:
        orgs, env_states, keys = jax.device_put((orgs, env_states, keys), place)
    threads = population.threads_for(N, cfg.threads)
    (run / "config.json").write_text(json.dumps(dataclasses.asdict(cfg), indent=2) + "\n")
    kept_lines(run / "metrics.jsonl", lambda m: cfg.resume and m["step"] <= step)
    if evolving:
        kept_lines(run / "generations.jsonl", lambda m: cfg.resume and m["generation"] < step // L)

    def newborns(g: int):
        keys, k_born = generation_keys(cfg, g)
        orgs, env_states = population.born_population(cfg, k_born)
        genomes = None
        if evolving:
            genomes = evolve.draw(cfg, ledger, np.random.default_rng([cfg.seed, g]), N)
            orgs = evolve.birth(orgs, pool, jax.numpy.asarray(genomes))
        if cfg.init_from:
            orgs = evolve.founders(cfg, orgs, env_states, state_like)
        return orgs, env_states, keys, genomes

    def meta() -> dict:
        out = {"growth": growth.to_json()} if cfg.grow != "never" else {}
        return {**out, "ledger": ledger.to_json(), "genomes": genomes.tolist()} if evolving else out

    bar = tqdm(total=total, initial=step, unit="step", desc=f"{N} lives" if N > 1 else None, disable=not progress,
               dynamic_ncols=True)  # a step of the bar is a step of every life; sps= counts organism-steps
    timed_steps, timed_seconds, last_ckpt = 0, 0.0, step
    first = True
    compiles, born_at = COMPILES[0], time.perf_counter()
    while step < total:
        g, at = divmod(step, L)
        if at == 0:  # a new generation is born (generation 0: the run's first lives)
            orgs, env_states, keys, genomes = newborns(g)
            growth = develop.Growth(N, cfg.layers)
            compiles, born_at = COMPILES[0], time.perf_counter()
            if place is not None:
                orgs, env_states, keys = jax.device_put((orgs, env_states, keys), place)
        n = min(cfg.chunk, L - at)  # a shorter last chunk costs one more compile
        split = jax.vmap(jax.random.split)(keys)
        keys, k = split[:, 0], split[:, 1]
        t0 = time.perf_counter()
        orgs, env_states, rec = population.live_threads(cfg, orgs, env_states, k, n, threads)
        rec = jax.device_get(rec)  # every leaf [N, n]
        dt = time.perf_counter() - t0
        step += n
        if not first:  # the first chunk includes compilation
            timed_steps, timed_seconds = timed_steps + n, timed_seconds + dt
        first = False
        if not np.all(rec["finite"]):
            who, when = np.argwhere(~rec["finite"].astype(bool))[0]
            whose = f" (organism {who})" if N > 1 else ""
            raise FloatingPointError(f"non-finite loss at step {step - n + when}{whose}; stopping (last checkpoint: "
                                     f"{ckpt}, step {last_ckpt}). Try a lower --lr.")
        per = [report.chunk_metrics(pick(rec, i), step, dt) for i in range(N)]
        events = []
        if cfg.grow != "never":  # development: whoever has stalled (or is due) grows a gene now
            active = np.asarray(orgs.model.stack.active).sum(1)
            surprise = [p.get(f"{life.curious(cfg)}/surprise") for p in per]
            mask, k, why = develop.decide(cfg, growth, at + n, n, surprise, active)
            if mask.any():
                given = evolve.donors(cfg, ledger, pool, np.random.default_rng([cfg.seed, step]), k, active) \
                    if cfg.grow_gene == "pool" else None
                orgs = develop.grow(cfg, orgs, mask, k, jax.random.fold_in(evolution_key(cfg, -1), step), given)
                if place is not None:
                    orgs = jax.device_put(orgs, place)
                events = [{"step": step, "organism": int(i), "slot": int(k[i]), "active_before": int(active[i]),
                           "gene": cfg.grow_gene, "why": why[i]} for i in np.flatnonzero(mask)]
        for p, gates, active in zip(per, np.asarray(orgs.model.stack.gates), np.asarray(orgs.model.stack.active)):
            p["gates"], p["active_genes"] = [round(float(x), 5) for x in gates], int(active.sum())
        m = report.population_metrics(per)
        if events:
            m["growth"] = events
        if evolving:
            m["generation"] = g
        with open(run / "metrics.jsonl", "a") as f:
            f.write(json.dumps(m) + "\n")
        bar.update(n)
        bar.set_postfix({**({"gen": g} if evolving else {}), **report.progress_figures(cfg, m)})
        if evolving and step % L == 0:  # the end of a generation's lives: credit, inheritance, selection
            pool, ledger, line = evolve.end_of_life(cfg, pool, ledger, genomes, orgs, evolution_key(cfg, 1 + g),
                                                    np.array(growth.placed))
            line.update(seconds=time.perf_counter() - born_at, compiles=COMPILES[0] - compiles)
            with open(run / "generations.jsonl", "a") as f:
                f.write(json.dumps(line) + "\n")
            (run / "pool.json").write_text(json.dumps(evolve.pool_json(ledger), indent=1) + "\n")
            if progress:
                bar.write(f"generation {g}: {cfg.fitness} best {line['best']:.3g} mean {line['mean']:.3g}; pool "
                          f"{line['pool']['lineages']} lineages, spread {line['pool']['spread']:.3f}")
            save_checkpoint(ckpt, cfg, step, (orgs, env_states, keys, pool), meta())
            last_ckpt = step
        elif step - last_ckpt >= cfg.checkpoint_every or step >= total:
            save_checkpoint(ckpt, cfg, step, (orgs, env_states, keys, pool), meta())
            last_ckpt = step
    bar.close()
    sps = timed_steps / timed_seconds if timed_seconds else earlier_speed(run) if cfg.resume else None
    summary = report.population_summary([report.summarize(cfg, pick(orgs, i), step if not evolving else L, sps)
                                         for i in range(N)])
    if evolving:
        summary["evolution"] = report.evolution_summary(cfg, run)
    (run / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    report.plots(run)
    if evolving:
        report.evolution_plots(run)
    if cfg.grow != "never":
        report.gate_plot(run)
    if cfg.gif_steps:
        i = cfg.gif_organism
        report.life_gif(cfg, pick(orgs, i), pick(env_states, i), keys[i], run / "life.gif")
    if progress:
        print(report.describe(run, summary))
    return summary


def main(argv: list[str] | None = None) -> None:
    cfg = tyro.cli(Config, args=argv)
    try:
        train(cfg)
    except (ValueError, FileNotFoundError, FileExistsError, FloatingPointError) as e:
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    main()
