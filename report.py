"""What a run leaves for people to look at: learning curves (PNG), a GIF of the agent's life, a text summary."""

from __future__ import annotations

import json
from pathlib import Path

import jax
import numpy as np

import objectives as O
import world


def load_metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]


def plots(run: Path) -> Path:
    """``curves.png``: prequential scores beside their baselines, losses, intrinsic reward, lives."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ms = load_metrics(run)
    cfg = json.loads((run / "config.json").read_text())
    n_actions = world.env_spec(cfg["env"]).n_actions
    step = np.array([m["step"] for m in ms])

    def series(key):
        return np.array([np.nan if m.get(key) is None else m[key] for m in ms], float)

    fig, axes = plt.subplots(2, 3, figsize=(14, 7))
    ax = axes[0, 0]
    if "action_correct" in ms[0]:
        ax.plot(step, series("action_correct"), label="model (prequential)")
        ax.plot(step, series("majority_correct"), label="majority action")
        ax.axhline(1 / n_actions, color="gray", ls="--", label="chance")
    ax.set_title("inverse dynamics: action accuracy")
    ax = axes[0, 1]
    if "cell_accuracy" in ms[0]:
        ax.plot(step, series("cell_accuracy"), label="model (prequential)")
        ax.plot(step, series("cell_copy"), label="copy (next view = this view)")
    ax.set_title("forward dynamics: cell accuracy")
    ax = axes[0, 2]
    for k in ms[0]:
        if k.startswith("loss/"):
            ax.plot(step, series(k), label=k[5:])
    ax.set_title("losses")
    ax.set_yscale("symlog", linthresh=0.1)
    axes[1, 0].plot(step, series("rint"))
    axes[1, 0].set_title("intrinsic reward (normalised)")
    axes[1, 1].plot(step, series("episode_length"), ".-")
    axes[1, 1].set_title("episode length (lives ended in each chunk)")
    axes[1, 2].plot(step, series("unlocked"))
    axes[1, 2].set_title("achievements unlocked so far")
    for a in axes.ravel():
        if a.get_legend_handles_labels()[0]:
            a.legend(fontsize=8)
        elif not a.lines:
            a.text(0.5, 0.5, "not trained in this run", ha="center", va="center", transform=a.transAxes)
        a.set_xlabel("step")
        a.grid(alpha=0.3)
    fig.suptitle(f"{run.name}: {'+'.join(cfg['objective'])}, policy {cfg['policy']}")
    fig.tight_layout()
    out = run / "curves.png"
    fig.savefig(out, dpi=80)
    plt.close(fig)
    return out


def life_gif(cfg, org, env_state, key, path: Path, pixel_size: int = 16) -> Path:
    """Let the organism act on for ``cfg.gif_steps`` steps (weights frozen) and render it with Craftax."""
    import imageio.v2 as imageio

    import train

    spec = world.env_spec(cfg.env)
    env, params = world.make_env(cfg.env)
    batch = train.batch_for(cfg, spec)

    @jax.jit
    def rollout(org, env_state, key):
        def body(carry, k):
            now, env_state = carry
            h = O.forward(org.model, batch, org.window, now)
            logits = org.model.policy_head(h[batch.policy_rows[-1], batch.readout])
            k_act, k_env = jax.random.split(k)
            action = jax.random.categorical(k_act, logits)
            _, _, _, _, obs, env_state = world.step(env, params, env_state, action, k_env)
            return (train.observe(spec, obs, env_state, now.age + 1), env_state), env_state

        _, states = jax.lax.scan(body, (org.now, env_state), jax.random.split(key, cfg.gif_steps))
        return states

    states = rollout(org, env_state, key)
    frames = world.render_frames(cfg.env, states, pixel_size)
    imageio.mimsave(path, list(frames), duration=0.1, loop=0)
    return path


def describe(run: Path, summary: dict) -> str:
    lines = [f"run: {run}",
             f"steps {summary['steps']}  ({summary['steps_per_second']:.0f} steps/s after compiling)  "
             f"episodes {summary['episodes']}  mean length {summary['mean_episode_length'] or float('nan'):.0f}  "
             f"Crafter score {summary['crafter_score'] or 0:.2f}%"]
    for name, figs in summary["prequential"].items():
        lines.append(f"{name}: " + "  ".join(f"{k} {v:.3f}" for k, v in figs.items()))
    got = {k: v for k, v in summary["achievements"].items() if v > 0}
    lines.append("achievements: " + (", ".join(f"{k} {v:.0%}" for k, v in got.items()) or "none yet"))
    return "\n".join(lines)
