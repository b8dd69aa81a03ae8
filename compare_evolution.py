"""``python compare.py evolution``: does selection over a gene pool make better learners than no selection?

Three arms at one budget: darwinian and lamarckian evolution, and the control (the same pool, births and
lives, no selection). Each arm is an evolution of ``--generations`` lives of ``--steps`` steps by a
population of ``--population``, once per seed (``--seeds``; one fresh process per seed runs its three
arms, which share compiled code). Each arm's final pool is then judged on seeds and worlds no evolution
saw (``train.py --init-from``: one new population drawn from it, living one life). Writes
``D/evolution.md`` (the table, and the design's open questions answered from each final pool: do genes
settle at one depth, do split halves drift apart, does splitting pay) and ``D/evolution.png``. Finished
runs are reused.
"""

from __future__ import annotations

import dataclasses
import json
import platform
import time
from pathlib import Path

import numpy as np

import train
from compare import fresh_process, pm, slug

ARMS = {"darwinian": dict(inherit="darwinian", selection="evolve"),
        "lamarckian": dict(inherit="lamarckian", selection="evolve"),
        "control (no selection)": dict(inherit="darwinian", selection="none")}
JUDGE_SEED = 10_000  # judged lives use seeds no evolution lived on


def base_config(c) -> train.Config:
    base = c.base.replace(resume=False, gif_steps=0)
    if base.body.layers < 3:  # depth bins need early, mid and late genes
        base = base.replace(layers=3, slots=max(3, base.body.slots))
    return base


def configs(c, seed: int) -> list[tuple[str, train.Config, train.Config]]:
    """(arm, its evolution, its judgement on fresh seeds) for one seed."""
    base = base_config(c)
    out = []
    for arm, kw in ARMS.items():
        d = Path(c.run_dir) / f"{slug(arm)}-s{seed}"
        evo = base.replace(seed=seed * 1000, run_dir=str(d), **kw)
        judge = base.replace(generations=1, seed=JUDGE_SEED + seed * 1000, run_dir=str(d) + "-judged",
                             init_from=str(d), **kw)
        out.append((arm, evo, judge))
    return out


def done(cfg: train.Config) -> dict | None:
    """The run's summary if it finished with this config, else None (and its directory is emptied)."""
    run = Path(cfg.run.run_dir)
    path = run / "summary.json"
    if path.exists() and json.loads((run / "config.json").read_text()) == json.loads(
            json.dumps(dataclasses.asdict(cfg))):
        return json.loads(path.read_text())
    if run.exists():
        for f in run.iterdir():
            f.unlink()
    return None


def evolve_seed(c, seed: int) -> dict:
    """Every arm's evolution and judgement for one seed, in one process (they share compiled code)."""
    out = {}
    for arm, evo, judge in configs(c, seed):
        ev = done(evo) or train.train(evo, False)
        out[arm] = {"evolution": ev, "judged": done(judge) or train.train(judge, False)}
    return out


def main(c) -> Path:
    from tqdm import tqdm

    if c.base.evolution.generations < 2:
        raise ValueError("evolution needs --generations of at least 2 and a --population")
    for seed in range(c.seeds):  # every config is checked before the first compile
        for _, evo, _ in configs(c, seed):
            train.validate(evo)
    results: dict[str, list[dict]] = {arm: [] for arm in ARMS}
    for seed in tqdm(range(c.seeds), unit="seed", desc="evolution: 3 arms per seed"):
        got = fresh_process(evolve_seed, c, seed) if c.fresh else evolve_seed(c, seed)
        for arm, r in got.items():
            results[arm].append(r)
    d = Path(c.run_dir)
    d.mkdir(parents=True, exist_ok=True)
    (d / "evolution.md").write_text(table(c, results) + answers(c))
    plot(results, d / "evolution.png")
    print((d / "evolution.md").read_text())
    return d / "evolution.md"


def judged_figures(r: dict) -> dict[str, list]:
    """Per organism of an arm's judged population: Crafter score, episode length, prequential surprise."""
    ss = r["judged"].get("organisms", [r["judged"]])
    return {"crafter": [s["crafter_score"] or 0.0 for s in ss],
            "length": [s["mean_episode_length"] for s in ss],
            "surprise": [sum(p["surprise"] for p in s["prequential"].values()) for s in ss],
            "accuracy": [next(iter(s["prequential"].values())).get("action_accuracy", {}).get("model")
                         for s in ss]}


