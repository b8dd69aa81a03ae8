"""``python compare.py evolution``: does selection make better learners than no selection?

Five arms at one budget: darwinian selection of the genes alone; darwinian and lamarckian selection of
genes and instincts (instincts.py: the learner's own numbers); and two controls with the same pool, births
and lives but no selection (genomes drawn uniformly, instincts from their prior every generation): the
darwinian one, whose pool never changes, and the lamarckian one, whose pool takes back what randomly chosen
carriers learned (so the lamarckian arm is compared with inherited learning alone). Each arm is an
evolution of ``--generations`` lives of ``--steps`` steps by a population of ``--population``, once per seed
(``--seeds``: independent evolutions; one fresh process per seed runs its arms, which share compiled code).
Each arm's final pool and instincts are then judged on seeds and worlds no evolution saw (``train.py
--init-from``: one new population drawn from it, living one life). Every judged figure is a mean over the
seeds with its standard error across them (organisms that share a pool are not independent), and its gap to
its own control (``CONTROL_OF``) in standard errors of the difference. Writes
``D/evolution.md`` (the table, and the design's open questions answered from each final pool: do genes
settle at one depth, do split halves drift apart, does splitting pay), ``D/evolution.png`` and
``D/instincts.png``. Finished
runs are reused; a stopped evolution goes on from its checkpoint (and one of fewer --generations is extended),
its judgement made again.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

import train
from study import fresh_process, mean_se, pm, slug

ARMS = {"darwinian, genes": dict(inherit="darwinian", selection="evolve", evolve="genes"),
        "darwinian, genes and instincts": dict(inherit="darwinian", selection="evolve", evolve="both"),
        "lamarckian, genes and instincts": dict(inherit="lamarckian", selection="evolve", evolve="both"),
        "control (no selection)": dict(inherit="darwinian", selection="none", evolve="both"),
        "control (no selection), lamarckian": dict(inherit="lamarckian", selection="none", evolve="both")}
CONTROL = "control (no selection)"
CONTROL_OF = {"darwinian, genes": CONTROL, "darwinian, genes and instincts": CONTROL,
              "lamarckian, genes and instincts": "control (no selection), lamarckian",
              "control (no selection), lamarckian": CONTROL}  # inherited learning alone, against none
JUDGE_SEED = 10_000  # judged lives use seeds no evolution lived on


def arms_of(c) -> list[str]:
    """The arms to run: ``--arms`` (names of ``ARMS``), all five when empty."""
    if unknown := [a for a in c.arms if a not in ARMS]:
        raise ValueError(f"unknown evolution arm(s) {unknown}: choose from {list(ARMS)}")
    return [a for a in ARMS if a in c.arms] if c.arms else list(ARMS)


def base_config(c) -> train.Config:
    """The flags every arm shares. The default curiosity, effects, becomes ``mix`` (the same reward at its flags'
    weights 0), so that the arms with instincts can weigh sleep and new views (instincts.py)."""
    base = c.base.replace(resume=False, gif_steps=0)
    if base.life.learning.curiosity == "effects":
        base = base.replace(curiosity="mix")
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


def same(cfg: train.Config, saved: dict, *loose: str) -> bool:
    """Whether a run's config.json is ``cfg``'s, but for --resume and the fields in ``loose``. Paths are
    compared as the places they name, and the run directory not at all (the file lies in it): a report given
    ``--run-dir runs/evolution`` reuses the runs made with ``--run-dir /abs/path/runs/evolution``."""
    def flat(d: dict) -> dict:
        out = {k: v for g in d.values() for k, v in g.items() if k not in ("resume", "run_dir", *loose)}
        return {**out, "init_from": os.path.realpath(out["init_from"]) if out.get("init_from") else ""}
    return flat(json.loads(json.dumps(dataclasses.asdict(cfg)))) == flat(saved)


def wipe(run: Path) -> None:
    if run.exists():
        for f in run.iterdir():
            f.unlink()


def finished(cfg: train.Config) -> dict | None:
    """The run's summary if it finished with this config, else None."""
    run = Path(cfg.run.run_dir)
    if (run / "summary.json").exists() and same(cfg, json.loads((run / "config.json").read_text())):
        return json.loads((run / "summary.json").read_text())
    return None


def done(cfg: train.Config) -> dict | None:
    """The run's summary if it finished with this config, else None (its directory emptied)."""
    if (summary := finished(cfg)) is None:
        wipe(Path(cfg.run.run_dir))
    return summary


