"""What a run leaves for people to look at: learning curves, the gates of a growing body, an evolution's
pool, and a GIF of the organism's life (the numbers are in ``report.py``).

For a population, each curve is the mean over its organisms with a band of +- one standard deviation.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import jax
import numpy as np

import targets
import world
from report import crafter_by_age, load_config, load_generations, load_metrics, organisms


def draw(cfg, run: Path, lives) -> None:
    """Every picture of a finished run: curves.png; an evolution's evolution.png (and instincts.png); a growing
    body's gates.png; the life GIF of ``--gif-organism`` (its last state in ``lives``)."""
    curves(run)
    if cfg.evolution.evolving:
        evolution(run)
        if cfg.evolution.instincts:
            instincts(run)
    if cfg.growth.grow != "never":
        gates(run)
    if cfg.run.gif_steps:
        i = cfg.run.gif_organism
        pick = lambda tree: jax.tree.map(lambda x: x[i], tree)  # noqa: E731
        life_gif(cfg.life, cfg.run.gif_steps, pick(lives.orgs), pick(lives.env_states), lives.keys[i],
                 run / "life.gif")


def score_panels(line: dict) -> list:
    """The scores (``targets.Score``) a line of metrics.jsonl holds: one panel of curves.png each."""
    return [sc for sc in targets.all_scores() if any(k.endswith("/" + sc.name) for k in line)]


