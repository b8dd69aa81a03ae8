"""Populations: N organisms vmapped in one chunk equal N single lives; rebirth under vmap; sharding over
devices; resume; the command line."""

import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

import life
import population
import train

ROOT = Path(__file__).resolve().parents[1]
TINY = train.Config.of(d_model=32, n_heads=2, layers=1, slots=2, window=4, chunk=200, gif_steps=0)
STEPS = 400


N = 2  # the organisms of the vmapped population below (and of each thread of the population of 4)


@pytest.fixture(scope="session")
def two_lives():
    """A population of 2 living 400 steps in two vmapped chunks of 200, and the same 2 seeds living alone
    (the chunks compiled here serve train.py's population of 4 in 2 threads, compare.py and test_train)."""
    cfg = TINY.replace(population=N)
    keys, k_born = train.first_keys(cfg)
    orgs, states = population.born_population(cfg.life, k_born)
    born_maps = np.asarray(states.map)
    chunks = [jax.vmap(jax.random.split)(keys)[:, i] for i in range(2)]
    recs = []
    for k in chunks:
        orgs, states, rec = jax.device_get(population.live_population(cfg.life, orgs, states, k, STEPS // 2))
        recs.append(rec)
    together = (orgs, states, jax.tree.map(lambda *x: np.concatenate(x, axis=1), *recs))
    alone = []
    for i in range(N):
        org, es = life.born(TINY.life, k_born[i])
        parts = []
        for k in chunks:
            org, es, rec = jax.device_get(life.live(TINY.life, org, es, k[i], STEPS // 2))
            parts.append(rec)
        alone.append((org, es, jax.tree.map(lambda *x: np.concatenate(x), *parts)))
    return together, alone, born_maps


def test_a_population_member_equals_the_same_seed_living_alone(two_lives):
    (orgs, states, rec), alone, _ = two_lives
    assert rec.done.shape == (N, STEPS)
    for i, (org, es, r) in enumerate(alone):
        mine = train.pick(orgs, i)
        # the same lives: same deaths, same worlds, same actions (an organism dying alone on a step is reborn
        # into exactly the world its single life makes)
        np.testing.assert_array_equal(rec.done[i], r.done)
        np.testing.assert_array_equal(states.map[i], es.map)
        np.testing.assert_array_equal(mine.window.action, org.window.action)
        for a, b in [(rec.signal[i], r.signal), (rec.episode_length[i], r.episode_length),
                     *[(rec.scores[k][i], r.scores[k]) for k in r.scores]]:
            np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4, equal_nan=True)
        for a, b in zip(jax.tree.leaves(mine.model), jax.tree.leaves(org.model)):
            # 400 online updates batched differently drift by float rounding only
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-3, atol=1e-4)
    assert rec.done.sum() >= 1, "no organism died: the rebirth was not exercised"


def test_death_under_vmap_keeps_weights_and_age_and_brings_a_new_world(two_lives):
    (orgs, states, rec), _, born_maps = two_lives
    dead = [i for i in range(N) if rec.done[i].any()]
    assert dead
    for i in dead:
        last_death = int(np.flatnonzero(rec.done[i])[-1])
        assert int(orgs.now.age[i]) == STEPS  # age runs on through deaths
        assert int(orgs.life[i]) == STEPS - 1 - last_death  # the episode counter restarted at the death
        assert int(orgs.tally.episodes[i]) == rec.done[i].sum()
        assert float(orgs.tally.shared_rebirths[i]) == 0.0  # never more deaths on one step than fresh worlds
        assert (np.asarray(states.map[i]) != born_maps[i]).any()  # a new world, not the one it was born in
    # the weights are kept: they equal those of the single life, which never resets them (test above)


@pytest.fixture(scope="session")
def population_run(tmp_path_factory):
    """train.py's loop with a population of 4, 400 steps, in this (one-device) process: in as many host
    threads as ``population.threads_for`` gives (2 on a 2-core machine)."""
    d = tmp_path_factory.mktemp("pop")
    cfg = TINY.replace(population=4, steps=STEPS, run_dir=str(d / "whole"))
    return cfg, train.train(cfg, progress=False)


def metrics(run: Path) -> list[dict]:
    drop = ("steps_per_second", "organism_steps_per_second")
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in m.items() if k not in drop} for m in lines]