def evolved(cfg: train.Config) -> tuple[dict, bool]:
    """(the evolution's summary, whether it ran now). A finished evolution of this config is reused; one that
    stopped (or ended at fewer --generations) goes on from its checkpoint; any other is started again."""
    if (summary := finished(cfg)) is not None:
        return summary, False
    run = Path(cfg.run.run_dir)
    saved = json.loads((run / "config.json").read_text()) if (run / "config.json").exists() else None
    if saved is not None and (run / "checkpoint.eqx").exists() and same(cfg, saved, "generations") and \
            saved["evolution"]["generations"] <= cfg.evolution.generations:
        return train.train(cfg.replace(resume=True), False), True
    wipe(run)
    return train.train(cfg, False), True


def evolve_seed(c, seed: int) -> dict:
    """Every arm's evolution and judgement for one seed, in one process (they share compiled code). A judgement
    is made again whenever its evolution ran."""
    out = {}
    for arm, evo, judge in configs(c, seed):
        if arm not in arms_of(c):
            continue
        ev, ran = evolved(evo)
        if ran:
            wipe(Path(judge.run.run_dir))
        out[arm] = {"evolution": ev, "judged": done(judge) or train.train(judge, False)}
    return out


def main(c) -> Path:
    from tqdm import tqdm

    if c.base.evolution.generations < 2:
        raise ValueError("evolution needs --generations of at least 2 and a --population")
    arms = arms_of(c)
    for seed in range(c.seeds):  # every config is checked before the first compile
        for _, evo, _ in configs(c, seed):
            train.validate(evo)
    results: dict[str, list[dict]] = {arm: [] for arm in arms}
    for seed in tqdm(range(c.seeds), unit="seed", desc=f"evolution: {len(arms)} arms per seed"):
        got = fresh_process(evolve_seed, c, seed) if c.fresh else evolve_seed(c, seed)
        for arm, r in got.items():
            results[arm].append(r)
    d = Path(c.run_dir)
    d.mkdir(parents=True, exist_ok=True)
    (d / "evolution.md").write_text(table(c, results) + chosen(c) + answers(c))
    plot(results, d / "evolution.png")
    plot_instincts(c, d / "instincts.png")
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


def seed_means(rs: list[dict], key: str) -> list[float]:
    """One judged figure per independent evolution (the mean over its judged organisms)."""
    return [float(np.mean([x for x in judged_figures(r)[key] if x is not None])) for r in rs]


