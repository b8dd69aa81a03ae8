"""``python compare.py memory``: what memory and thinking buy, on the recall probe, and what they cost.

Rows (``rows``), each a population of ``--seeds`` organisms with the recall probe beside the base's objective:
no memory; memory 4 trained by truncated backprop; memory 4 whose writes see their transition only, with the
write gate's gradient over the whole life (``--rtrl``); thinking 2 and 4, pause and recurrent; memory with
thoughts; and the random policy (unless the base acts at random already). With ``--policy random`` every row
lives the same worlds and actions, so differences pair by seed. Beside compare.py's table, ``table`` gives
the probe's accuracy on the cells that changed (by bin of delay with ``--recall-min``), each row's gain at
delays of ``FAR`` steps and more minus the first row, seed by seed, and the speed; ``plot_recall`` draws the
recall curve (``D/recall.png``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

import plots
import study
from study import Compare, Row, mean_se


def rows(c: Compare) -> list[Row]:
    """Memory off and on (truncated backprop; writes that see their transition only with the gate's gradient
    over the whole life, --rtrl), thinking 0, 2 and 4 (pause and recurrent), all with the recall probe beside
    the default objective; and the random policy, for the Crafter score (unless every row acts at random: with
    --policy random the rows live the same worlds and actions, so the recall curve's differences pair by seed)."""
    obj = tuple(dict.fromkeys((*c.base.learning.objective, "recall")))
    return [Row("no memory, no thoughts", obj), Row("memory 4", obj, body=(("memory", 4),)),
            Row("memory 4, gate by RTRL", obj, body=(("memory", 4), ("write_reads_memory", False), ("rtrl", True))),
            Row("think 2 (pause)", obj, body=(("think", 2),)), Row("think 4 (pause)", obj, body=(("think", 4),)),
            Row("think 2 (recurrent)", obj, body=(("think", 2), ("think_mode", "recurrent"))),
            Row("think 4 (recurrent)", obj, body=(("think", 4), ("think_mode", "recurrent"))),
            Row("memory 4 + think 2 (pause)", obj, body=(("memory", 4), ("think", 2))),
            *[Row("random policy", obj, policy="random")] * (c.base.learning.policy != "random")]


def se(v, fmt="{:.4f}") -> str:
    """Mean ± standard error of the values that are there ('–' for fewer than two)."""
    mean, sem = mean_se(v)
    return f"{fmt.format(mean)} ± {fmt.replace('+', '').format(sem)}" if np.isfinite(sem) else "–"


def recall_curve(ss: list[dict]) -> dict[str, list[float | None]]:
    """{bin of delay: each organism's recall accuracy on the changed cells in it (None where it never fell)}."""
    bins = dict.fromkeys(b for s in ss for b in s["prequential"]["recall"].get("by_delay", {}))
    return {b: [s["prequential"]["recall"].get("by_delay", {}).get(b, {}).get("model") for s in ss] for b in bins}


FAR = 8  # delays from here on lie beyond truncated backprop's reach at the default window (3 writes)


def far_recall(s: dict) -> float | None:
    """One organism's recall accuracy on the changed cells at delays of FAR steps and more (its bins pooled by
    the probes scored in each); None without a range of delays."""
    bins = [v for b, v in s["prequential"]["recall"].get("by_delay", {}).items()
            if int(b.replace("delay", "").split("_")[0]) >= FAR and v.get("scored")]
    n = sum(v["scored"] for v in bins)
    return sum(v["scored"] * v["model"] for v in bins) / n if n else None


def paired(v: list, base: list) -> str:
    """Seed by seed differences from the first row (organism i of every row is seed i): mean ± s.e. (in s.e.)."""
    d = np.array([a - b for a, b in zip(v, base) if a is not None and b is not None], np.float64)
    if len(d) < 2:
        return "–"
    e = d.std(ddof=1) / np.sqrt(len(d))
    return f"{d.mean():+.4f} ± {e:.4f} ({d.mean() / e:+.1f} s.e.)" if e > 0 else f"{d.mean():+.4f}"


def table(c: Compare, results: dict[str, list[dict]]) -> str:
    """What memory and thinking buy and cost: the recall probe's accuracy on the cells that changed since the
    view it asks for (the view now scores 0 there, perfect memory 1), by bin of delay when the probe's delay
    is drawn (--recall-min); inverse accuracy, Crafter score, speed."""
    first = next(iter(results.values()))[0]["steady_sps"]
    bins = list(dict.fromkeys(b for ss in results.values() for b in recall_curve(ss)))
    label = lambda b: b.replace("delay", "").replace("_", "–")  # noqa: E731
    lines = ["", "What each buys and costs (mean ± standard error over the seeds; recall: the probe's accuracy on "
                 "the cells that changed since the view it asks for, where the view now scores 0 and a perfect "
                 "memory 1" + ("; by delay in steps, in bins" if bins else "") + "; speed relative to the first row)",
             "", "| run | recall (changed cells) | " + "".join(f"delay {label(b)} | " for b in bins)
             + (f"delays ≥ {FAR}: minus the first row, seed by seed | " if bins else "")
             + "inverse accuracy | Crafter score % | organism-steps/s (relative) |",
             "|---|---|" + "---|" * len(bins) + "---|" * bool(bins) + "---|---|---|"]
    far0 = [far_recall(s) for s in next(iter(results.values()))]
    for name, ss in results.items():
        rec = [s["prequential"]["recall"]["recall_changed_accuracy"]["model"] for s in ss]
        curve = recall_curve(ss)
        inv = [s["prequential"].get("inverse_dynamics", {}).get("action_accuracy", {}).get("model") for s in ss]
        sps = ss[0]["steady_sps"]
        lines.append(f"| {name} | {se(rec)} | " + "".join(f"{se(curve.get(b, []), '{:.3f}')} | " for b in bins)
                     + (f"{paired([far_recall(s) for s in ss], far0)} | " if bins else "")
                     + f"{se(inv)} | {se([s['crafter_score'] for s in ss], '{:.2f}')} | "
                     + (f"{sps:.0f} ({sps / first:.2f}) |" if sps and first else "– |"))
    return "\n".join(lines) + "\n"


def main(c: Compare) -> Path:
    """The rows, the common table with the recall figures after it, its plot and the recall curve."""
    results = study.run_all(c, rows(c))
    path = study.write(c, results, table(c, results))
    plot_recall(results, path.parent / "recall.png")
    return path


def plot_recall(results: dict[str, list[dict]], out: Path) -> Path | None:
    """The recall curve: each row's accuracy on the changed cells by bin of delay, mean ± s.e. over the seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    drawn = False
    for name, ss in results.items():
        curve = recall_curve(ss)
        xs = [int(b.replace("delay", "").split("_")[0]) for b in curve]
        ys = [[v for v in vals if v is not None] for vals in curve.values()]
        if xs and all(len(y) > 1 for y in ys):
            m, e = np.array([np.mean(y) for y in ys]), np.array([np.std(y, ddof=1) / np.sqrt(len(y)) for y in ys])
            ax.errorbar(xs, m, e, marker="o", capsize=3, label=name)
            drawn = True
    if not drawn:
        plt.close(fig)
        return None
    ax.set_xscale("log", base=2)
    ax.set_xlabel("delay (steps; each bin from its left edge to the next)")
    ax.set_ylabel("accuracy on the changed cells")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return plots.saved(fig, out, "recall: what the view was, where it changed (view now: 0, perfect memory: 1)")
