"""``python compare.py curiosity``: which intrinsic reward makes an animal that does better than a random one?

Two stages at one body, each arm a population of ``--seeds`` organisms (seeds 0..K-1) in a fresh process:

1. a *screen* at ``--steps`` of every arm in ``--arms``: the random policy, the default curiosity
   (surprise of the first objective) and every other curiosity (``train.py --curiosity``);
2. a *long* stage at ``--long`` steps (0: none) of the random policy, the default and the ``--finalists``
   arms whose Crafter score was best in the screen.

Each stage writes a table (Crafter score with its standard error over the seeds and its distance from the
random policy in standard errors, episode length, achievements, policy entropy, steps/s), every
achievement's rate, and curves over the life (achievements unlocked so far, episode length, policy
entropy): ``D/curiosity.md``, ``D/curiosity-screen.png``, ``D/curiosity-long.png``. Finished rows are
reused, so an interrupted study picks up where it stopped.
"""

from __future__ import annotations

import dataclasses
import json
import time
import warnings
from pathlib import Path

import numpy as np

import compare
import world
from compare import CURIOSITY_ARMS as ARMS
from compare import RANDOM, Row

READS_REWARD = ("reward", "forward_reward", "trajectory_reward", "trajectory_reward_after",
                "two_state_prefix_reward")


def row(c, arm: str) -> Row:
    obj = c.base.objective
    if arm == RANDOM:
        return Row(f"random policy ({obj[0]})", obj, policy="random")
    if arm == c.base.curiosity:
        return Row(f"{arm} of {obj[0]} (default)", obj, curiosity=arm)
    return Row(arm, obj, curiosity=arm)


def stage(c, steps: int, arms: list[str], name: str) -> dict[str, list[dict]]:
    """Run (or reuse) each arm at ``steps``: {arm: each organism's summary, with the row's run dir}."""
    sub = dataclasses.replace(c, steps=steps, run_dir=str(Path(c.run_dir) / f"{name}-{steps}"))
    rows = [row(c, a) for a in arms]
    results = compare.run_all(sub, rows)
    return {a: [{**s, "run_dir": compare.config(sub, r).run_dir} for s in results[r.name]] for a, r in zip(arms, rows)}


def finalists(c, screen: dict[str, list[dict]]) -> list[str]:
    """The random policy, the default and the ``--finalists`` other arms with the best mean Crafter score."""
    others = [a for a in screen if a not in (RANDOM, c.base.curiosity)]
    best = sorted(others, key=lambda a: -np.mean([s["crafter_score"] or 0 for s in screen[a]]))
    return [a for a in (RANDOM, c.base.curiosity) if a in screen] + best[: c.finalists]


