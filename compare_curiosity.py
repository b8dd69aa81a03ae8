"""``python compare.py curiosity``: which reward makes an animal that does better than a random one, and can
the learner turn any reward into skill?

The arms (``ARMS``, ``--arms``): the random policy; the *oracle* control (Craftax's own reward through the
same learner: it judges the learner apart from any curiosity, and is never the animal); the default
(effect novelty through the stream learner); every other curiosity through the stream learner; and the
settings before the stream learner (the window learner, gamma 0.95) with the old default curiosity, the
best two old arms, the new curiosity and the oracle, so that a gain can be traced to the learner or to the
signal. Two stages at one body, each arm a population of ``--seeds`` organisms (seeds --seed .. --seed + K - 1)
in a fresh process:

1. a *screen* at ``--steps`` of every arm in ``--arms``;
2. a *long* stage at ``--long`` steps (0: none) of the random policy, the oracle, the default and the best
   other reward-free arms of the screen, ``--finalists`` reward-free arms in all.

Each stage writes a table (Crafter score with its standard error over the seeds and its distance from the
random policy in standard errors, episode length, achievements, sleep and wake-up, policy entropy,
steps/s), every achievement's rate, the action mix, and curves over the life (achievements unlocked so far,
episode length, policy entropy): ``D/curiosity.md`` and one
``D/curiosity-<steps>.png`` per stage (named by budget, as the rows are: ``D/<steps>/<arm>``).
Finished rows are reused and a stopped one goes on from its checkpoint, so an interrupted study picks up
where it stopped.
"""

from __future__ import annotations

import dataclasses
import time
import warnings
from pathlib import Path

import numpy as np

import study
import world
from plots import skill_span
from report import crafter_by_age, crafter_last, load_config, load_metrics, organisms
from study import RANDOM, Row, mean_se

ORACLE = "oracle"
# the learner, horizon and fixed entropy coefficient before stream AC(lambda)
WINDOW = (("learner", "window"), ("gamma", 0.95), ("lam", 0.9), ("entropy_target", 0.0))
STREAM = (("learner", "stream"), ("gamma", 0.99), ("lam", 0.8))  # with the default entropy target, 1.5 nats
BODY = (("learner", "body"), ("gamma", 0.99), ("lam", 0.8))  # stream AC(lambda) through the transformer itself
INTENTIONAL = BODY + (("ac_step", "intentional"),)  # ... with the step sized by what it should change
BODY_ADAM = BODY + (("ac_step", "adam"),)  # ... with Adam's step on the trace's update
OBSERVATION = STREAM + (("ac_input", "observation"),)  # the actor and critic read the observation itself
BOTH = STREAM + (("ac_input", "both"),)  # ... beside the model's features
FIXED = STREAM + (("entropy_target", 0.0),)  # a fixed entropy coefficient (0.01): the stream learner's first default
ADAM = STREAM + (("ac_step", "adam"),)  # the learner apart, its step Adam's on the trace's update
PIXELS = STREAM + (("obs", "pixels"),)  # the world seen as pixels (curiosities that name nothing only)
GENES = {n: STREAM + (("layers", n), ("slots", n)) for n in (1, 4)}  # the default body has 2 genes
BROAD = STREAM + (("entropy_target", 2.0),)  # the learner apart, the policy's entropy held near 2 nats
BODY_BROAD = BODY_ADAM + (("entropy_target", 2.0),)  # ... with the policy's entropy held near 2 nats, not 1.5
BODY_GENES = {n: BODY_ADAM + (("layers", n), ("slots", n)) for n in (1, 4)}  # ... with the policy in the body


@dataclasses.dataclass(frozen=True)
class Arm:
    label: str
    policy: str = "learned"
    curiosity: str = "effects"
    body: tuple = STREAM  # other config fields: the learner and its horizon


