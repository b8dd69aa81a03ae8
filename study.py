"""A study: rows of runs side by side at one budget, the shared runner of every comparison (``compare.py``
is the command line that picks one; ``compare_*.py`` are the studies with rows and tables of their own).

A row is one population of K seeds (``train.py --population K``, organism i = seed i) living in one process,
a fresh process per row; a row whose summary is already there is reused, and a row stopped mid-life goes on
from its last checkpoint, so an interrupted study picks up where it stopped. ``table`` writes the common
markdown table (prequential scores beside their baselines, Crafter score, achievements unlocked, episode
length, steps/s, each as mean +- std over the seeds) and ``plot`` its picture.
"""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import platform
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
import tyro

import objectives as O
import targets
import train
from report import load_metrics, organisms


@dataclass(frozen=True)
class Row:
    name: str
    objective: tuple[str, ...]
    policy: str | None = None  # None: the base's (--policy)
    curiosity: str | None = None  # None: the base's (--curiosity)
    weights: tuple[float, ...] = ()
    body: tuple[tuple[str, object], ...] = ()  # other config fields of this row: (("layers", 1), ...)


@dataclass(frozen=True)
class Compare:
    """Run each row of a comparison (K seeds as one population) at one budget; write a table and a plot."""

    what: tyro.conf.Positional[Literal["objectives", "evolution", "development", "curiosity", "memory"]] = "objectives"
    """which comparison: objectives (every objective, the mixes, curiosity variants, the random policy);
    evolution (genes; genes and instincts, darwinian and lamarckian; no-selection controls); development
    (growing bodies against fixed ones); curiosity (every intrinsic reward against the random policy: a screen,
    then long lives); memory (memory off and on, and with --rtrl; thinking 0 / 2 / 4, pause and recurrent, on
    the recall probe)"""
    seeds: int = 4
    """objectives: organisms per row (seeds --seed .. --seed+K-1, 0..K-1 by default, living as one population;
    --seed 4 replicates a study on fresh seeds); evolution: independent
    evolutions per arm (judged figures: mean +- standard error across them)"""
    grown: int = 4
    """development: the slots a growing body may fill (and the size of the largest fixed body)"""
    fresh: bool = True
    """run each row (objectives) or each seed's arms (evolution) in a fresh process; off: in this one"""
    objectives: tuple[str, ...] = tuple(O.LAYOUTS)
    """which objectives get a row of their own"""
    extras: bool = True
    """also run the forward+inverse mix, learning-progress curiosity and ICM"""
    arms: tuple[str, ...] = ()
    """curiosity: the arms of the screen (compare_curiosity.ARMS): random, oracle, effects, effects+sleep, count,
    rnd, disagreement, changes, changes-world, forward, progress, surprise, e3b, icm (each through the stream
    learner with its entropy target), effects-observation, effects-both, effects-body, effects-intentional,
    effects-body-adam, effects-h2, effects-body-adam-h2 (entropy target 2) and their oracle-* controls,
    effects-body-adam-1gene, effects-body-adam-4genes,
    effects-fixed, oracle-fixed (a fixed entropy coefficient), effects-1gene, effects-4genes (the body's depth),
    effects-adam, oracle-adam, oracle-adam-1e-3 (Adam's step for the learner apart), and surprise-window,
    rnd-window, progress-window, effects-window, oracle-window (the window learner, gamma 0.95), random-pixels,
    disagreement-pixels, rnd-pixels (the world seen as pixels); empty: random, oracle, effects, surprise-window,
    rnd-window, progress-window, effects-window, oracle-window, rnd, count, disagreement, changes. evolution:
    the arms to run (compare_evolution.ARMS, e.g. 'lamarckian, genes and instincts'); empty: all five"""
    long: int = 0
    """curiosity: steps of the long stage (0: none), for the random policy, the oracle and the finalists"""
    finalists: int = 2
    """curiosity: how many reward-free arms go on to the long stage: the default and the best others"""
    base: Annotated[train.Config, tyro.conf.arg(name="")] = field(default_factory=lambda: train.Config.of(
        steps=20_000, run_dir="runs/compare", population=8, generations=10, gif_steps=0))
    """the runs' flags, as train.py's (--d-model 32 ...): --steps is each run's (evolution: each life's;
    curiosity: the screen's), --run-dir where the runs, compare.md and compare.png go; --population and
    --generations are evolution's (organisms per generation, generations per evolution; the other comparisons
    live each row as a population of --seeds)"""

    @property
    def steps(self) -> int:
        return self.base.run.steps

    @property
    def run_dir(self) -> str:  # a base built without one (Compare(base=cfg) in code) must not write into the cwd
        return self.base.run.run_dir or "runs/compare"

    def at(self, **fields) -> Compare:
        """This comparison with some of its runs' flags changed (``steps=...``, ``run_dir=...``)."""
        return dataclasses.replace(self, base=self.base.replace(**fields))