def se(values) -> tuple[float, float]:
    v = np.asarray([x for x in values if x is not None], float)
    return float(v.mean()), float(v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else float("nan")


def fmt(m: float, s: float, f: str = "{:.2f}") -> str:
    return f.format(m) + ("" if np.isnan(s) else f" ± {f.format(s)}")


def curves(run: str) -> dict[str, np.ndarray]:
    """Per chunk: steps, and each organism's achievements unlocked so far, episode length, policy entropy."""
    ms = [json.loads(x) for x in (Path(run) / "metrics.jsonl").read_text().splitlines() if x.strip()]
    per = [m.get("organisms", [m]) for m in ms]
    get = lambda k: np.array([[np.nan if o.get(k) is None else o[k] for o in p] for p in per], float).T  # noqa: E731
    return {"step": np.array([m["step"] for m in ms]), "unlocked": get("unlocked"),
            "episode_length": get("episode_length"), "entropy": get("entropy")}


def tail_entropy(run: str) -> float:
    """The policy's entropy over the last tenth of the life (mean over organisms and chunks)."""
    e = curves(run)["entropy"]
    return float(np.nanmean(e[:, -max(1, e.shape[1] // 10):]))


def uniform_entropy(run: str) -> float:
    """ln(actions): the random policy's entropy (its policy head learns, but never acts)."""
    cfg = json.loads((Path(run) / "config.json").read_text())
    return float(np.log(world.env_spec(cfg["env"]).n_actions))


def entropy(arm: str, run: str) -> str:
    return f"{uniform_entropy(run):.2f} (uniform)" if arm == RANDOM else f"{tail_entropy(run):.2f}"


def table(c, results: dict[str, list[dict]], steps: int) -> list[str]:
    r_mean, r_se = se([s["crafter_score"] for s in results.get(RANDOM, [])]) if RANDOM in results else (0, np.nan)
    lines = [f"| arm ({steps:,} steps, {c.seeds} seeds) | Crafter score % | vs random (s.e.) | mean episode length "
             f"| achievements unlocked | policy entropy, last tenth (nats) | organism-steps/s |",
             "|---|---|---|---|---|---|---|"]
    for arm, ss in results.items():
        m, s = se([x["crafter_score"] for x in ss])
        gap = (m - r_mean) / np.sqrt(s**2 + r_se**2) if arm != RANDOM and RANDOM in results else np.nan
        lm, ls = se([x["mean_episode_length"] for x in ss])
        um, us = se([compare.unlocked(x) for x in ss])
        lines.append(f"| {row(c, arm).name} | {fmt(m, s)} | {'–' if np.isnan(gap) else f'{gap:+.1f}'} "
                     f"| {fmt(lm, ls, '{:.0f}')} | {fmt(um, us, '{:.1f}')} | {entropy(arm, ss[0]['run_dir'])} "
                     f"| {ss[0]['steady_sps'] or 0:.0f} |")
    return lines


def achievement_table(results: dict[str, list[dict]], c) -> list[str]:
    names = list(next(iter(results.values()))[0]["achievements"])
    seen = [n for n in names if any(s["achievements"][n] > 0 for ss in results.values() for s in ss)]
    lines = ["| achievement | " + " | ".join(row(c, a).name for a in results) + " |",
             "|---|" + "---|" * len(results)]
    for n in seen:
        cells = [fmt(*se([100 * s["achievements"][n] for s in ss]), "{:.1f}") for ss in results.values()]
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    return lines


def plot(c, results: dict[str, list[dict]], out: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(16, 4.2))
    for k, (arm, ss) in enumerate(results.items()):
        cv = curves(ss[0]["run_dir"])
        style = dict(color="k" if arm == RANDOM else f"C{k}", ls="--" if arm == RANDOM else "-",
                     label=row(c, arm).name)
        for ax, key, smooth in zip(axes, ("unlocked", "episode_length", "entropy"), (1, 10, 5)):
            y = cv[key]
            if key == "entropy" and arm == RANDOM:  # it acts uniformly; its (unused) policy head is not plotted
                y = np.full_like(y, uniform_entropy(ss[0]["run_dir"]))
            smooth = min(smooth, y.shape[1])
            kernel = np.ones(smooth) / smooth
            with warnings.catch_warnings():  # chunks in which no organism ended an episode
                warnings.simplefilter("ignore", RuntimeWarning)
                mean = np.convolve(np.nan_to_num(np.nanmean(y, 0), nan=np.nanmean(y)), kernel, "valid")
                sd = np.convolve(np.nan_to_num(np.nanstd(y, 0)), kernel, "valid")
            x = cv["step"][smooth - 1:]
            ax.plot(x, mean, **style)
            ax.fill_between(x, mean - sd, mean + sd, color=style["color"], alpha=0.12, lw=0)
    for ax, t in zip(axes, ("achievements unlocked so far", "episode length (running mean of 10 chunks)",
                            "policy entropy, nats (running mean of 5 chunks)")):
        ax.set_title(t, fontsize=10)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle(title + f" (mean ± std over {c.seeds} seeds)", fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=80)
    plt.close(fig)


def main(c) -> Path:
    import jax

    bad = [a for a in c.arms if a not in ARMS]
    if bad:
        raise ValueError(f"unknown arm {bad[0]!r}; choose from {', '.join(ARMS)}")
    if c.base.objective[0] in READS_REWARD or c.long < 0 or c.finalists < 0:
        raise ValueError("the curiosity study needs a first objective that senses no reward, --long >= 0, "
                         "--finalists >= 0")
    d = Path(c.run_dir)
    t0 = time.time()
    screen = stage(c, c.steps, list(c.arms), "screen")
    long = stage(c, c.long, finalists(c, screen), "long") if c.long else {}
    b = c.base
    text = ["# Curiosity compared: which intrinsic reward beats the random policy?", "",
            f"{b.world}; body d={b.d_model}, {b.layers} genes, window {b.window}; world model: "
            f"{' + '.join(b.objective)} (each curiosity adds what it needs); {c.seeds} seeds per arm "
            f"(0..{c.seeds - 1}), "
            f"each arm one population in one process; jax {jax.__version__} on {jax.devices()[0].platform}; "
            f"{time.strftime('%Y-%m-%d')}; this call {time.time() - t0:.0f} s (reused rows cost nothing).",
            "", "Crafter score: of the episodes that ended during the life (Hafner 2021: exp of the mean of "
            "ln(1 + success rate %), minus 1), mean ± standard error over the seeds; 'vs random': the difference "
            "from the random policy in standard errors of the difference. The policy never sees the extrinsic "
            "reward. Steps/s: organism-steps/s of the arm's whole population after its first two chunks, on a machine "
            "that may be doing other work (bench.py measures speed).", ""]
    for name, res, steps in (("Screen", screen, c.steps), ("Long lives", long, c.long)):
        if not res:
            continue
        png = d / f"curiosity-{name.split()[0].lower()}.png"
        plot(c, res, png, f"{name}: {steps:,} steps")
        text += [f"## {name}: {steps:,} steps", "", *table(c, res, steps), "", f"![curves]({png.name})", "",
                 "Each achievement's rate (% of episodes, mean ± s.e.; those no arm unlocked are left out):", "",
                 *achievement_table(res, c), ""]
    (d / "curiosity.md").write_text("\n".join(text))
    print((d / "curiosity.md").read_text())
    return d / "curiosity.md"
