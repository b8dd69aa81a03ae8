"""``python compare.py development``: does growing during life pay?

Rows (``rows``), each a population of ``--seeds`` organisms: born with 1 gene and growing up to ``--grown``
slots, on a plateau of learning or on a schedule; bodies fixed at 1 gene, at 2 and at the final size (the
size-versus-score curve). The objective, curiosity and gate flags (``--grow-gate``, ``--gate-lr``) are the
base's. Beside compare.py's table, ``table`` gives growth's own figures (genes, gates of grown and born genes
and their knockouts, compute in gene-steps and seconds, the overfitting gap, the steps to reach the small
body's final surprise) and ``plot_overfitting`` the gap over each life (``D/overfitting.png``).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

import plots
import study
import train
from report import load_config, load_metrics, organisms
from study import Compare, Row, config, pm


def rows(c: Compare) -> list[Row]:
    """Born with 1 gene and growing (on plateau, on schedule) up to ``--grown`` slots, against bodies fixed
    at 1 gene, at 2 (when the final size is larger: the size-versus-score curve) and at the final size; the
    objective, curiosity and gate flags (--grow-gate, --gate-lr) of the base."""
    S, obj = c.grown, c.base.learning.objective
    sizes = [1] + [2] * (S > 2)
    return [Row("born 1 gene, grows on plateau", obj, body=(("layers", 1), ("slots", S), ("grow", "plateau"))),
            Row("born 1 gene, grows on schedule", obj,
                body=(("layers", 1), ("slots", S), ("grow", "schedule"), ("grow_every", schedule(c)))),
            *[Row(f"fixed at {k} gene{'s' * (k > 1)}", obj, body=(("layers", k), ("slots", k))) for k in sizes],
            Row(f"born at the final size ({S} genes)", obj, body=(("layers", S), ("slots", S)))]


def schedule(c: Compare) -> int:
    """--grow-every for the schedule row: its S - 1 insertions spread evenly over the life, in whole chunks."""
    chunk = c.base.run.chunk
    return max(chunk, c.steps // c.grown // chunk * chunk)


def surprise_curve(run: Path) -> tuple[np.ndarray, np.ndarray]:
    """(steps, [N, chunks]) each organism's prequential surprise of the curious objective, per chunk."""
    key = f"{load_config(run)['objective'][0]}/surprise"
    ms = load_metrics(run)
    per = [organisms(m) for m in ms]
    return np.array([m["step"] for m in ms]), np.array([[o[key] for o in p] for p in per], float).T


def steps_to(curve: np.ndarray, steps: np.ndarray, target: float, smooth: int = 5) -> float | None:
    """The first step at which the running mean of ``smooth`` chunks of ``curve`` is at or below ``target``."""
    smooth = max(1, min(smooth, len(curve)))  # a life of fewer chunks: the mean of all of them
    run = np.convolve(curve, np.ones(smooth) / smooth, mode="valid")
    hit = np.flatnonzero(run <= target)
    return float(steps[hit[0] + smooth - 1]) if hit.size else None


def born_slots(layers: int, events: list[dict]) -> list[int]:
    """Where the genes an organism was born with sit after its insertions (``events``: its growth events,
    oldest first; an insertion at slot k moves every gene from k up one slot)."""
    slots = list(range(layers))
    for e in events:
        slots = [s + (s >= e["slot"]) for s in slots]
    return slots


def knockouts(cfg: train.Config) -> np.ndarray:
    """[N, slots]: how much each organism's world-model loss on its last window rises with one slot's gate set
    to 0 (``evolve.knockout`` on the run's final checkpoint)."""
    import evolve

    _, (orgs, *_), _ = train.load_run(cfg, Path(cfg.run.run_dir) / "checkpoint.eqx", free=("run_dir", "resume"))
    return np.asarray(evolve.knockout(cfg.life, orgs))