ARMS = {
    RANDOM: Arm("random policy", policy="random"),
    ORACLE: Arm("oracle: Craftax's reward (control)", curiosity="oracle"),
    "effects": Arm("effects (default)"),
    "count": Arm("count", curiosity="count"), "rnd": Arm("rnd", curiosity="rnd"),
    "disagreement": Arm("disagreement", curiosity="disagreement"),
    "changes": Arm("changes (C-BET)", curiosity="changes"),
    "changes-world": Arm("changes in the world's coordinates", curiosity="changes-world"),
    "forward": Arm("forward (forward_dynamics' surprise)", curiosity="forward"),
    "progress": Arm("progress", curiosity="progress"), "surprise": Arm("surprise", curiosity="surprise"),
    "e3b": Arm("e3b", curiosity="e3b"), "icm": Arm("icm", curiosity="icm"),
    "surprise-window": Arm("surprise, window learner (old default)", curiosity="surprise", body=WINDOW),
    "rnd-window": Arm("rnd, window learner", curiosity="rnd", body=WINDOW),
    "progress-window": Arm("progress, window learner", curiosity="progress", body=WINDOW),
    "effects-window": Arm("effects, window learner", body=WINDOW),
    "oracle-window": Arm("oracle, window learner (control)", curiosity="oracle", body=WINDOW),
    "oracle-fixed": Arm("oracle, fixed entropy coefficient (control)", curiosity="oracle", body=FIXED),
    "effects-fixed": Arm("effects, fixed entropy coefficient (the default before)", body=FIXED),
    "effects+sleep": Arm("effects, falling asleep and waking up counted", curiosity="effects+sleep"),
    "effects-body": Arm("effects, stream learner through the body", body=BODY),
    "oracle-body": Arm("oracle, stream learner through the body (control)", curiosity="oracle", body=BODY),
    "effects-intentional": Arm("effects, through the body, intentional step", body=INTENTIONAL),
    "oracle-intentional": Arm("oracle, through the body, intentional step (control)", curiosity="oracle",
                              body=INTENTIONAL),
    "effects-body-adam": Arm("effects, through the body, Adam's step", body=BODY_ADAM),
    "oracle-body-adam": Arm("oracle, through the body, Adam's step (control)", curiosity="oracle", body=BODY_ADAM),
    "effects-observation": Arm("effects, actor-critic on the observation", body=OBSERVATION),
    "effects-both": Arm("effects, actor-critic on the observation and the features", body=BOTH),
    "oracle-observation": Arm("oracle, actor-critic on the observation (control)", curiosity="oracle",
                              body=OBSERVATION),
    "oracle-both": Arm("oracle, actor-critic on the observation and the features (control)", curiosity="oracle",
                       body=BOTH),
    "effects-adam": Arm("effects, the learner apart, Adam's step", body=ADAM),
    "oracle-adam": Arm("oracle, the learner apart, Adam's step (control)", curiosity="oracle", body=ADAM),
    "oracle-adam-1e-3": Arm("oracle, the learner apart, Adam's step at 1e-3 (control)", curiosity="oracle",
                            body=ADAM + (("adam_lr", 1e-3),)),
    "effects-1gene": Arm("effects, a body of 1 gene", body=GENES[1]),
    "effects-4genes": Arm("effects, a body of 4 genes", body=GENES[4]),
    "effects-h2": Arm("effects, entropy target 2.0", body=BROAD),
    "oracle-h2": Arm("oracle, entropy target 2.0 (control)", curiosity="oracle", body=BROAD),
    "effects-body-adam-h2": Arm("effects, through the body, Adam's step, entropy target 2.0", body=BODY_BROAD),
    "oracle-body-adam-h2": Arm("oracle, through the body, Adam's step, entropy target 2.0 (control)",
                               curiosity="oracle", body=BODY_BROAD),
    "effects-body-adam-1gene": Arm("effects, through the body, Adam's step, a body of 1 gene", body=BODY_GENES[1]),
    "effects-body-adam-4genes": Arm("effects, through the body, Adam's step, a body of 4 genes", body=BODY_GENES[4]),
    "random-pixels": Arm("random policy, pixels", policy="random", body=PIXELS),
    "disagreement-pixels": Arm("disagreement, pixels", curiosity="disagreement", body=PIXELS),
    "rnd-pixels": Arm("rnd, pixels", curiosity="rnd", body=PIXELS),
}
SCREEN = (RANDOM, ORACLE, "effects", "surprise-window", "rnd-window", "progress-window", "effects-window",
          "oracle-window", "rnd", "count", "disagreement", "changes")  # the arms screened when --arms is empty
DEFAULT = "effects"
CONTROLS = (RANDOM, "random-pixels", ORACLE, "oracle-window", "oracle-fixed", "oracle-body", "oracle-adam",
            "oracle-adam-1e-3", "oracle-intentional", "oracle-body-adam", "oracle-body-adam-h2", "oracle-h2",
            "oracle-observation",
            "oracle-both")  # not the animal: no reward-free finalist


def row(c, arm: str) -> Row:
    a = ARMS[arm]
    return Row(a.label, c.base.learning.objective, policy=a.policy, curiosity=a.curiosity, body=a.body)


def stage(c, steps: int, arms: list[str]) -> dict[str, list[dict]]:
    """Run (or reuse) each arm at ``steps``: {arm: each organism's summary, with the row's run dir}. Rows live
    in D/<steps>/<arm>, whichever stage asked for them: a long row run earlier (as a screen at the long
    budget) is reused."""
    sub = c.at(steps=steps, run_dir=str(Path(c.run_dir) / str(steps)))
    rows = [row(c, a) for a in arms]
    results = study.run_all(sub, rows)
    return {a: [{**s, "run_dir": study.config(sub, r).run.run_dir} for s in results[r.name]]
            for a, r in zip(arms, rows)}


