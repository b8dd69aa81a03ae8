"""What a run reports, in numbers: one line of metrics per chunk, the summary at its end, the progress bar,
the text summary; and ``Log``, which writes them as the run goes (the pictures are in ``plots.py``, which
reads these files: nothing here imports it).

Every file has one format whatever the population's size (a population of one included): each figure is
the mean over the organisms, with their spread (``std``, in the summary) and each organism's own figures
beside it (``organisms``). Each figure has one name in every file (the scores are named in ``targets.py``).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import jax
import numpy as np

import instincts
import objectives as O
import targets
import world


def load_metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]


def load_generations(run: Path) -> list[dict]:
    return [json.loads(x) for x in (run / "generations.jsonl").read_text().splitlines() if x.strip()]


def organisms(m: dict) -> list[dict]:
    """Each organism's figures of a metrics line (runs made before every line had them: the line itself)."""
    return m.get("organisms", [m])


def load_config(run: Path) -> dict:
    """A run's config.json as {field: value} (grouped, or flat as older runs wrote it)."""
    saved = json.loads((run / "config.json").read_text())
    return {k: v for g in saved.values() for k, v in g.items()} if all(isinstance(v, dict) for v in saved.values()) \
        else saved


def chunk_metrics(rec) -> list[dict]:
    """Each organism's figures over one chunk (``rec``: a ``life.Record`` of [N, steps] arrays): the means of
    its per-step records; its episodes ended, their mean length, the extrinsic reward it got, the kinds of
    achievement unlocked so far."""
    N, n = np.shape(rec.done)
    out = []
    for i in range(N):
        r = jax.tree.map(lambda x: np.asarray(x[i], np.float64), rec)
        done = r.done > 0
        m = {f"loss/{k}": float(v.mean()) for k, v in r.losses.items()}
        for k, v in {**r.scores, "signal": r.signal, "rint": r.rint, "entropy": r.entropy, "adv": r.adv,
                     "value_err": r.value_err, "ent_coef": r.ent_coef}.items():
            ok = np.isfinite(v)  # a score is NaN on steps whose newest instance did not count
            m[k] = float(v[ok].mean()) if ok.any() else None
        m.update(episodes=int(done.sum()), episode_length=float(r.episode_length[done].mean()) if done.any() else None,
                 extrinsic_reward=float(r.reward.sum()), unlocked=int(r.unlocked[-1]),
                 ended_achievements=r.achieved.sum(0).tolist())
        out.append(m)
    return out


def ended_score(chunks: list[dict]) -> float:
    """The Crafter score of the episodes that ended in some chunks of one organism (its per-chunk metrics);
    NaN if none ended."""
    n = sum(o["episodes"] for o in chunks)
    return world.crafter_score(np.sum([o["ended_achievements"] for o in chunks], 0) / n) if n else float("nan")


