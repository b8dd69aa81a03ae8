"""Train curious organisms online in Craftax: ``python train.py --objective inverse_dynamics``.

This file is the tyro ``Config`` and the one run loop that ties the other files together. The organism
and its life (birth, one pure step, ``live`` chunks, populations) are in ``life.py``; every flag is a
field of ``Config``, whose docstrings are the ``--help``. Between jitted chunks of life the host logs,
draws the progress bar and writes checkpoints. ``--population N`` runs N organisms at once (organism i
is the single life of seed + i), vmapped in one jitted chunk and sharded over the devices.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import jax
import numpy as np
import tyro
from jax.sharding import Mesh, NamedSharding, PartitionSpec

import life
import objectives as O
import world
from checkpoint import load_checkpoint, save_checkpoint

Objective = Literal[
    "inverse_dynamics", "forward_dynamics", "reward", "forward_reward", "backward_dynamics", "location",
    "masked_state", "autoencoder", "trajectory", "trajectory_reward", "trajectory_reward_after",
    "two_state_prefix", "two_state_prefix_reward", "latent_inverse", "latent_forward"]


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
    curiosity: Literal["surprise", "forward", "inverse", "progress", "icm"] = "surprise"
    """the intrinsic reward: 'surprise' = -log p of the first objective's targets on the newest step;
    'forward' / 'inverse' = the surprise of forward_dynamics / inverse_dynamics (which must be among the
    objectives); 'progress' = how much one update lowered the first objective's surprise on the same data
    (learning progress); 'icm' = latent_forward's error in the model's own feature space (needs
    latent_inverse and latent_forward)"""
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
    """where the run's files go; empty means runs/<objective>-<policy>-s<seed>-<time>"""
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
    layers: int = 2
    """gene slots expressed at birth"""
    slots: int = 2
    """gene slots in the body (>= layers); the free ones are for growth and never cost a recompile"""
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
    gif_steps: int = 200
    """length of the life GIF written at the end (0: none)"""
    gif_organism: int = 0
    """which organism of the population the GIF shows"""

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
    if cfg.obs == "pixels" and cfg.world not in world.ENVS:
        raise ValueError(f"--obs pixels is available for Craftax-Classic-Symbolic-v1 only, not {cfg.env}")
    world.env_spec(cfg.world)
    for name in cfg.objective:
        if name not in O.LAYOUTS:
            raise ValueError(f"unknown objective {name!r}; choose from {', '.join(O.LAYOUTS)}")
    span = max((O.make_plan(n, O.LAYOUTS[n], 1).span for n in cfg.objective), default=1)
    checks = [
        (len(cfg.objective) >= 1, "--objective needs at least one name"),
        (not cfg.weights or len(cfg.weights) == len(cfg.objective),
         f"--weights has {len(cfg.weights)} values for {len(cfg.objective)} objectives"),
        (cfg.steps > 0, f"--steps must be positive, got {cfg.steps}"),
        (cfg.chunk > 0, f"--chunk must be positive, got {cfg.chunk}"),
        (cfg.checkpoint_every > 0, f"--checkpoint-every must be positive, got {cfg.checkpoint_every}"),
        (cfg.window >= span + 1, f"--window must be at least {span + 1} (these layouts span {span} transitions "
                                 f"and learning progress compares two instances), got {cfg.window}"),
        (len(set(cfg.objective)) == len(cfg.objective), "--objective lists a name twice"),
        (cfg.obs == "symbolic" or "masked_state" not in cfg.objective, "masked_state needs --obs symbolic"),
        (cfg.curiosity != "icm" or {"latent_inverse", "latent_forward"} <= set(cfg.objective),
         "--curiosity icm needs latent_inverse and latent_forward among --objective"),
        (cfg.curiosity not in ("forward", "inverse") or life.curious(cfg) in cfg.objective,
         f"--curiosity {cfg.curiosity} needs {life.curious(cfg)} among --objective"),
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
    ]
    for ok, msg in checks:
        if not ok:
            raise ValueError(msg)
    devices = len(jax.devices())
    if cfg.population > 1 and cfg.population % devices:
        raise ValueError(f"--population {cfg.population} cannot be shared evenly over the {devices} devices; "
                         f"choose a multiple of {devices}")