def curves(run: Path) -> Path:
    """``curves.png``: each objective's prequential scores beside their baselines, losses, the learner's
    reward, lives."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ms = load_metrics(run)
    cfg = load_config(run)
    step = np.array([m["step"] for m in ms])
    population = len(organisms(ms[0]))

    def series(key, lines=ms):
        return np.array([np.nan if m.get(key) is None else m[key] for m in lines], float)

    def line(ax, key, *args, **kw):
        """The population mean, with a band of +- one std over its organisms."""
        ax.plot(step, series(key), *args, **kw)
        if population > 1:
            each = np.array([series(key, [organisms(m)[i] for m in ms]) for i in range(population)])
            with np.errstate(all="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # chunks where no organism ended an episode
                mu, sd = np.nanmean(each, 0), np.nanstd(each, 0)
            ax.fill_between(step, mu - sd, mu + sd, color=kw.get("color"), alpha=0.2, lw=0)

    panels = score_panels(ms[0])
    n = len(panels) + 5
    cols = 4
    fig, axes = plt.subplots((n + cols - 1) // cols, cols, figsize=(4.2 * cols, 3.4 * ((n + cols - 1) // cols)),
                             squeeze=False)
    axes = axes.ravel()
    for ax, sc in zip(axes, panels):
        names = cfg["objective"] + [k.split("/")[0] for k in ms[0] if k.endswith("/surprise")]
        for i, name in enumerate(dict.fromkeys(names)):
            if f"{name}/{sc.name}" in ms[0]:
                line(ax, f"{name}/{sc.name}", color=f"C{i}", label=name)
                ax.plot(step, series(f"{name}/{sc.name}/{sc.baseline}"), color=f"C{i}", ls="--", alpha=0.7)
        if sc.chance:
            ax.axhline(sc.chance(world.env_spec(cfg["env"])), color="gray", ls=":", label="chance")
        if not sc.higher_is_better:
            ax.set_yscale("log")
        ax.set_title(sc.title, fontsize=9)
    ax = axes[len(panels)]
    for k in ms[0]:
        if k.startswith("loss/"):
            line(ax, k, label=k[5:], color=f"C{len(ax.lines)}")
    ax.set_title("losses", fontsize=9)
    ax.set_yscale("symlog", linthresh=0.1)
    rest = [("rint", f"the learner's reward ({cfg.get('curiosity', 'surprise')}, normalised)", "-"),
            ("episode_length", "episode length (lives ended in each chunk)", ".-"),
            ("unlocked", "achievements unlocked so far", "-")]
    for ax, (key, title, style) in zip(axes[len(panels) + 1:], rest):
        line(ax, key, style, color="C0")
        ax.set_title(title, fontsize=9)
    ax = axes[len(panels) + 4]  # skill by age: the Crafter score of the episodes that ended in each span
    span = skill_span(int(step[-1]), int(step[0]))
    ends, by_age = crafter_by_age(ms, span)
    if len(ends):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            ax.plot(ends, np.nanmean(by_age, 0), "o-", color="C0")
            if population > 1:
                mu, sd = np.nanmean(by_age, 0), np.nanstd(by_age, 0)
                ax.fill_between(ends, mu - sd, mu + sd, color="C0", alpha=0.2, lw=0)
    ax.set_title(f"Crafter score % of the episodes ended in each {span:,} steps", fontsize=9)
    for i, a in enumerate(axes):
        if i >= n:
            a.axis("off")
            continue
        if a.get_legend_handles_labels()[0]:
            a.legend(fontsize=7)
        a.set_xlabel("step")
        a.grid(alpha=0.3)
    pop = f", population of {population} (mean, band: +- 1 std)" if population > 1 else ""
    return saved(fig, run / "curves.png", f"{run.name}: {'+'.join(cfg['objective'])}, policy {cfg['policy']}{pop}  "
                 "(prequential: scored before learning from the step)")


def skill_span(steps: int, chunk: int) -> int:
    """The span of life that skill by age is scored over: 100,000 steps in a long life, else a fifth of it (whole
    chunks)."""
    return 100_000 if steps >= 300_000 else max(chunk, (steps // 5) // chunk * chunk)


def life_gif(cfg, steps: int, org, env_state, key, path: Path, pixel_size: int = 16, zoom: int = 3) -> Path:
    """Let the organism live on for ``steps`` steps (``cfg``: its ``life.Life``; the same step as its life: it
    goes on learning) and render it with Craftax, ``zoom`` times larger, with the step, the action and its
    curiosity signal under each frame."""
    import imageio.v2 as imageio

    import life

    spec = cfg.spec

    @jax.jit
    def rollout(org, env_state, key):
        def body(carry, k):
            org, env_state = carry
            a = life.act(cfg, org, env_state, k)
            obs, env_state = life.reborn_alone(cfg, a)
            org, rec = life.learn(cfg, org, a, obs, env_state)
            return (org, env_state), (a.last_state, a.action, rec.signal)

        return jax.lax.scan(body, (org, env_state), jax.random.split(key, steps))[1]

    states, actions, signal = rollout(org, env_state, key)
    frames = world.render_frames(cfg.body.world, states, pixel_size)
    frames = frames.repeat(zoom, axis=1).repeat(zoom, axis=2)
    age = int(org.now.age)
    captions = [f"step {age + t + 1}   {spec.action_names[int(a)] if spec.action_names else int(a)}\n"
                f"{cfg.learning.curiosity}: {float(s):.2f}" for t, (a, s) in enumerate(zip(actions, signal))]
    imageio.mimsave(path, [caption(f, c) for f, c in zip(frames, captions)], duration=0.1, loop=0)
    return path


def caption(frame: np.ndarray, text: str) -> np.ndarray:
    """The frame with a strip of text under it."""
    from PIL import Image, ImageDraw, ImageFont

    h, w, _ = frame.shape
    img = Image.new("RGB", (w, h + 52), (20, 20, 20))
    img.paste(Image.fromarray(frame), (0, 0))
    try:
        font = ImageFont.load_default(size=18)
    except TypeError:  # Pillow < 10.1 has one size
        font = ImageFont.load_default()
    ImageDraw.Draw(img).multiline_text((8, h + 4), text, fill=(235, 235, 235), font=font, spacing=4)
    return np.asarray(img)


def saved(fig, out: Path, title: str) -> Path:
    """Title, lay out, write and close a figure."""
    import matplotlib.pyplot as plt

    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=80)
    plt.close(fig)
    return out


def gates(run: Path) -> Path:
    """``gates.png``: development over the life: every slot's gate (organism 0 bold, the others faint),
    the growth events, and the number of active genes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ms = load_metrics(run)
    step = np.array([m["step"] for m in ms])
    each = [organisms(m) for m in ms]
    N, D = len(each[0]), len(each[0][0]["gates"])
    gates = np.array([[o["gates"] for o in e] for e in each])  # [chunks, N, D]
    active = np.array([[o["active_genes"] for o in e] for e in each])
    fig, axes = plt.subplots(1, 2, figsize=(13, 4))
    for s in range(D):
        axes[0].plot(step, gates[:, 0, s], color=f"C{s}", lw=2, label=f"slot {s}")
        for i in range(1, N):
            axes[0].plot(step, gates[:, i, s], color=f"C{s}", lw=0.6, alpha=0.4)
    for m in ms:
        for e in m.get("growth", []):
            axes[0].axvline(e["step"], color="gray", lw=0.5, ls=":" if e["organism"] else "--")
    axes[0].set_title("gates g of each slot (bold: organism 0; dashed: its growth events)", fontsize=9)
    for i in range(N):
        axes[1].plot(step, active[:, i], lw=2 if i == 0 else 0.8, alpha=1 if i == 0 else 0.5)
    axes[1].set_title("active genes", fontsize=9)
    axes[0].legend(fontsize=7)
    for ax in axes:
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    return saved(fig, run / "gates.png", f"{run.name}: development")


# ----------------------------------------------------------------------------- evolution


