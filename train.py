"""Train one curious organism online in Craftax: ``python train.py --objective inverse_dynamics``.

The whole life is a pure function of (organism, world, key): ``live`` runs ``chunk`` steps of it in one
jitted ``lax.scan``; between chunks the host logs, draws the progress bar and writes checkpoints.
Each step: act from the newest frame -> Craftax step (``lax.cond`` reset on death) -> push the transition
into the short-term window -> one forward/backward pass over every layout instance in the window, which
scores the newest transition before learning from it (prequential), gives the curiosity signal that
becomes the intrinsic reward, and the logits to act from next -> one optax update. The extrinsic reward
is never a reward: it is logged, and sensed like any observation by the objectives that predict it.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import tyro
from jax.flatten_util import ravel_pytree

import objectives as O
import world
from checkpoint import load_checkpoint, save_checkpoint
from model import Model, Obs, n_patches

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

    @property
    def loss_weights(self) -> tuple[float, ...]:
        return self.weights or (1.0,) * len(self.objective)

    @property
    def world(self) -> str:
        """The Craftax env id: --env with its observation kind switched to --obs."""
        return self.env.replace("-Symbolic-", "-Pixels-") if self.obs == "pixels" else self.env


# the default multi-objective mix: bench.py's multi_sps row, compare.py's mix row
MIX = dict(objective=("forward_dynamics", "inverse_dynamics"), weights=(1.0, 0.5))

# fields that do not change what the organism computes: they may differ between a run and its resumption
RUN_FIELDS_FREE = ("steps", "resume", "run_dir", "checkpoint_every", "gif_steps")


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
        (cfg.curiosity not in ("forward", "inverse") or curious(cfg) in cfg.objective,
         f"--curiosity {cfg.curiosity} needs {curious(cfg)} among --objective"),
        (1 <= cfg.layers <= cfg.slots, f"--layers must be between 1 and --slots ({cfg.slots}), got {cfg.layers}"),
        (cfg.d_model > 0 and cfg.n_heads > 0 and cfg.d_model % cfg.n_heads == 0,
         f"--d-model ({cfg.d_model}) must be a positive multiple of --n-heads ({cfg.n_heads})"),
        (min(cfg.patch) >= 1 and cfg.mlp_ratio >= 1 and cfg.cell_dim >= 1, "sizes must be positive"),
        (cfg.lr > 0, f"--lr must be positive, got {cfg.lr}"),
        (0 <= cfg.gamma <= 1 and 0 <= cfg.lam <= 1, "--gamma and --lam must lie in [0, 1]"),
        (cfg.gif_steps >= 0, "--gif-steps cannot be negative"),
        (not cfg.resume or cfg.run_dir, "--resume needs --run-dir"),
    ]
    for ok, msg in checks:
        if not ok:
            raise ValueError(msg)


def curious(cfg: Config) -> str:
    """The objective whose surprise (or its drop, for learning progress) is the intrinsic reward."""
    return {"forward": "forward_dynamics", "inverse": "inverse_dynamics", "icm": "latent_forward"}.get(
        cfg.curiosity, cfg.objective[0])


# ----------------------------------------------------------------------------- the organism


class Tally(eqx.Module):
    """Running totals over the whole run (they live in the checkpoint)."""

    episodes: jax.Array
    length_sum: jax.Array
    achievements: jax.Array  # [n_achievements] episodes in which each was unlocked
    action_counts: jax.Array  # [A] actions taken so far (the online majority baseline)
    reward_sum: jax.Array  # extrinsic reward so far (the online mean baseline)
    steps: jax.Array
    scores: dict  # "objective/score": sums over the newest instance of each step; "objective/n": how many counted


class Organism(eqx.Module):
    model: Model
    opt_state: optax.OptState
    window: O.Window
    now: O.Obs  # what it sees now, with its senses
    logits: jax.Array  # its policy on ``now``, from the last forward pass
    life: jax.Array  # steps in the current life (episode)
    ret: jax.Array  # running discounted intrinsic return, and its running moments (Burda et al. 2018)
    ret_moments: jax.Array  # [count, mean, var], from a prior of one sample of variance 1 (no 1/0 on step one)
    last_surprise: jax.Array  # [surprise, valid] of the newest instance last step (for learning progress)
    tally: Tally


def optimizer(cfg: Config):
    return optax.chain(optax.clip_by_global_norm(cfg.max_grad_norm), optax.adam(cfg.lr))


def observe(spec: world.EnvSpec, obs, state, age) -> Obs:
    tok = world.tokenize(spec, obs)
    return Obs(tok.get("block"), tok.get("item"), tok.get("mob"), tok.get("status"), tok.get("image"),
               state.player_position.astype(jnp.float32), jnp.asarray(age, jnp.float32))


def batch_for(cfg: Config, spec: world.EnvSpec) -> O.Batch:
    return O.make_batch(cfg.objective, cfg.window, n_patches(spec, cfg.patch))


def born(cfg: Config, key) -> tuple[Organism, object]:
    """A new organism (fresh weights, empty window) in a new world: (organism, env_state).

    Built in one jitted call: op by op, making the world and the weights took longer than compiling them.
    """
    world.make_env(cfg.world)  # import Craftax (it makes arrays at import time) outside the trace
    return _born(core(cfg), key)


def core(cfg: Config) -> Config:
    """The config with the fields that do not change the computation blanked: runs that differ only in
    those (run dir, budget, ...) share compiled functions."""
    return dataclasses.replace(cfg, **{k: getattr(Config, k) for k in RUN_FIELDS_FREE})


@eqx.filter_jit
def _born(cfg: Config, key) -> tuple[Organism, object]:
    spec = world.env_spec(cfg.world)
    env, params = world.make_env(cfg.world)
    k_model, k_world = jax.random.split(key)
    model = Model(spec, d=cfg.d_model, n_heads=cfg.n_heads, layers=cfg.layers, slots=cfg.slots,
                  mlp_ratio=cfg.mlp_ratio, patch=cfg.patch, cell_dim=cfg.cell_dim, key=k_model)
    obs, env_state = world.reset(env, params, k_world)
    now = observe(spec, obs, env_state, 0.0)
    T = cfg.window
    empty = jax.tree.map(lambda x: jnp.zeros((T, *x.shape), x.dtype), now)
    win = O.Window(empty, empty, jnp.zeros(T, jnp.int32), jnp.zeros(T), jnp.zeros(T), jnp.zeros(T),
                   jnp.zeros(T, bool), jnp.zeros(T, bool))
    z = jnp.zeros((), jnp.float32)
    batch = batch_for(cfg, spec)
    scores = {f"{name}/{k}": z for name, plan in zip(cfg.objective, batch.plans)
              for k in ("n",) + O.score_keys(plan, spec.image is not None)}
    tally = Tally(z, z, jnp.zeros(len(spec.achievements)), jnp.zeros(spec.n_actions), z, z, scores)
    opt_state = optimizer(cfg).init(ravel_pytree(eqx.filter(model, eqx.is_inexact_array))[0])
    org = Organism(model, opt_state, win, now, jnp.zeros(spec.n_actions), jnp.zeros((), jnp.int32), z,
                   jnp.array([1.0, 0.0, 1.0]), jnp.zeros(2), tally)
    return org, env_state


def world_model_loss(model: Model, cfg: Config, batch: O.Batch, win: O.Window, now: Obs):
    """The objectives' weighted loss, from one shared forward pass: (total, aux, seen, surprises).

    aux carries each objective's loss and its scores on its newest instance (the one that ends with the
    newest transition, scored before the model learns from it: prequential).
    """
    seen = O.forward(model, batch, win, now)  # [B, N, d]
    total, aux, surprises = 0.0, {}, {}
    for name, plan, rows, w in zip(cfg.objective, batch.plans, batch.ranges, cfg.loss_weights):
        st = O.starts(plan, cfg.window)
        out = O.target_loss(model, plan, seen, rows, win, st)
        ok = O.instance_valid(plan, win, st)
        loss = jnp.sum(jnp.where(ok, out["loss"], 0.0)) / jnp.maximum(ok.sum(), 1)
        total = total + w * loss
        aux[f"loss/{name}"] = loss
        aux[f"{name}/n"] = ok[-1].astype(jnp.float32)
        aux.update({f"{name}/{k}": jax.lax.stop_gradient(v[-1]) for k, v in out.items() if k not in ("loss",)})
        surprises[name] = (jax.lax.stop_gradient(out["surprise"]), ok)
    return total, aux, seen, surprises


def loss_fn(model: Model, cfg: Config, batch: O.Batch, win: O.Window, now: Obs, rint_scale, last_surprise):
    """World-model loss + actor-critic loss on the curiosity signal; aux has the scores and the signal."""
    total, aux, seen, surprises = world_model_loss(model, cfg, batch, win, now)

    # curiosity: which signal becomes the intrinsic reward, and which transition earns it
    surprise, ok = surprises[curious(cfg)]
    newest = jnp.stack([surprise[-1], ok[-1].astype(jnp.float32)])
    if cfg.curiosity == "progress":  # the same instance, one update later: its surprise dropped by this much
        signal = jnp.where(ok[-2] & (last_surprise[1] > 0), last_surprise[0] - surprise[-2], 0.0)
        rint = win.rint.at[-2].set(signal * rint_scale).at[-1].set(0.0)  # the newest is paid next step
    else:
        signal = jnp.where(ok[-1], surprise[-1], 0.0)
        rint = win.rint.at[-1].set(signal * rint_scale)
    ac, ac_aux = O.actor_critic_loss(model, seen.h[batch.policy_rows, batch.readout], win, rint, gamma=cfg.gamma,
                                     lam=cfg.lam, clip=cfg.clip, ent_coef=cfg.ent_coef, value_coef=cfg.value_coef)
    aux.update({"loss/policy": ac, "curiosity": signal, "rint": signal * rint_scale, "rint_all": rint,
                "newest_surprise": newest, **ac_aux})
    return total + ac, aux


def live_step(cfg: Config, org: Organism, env_state, key):
    """One step of life: act, step the world, learn once. Pure: (organism, world, key) -> same + record."""
    spec = world.env_spec(cfg.world)
    env, params = world.make_env(cfg.world)
    batch = batch_for(cfg, spec)
    k_act, k_env = jax.random.split(key)
    if cfg.policy == "random":
        action = jax.random.randint(k_act, (), 0, spec.n_actions)
        logp = -jnp.log(float(spec.n_actions))
    else:
        action = jax.random.categorical(k_act, org.logits)
        logp = jax.nn.log_softmax(org.logits)[action]
    next_obs, last_state, reward, done, obs, env_state = world.step(env, params, env_state, action, k_env)
    age = org.now.age + 1
    seen = observe(spec, next_obs, last_state, age)
    now = observe(spec, obs, env_state, age)
    win = org.window.push(obs=org.now, next_obs=seen, action=action.astype(jnp.int32), logp=logp, reward=reward,
                          rint=jnp.zeros(()), done=done, valid=jnp.array(True))

    # intrinsic-return normaliser: r / std(discounted intrinsic return)
    count, mean, var = org.ret_moments
    scale = 1.0 / jnp.sqrt(var + 1e-8)
    (loss, aux), grads = eqx.filter_value_and_grad(loss_fn, has_aux=True)(
        org.model, cfg, batch, win, now, scale, org.last_surprise)
    # Adam on one flat vector: a few big ops instead of a few per leaf (per-op overhead rules at this size)
    params, static = eqx.partition(org.model, eqx.is_inexact_array)
    flat, unravel = ravel_pytree(params)
    updates, opt_state = optimizer(cfg).update(ravel_pytree(grads)[0], org.opt_state, flat)
    model = eqx.combine(unravel(flat + updates), static)
    finite = jnp.isfinite(loss)  # the host stops the run at the first non-finite loss, and says so
    ret = org.ret * cfg.gamma * (1 - done) + aux["curiosity"]
    count2 = count + 1
    mean2 = mean + (ret - mean) / count2
    var2 = var + ((ret - mean) * (ret - mean2) - var) / count2
    win = eqx.tree_at(lambda w: w.rint, win, aux["rint_all"])

    # prequential scores of the newest instances, beside the online majority-action and mean-reward baselines
    t = org.tally
    majority = jnp.argmax(t.action_counts)
    mean_reward = t.reward_sum / jnp.maximum(t.steps, 1)
    scores = dict(t.scores)
    record = {}
    for name in cfg.objective:
        n = aux[f"{name}/n"]
        if f"{name}/targets/action" in aux:
            aux[f"{name}/action_majority"] = jnp.mean(aux[f"{name}/targets/action"] == majority).astype(jnp.float32)
        if f"{name}/targets/reward" in aux:
            aux[f"{name}/reward_mean_err"] = jnp.mean((aux[f"{name}/targets/reward"] - mean_reward) ** 2)
        for k in scores:
            if k.startswith(name + "/"):
                v = n if k.endswith("/n") else aux[k]
                scores[k] = scores[k] + jnp.where(n > 0, v, 0.0)
                record[k] = jnp.where(n > 0, v, jnp.nan) if not k.endswith("/n") else n
    life = org.life + 1
    tally = Tally(
        episodes=t.episodes + done, length_sum=t.length_sum + done * life,
        achievements=t.achievements + done * last_state.achievements,
        action_counts=t.action_counts.at[action].add(1.0), reward_sum=t.reward_sum + reward, steps=t.steps + 1,
        scores=scores)
    org = Organism(model, opt_state, win, now, jax.lax.stop_gradient(aux["logits"]), jnp.where(done, 0, life),
                   ret, jnp.stack([count2, mean2, var2]), aux["newest_surprise"], tally)
    record.update({k: v for k, v in aux.items() if k.startswith("loss/")})
    record.update(curiosity=aux["curiosity"], rint=aux["rint"], entropy=aux["entropy"], reward=reward,
                  done=done, episode_length=jnp.where(done, life, 0), unlocked=(tally.achievements > 0).sum(),
                  finite=finite)
    return org, env_state, record


def live(cfg: Config, org: Organism, env_state, key, steps: int):
    """``steps`` steps of life in one ``lax.scan``; returns the new state and the per-step records.

    Fields that do not change the computation (run dir, budget, ...) are blanked first, so that runs
    differing only in those share one compiled function.
    """
    return _live(core(cfg), org, env_state, key, steps)


@eqx.filter_jit
def _live(cfg: Config, org: Organism, env_state, key, steps: int):
    def body(carry, k):
        org, env_state = carry
        org, env_state, rec = live_step(cfg, org, env_state, k)
        return (org, env_state), rec

    (org, env_state), records = jax.lax.scan(body, (org, env_state), jax.random.split(key, steps))
    return org, env_state, records


# ----------------------------------------------------------------------------- the run


def default_run_dir(cfg: Config) -> str:
    return f"runs/{'+'.join(cfg.objective)}-{cfg.policy}-s{cfg.seed}-{time.strftime('%Y%m%d-%H%M%S')}"


def train(cfg: Config, progress: bool = True) -> dict:
    """Run (or resume) a life; write the run directory; return the summary."""
    validate(cfg)
    from tqdm import tqdm

    import report

    run = Path(cfg.run_dir or default_run_dir(cfg))
    ckpt = run / "checkpoint.eqx"
    key = jax.random.PRNGKey(cfg.seed)
    key, k_born = jax.random.split(key)
    org, env_state = born(cfg, k_born)
    step = 0
    if cfg.resume:
        step, (org, env_state, key) = load_checkpoint(ckpt, cfg, (org, env_state, key), RUN_FIELDS_FREE)
    elif ckpt.exists():
        raise FileExistsError(f"{run} already holds a run; pass --resume to continue it, or choose another --run-dir")
    run.mkdir(parents=True, exist_ok=True)
    (run / "config.json").write_text(json.dumps(dataclasses.asdict(cfg), indent=2) + "\n")
    metrics_path = run / "metrics.jsonl"
    kept = [ln for ln in metrics_path.read_text().splitlines() if json.loads(ln)["step"] <= step] \
        if cfg.resume and metrics_path.exists() else []
    metrics_path.write_text("".join(ln + "\n" for ln in kept))  # drop lines logged after the checkpoint

    bar = tqdm(total=cfg.steps, initial=step, unit="step", disable=not progress, dynamic_ncols=True)
    timed_steps, timed_seconds, last_ckpt = 0, 0.0, step
    first = True
    while step < cfg.steps:
        n = min(cfg.chunk, cfg.steps - step)  # a shorter last chunk costs one more compile
        key, k = jax.random.split(key)
        t0 = time.perf_counter()
        org, env_state, rec = live(cfg, org, env_state, k, n)
        rec = jax.device_get(rec)
        dt = time.perf_counter() - t0
        step += n
        if not first:  # the first chunk includes compilation
            timed_steps, timed_seconds = timed_steps + n, timed_seconds + dt
        first = False
        if not np.all(rec["finite"]):
            bad = step - n + int(np.argmin(rec["finite"]))
            raise FloatingPointError(f"non-finite loss at step {bad}; stopping (last checkpoint: {ckpt}, "
                                     f"step {last_ckpt}). Try a lower --lr.")
        m = report.chunk_metrics(rec, step, dt)
        with open(metrics_path, "a") as f:
            f.write(json.dumps(m) + "\n")
        bar.update(n)
        bar.set_postfix({k: v for k, v in [
            ("sps", f"{m['steps_per_second']:.0f}"), ("loss", f"{m.get('loss/' + cfg.objective[0], 0):.3f}"),
            *[(k.split("/")[-1], f"{m[k]:.3g}") for k in report.headline(cfg) if m.get(k) is not None],
            ("rint", f"{m['rint']:.2f}"), ("episodes", int(org.tally.episodes)), ("unlocked", m["unlocked"])]
            if v is not None})
        if step - last_ckpt >= cfg.checkpoint_every or step >= cfg.steps:
            save_checkpoint(ckpt, cfg, step, (org, env_state, key))
            last_ckpt = step
    bar.close()
    sps = timed_steps / timed_seconds if timed_seconds else float("nan")
    summary = report.summarize(cfg, org, step, sps)
    (run / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    report.plots(run)
    if cfg.gif_steps:
        report.life_gif(cfg, org, env_state, key, run / "life.gif")
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