# ----------------------------------------------------------------------------- the run


def default_run_dir(cfg: Config) -> str:
    pop = f"-n{cfg.population}" if cfg.population > 1 else ""
    return f"runs/{'+'.join(cfg.objective)}-{cfg.policy}-s{cfg.seed}{pop}-{time.strftime('%Y%m%d-%H%M%S')}"


def prepare_run_dir(cfg: Config) -> Path:
    """The run directory, made and checked writable before anything compiles (one clear line if not)."""
    run = Path(cfg.run_dir or default_run_dir(cfg))
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


def sharding(cfg: Config) -> NamedSharding | None:
    """The population axis spread over every device (None: one device or one organism, plain vmap)."""
    devices = jax.devices()
    if cfg.population == 1 or len(devices) == 1:
        return None
    return NamedSharding(Mesh(np.array(devices), ("population",)), PartitionSpec("population"))


def pick(tree, i: int):
    """Organism ``i`` of a population (every leaf has a leading population axis)."""
    return jax.tree.map(lambda x: x[i], tree)


def train(cfg: Config, progress: bool = True) -> dict:
    """Run (or resume) the lives of a population (one organism by default); write the run directory;
    return the summary."""
    validate(cfg)
    from tqdm import tqdm

    import report

    run = prepare_run_dir(cfg)
    ckpt = run / "checkpoint.eqx"
    N = cfg.population
    keys, k_born = first_keys(cfg)
    orgs, env_states = life.born_population(cfg, k_born)
    step = 0
    if cfg.resume:
        step, (orgs, env_states, keys) = load_checkpoint(ckpt, cfg, (orgs, env_states, keys), life.RUN_FIELDS)
    place = sharding(cfg)
    if place is not None:
        orgs, env_states, keys = jax.device_put((orgs, env_states, keys), place)
    threads = life.threads_for(N, cfg.threads)
    (run / "config.json").write_text(json.dumps(dataclasses.asdict(cfg), indent=2) + "\n")
    metrics_path = run / "metrics.jsonl"
    kept = [ln for ln in metrics_path.read_text().splitlines() if json.loads(ln)["step"] <= step] \
        if cfg.resume and metrics_path.exists() else []
    metrics_path.write_text("".join(ln + "\n" for ln in kept))  # drop lines logged after the checkpoint

    unit = "step" if N == 1 else f"step x {N}"
    bar = tqdm(total=cfg.steps, initial=step, unit=unit, disable=not progress, dynamic_ncols=True)
    timed_steps, timed_seconds, last_ckpt = 0, 0.0, step
    first = True
    while step < cfg.steps:
        n = min(cfg.chunk, cfg.steps - step)  # a shorter last chunk costs one more compile
        split = jax.vmap(jax.random.split)(keys)
        keys, k = split[:, 0], split[:, 1]
        t0 = time.perf_counter()
        orgs, env_states, rec = life.live_threads(cfg, orgs, env_states, k, n, threads)
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
        m = report.population_metrics([report.chunk_metrics(pick(rec, i), step, dt) for i in range(N)])
        with open(metrics_path, "a") as f:
            f.write(json.dumps(m) + "\n")
        bar.update(n)
        bar.set_postfix(report.progress_figures(cfg, m))
        if step - last_ckpt >= cfg.checkpoint_every or step >= cfg.steps:
            save_checkpoint(ckpt, cfg, step, (orgs, env_states, keys))
            last_ckpt = step
    bar.close()
    sps = timed_steps / timed_seconds if timed_seconds else float("nan")
    summary = report.population_summary([report.summarize(cfg, pick(orgs, i), step, sps) for i in range(N)])
    (run / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    report.plots(run)
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