def crafter_by_age(lines: list[dict], span: int) -> tuple[np.ndarray, np.ndarray]:
    """Skill by age: the Crafter score of the episodes that ended in each ``span`` steps of a life, from the
    lines of metrics.jsonl: (the age at each span's end, [organisms, spans] scores; NaN where none ended).
    Beside the whole life's score (every episode since birth), it says whether skill still grows."""
    lines = [m for m in lines if "ended_achievements" in organisms(m)[0]]  # (runs older than the figure: none)
    if not lines:
        return np.zeros(0), np.zeros((0, 0))
    steps = np.array([m["step"] for m in lines])
    bins = np.unique((steps - 1) // span)
    ends = np.minimum((bins + 1) * span, steps.max())
    scores = np.array([[ended_score([organisms(m)[i] for m, s in zip(lines, steps) if (s - 1) // span == b])
                        for b in bins] for i in range(len(organisms(lines[0])))])
    return ends, scores


def crafter_last(lines: list[dict], span: int) -> list[float]:
    """Each organism's Crafter score over the last ``span`` steps of its life (the episodes that ended there)."""
    lines = [m for m in lines if "ended_achievements" in organisms(m)[0]]
    if not lines:
        return []
    last = lines[-1]["step"]
    return [ended_score([organisms(m)[i] for m in lines if m["step"] > last - span])
            for i in range(len(organisms(lines[0])))]


def population_metrics(per: list[dict], n: int, seconds: float) -> dict:
    """One line of metrics.jsonl: the mean of each figure over the organisms (those that have it), and
    each organism's own figures under ``organisms``."""
    out = {"steps_per_second": n / max(seconds, 1e-9), "organism_steps_per_second": n * len(per) / max(seconds, 1e-9)}
    for k in per[0]:
        vals = [m[k] for m in per if m.get(k) is not None]
        mean = np.mean(vals, axis=0) if vals else None
        out[k] = None if mean is None else mean.tolist() if np.ndim(mean) else float(mean)
    return {**out, "organisms": per}


def headline(cfg) -> tuple[str, str]:
    """The metrics keys the progress bar shows: the first objective's first score and its baseline."""
    name = cfg.learning.objectives[0]
    first = targets.scores({s.kind for s in O.parse(O.LAYOUTS[name]) if s.target}, cfg.body.obs == "pixels")[0]
    return f"{name}/{first.name}", f"{name}/{first.name}/{first.baseline}"


def progress_figures(cfg, m: dict) -> dict:
    """What the progress bar shows after each chunk (population means): speed, the first objective's loss
    and headline score, the learner's reward, the lives that ended in the chunk (``died``) and the kinds of
    achievement unlocked so far."""
    figs = [("sps", f"{m['organism_steps_per_second']:.0f}"),
            ("loss", f"{m.get('loss/' + cfg.learning.objectives[0]) or 0:.3f}"),
            *[(k.split("/")[-1], f"{m[k]:.3g}") for k in headline(cfg) if m.get(k) is not None],
            ("rint", f"{m['rint'] or 0:.2f}"), ("died", f"{m['episodes']:.3g}"), ("unlocked", f"{m['unlocked']:.3g}")]
    if cfg.growth.grow != "never":
        figs.append(("genes", f"{m['active_genes']:.3g}"))
    return dict(figs)


# ----------------------------------------------------------------------------- the summary


def summarize(cfg, org, step: int, sps: float | None) -> dict:
    """One organism's life in numbers; ``prequential`` scores each objective's predictions beside honest
    baselines (each named in ``targets.py``): every score is of a prediction made before the model learned
    from that data. ``sps``: steps/s after compiling, None if it was not timed."""
    spec = world.env_spec(cfg.body.world)
    t = jax.tree.map(np.asarray, org.tally)
    episodes = int(t.episodes)
    rates = t.achievements / max(episodes, 1)
    prequential = {}
    for name in cfg.learning.objectives:
        n = float(t.scores[f"{name}/n"])
        mean = lambda k: float(t.scores[f"{name}/{k}"]) / n if n else None  # noqa: E731
        figs = {}
        for sc in targets.scores({s.kind for s in O.parse(O.LAYOUTS[name]) if s.target}, spec.image is not None):
            figs[sc.name] = {"model": mean(sc.name), sc.baseline: mean(f"{sc.name}/{sc.baseline}"),
                             **({"chance": sc.chance(spec)} if sc.chance else {}), "baseline_is": sc.baseline_is}
        prequential[name] = {"scored": int(n), "surprise": mean("surprise"), "seen_surprise": mean("seen_surprise"),
                             **figs}
        extras = [e for k in targets.KINDS.values() if k.predicted and k.letter in
                  {s.kind for s in O.parse(O.LAYOUTS[name]) if s.target} for e in k.extras if not e.endswith("_n")]
        curve = {e: {"scored": int(t.scores[f"{name}/{e}_n"]),
                     "model": float(t.scores[f"{name}/{e}"] / t.scores[f"{name}/{e}_n"])}
                 for e in extras if t.scores[f"{name}/{e}_n"] > 0}
        if curve:  # the recall curve: its score per bin of delay, each over the steps whose probe fell in it
            prequential[name]["by_delay"] = curve
    return {
        "steps": step, "steps_per_second": sps, "episodes": episodes,
        "mean_episode_length": float(t.length_sum) / episodes if episodes else None,
        "crafter_score": world.crafter_score(rates) if episodes else None,
        "achievements": dict(zip(spec.achievements, map(float, rates))),
        "actions": dict(zip(spec.action_names, map(float, t.action_counts / max(float(t.steps), 1.0)))),
        "asleep": float(t.asleep) / max(float(t.steps), 1.0),
        "curiosity": cfg.learning.curiosity,
        "instincts": dict(zip(instincts.NAMES, map(float, instincts.rows(org.instincts)))),
        "prequential": prequential,
    }


def population_summary(summaries: list[dict]) -> dict:
    """The summary of a population (of any size, one included): every number is the mean over its
    organisms; ``std`` holds the spread of each, ``organisms`` each single-life summary."""

    def merge(xs, reduce):
        x = next((y for y in xs if y is not None), None)
        if isinstance(x, dict):  # over the organisms that have each key (a bin of the recall curve may be missing)
            dicts = [y for y in xs if isinstance(y, dict)]
            return {k: merge([y.get(k) for y in dicts], reduce) for k in dict.fromkeys(k for y in dicts for k in y)}
        if isinstance(x, (int, float)) or x is None:
            vals = [y for y in xs if y is not None]
            return float(reduce(vals)) if vals else None
        return x

    out = merge(summaries, np.mean)
    out["steps"] = summaries[0]["steps"]
    out["population"] = len(summaries)
    sps = summaries[0]["steps_per_second"]
    out["organism_steps_per_second"] = None if sps is None else sps * len(summaries)
    same = ("steps", "curiosity", "steps_per_second")  # one value for the whole population: no spread
    out["std"] = {k: v for k, v in merge(summaries, np.std).items() if k not in same}
    out["organisms"] = summaries
    return out


def evolution_summary(cfg, run: Path) -> dict:
    """summary.json's ``evolution``: the fitness and the pool, generation by generation."""
    import evolve

    e, gs = cfg.evolution, load_generations(run)
    return {"generations": len(gs), "fitness": e.fitness, "inherit": e.inherit, "selection": e.selection,
            "evolve": e.evolve, "best": [g["best"] for g in gs], "mean": [g["mean"] for g in gs],
            "signal_to_noise": [g.get("signal_to_noise") for g in gs], "noise": [g.get("noise") for g in gs],
            "fitness_spread": [g.get("spread") for g in gs],
            "instincts": [{k: float(np.mean(v)) for k, v in g["instincts"].items()} for g in gs if "instincts" in g],
            **{f"{k}_mean": [g[f"{k}_mean"] for g in gs] for k in evolve.FITNESSES},
            "lineages": [g["pool"]["lineages"] for g in gs], "spread": [g["pool"]["spread"] for g in gs],
            "genes_made": max(max(g["pool"]["ids"]) for g in gs) + 1,
            "compiles_after_first_generation": sum(g["compiles"] for g in gs[1:])}


def describe(run: Path, summary: dict) -> str:
    pop = summary["population"]
    whose = f"  (population of {pop}: every figure is the mean over its organisms)" if pop > 1 else ""
    sps = summary["steps_per_second"]
    speed = "speed not timed: one chunk, compiling included" if sps is None else \
        f"{sps * pop:.0f} organism-steps/s after compiling"
    lines = [f"run: {run}{whose}",
             f"steps {summary['steps']}  ({speed})  "
             f"episodes {summary['episodes']}  mean length {summary['mean_episode_length'] or float('nan'):.0f}  "
             f"Crafter score {summary['crafter_score'] or 0:.2f}%"]
    for name, figs in summary["prequential"].items():
        parts = []
        for label, fig in figs.items():
            if label == "by_delay":  # the recall curve: the score per bin of delay
                parts.append("by delay " + ", ".join(f"{k.replace('delay', '').replace('_', '-')} {v['model']:.3f}"
                                                     for k, v in fig.items()))
            elif isinstance(fig, dict):
                parts.append(f"{label} " + ", ".join(f"{k} {v:.3f}" for k, v in fig.items()
                                                     if isinstance(v, float)))
        lines.append(f"{name} (prequential, {figs['scored']:.0f} scored): " + "; ".join(parts))
    got = {k: v for k, v in summary["achievements"].items() if v > 0}
    lines.append("achievements: " + (", ".join(f"{k} {v:.0%}" for k, v in got.items()) or "none yet"))
    return "\n".join(lines)


# ----------------------------------------------------------------------------- the run's files, as it goes


def kept_lines(path: Path, keep) -> None:
    """Rewrite a .jsonl file with only the lines ``keep`` accepts (a resumed run drops what came after its
    checkpoint)."""
    lines = path.read_text().splitlines() if path.exists() else []
    path.write_text("".join(ln + "\n" for ln in lines if ln.strip() and keep(json.loads(ln))))


def earlier_speed(run: Path) -> float | None:
    """The steps/s of the run's summary so far (None if none): kept when this call timed no chunk after its
    first (which includes compiling), so a short resumption does not erase the figure."""
    try:
        return json.loads((run / "summary.json").read_text())["steps_per_second"]
    except (OSError, ValueError, KeyError):
        return None


def scalars(m: dict, prefix: str = "") -> dict[str, float]:
    """The finite numbers of a metrics line, nested keys joined by "/" (lists of numbers: one per index;
    each organism's under ``organism<i>/``): what TensorBoard plots."""
    out = {}
    for k, v in m.items():
        name = f"{prefix}{k}"
        if isinstance(v, bool) or v is None or k in ("step", "ended_achievements"):  # (the score is drawn instead)
            continue
        if isinstance(v, (int, float)) and np.isfinite(v):
            out[name] = float(v)
        elif isinstance(v, dict):
            out.update(scalars(v, name + "/"))
        elif isinstance(v, list) and k == "organisms":
            for i, o in enumerate(v if len(v) > 1 else []):  # a population of one: its figures are the means
                out.update(scalars(o, f"{prefix}organism{i}/"))
        elif isinstance(v, list) and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v):
            out.update({f"{name}/{i}": float(x) for i, x in enumerate(v) if np.isfinite(x)})
    return out


class Board:
    """TensorBoard event files in the run directory (``tensorboard --logdir runs`` shows every run live): each
    chunk's metrics at its step, each generation's record at its generation. A resumed run appends a new
    event file that starts with a purge at its step (``purge_step``): TensorBoard drops what the stopped run
    wrote after its last checkpoint, as metrics.jsonl does."""

    def __init__(self, run: Path, step: int | None = None):
        from tensorboardX import SummaryWriter

        self.writer = SummaryWriter(logdir=str(run), flush_secs=30, purge_step=step)

    def write(self, m: dict, step: int, prefix: str = "") -> None:
        for k, v in scalars(m, prefix).items():
            self.writer.add_scalar(k, v, step)

    def close(self) -> None:
        self.writer.close()


class Log:
    """What a run writes as it goes: config.json, metrics.jsonl (a line per chunk), generations.jsonl and
    pool.json (a line per generation), TensorBoard's event files (``Board``, the same figures), the progress
    bar; and at its end summary.json, the plots, the GIF."""

    def __init__(self, cfg, run: Path, step: int, progress: bool):
        from tqdm import tqdm

        self.cfg, self.run, self.progress = cfg, run, progress
        (run / "config.json").write_text(json.dumps(dataclasses.asdict(cfg), indent=2) + "\n")
        resume = cfg.run.resume
        kept_lines(run / "metrics.jsonl", lambda m: resume and m["step"] <= step)
        if cfg.evolution.evolving:
            kept_lines(run / "generations.jsonl", lambda m: resume and m["generation"] < step // cfg.run.steps)
        N = cfg.run.population
        self.bar = tqdm(total=cfg.total_steps, initial=step, unit="step", desc=f"{N} lives" if N > 1 else None,
                        disable=not progress, dynamic_ncols=True)  # a step of the bar is a step of every life
        self.timed_steps, self.timed_seconds, self.first = 0, 0.0, True
        self.board = Board(run, step + 1 if resume else None) if cfg.run.tensorboard else None

    def chunk(self, per: list[dict], step: int, n: int, seconds: float, generation: int, events: list,
              gates: np.ndarray, active: np.ndarray) -> None:
        """One chunk of ``n`` steps lived in ``seconds``, up to ``step``: its line of metrics.jsonl, the bar.
        ``gates``, ``active``: each organism's gene slots, [N, slots]."""
        if not self.first:  # the first chunk includes compilation
            self.timed_steps, self.timed_seconds = self.timed_steps + n, self.timed_seconds + seconds
        self.first = False
        for p, g, a in zip(per, np.asarray(gates), np.asarray(active)):
            p["gates"], p["active_genes"] = [round(float(x), 5) for x in g], int(a.sum())
        m = {"step": step, **population_metrics(per, n, seconds)}
        if events:
            m["growth"] = events
        if self.cfg.evolution.evolving:
            m["generation"] = generation
        with open(self.run / "metrics.jsonl", "a") as f:
            f.write(json.dumps(m) + "\n")
        if self.board:  # beside the figures, the Crafter score of the episodes that ended in this chunk
            ended = {"ended_crafter_score": ended_score(per)}  # (NaN, not drawn, where none ended)
            self.board.write({**{k: v for k, v in m.items() if k not in ("growth", "generation")}, **ended,
                              "organisms": [{**o, "ended_crafter_score": ended_score([o])} for o in per]}, step)
        self.bar.update(n)
        self.bar.set_postfix({**({"gen": generation} if self.cfg.evolution.evolving else {}),
                              **progress_figures(self.cfg, m)})

    def generation(self, line: dict, ledger) -> None:
        """The end of a generation: its line of generations.jsonl, and the pool as it is now."""
        import evolve

        with open(self.run / "generations.jsonl", "a") as f:
            f.write(json.dumps(line) + "\n")
        if self.board:
            self.board.write({k: v for k, v in line.items() if k != "generation"}, line["generation"], "generation/")
        (self.run / "pool.json").write_text(json.dumps(evolve.pool_json(ledger), indent=1) + "\n")
        if self.progress:
            snr = line.get("signal_to_noise")
            self.bar.write(f"generation {line['generation']}: {self.cfg.evolution.fitness} best {line['best']:.3g} "
                           f"mean {line['mean']:.3g} (spread/noise {'-' if snr is None else f'{snr:.2f}'}); pool "
                           f"{line['pool']['lineages']} lineages, spread {line['pool']['spread']:.3f}")

    def finish(self, lives) -> dict:
        """The run's end: summary.json (its pictures are ``plots.draw``'s, its text ``tell``); returns it."""
        cfg, run = self.cfg, self.run
        self.bar.close()
        if self.board:
            self.board.close()
        sps = self.timed_steps / self.timed_seconds if self.timed_seconds else \
            earlier_speed(run) if cfg.run.resume else None
        steps = cfg.run.steps if cfg.evolution.evolving else lives.step
        summary = population_summary([summarize(cfg, jax.tree.map(lambda x: x[i], lives.orgs), steps, sps)
                                      for i in range(cfg.run.population)])
        if cfg.evolution.evolving:
            summary["evolution"] = evolution_summary(cfg, run)
        (run / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        return summary

    def tell(self, summary: dict) -> None:
        """The text summary of the run's end (with the progress bar on)."""
        if self.progress:
            print(describe(self.run, summary))