def config(c: Compare, row: Row) -> train.Config:
    return c.base.replace(objective=row.objective, weights=row.weights, policy=row.policy or c.base.learning.policy,
                          curiosity=row.curiosity or c.base.learning.curiosity,
                          seed=c.base.run.seed, population=c.seeds, generations=1,
                          run_dir=str(Path(c.run_dir) / slug(row.name)), resume=False, **dict(row.body))


RANDOM = "random"  # the curiosity study's arm that acts uniformly at random


def slug(name: str) -> str:
    return "".join(ch if ch.isalnum() else "-" for ch in name).strip("-").replace("--", "-")


def run_all(c: Compare, todo: list[Row]) -> dict[str, list[dict]]:
    """{row name: the summary of each of its organisms}, each row run (or reused) in turn."""
    from tqdm import tqdm

    for row in todo:  # every config is checked before the first compile
        train.validate(config(c, row))
    results: dict[str, list[dict]] = {}
    bar = tqdm(todo, unit="row", dynamic_ncols=True)
    for row in bar:
        cfg = config(c, row)
        bar.set_description(f"{row.name} x{c.seeds}")
        path = Path(cfg.run.run_dir) / "summary.json"
        summary = json.loads(path.read_text()) if path.exists() else None
        if summary is None or summary["steps"] != c.steps or summary.get("population", 1) != c.seeds:
            if summary is not None:  # a different budget: start that row again
                for f in Path(cfg.run.run_dir).iterdir():
                    f.unlink()
            if summary is None and (Path(cfg.run.run_dir) / "checkpoint.eqx").exists():
                cfg = cfg.replace(resume=True)  # stopped mid-life: go on from its last checkpoint
            summary = fresh_process(train.train, cfg, False) if c.fresh else train.train(cfg, False)
        sps = steady_sps(Path(cfg.run.run_dir))
        results[row.name] = [{**s, "steady_sps": sps} for s in summary.get("organisms", [summary])]
    return results


def steady_sps(run: Path) -> float | None:
    """Organism-steps/s of a run (all its organisms together) from its metrics.jsonl, leaving out its
    first two chunks (compile and warm-up)."""
    ms = load_metrics(run)
    steps = np.diff([0] + [m["step"] for m in ms])[2:] * len(organisms(ms[0]))
    seconds = [n / m["organism_steps_per_second"] for n, m in zip(steps, ms[2:])]
    return float(np.sum(steps) / np.sum(seconds)) if seconds else None


def fresh_process(fn, *args):
    """``fn(*args)`` in a new Python process: compiled code of earlier runs does not pile up in memory."""
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(fn, *args).result()