def growth_figures(cfg: train.Config, layers: int, obj: str) -> dict:
    """One development run's figures, per organism: active genes at the end, the median |gate| of its grown
    genes (None if none grew) and of its born ones, the mean knockout of each (``knockouts``), gene-steps
    (millions: active genes x steps, summed over the chunks), the overfitting gap (``obj``'s prequential
    surprise minus its ``seen_surprise``); and the run's insertions per organism, wall seconds after
    compiling, steps and surprise curves (``surprise_curve``)."""
    run = Path(cfg.run.run_dir)
    ko = knockouts(cfg)
    ms = load_metrics(run)
    per = [organisms(m) for m in ms]
    last, N = per[-1], len(per[-1])
    events = [[e for m in ms for e in m.get("growth", []) if e.get("organism", 0) == i] for i in range(N)]
    grown, born, ko_grown, ko_born = [], [], [], []
    for i, o in enumerate(last):  # the active genes fill the first slots (an insertion shifts the ones above)
        b, g = born_slots(layers, events[i]), np.abs(np.asarray(o["gates"], float))
        new = [s for s in range(int(o["active_genes"])) if s not in b]
        born.append(float(np.median(g[b])))
        grown.append(float(np.median(g[new])) if new else None)
        ko_born.append(float(np.mean(ko[i, b])))
        ko_grown.append(float(np.mean(ko[i, new])) if new else None)
    steps = np.array([m["step"] for m in ms], float)
    chunk = np.diff(np.concatenate([[0.0], steps]))
    summary = json.loads((run / "summary.json").read_text())
    lives = summary.get("organisms", [summary])
    return {"active": [o["active_genes"] for o in last], "grown": grown, "born": born, "ko_grown": ko_grown,
            "ko_born": ko_born,
            "gene_steps": [float(np.sum(chunk * np.array([p[i]["active_genes"] for p in per]))) / 1e6
                           for i in range(N)],
            "gap": [s["prequential"][obj]["surprise"] - s["prequential"][obj]["seen_surprise"] for s in lives],
            "insertions": len(sum(events, [])) / N, "wall": summary["steps"] / (summary["steps_per_second"] or np.inf),
            "steps": steps, "curves": surprise_curve(run)[1]}


def table(c: Compare) -> str:
    """Growth's own figures: genes at the end, insertions, the gates of grown and born genes and how much the
    loss rises without each (knockout, on the organism's last window), the compute spent (gene-steps: active
    genes x steps; wall seconds), overfitting (the prequential surprise on new data
    minus the surprise on the window's data it already learned from), and the steps each row needs to reach
    the surprise that the body fixed at 1 gene ends its life at."""
    runs = {r.name: (config(c, r), dict(r.body)["layers"]) for r in rows(c)}
    _, fixed = surprise_curve(Path(runs["fixed at 1 gene"][0].run.run_dir))
    target = float(np.mean(fixed[:, -5:]))
    obj = c.base.learning.objective[0]
    lines = ["", f"Growth (mean ± std over the organisms): genes at the end; the median |gate| of grown and of born "
                 "genes at the end, and the mean rise of the world-model loss on the last window when one of them "
                 f"is knocked out (its gate set to 0); compute; overfitting ({obj}'s prequential surprise minus its "
                 "surprise on the "
                 f"window's instances it already learned from, over the life, nats); and the steps needed to reach "
                 f"a prequential surprise of {target:.4f} (the mean over the last 5 chunks that the body fixed at 1 "
                 "gene ends at; running mean of 5 chunks; '–': never)", "",
             "| run | active genes at the end | insertions per organism | median abs(gate): grown / born "
             "| knockout (loss rise, nats): grown / born | gene-steps (millions) | wall s | overfitting gap (nats) "
             "| steps to reach the target |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, (cfg, layers) in runs.items():
        f = growth_figures(cfg, layers, obj)
        reach = [steps_to(cv, f["steps"], target) for cv in f["curves"]]
        lines.append(f"| {name} | {pm(f['active'], '{:.1f}')} | {f['insertions']:.1f} "
                     f"| {pm(f['grown'], '{:.2f}')} / {pm(f['born'], '{:.2f}')} "
                     f"| {pm(f['ko_grown'], '{:.3f}')} / {pm(f['ko_born'], '{:.3f}')} "
                     f"| {pm(f['gene_steps'], '{:.2f}')} "
                     f"| {f['wall']:.0f} | {pm(f['gap'], '{:.3f}')} "
                     f"| {pm(reach, '{:.0f}')} ({sum(r is not None for r in reach)}/{len(reach)} reached) |")
    return "\n".join(lines) + "\n"


def main(c: Compare) -> Path:
    """The rows, the common table with growth's after it, its plot and the overfitting curves."""
    results = study.run_all(c, rows(c))
    path = study.write(c, results, table(c))
    plot_overfitting(c, path.parent / "overfitting.png")
    return path


def plot_overfitting(c: Compare, out: Path) -> Path:
    """Development: each row's overfitting gap over its life (the first objective's prequential surprise minus
    its surprise on the window's data it already learned from, per chunk, mean over the organisms)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    obj = c.base.learning.objective[0]
    fig, ax = plt.subplots(figsize=(8, 4))
    for r in rows(c):
        ms = load_metrics(Path(config(c, r).run.run_dir))
        gap = [np.nanmean([o[f"{obj}/surprise"] - o[f"{obj}/seen_surprise"] for o in organisms(m)])
               for m in ms]
        ax.plot([m["step"] for m in ms], gap, label=r.name)
    ax.axhline(0, color="gray", lw=0.5)
    ax.set_xlabel("step")
    ax.set_ylabel("nats")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return plots.saved(fig, out, f"overfitting: {obj}'s surprise on new data minus on data already learned from")