def table(c, results: dict[str, list[dict]]) -> str:
    import jax

    base = base_config(c)
    b, e, kind = base.life, base.evolution, base.evolution.fitness
    G, N = e.generations, base.run.population
    lines = [f"| arm | {kind}: last generation, best / mean | {kind}: mean over all generations | "
             "judged on fresh seeds: Crafter score % | mean episode length | prequential surprise (nats) | "
             "inverse accuracy | pool at the end: lineages / spread |", "|---|---|---|---|---|---|---|---|"]
    for arm, rs in results.items():
        evo = [r["evolution"]["evolution"] for r in rs]
        j = [judged_figures(r) for r in rs]
        flat = {k: [x for f in j for x in f[k]] for k in j[0]}
        se = lambda v: f"{np.mean(v):.2f} ± {np.std(v) / np.sqrt(max(len(v) - 1, 1)):.2f}"  # noqa: E731
        lines.append(
            f"| {arm} | {pm([e['best'][-1] for e in evo], '{:.3g}')} / {pm([e['mean'][-1] for e in evo], '{:.3g}')} "
            f"| {pm([np.mean(e['mean']) for e in evo], '{:.3g}')} | {se(flat['crafter'])} "
            f"| {pm(flat['length'], '{:.0f}')} | {pm(flat['surprise'], '{:.3f}')} | {pm(flat['accuracy'])} "
            f"| {pm([e['lineages'][-1] for e in evo], '{:.1f}')} / {pm([e['spread'][-1] for e in evo], '{:.3f}')} |")
    return "\n".join([
        f"# Evolution compared: {c.seeds} seed(s) x {G} generations x {N} organisms, "
        f"lives of {c.steps} steps",
        "",
        f"{b.body.world}; body d={b.body.d_model}, {b.body.layers} genes in {b.body.slots} slots, window "
        f"{b.mind.window}; fitness {kind}; pool {e.pool_size(b.body.layers)}, turnover {e.turnover}, mutation "
        f"{e.mutation}; "
        f"{platform.machine()} {jax.devices()[0].platform}, jax {jax.__version__}; {time.strftime('%Y-%m-%d')}.",
        "Best / mean: the selected lives themselves (mean +- std over the seeds). Judged: each arm's final pool "
        f"draws one new population of {N} (--init-from), which lives one life of {c.steps} steps on "
        "seeds and worlds no evolution saw; Crafter score as mean +- standard error over all judged organisms, the "
        "rest mean +- std. Surprise: the world model's prequential -log p per scored step (lower is better).",
        "", *lines, ""])


def answers(c) -> str:
    """The design's open questions, answered from each arm's final pool (pool.json and its checkpoint):
    do genes settle at one depth, do the two halves of a split drift apart, and does splitting pay?"""
    import jax

    import evolve

    lines = ["", "| arm | genes judged | share of a gene's carriers at its usual depth (1/3: none) "
                 "| credit: best depth minus worst | split pairs alive at the end: distance / size "
                 "| credit of split children vs first-generation genes |", "|---|---|---|---|---|---|"]
    for arm in ARMS:
        share, spread_, dist, kids, olds, n = [], [], [], [], [], 0
        for seed in range(c.seeds):
            evo = configs(c, seed)[list(ARMS).index(arm)][1]
            run = Path(evo.run.run_dir)
            genes = json.loads((run / "pool.json").read_text())["genes"]
            judged = [g for g in genes if g["carried"] >= 3]
            n += len(judged)
            share += [max(g["carried_by_bin"]) / g["carried"] for g in judged]
            spread_ += [max(v) - min(v) for g in judged if len(v := [g["credit_by_depth"][b] for b, k in
                                                                   zip(evolve.BINS, g["carried_by_bin"]) if k]) > 1]
            kids += [g["credit"] for g in judged if g["parent"] is not None]
            olds += [g["credit"] for g in judged if g["parent"] is None]
            _, (*_, pool), _ = train.load_run(evo, run / "checkpoint.eqx", free=tuple(evo.flat()))
            flat = np.concatenate([np.asarray(x).reshape(x.shape[0], -1) for x in jax.tree.leaves(pool.genes)], 1)
            ids = json.loads((run / "pool.json").read_text())["pool"]
            by_parent: dict = {}
            for g in genes:
                if g["in_pool"] and g["parent"] is not None:
                    by_parent.setdefault(g["parent"], []).append(ids.index(g["id"]))
            dist += [np.linalg.norm(flat[a] - flat[b]) / np.linalg.norm(flat[a])
                     for pair in by_parent.values() if len(pair) == 2 for a, b in [pair]]
        lines.append(f"| {arm} | {n} | {pm(share, '{:.2f}')} | {pm(spread_, '{:.3f}')} "
                     f"| {pm(dist, '{:.4f}')} ({len(dist)} pairs) | {pm(kids, '{:+.3f}')} vs {pm(olds, '{:+.3f}')} |")
    return "\n".join(lines) + "\n"


def plot(results: dict[str, list[dict]], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 4, figsize=(18, 4))
    for k, (arm, rs) in enumerate(results.items()):
        evo = [r["evolution"]["evolution"] for r in rs]
        G = len(evo[0]["best"])
        for key, ax, style in (("best", axes[0], "-"), ("mean", axes[0], "--"), ("spread", axes[1], "-")):
            v = np.array([e[key] for e in evo])
            ax.plot(np.arange(G), v.mean(0), style, color=f"C{k}", label=f"{arm} {key}" if ax is axes[0] else arm)
            if len(v) > 1:
                ax.fill_between(np.arange(G), v.min(0), v.max(0), color=f"C{k}", alpha=0.12, lw=0)
        j = judged_figures(rs[0]) if len(rs) == 1 else {
            key: [x for r in rs for x in judged_figures(r)[key]] for key in judged_figures(rs[0])}
        for ax, key in ((axes[2], "crafter"), (axes[3], "surprise")):
            ax.scatter(j[key], [k] * len(j[key]), color=f"C{k}", s=12)
            ax.barh(k, np.mean(j[key]), color=f"C{k}", alpha=0.3)
    kind = results[next(iter(results))][0]["evolution"]["evolution"]["fitness"]
    axes[0].set_title(f"fitness ({kind}) per generation: best (solid), mean (dashed)", fontsize=9)
    axes[1].set_title("pool diversity (spread) per generation", fontsize=9)
    axes[2].set_title("judged on fresh seeds: Crafter score %", fontsize=9)
    axes[3].set_title("judged: prequential surprise (lower is better)", fontsize=9)
    for ax in axes[2:]:
        ax.set_yticks(range(len(results)), list(results), fontsize=8)
    axes[0].legend(fontsize=6)
    for ax in axes[:2]:
        ax.set_xlabel("generation")
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=80)
    plt.close(fig)