def finalists(c, screen: dict[str, list[dict]]) -> list[str]:
    """The random policy, the oracle, the default, and the best other reward-free arms by mean Crafter score:
    ``--finalists`` reward-free arms in all (the default among them)."""
    others = [a for a in screen if a not in CONTROLS and a != DEFAULT]
    best = sorted(others, key=lambda a: -np.mean([s["crafter_score"] or 0 for s in screen[a]]))
    fixed = [a for a in (RANDOM, ORACLE, DEFAULT) if a in screen]
    return fixed + best[: max(c.finalists - (DEFAULT in screen), 0)]


def fmt(m: float, s: float, f: str = "{:.2f}") -> str:
    return f.format(m) + ("" if np.isnan(s) else f" ± {f.format(s)}")


def curves(run: str) -> dict[str, np.ndarray]:
    """Per chunk: steps, and each organism's achievements unlocked so far, episode length, policy entropy."""
    ms = load_metrics(Path(run))
    per = [organisms(m) for m in ms]
    get = lambda k: np.array([[np.nan if o.get(k) is None else o[k] for o in p] for p in per], float).T  # noqa: E731
    return {"step": np.array([m["step"] for m in ms]), "unlocked": get("unlocked"),
            "episode_length": get("episode_length"), "entropy": get("entropy")}