def mean_se(values) -> tuple[float, float]:
    """The mean of the values that are there (None left out) and its standard error (NaN for fewer than two):
    the one such helper of every study."""
    v = np.asarray([x for x in values if x is not None], np.float64)
    return float(v.mean()), float(v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else float("nan")


def pm(values: list, fmt: str = "{:.3f}") -> str:
    v = [x for x in values if x is not None]
    if not v:
        return "–"
    return fmt.format(np.mean(v)) + (f" ± {fmt.format(np.std(v)).lstrip('+')}" if len(v) > 1 else "")


def predictions(summaries: list[dict]) -> list[tuple[str, str, dict[str, str]]]:
    """(objective, score, {model / baseline: mean +- std}) for every prequential score of a row."""
    out = []
    first = summaries[0]["prequential"]
    for obj, figs in first.items():
        for label, fig in figs.items():
            if not isinstance(fig, dict) or label == "by_delay":  # a score and its baselines (the curve: below)
                continue
            vals = {k: pm([s["prequential"][obj][label][k] for s in summaries])
                    for k, v in fig.items() if not isinstance(v, str)}
            out.append((obj, label, vals))
    return out


def unlocked(s: dict) -> int:
    return sum(v > 0 for v in s["achievements"].values())


def table(c: Compare, results: dict[str, list[dict]]) -> str:
    head = ("| run | prequential predictions: model (baselines) | Crafter score % | achievements unlocked "
            "| mean episode length | organism-steps/s |\n|---|---|---|---|---|---|")
    lines = [head]
    for name, ss in results.items():
        preds = "<br>".join(
            f"{obj + ': ' if len(ss[0]['prequential']) > 1 else ''}{label.replace('_', ' ')} **{vals['model']}** ("
            + ", ".join(f"{k} {v}" for k, v in vals.items() if k != "model") + ")"
            for obj, label, vals in predictions(ss))
        lines.append(f"| {name} | {preds} | {pm([s['crafter_score'] for s in ss], '{:.2f}')} "
                     f"| {pm([unlocked(s) for s in ss], '{:.1f}')} "
                     f"| {pm([s['mean_episode_length'] for s in ss], '{:.0f}')} "
                     f"| {pm([ss[0]['steady_sps']], '{:.0f}')} |")
    import jax

    b = c.base.replace(generations=1).life  # a row's body (the base is an evolution's: config())
    return "\n".join([
        f"# {c.what.capitalize()} compared: {c.steps} steps, {c.seeds} seed(s) each (one population per row)",
        "",
        f"{b.body.world}; body d={b.body.d_model}, "
        f"{'genes as each row says' if c.what == 'development' else f'{b.body.layers} genes'}, window {b.mind.window}; "
        f"{platform.machine()} {jax.devices()[0].platform}, jax {jax.__version__}; {time.strftime('%Y-%m-%d')}.",
        "Prequential: each prediction is scored before the model learns from that step. Baselines: majority action "
        "so far and chance (1/17) for actions; copying the nearest given state for states (the most common visible "
        "id for hidden cells; an autoencoder's copy is the identity); the mean reward so far for rewards; staying "
        "put for location; copying the previous step's features for latent targets. Accuracies: higher is better; "
        "errors (MSE, squared error, cells): lower is better. The policy only ever sees intrinsic reward (the row's "
        "curiosity); Crafter score and achievements are of the episodes that ended during the run. Steps/s: "
        "organism-steps/s of the row's whole population (the same figure on every seed), after the first two chunks "
        "(compile and warm-up), on a machine that may be doing other work.",
        "",
        *lines, ""])


def skill(label: str, fig: dict) -> float | None:
    """How many times better than its (strongest) baseline a score is: >1 beats it."""
    base = [v for k, v in fig.items() if k not in ("model", "chance") and isinstance(v, float)]
    if fig.get("model") is None or not base or base[0] is None:
        return None
    m, b = fig["model"], base[0]
    if next(sc for sc in targets.all_scores() if sc.name == label).higher_is_better:
        return m / b if b > 0 else None
    return b / m if m > 0 else None





def plot(results: dict[str, list[dict]], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results)
    y = np.arange(len(names))
    fig, axes = plt.subplots(1, 3, figsize=(16, 0.38 * len(names) + 2), sharey=True)
    for i, name in enumerate(names):
        ss = results[name]
        axes[0].scatter([s["crafter_score"] or 0 for s in ss], [i] * len(ss), color="C0")
        axes[0].barh(i, np.mean([s["crafter_score"] or 0 for s in ss]), color="C0", alpha=0.3)
        first = next(iter(ss[0]["prequential"]))  # a mix shows its first objective's scores
        for label, fig_ in ss[0]["prequential"][first].items():
            if not isinstance(fig_, dict) or label == "by_delay":
                continue
            vals = [v for v in (skill(label, s["prequential"][first][label]) for s in ss) if v is not None]
            j = [sc.name for sc in targets.all_scores()].index(label)
            if vals:
                seen = label.replace("_", " ") in axes[1].get_legend_handles_labels()[1]
                axes[1].scatter(vals, [i + 0.12 * (j - 2)] * len(vals), color=f"C{j + 1}", s=18,
                                label=None if seen else label.replace("_", " "))
        lengths = [s["mean_episode_length"] for s in ss if s["mean_episode_length"]]
        if lengths:
            axes[2].barh(i, np.mean(lengths), color="C2", alpha=0.5)
    axes[0].set_title("Crafter score % (intrinsic reward only)")
    axes[1].axvline(1.0, color="gray", ls="--")
    axes[1].set_xscale("log")
    axes[1].set_title("prediction skill: x better than its baseline (>1 beats it)", fontsize=10)
    axes[1].legend(fontsize=7)
    axes[2].set_title("mean episode length")
    axes[0].set_yticks(y, names, fontsize=8)
    axes[0].invert_yaxis()
    for a in axes:
        a.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=80)
    plt.close(fig)


def write(c: Compare, results: dict[str, list[dict]], extra: str = "") -> Path:
    """The common table (and a study's ``extra`` markdown after it) as D/compare.md, its plot as
    D/compare.png; prints the table and returns its path."""
    d = Path(c.run_dir)
    (d / "compare.md").write_text(table(c, results) + extra)
    plot(results, d / "compare.png")
    print((d / "compare.md").read_text())
    return d / "compare.md"