def checkpoint(cfg, run: Path):
    step, state, _ = train.load_run(cfg, run / "checkpoint.eqx")
    return step, state


def test_population_resume_equals_an_uninterrupted_run(population_run, tmp_path):
    whole, _ = population_run
    part = whole.replace(steps=STEPS // 2, run_dir=str(tmp_path / "part"))
    train.train(part, progress=False)
    train.train(part.replace(steps=STEPS, resume=True), progress=False)
    assert metrics(Path(whole.run.run_dir)) == metrics(tmp_path / "part")
    (_, a), (_, b) = checkpoint(whole, Path(whole.run.run_dir)), checkpoint(whole, tmp_path / "part")
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def run_cli(*args, devices: int = 2, timeout: int = 600):
    env = dict(os.environ, PYTHONUNBUFFERED="1", XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}")
    return subprocess.run([sys.executable, str(ROOT / "train.py"), *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


def test_cli_population_sharded_over_two_devices_equals_the_unsharded_run(population_run, tmp_path):
    """train.py --population 4 on 2 (forced CPU) devices: the same lives as on one device (where, on a
    machine with two or more cores, the population runs as two slices in two host threads), and the run
    directory holds the population's figures and each organism's."""
    whole, summary = population_run
    run = tmp_path / "sharded"
    out = run_cli("--population", "4", "--steps", str(STEPS), "--chunk", "200", "--d-model", "32", "--n-heads", "2",
                  "--layers", "1", "--slots", "2", "--window", "4", "--gif-steps", "4", "--gif-organism", "3",
                  "--run-dir", str(run))
    assert out.returncode == 0, out.stderr[-2000:]
    for name in ("config.json", "metrics.jsonl", "summary.json", "curves.png", "life.gif", "checkpoint.eqx"):
        assert (run / name).stat().st_size > 0, name
    assert "population of 4" in out.stdout
    sharded = json.loads((run / "summary.json").read_text())
    assert sharded["population"] == 4 and len(sharded["organisms"]) == 4
    assert "crafter_score" in sharded["std"] and "prequential" in sharded["std"]
    scores = [s["crafter_score"] for s in sharded["organisms"]]
    if None not in scores:  # every top-level figure is the mean over the organisms
        assert sharded["crafter_score"] == pytest.approx(np.mean(scores))
    assert all(len(m["organisms"]) == 4 for m in metrics(run))
    # the same lives as the unsharded run in this process (one device)
    a, b = metrics(run), metrics(Path(whole.run.run_dir))
    assert [m["episodes"] for m in a] == [m["episodes"] for m in b]
    for x, y in zip(a, b):
        for k in ("signal", "loss/inverse_dynamics", "rint", "entropy"):
            np.testing.assert_allclose(x[k], y[k], rtol=1e-3, atol=1e-5)
    (_, sa), (_, sb) = checkpoint(whole, run), checkpoint(whole, Path(whole.run.run_dir))
    for x, y in zip(jax.tree.leaves(sa), jax.tree.leaves(sb)):
        np.testing.assert_allclose(np.asarray(x, np.float64), np.asarray(y, np.float64), rtol=1e-3, atol=1e-4)
    assert summary["organisms"][0]["episodes"] == sharded["organisms"][0]["episodes"]


@pytest.mark.parametrize("args, message", [  # --population 0 and --threads are checked in-process (test_train)
    (["--population", "3"], "--population 3 cannot be shared evenly over the 2 devices"),
    (["--population", "2", "--gif-organism", "2"], "--gif-organism must name one of the 2 organisms"),
])
def test_cli_bad_population_fails_in_one_line(args, message):
    out = run_cli(*args, timeout=120)
    assert out.returncode != 0
    lines = [ln for ln in out.stderr.splitlines() if ln.strip() and "Warning" not in ln and "warn(" not in ln]
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], out.stderr


def test_cli_run_dir_that_cannot_be_written_fails_in_one_line_before_compiling(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    out = run_cli("--run-dir", str(blocker / "run"), devices=1, timeout=120)
    assert out.returncode != 0
    lines = [ln for ln in out.stderr.splitlines() if ln.strip() and "Warning" not in ln and "warn(" not in ln]
    assert len(lines) == 1 and lines[0].startswith("error: --run-dir") and "cannot be written" in lines[0], out.stderr