def tail_entropy(run: str) -> float:
    """The policy's entropy over the last tenth of the life (mean over organisms and chunks)."""
    e = curves(run)["entropy"]
    return float(np.nanmean(e[:, -max(1, e.shape[1] // 10):]))


def uniform_entropy(run: str) -> float:
    """ln(actions): the random policy's entropy (its policy head learns, but never acts)."""
    return float(np.log(world.env_spec(load_config(Path(run))["env"]).n_actions))


def entropy(arm: str, run: str) -> str:
    return f"{uniform_entropy(run):.2f} (uniform)" if ARMS[arm].policy == "random" else f"{tail_entropy(run):.2f}"


def table(c, results: dict[str, list[dict]], steps: int) -> list[str]:
    r_mean, r_se = mean_se([s["crafter_score"] for s in results.get(RANDOM, [])]) if RANDOM in results else (0, np.nan)
    span = skill_span(steps, c.base.run.chunk)  # skill by age: the score of the episodes ended in the last span
    first = c.base.run.seed
    lines = [f"| arm ({steps:,} steps, seeds {first}–{first + c.seeds - 1}) | Crafter score % | vs random (s.e.) "
             f"| mean episode length "
             f"| achievements unlocked | steps asleep % | wake_up % | policy entropy, last tenth (nats) "
             f"| organism-steps/s | Crafter score %, last {span:,} steps |", "|---" * 10 + "|"]
    for arm, ss in results.items():
        m, s = mean_se([x["crafter_score"] for x in ss])
        gap = (m - r_mean) / np.sqrt(s**2 + r_se**2) if arm != RANDOM and RANDOM in results else np.nan
        lm, ls = mean_se([x["mean_episode_length"] for x in ss])
        um, us = mean_se([study.unlocked(x) for x in ss])
        asleep = mean_se([100 * x.get("asleep", np.nan) for x in ss])
        woke = mean_se([100 * x["achievements"]["wake_up"] for x in ss])
        lines.append(f"| {row(c, arm).name} | {fmt(m, s)} | {'–' if np.isnan(gap) else f'{gap:+.1f}'} "
                     f"| {fmt(lm, ls, '{:.0f}')} | {fmt(um, us, '{:.1f}')} | {fmt(*asleep, '{:.1f}')} "
                     f"| {fmt(*woke, '{:.0f}')} | {entropy(arm, ss[0]['run_dir'])} | {ss[0]['steady_sps'] or 0:.0f} "
                     f"| {last_span(ss[0]['run_dir'], span)} |")
    return lines


def last_span(run: str, span: int) -> str:
    """The Crafter score of the episodes that ended in the last ``span`` steps, mean ± s.e. over the organisms
    ('–' for a row logged before the figure existed)."""
    last = [x for x in crafter_last(load_metrics(Path(run)), span) if np.isfinite(x)]
    return fmt(*mean_se(last)) if last else "–"


def action_table(results: dict[str, list[dict]], c) -> list[str]:
    """The action mix: % of steps each action was chosen (mean over the seeds)."""
    names = list(next(iter(results.values()))[0]["actions"])
    lines = ["| action | " + " | ".join(row(c, a).name for a in results) + " |", "|---|" + "---|" * len(results)]
    for n in names:
        lines.append(f"| {n} | " + " | ".join(f"{100 * np.mean([s['actions'][n] for s in ss]):.1f}"
                                               for ss in results.values()) + " |")
    return lines


def achievement_table(results: dict[str, list[dict]], c) -> list[str]:
    names = list(next(iter(results.values()))[0]["achievements"])
    seen = [n for n in names if any(s["achievements"][n] > 0 for ss in results.values() for s in ss)]
    lines = ["| achievement | " + " | ".join(row(c, a).name for a in results) + " |",
             "|---|" + "---|" * len(results)]
    for n in seen:
        cells = [fmt(*mean_se([100 * s["achievements"][n] for s in ss]), "{:.1f}") for ss in results.values()]
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    return lines


def plot(c, results: dict[str, list[dict]], out: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 4, figsize=(21, 4.2))
    steps = int(max(s["steps"] for ss in results.values() for s in ss))
    span = skill_span(steps, c.base.run.chunk)
    for k, (arm, ss) in enumerate(results.items()):
        cv = curves(ss[0]["run_dir"])
        style = dict(color="k" if arm == RANDOM else f"C{k}", ls="--" if arm == RANDOM else "-",
                     label=row(c, arm).name)
        for ax, key, smooth in zip(axes, ("unlocked", "episode_length", "entropy"), (1, 10, 5)):
            y = cv[key]
            if key == "entropy" and ARMS[arm].policy == "random":  # it acts uniformly; its policy head is not plotted
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
        ends, by_age = crafter_by_age(load_metrics(Path(ss[0]["run_dir"])), span)  # skill by age: [seeds, spans]
        if by_age.size:
            with warnings.catch_warnings():  # a span in which no organism ended an episode
                warnings.simplefilter("ignore", RuntimeWarning)
                mean, se = np.nanmean(by_age, 0), np.nanstd(by_age, 0) / np.sqrt(by_age.shape[0])
            axes[3].errorbar(ends, mean, se, marker="o", ms=3, capsize=2, **style)
    for ax, t in zip(axes, ("achievements unlocked so far", "episode length (running mean of 10 chunks)",
                            "policy entropy, nats (running mean of 5 chunks)",
                            f"Crafter score % of the episodes ended in each {span:,} steps (± s.e.)")):
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
    if c.long < 0 or c.finalists < 0:
        raise ValueError(f"the curiosity study needs --long >= 0 and --finalists >= 0, got {c.long}, {c.finalists}")
    d = Path(c.run_dir)
    t0 = time.time()
    screen = stage(c, c.steps, list(c.arms))
    long = stage(c, c.long, finalists(c, screen)) if c.long else {}
    b = study.config(c, row(c, DEFAULT)).life  # the default arm's body (an arm may change it)
    s0 = c.base.run.seed
    text = ["# Curiosity compared: which reward-free animal beats the random policy, beside the oracle control?", "",
            f"{b.body.world}; body d={b.body.d_model}, {b.body.layers} genes, window {b.mind.window}; world model: "
            f"{' + '.join(b.learning.objective)} (each curiosity adds what it needs); {c.seeds} seeds per arm "
            f"({s0}..{s0 + c.seeds - 1}), "
            f"each arm one population in one process; jax {jax.__version__} on {jax.devices()[0].platform}; "
            f"{time.strftime('%Y-%m-%d')}; this call {time.time() - t0:.0f} s (reused rows cost nothing).",
            "", "Crafter score: of the episodes that ended during the life (Hafner 2021: exp of the mean of "
            "ln(1 + success rate %), minus 1), mean ± standard error over the seeds; 'vs random': the difference "
            "from the random policy in standard errors of the difference. The policy never sees the extrinsic "
            "reward, but in the oracle rows (controls: Craftax's own reward through the same learner). Asleep: "
            "steps whose action the game overrode (noop while sleeping). Steps/s: organism-steps/s of the arm's "
            "whole population after its first two chunks, on a machine that may be doing other work (bench.py "
            "measures speed).", ""]
    for name, res, steps in (("Screen", screen, c.steps), ("Long lives", long, c.long)):
        if not res:
            continue
        png = d / f"curiosity-{steps}.png"  # by budget: a later call never overwrites another's
        plot(c, res, png, f"{name}: {steps:,} steps")
        text += [f"## {name}: {steps:,} steps", "", *table(c, res, steps), "", f"![curves]({png.name})", "",
                 "Each achievement's rate (% of episodes, mean ± s.e.; those no arm unlocked are left out):", "",
                 *achievement_table(res, c), "", "The action mix (% of steps, mean over the seeds):", "",
                 *action_table(res, c), ""]
    (d / "curiosity.md").write_text("\n".join(text))
    print((d / "curiosity.md").read_text())
    return d / "curiosity.md"
