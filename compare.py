"""Comparisons side by side, at one budget: ``python compare.py [objectives|evolution|development|curiosity|
memory] --steps N --seeds K``.

The command line: which study (``STUDIES``, a table); the runner every study shares is ``study.py``.

``objectives`` (the default) gives every objective its own life (its surprise is the curiosity), plus a few
mixes, curiosity variants and the random policy. The K seeds of a row live as one population (``train.py
--population K``, organism i = seed i) in one process, a fresh process per row; a row whose summary is already
there is reused, and a row stopped mid-life goes on from its last checkpoint, so an interrupted comparison
picks up where it stopped. Writes ``D/compare.md`` (one markdown table: prequential scores beside their
baselines, Crafter score, achievements unlocked, episode length, steps/s, each as mean +- std over the seeds)
and ``D/compare.png``.

``development`` (``compare_development.py``) races bodies born with 1 gene that grow (on a plateau of
learning, or on a schedule) against bodies fixed at 1 gene, at 2 and at the final size, each row a population
of seeds as above; it adds a table of growth (genes, insertions, grown and born gates, compute, overfitting,
steps to reach a given surprise) and a plot of overfitting over each life.

``memory`` (``compare_memory.py``) runs the default objective with the recall probe (the view
``--recall-delay`` steps ago, or a range of delays with ``--recall-min``) with memory off and on (and with
the gate's gradient over the whole life, --rtrl), and thinking 0, 2 and 4 tokens, pause and recurrent,
beside the random policy: the same table, and the recall curve by delay with each row's gain at delays of 8
and more, paired by seed with the first row.

``evolution`` (``compare_evolution.py``) races darwinian selection of genes, darwinian and lamarckian
selection of genes and instincts, and the no-selection controls (darwinian, lamarckian), and judges each
arm's final pool and instincts on fresh seeds; ``curiosity`` (``compare_curiosity.py``) screens every
intrinsic reward against the random policy, then lives the best long.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import tyro

import compare_curiosity
import compare_development
import compare_evolution
import compare_memory
import objectives as O
import study
import train
from study import Compare, Row


def objective_rows(c: Compare) -> list[Row]:
    """Every objective on its own (its surprise is the curiosity), the extras, and the random policy."""
    out = []
    for name in c.objectives:  # a layout that reaches further back than the window allows gets the window it needs
        need = O.make_plan(name, O.LAYOUTS[name], 1).reach + 1
        wide = need > c.base.mind.window
        out.append(Row(f"{name} (window {need})" if wide else name, (name,), curiosity="surprise",
                       body=(("window", need),) if wide else ()))
    extras = c.extras
    if extras:
        out += [Row("forward+inverse (mix)", **train.MIX, curiosity="surprise"),
                Row("inverse, learning progress", ("inverse_dynamics",), curiosity="progress"),
                Row("ICM (latent inverse+forward)", ("latent_inverse", "latent_forward"), curiosity="icm")]
    out.append(Row("random policy (inverse_dynamics)", ("inverse_dynamics",), policy="random"))
    return out


ROWS = {"objectives": objective_rows, "development": compare_development.rows, "memory": compare_memory.rows}


def rows(c: Compare) -> list[Row]:
    """The rows of a study that has one common table (objectives, development, memory)."""
    return ROWS[c.what](c)


def objectives(c: Compare) -> Path:
    return study.write(c, study.run_all(c, objective_rows(c)))


def curiosity(c: Compare) -> Path:
    return compare_curiosity.main(dataclasses.replace(c, arms=c.arms or compare_curiosity.SCREEN))


STUDIES = {"objectives": objectives, "evolution": compare_evolution.main, "development": compare_development.main,
           "curiosity": curiosity, "memory": compare_memory.main}


def main(c: Compare) -> Path:
    if c.steps <= 0 or c.seeds <= 0:
        raise ValueError("--steps and --seeds must be positive")
    return STUDIES[c.what](c)


if __name__ == "__main__":
    args = tyro.cli(Compare)
    try:
        main(args)
    except (ValueError, FileNotFoundError, FloatingPointError) as e:
        sys.exit(f"error: {e}")