def table(c, results: dict[str, list[dict]]) -> str:
    import jax

    import instincts

    base = base_config(c)
    b, e, kind = base.life, base.evolution, base.evolution.fitness
    G, N = e.generations, base.run.population
    lines = [f"| arm | {kind}: last generation, best / mean | {kind}: spread / one life's noise | "
             "judged on fresh seeds: Crafter score % | vs its control (s.e.) | mean episode length | "
             "prequential surprise (nats) | inverse accuracy | instincts at the end (mean: "
             + ", ".join(instincts.NAMES) + ") | pool at the end: lineages / spread |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for arm, rs in results.items():
        evo = [r["evolution"]["evolution"] for r in rs]
        fmt = lambda v, f="{:.2f}": "{} ± {}".format(*(f.format(x) for x in mean_se(v)))  # noqa: E731
        crafter = seed_means(rs, "crafter")
        gap, ctrl = "–", CONTROL_OF.get(arm)
        if ctrl in results and len(crafter) > 1:
            (m, s), (mc, sc) = mean_se(crafter), mean_se(seed_means(results[ctrl], "crafter"))
            gap = f"{(m - mc) / np.hypot(s, sc):+.1f}" if np.hypot(s, sc) > 0 else "–"
        snr = [x for e_ in evo for x in e_.get("signal_to_noise", []) if x is not None]
        noise = [x for e_ in evo for x in e_.get("noise", []) if x is not None]
        spread = [x for e_ in evo for x in e_.get("fitness_spread", []) if x is not None]
        inst = [e_["instincts"][-1] for e_ in evo if e_.get("instincts")]
        chosen = ", ".join(f"{np.mean([i[n] for i in inst]):.3g}" for n in instincts.NAMES) if inst else "flags"
        lines.append(
            f"| {arm} | {pm([e['best'][-1] for e in evo], '{:.3g}')} / {pm([e['mean'][-1] for e in evo], '{:.3g}')} "
            f"| {np.mean(spread) if spread else float('nan'):.3g} / {np.mean(noise) if noise else float('nan'):.3g} "
            f"(s/n {np.mean(snr) if snr else float('nan'):.2f}) | {fmt(crafter)} | {gap} "
            f"| {fmt(seed_means(rs, 'length'), '{:.0f}')} | {fmt(seed_means(rs, 'surprise'), '{:.3f}')} "
            f"| {fmt(seed_means(rs, 'accuracy'), '{:.3f}')} | {chosen} "
            f"| {pm([e['lineages'][-1] for e in evo], '{:.1f}')} / {pm([e['spread'][-1] for e in evo], '{:.3f}')} |")
    return "\n".join([
        f"# Evolution compared: {c.seeds} independent evolution(s) per arm x {G} generations x {N} organisms, "
        f"lives of {c.steps} steps",
        "",
        f"{b.body.world}; body d={b.body.d_model}, {b.body.layers} genes in {b.body.slots} slots, window "
        f"{b.mind.window}; fitness {kind}; pool {e.pool_size(b.body.layers)}, turnover {e.turnover}, mutation "
        f"{e.mutation}; "
        f"{platform.machine()} {jax.devices()[0].platform}, jax {jax.__version__}; {time.strftime('%Y-%m-%d')}.",
        "Best / mean: the selected lives themselves (mean +- std over the evolutions). Spread / noise: the fitness's "
        "standard deviation between the organisms of a generation beside one life's sampling error (evolve.noise), "
        "means over generations and evolutions; s/n their ratio (below ~1 selection mostly sees luck). Judged: "
        f"each arm's final pool and instincts give one new population of {N} (--init-from), which lives one life "
        f"of {c.steps} steps on seeds and worlds no evolution saw; each judged figure is the mean over the "
        "evolutions of their judged populations' means, +- its standard error across the evolutions; vs its control: "
        "the Crafter score's difference in standard errors of the difference, against the no-selection control of "
        "the same inheritance (the lamarckian control's against the darwinian one: what inherited learning alone "
        "does). Surprise: the world model's "
        "prequential -log p per scored step (lower is better).",
        "", *lines, ""])


def instinct_history(c, arm: str) -> list[dict[str, np.ndarray]]:
    """Per independent evolution of ``arm``: {instinct: [generations, organisms]} as lived (generations.jsonl);
    empty for an arm whose instincts are its flags."""
    from report import load_generations

    out = []
    for seed in range(c.seeds):
        gs = [g for g in load_generations(Path(configs(c, seed)[list(ARMS).index(arm)][1].run.run_dir))
              if "instincts" in g]
        if gs:
            out.append({n: np.array([g["instincts"][n] for g in gs], np.float64) for n in gs[0]["instincts"]})
    return out


def chosen(c) -> str:
    """What evolution chose: each instinct's mean in the last generation of each evolution, as mean +- std
    across the independent evolutions, beside generation 0's (drawn from the prior) and the prior's range."""
    import instincts

    arms = [a for a in arms_of(c) if instinct_history(c, a)]
    if not arms:
        return ""
    lines = ["", "What evolution chose: each instinct's mean over the last generation's organisms, mean +- std across "
                 "the independent evolutions (generation 0's, drawn from the prior, in brackets).", "",
             "| arm | " + " | ".join(f"{r.name} ({r.low:g}..{r.high:g})" for r in instincts.TABLE) + " |",
             "|---|" + "---|" * len(instincts.TABLE)]
    for arm in arms:
        hs = instinct_history(c, arm)
        cells = []
        for r in instincts.TABLE:
            last, first = ([float(h[r.name][g].mean()) for h in hs] for g in (-1, 0))
            sd = f" ± {np.std(last, ddof=1):.3g}" if len(last) > 1 else ""
            cells.append(f"{np.mean(last):.3g}{sd} ({np.mean(first):.3g})")
        lines.append(f"| {arm} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot_instincts(c, out: Path) -> Path | None:
    """Each instinct's distribution generation by generation, per arm: the mean over the organisms of each
    evolution (thin lines), their mean over the evolutions (thick), and the 10th-90th percentile of every
    organism of the arm (band); the prior's range in gray. The control redraws from the prior every generation."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    import instincts
    import plots

    hist = {a: h for a in arms_of(c) if (h := instinct_history(c, a))}
    if not hist:
        return None
    fig, axes = plt.subplots(1, len(instincts.TABLE), figsize=(3.2 * len(instincts.TABLE), 3.6))
    for ax, r in zip(axes, instincts.TABLE):
        ax.axhspan(r.low, r.high, color="gray", alpha=0.1)
        for arm, hs in hist.items():
            k = list(ARMS).index(arm)  # the colours of evolution.png
            G = min(len(h[r.name]) for h in hs)
            v = np.stack([h[r.name][:G] for h in hs])  # [E, G, N]
            x = np.arange(G)
            for e in v:
                ax.plot(x, e.mean(1), color=f"C{k}", lw=0.6, alpha=0.6)
            ax.plot(x, v.mean((0, 2)), color=f"C{k}", lw=2, label=arm)
            lo, hi = np.percentile(v.transpose(1, 0, 2).reshape(G, -1), [10, 90], axis=1)
            ax.fill_between(x, lo, hi, color=f"C{k}", alpha=0.1, lw=0)
        if r.space == "log":
            ax.set_yscale("log")
        ax.set_title(r.name, fontsize=9)
        ax.set_xlabel("generation")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=6)
    return plots.saved(fig, out, "instincts per generation: each evolution's mean (thin), the arm's (thick), "
                                 "10-90th percentile of its organisms (band), the prior (gray)")


def answers(c) -> str:
    """The design's open questions, answered from each arm's final pool (pool.json and its checkpoint):
    do genes settle at one depth, do the two halves of a split drift apart, and does splitting pay?"""
    import jax

    import evolve

    lines = ["", "| arm | genes judged | share of a gene's carriers at its usual depth (1/3: none) "
                 "| credit: best depth minus worst | split pairs alive at the end: distance / size "
                 "| credit of split children vs first-generation genes |", "|---|---|---|---|---|---|"]
    for arm in arms_of(c):
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
    """Fitness per generation with one life's sampling error as a band; the pool's spread; the judged Crafter
    score and surprise (dots: independent evolutions, bar: their mean, line: +- standard error); and what
    evolution chose: each instinct's final mean, placed within its prior's range (0: low end, 1: high end)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    import instincts

    fig, axes = plt.subplots(1, 5, figsize=(22, 4))
    for row, (arm, rs) in enumerate(results.items()):
        k = list(ARMS).index(arm)  # an arm keeps its colour whichever arms run
        evo = [r["evolution"]["evolution"] for r in rs]
        G, x = len(evo[0]["best"]), np.arange(len(evo[0]["best"]))
        mean = np.array([e["mean"] for e in evo]).mean(0)
        axes[0].plot(x, mean, "-", color=f"C{k}", label=arm)
        axes[0].plot(x, np.array([e["best"] for e in evo]).mean(0), ":", color=f"C{k}")
        noise = np.array([[n if n is not None else np.nan for n in e.get("noise", [None] * G)] for e in evo])
        axes[0].fill_between(x, mean - np.nanmean(noise, 0), mean + np.nanmean(noise, 0), color=f"C{k}", alpha=0.12,
                             lw=0)
        axes[1].plot(x, np.array([e["spread"] for e in evo]).mean(0), color=f"C{k}")
        for ax, key in ((axes[2], "crafter"), (axes[3], "surprise")):
            v = seed_means(rs, key)
            m, se = mean_se(v)
            ax.scatter(v, [row] * len(v), color=f"C{k}", s=14)
            ax.barh(row, m, color=f"C{k}", alpha=0.3, xerr=None if np.isnan(se) else se)
        inst = [e["instincts"][-1] for e in evo if e.get("instincts")]
        for j, r in enumerate(instincts.TABLE):
            if inst:
                lo, hi, v = (instincts.to_space(r, z) for z in (r.low, r.high, np.mean([i[r.name] for i in inst])))
                axes[4].scatter((v - lo) / (hi - lo), j + 0.1 * (row - (len(results) - 1) / 2), color=f"C{k}", s=18)
    kind = results[next(iter(results))][0]["evolution"]["evolution"]["fitness"]
    axes[0].set_title(f"fitness ({kind}): mean, band one life's noise; best dotted", fontsize=9)
    axes[1].set_title("pool diversity (spread) per generation", fontsize=9)
    axes[2].set_title("judged on fresh seeds: Crafter score % (± s.e. over evolutions)", fontsize=9)
    axes[3].set_title("judged: prequential surprise (lower is better)", fontsize=9)
    axes[4].set_title("instincts at the end: place in the prior's range", fontsize=9)
    axes[4].set_yticks(range(len(instincts.TABLE)), instincts.NAMES, fontsize=8)
    axes[4].set_xlim(-0.05, 1.05)
    for ax in axes[2:4]:
        ax.set_yticks(range(len(results)), list(results), fontsize=8)
    axes[0].legend(fontsize=6)
    for ax in axes[:2]:
        ax.set_xlabel("generation")
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=80)
    plt.close(fig)