def evolution(run: Path) -> Path:
    """``evolution.png``: fitness per generation; the gene family tree (who split from whom, alive or
    discarded, coloured by credit); the depth profile (where each gene was carried, and its credit there);
    gene use over generations."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    gs = load_generations(run)
    pool = json.loads((run / "pool.json").read_text())
    genes = {g["id"]: g for g in pool["genes"]}
    G = len(gs)
    fig, axes = plt.subplots(2, 2, figsize=(13, 9))

    ax = axes[0, 0]
    x = np.arange(G)
    ax.plot(x, [g["best"] for g in gs], "o-", label="best")
    ax.plot(x, [g["mean"] for g in gs], "s-", label="mean")
    if all(g.get("noise") is not None for g in gs):  # one organism's sampling error around the mean
        mean, err = np.array([g["mean"] for g in gs]), np.array([g["noise"] for g in gs])
        ax.fill_between(x, mean - err, mean + err, color="C1", alpha=0.15, label="mean ± one life's sampling error")
    for i in range(len(gs[0]["fitness"])):
        ax.scatter(x, [g["fitness"][i] for g in gs], color="gray", s=6, alpha=0.5)
    ax.set_title(f"fitness ({gs[0]['fitness_kind']}) per generation; dots: organisms", fontsize=9)
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_xlabel("generation")
    ax.legend(fontsize=7)

    ax = axes[0, 1]  # family tree: depth-first, children under their parent
    children: dict = {}
    for g in genes.values():
        children.setdefault(g["parent"], []).append(g["id"])
    order: list[int] = []

    def visit(i):
        order.append(i)
        for c in sorted(children.get(i, [])):
            visit(c)

    for r in sorted(children.get(None, [])):
        visit(r)
    y = {i: k for k, i in enumerate(order)}
    credits = [genes[i]["credit"] for i in order]
    cmap, norm = plt.get_cmap("coolwarm_r"), plt.Normalize(min(credits + [-0.1]), max(credits + [0.1]))
    for i in order:
        g = genes[i]
        end = g["discarded"] + 1 if g["discarded"] is not None else G  # it lived through its last generation
        ax.plot([g["born"], end], [y[i], y[i]], color=cmap(norm(g["credit"])), lw=2.5 if g["in_pool"] else 1.2,
                ls="-" if g["in_pool"] or g["fate"] == "split" else ":")
        if g["parent"] is not None:
            ax.plot([g["born"], g["born"]], [y[g["parent"]], y[i]], color="gray", lw=0.6)
    ax.set_title("gene family tree (thick: in the pool now; dotted: discarded; colour: credit)", fontsize=9)
    ax.set_xlabel("generation")
    ax.set_ylabel("gene (children below their parent)")
    ax.figure.colorbar(plt.cm.ScalarMappable(norm=norm, cmap=cmap), ax=ax, label="credit")

    ax = axes[1, 0]  # depth profile
    judged = [g for g in genes.values() if g["carried"] >= 2]
    judged.sort(key=lambda g: (int(np.argmax(g["carried_by_bin"])), -g["credit"]))
    if judged:
        share = np.array([np.array(g["carried_by_bin"]) / g["carried"] for g in judged])
        ax.imshow(share.T, aspect="auto", cmap="Greens", vmin=0, vmax=1)
        for j, g in enumerate(judged if len(judged) <= 24 else []):  # numbers only while they fit
            for b, name in enumerate(("early", "mid", "late")):
                f = g["credit_by_depth"][name]
                if g["carried_by_bin"][b]:
                    ax.text(j, b, f"{f:+.2f}", ha="center", va="center", fontsize=5)
        ax.set_yticks(range(3), ["early", "mid", "late"])
        ax.set_xticks(range(len(judged)), [str(g["id"]) for g in judged], fontsize=5, rotation=90)
    ax.set_title("depth profile: share of each gene's carriers per depth (numbers: credit there)", fontsize=9)

    ax = axes[1, 1]  # gene use over generations
    ids = sorted({i for g in gs for row in g["genomes"] for i in row})
    use = np.zeros((len(ids), G))
    for t, g in enumerate(gs):
        for row in g["genomes"]:
            for i in row:
                use[ids.index(i), t] += 1
    ax.imshow(use, aspect="auto", cmap="Blues", interpolation="nearest")
    ax.set_yticks(range(len(ids)), [str(i) for i in ids], fontsize=5)
    ax.set_xlabel("generation")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_title("gene use: carriers per generation", fontsize=9)
    return saved(fig, run / "evolution.png", f"{run.name}: evolution of a pool of {len(pool['pool'])} genes")




def instincts(run: Path) -> Path:
    """``instincts.png``: what evolution chose: each instinct of every organism, generation by generation
    (dots), their mean (line) and the prior's range (band)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    import instincts as I

    gs = [g for g in load_generations(run) if "instincts" in g]
    fig, axes = plt.subplots(1, len(I.TABLE), figsize=(3.2 * len(I.TABLE), 3.4))
    for ax, r in zip(axes, I.TABLE):
        vals = np.array([g["instincts"][r.name] for g in gs])  # [G, N]
        x = np.arange(len(gs))
        ax.axhspan(r.low, r.high, color="gray", alpha=0.12, label="prior")
        for i in range(vals.shape[1]):
            ax.scatter(x, vals[:, i], color="C0", s=8, alpha=0.5)
        ax.plot(x, vals.mean(1), "C3-", label="mean")
        if r.space == "log":
            ax.set_yscale("log")
        ax.set_title(r.name, fontsize=9)
        ax.set_xlabel("generation")
        ax.xaxis.get_major_locator().set_params(integer=True)
    axes[0].legend(fontsize=7)
    return saved(fig, run / "instincts.png", f"{run.name}: instincts per generation (dots: organisms)")
