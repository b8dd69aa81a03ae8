"""The online loop end to end: learning, purity (vmap), resume, bad input, and the command line."""

import json
import os
import subprocess
import sys
from pathlib import Path

import equinox as eqx
import jax
import numpy as np
import pytest

import life
import objectives as O
import train

ROOT = Path(__file__).resolve().parents[1]
# the body of test_population (d = 32, one gene), the default learner and curiosity; one compile for the tests here
CFG = train.Config.of(d_model=32, n_heads=2, layers=1, slots=2, window=4, chunk=200, gif_steps=0)


@pytest.fixture(scope="session")
def online_run():
    org, env_state = life.born(CFG.life, jax.random.PRNGKey(0))
    key, records = jax.random.PRNGKey(1), []
    for _ in range(20):
        key, k = jax.random.split(key)
        org, env_state, rec = life.live(CFG.life, org, env_state, k, CFG.run.chunk)
        records.append(jax.device_get(rec))
    return org, jax.tree.map(lambda *xs: np.concatenate(xs), *records)


def test_online_run_is_finite_and_learns_at_every_step(online_run):
    """4,000 steps of the default learner and curiosity: finite, reborn, every update applied. (Whether the
    world model beats chance is asked where it can be read: test_objectives overfits real transitions; at
    this budget a 32-wide model is still at chance, and at 1M steps the default reads 0.69 of the actions.)"""
    org, rec = online_run
    assert rec.finite.all()
    for k, v in rec.losses.items():
        assert np.isfinite(v).all(), k
    assert np.isfinite(rec.scores["inverse_dynamics/surprise"]).any()
    assert int(org.tally.episodes) > 0  # lives ended and it was reborn
    # a one-step layout counts every step but those the animal slept through (its action was not its own)
    assert len(rec.done) / 2 < float(org.tally.scores["inverse_dynamics/n"]) < len(rec.done)
    born, _ = life.born(CFG.life, jax.random.PRNGKey(0))
    for part in ("stack", "ac"):  # the world model's layers and the stream learner's actor-critic both moved
        a, b = (jax.tree.leaves(eqx.filter(getattr(o.model, part), eqx.is_array)) for o in (born, org))
        assert any(not np.array_equal(x, y) for x, y in zip(a, b)), part


def test_skill_by_age_adds_up_to_the_whole_life_score(online_run):
    """The Crafter score per span of life (``report.crafter_by_age``, from each chunk's achievements of the lives
    that ended in it): over one span of the whole life it is the life's own score (from its tally); the last
    span's is ``crafter_last``'s."""
    import report
    import world

    org, rec = online_run
    n = CFG.run.chunk
    lines = [{"step": (j + 1) * n, **report.population_metrics(report.chunk_metrics(
        jax.tree.map(lambda x: x[None, j * n:(j + 1) * n], rec)), n, 1.0)} for j in range(len(rec.done) // n)]
    whole = world.crafter_score(np.asarray(org.tally.achievements) / float(org.tally.episodes))
    ends, scores = report.crafter_by_age(lines, len(rec.done))
    assert list(ends) == [len(rec.done)] and np.isclose(scores[0, 0], whole)
    ends, scores = report.crafter_by_age(lines, 1000)
    assert list(ends) == [1000, 2000, 3000, 4000] and np.isclose(report.crafter_last(lines, 1000)[0], scores[0, -1])


def test_a_new_organism_has_the_types_of_a_living_one(online_run):
    """Born and lived-in organisms have the same leaf types (weak types included): no chunk recompiles."""
    org, _ = online_run
    fresh, _ = life.born(CFG.life, jax.random.PRNGKey(0))
    for a, b in zip(jax.tree.leaves(fresh), jax.tree.leaves(org)):
        assert (a.shape, a.dtype, a.aval.weak_type) == (b.shape, b.dtype, b.aval.weak_type)


@pytest.mark.parametrize("change", [dict(), dict(memory=2, think=2, objective=("inverse_dynamics", "recall")),
                                    dict(memory=2, rtrl=True, write_reads_memory=False),
                                    dict(obs="pixels", curiosity="progress"), dict(learner="window", curiosity="rnd"),
                                    dict(curiosity="e3b"), dict(curiosity="icm"), dict(curiosity="count")])
def test_no_newborn_leaf_is_weakly_typed(change):
    """A weakly typed leaf at birth becomes strong after one chunk, so the second chunk of every life (and a
    resumed one) would compile the whole step again (a memory gate's bias once cost the suite 40 s so)."""
    born = jax.eval_shape(lambda k: life.born(CFG.replace(**change).life, k), jax.random.PRNGKey(0))
    weak = [jax.tree_util.keystr(p) for p, x in jax.tree_util.tree_flatten_with_path(born)[0] if x.weak_type]
    assert not weak, weak


def resumed_equals_whole(tmp_path, whole, stop: int):
    """Run ``whole`` in tmp_path/whole, and again in tmp_path/part stopped after ``stop`` steps and resumed:
    the same metrics (speed aside) and bit-identical checkpoints. Returns (whole's summary, its state)."""
    summary = train.train(whole, progress=False)
    part = whole.replace(steps=stop, run_dir=str(tmp_path / "part"))
    train.train(part, progress=False)
    train.train(part.replace(steps=whole.run.steps, resume=True), progress=False)

    def metrics(run):
        lines = [json.loads(x) for x in (tmp_path / run / "metrics.jsonl").read_text().splitlines()]
        return [{k: v for k, v in m.items() if "steps_per_second" not in k} for m in lines]

    assert metrics("whole") == metrics("part")
    from conftest import tensorboard_scalars  # TensorBoard's curves too: the resumed run's, once each

    assert tensorboard_scalars(tmp_path / "part")["rint"] == tensorboard_scalars(tmp_path / "whole")["rint"]
    _, a, _ = train.load_run(whole, tmp_path / "whole" / "checkpoint.eqx")
    _, b, _ = train.load_run(whole, tmp_path / "part" / "checkpoint.eqx")
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    assert json.loads((tmp_path / "part" / "summary.json").read_text())["steps"] == whole.run.steps
    return summary, a


def strict_json(path: Path) -> dict:
    """A JSON file read as strict JSON (NaN or Infinity in it fails the test)."""
    def refuse(name):
        raise AssertionError(f"{path} holds {name}")
    return json.loads(path.read_text(), parse_constant=refuse)


def test_resume_equals_an_uninterrupted_run(tmp_path):
    resumed_equals_whole(tmp_path, CFG.replace(steps=400, run_dir=str(tmp_path / "whole")), 200)
    assert strict_json(tmp_path / "whole" / "summary.json")["steps_per_second"] > 0  # its second chunk was timed
    # each call of the stopped run lived one chunk (compiling included): its speed is null, not NaN
    assert strict_json(tmp_path / "part" / "summary.json")["steps_per_second"] is None


def test_bad_checkpoints_give_clear_errors(tmp_path):
    cfg = CFG.replace(steps=400, run_dir=str(tmp_path / "r"), resume=True)
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        train.train(cfg, progress=False)
    assert not (tmp_path / "r").exists()  # a failed resumption leaves nothing behind
    train.train(cfg.replace(resume=False), progress=False)
    with pytest.raises(ValueError, match="beyond this run's end"):  # --steps below the checkpoint's step
        train.train(cfg.replace(steps=200), progress=False)
    with pytest.raises(FileExistsError, match="--resume"):
        train.train(cfg.replace(resume=False), progress=False)
    with pytest.raises(ValueError, match="different config"):
        train.train(cfg.replace(d_model=16, steps=800), progress=False)
    ckpt = tmp_path / "r" / "checkpoint.eqx"
    ckpt.write_bytes(ckpt.read_bytes()[: len(ckpt.read_bytes()) // 2])
    with pytest.raises(ValueError, match="corrupt"):
        train.train(cfg.replace(steps=800), progress=False)


@pytest.mark.parametrize("change, message", [
    (dict(steps=-5), "--steps"), (dict(window=0), "--window"), (dict(layers=5, slots=4), "--layers"),
    (dict(d_model=30, n_heads=4), "--d-model"), (dict(weights=(1.0, 2.0)), "--weights"),
    (dict(env="Craftax-Nope-v0"), "unknown env"), (dict(env="Craftax-Classic-Pixels-v1"), "for pixels: --obs pixels"),
    (dict(window=1), "two instances of each layout"),
    (dict(curiosity="icm", weights=(1.0, 2.0)), "--weights has 2 values for the 1 of --objective"),
    (dict(obs="pixels", objective=("masked_state",)), "masked_state needs --obs symbolic"),
    (dict(obs="pixels"), "--curiosity effects reads the inventory and vitals"),
    (dict(obs="pixels", env="Craftax-Symbolic-v1"), "--obs pixels is available for Craftax-Classic"),
    (dict(objective=("two_state_prefix",), window=3), "--window must be at least 4"),
    (dict(objective=("reward", "reward")), "twice"),
    (dict(curiosity="rnd", objective=("rnd", "rnd")), "twice"),
    (dict(layers=9, slots=4), "--layers must be between"), (dict(resume=True), "--resume needs --run-dir"),
    (dict(population=0), "--population must be at least 1"), (dict(population=4, threads=3), "--threads"),
    (dict(max_grad_norm=0.0), "--max-grad-norm must be positive"), (dict(max_grad_norm=-1.0), "--max-grad-norm"),
    (dict(clip=-0.2), "--clip must lie in"), (dict(ent_coef=-1.0), "--ent-coef cannot be negative"),
    (dict(entropy_target=-1.0), "--entropy-target cannot be negative"),
    (dict(entropy_target=1.5, ent_coef=0.0), "a positive --ent-coef"),
    (dict(entropy_target=2.9), "below the uniform policy's entropy, ln 17 = 2.83"),
    (dict(value_coef=-0.5), "--value-coef cannot be negative"), (dict(ac_lr=0.0), "--ac-lr must be positive"),
    (dict(kappa_policy=0.0), "--kappa-policy"), (dict(gamma=1.5), "--gamma"), (dict(lr=0.0), "--lr"),
    (dict(curiosity="mix", sleep_weight=-0.5), "--sleep-weight and --count-weight cannot be negative"),
    (dict(count_weight=0.5), "--curiosity effects does not read them"),
    (dict(ac_step="intentional"), "sizes the steps of --learner body"),
    (dict(learner="body", ac_input="both"), "what the actor and critic of --learner stream read"),
    (dict(learner="window", ac_step="adam"), "--ac-step adam sizes the steps of --learner stream or body"),
    (dict(ac_step="adam", adam_lr=0.0), "--adam-lr must be positive"),
    (dict(learner="body", ac_step="intentional", eta_policy=0.0), "--eta-policy and --eta-value must be positive"),
])
def test_bad_config_values_are_rejected(change, message):
    with pytest.raises(ValueError, match=message):
        train.validate(CFG.replace(**change))


ALL = train.Config.of(d_model=32, n_heads=2, layers=1, steps=300, chunk=150, gif_steps=0)


def assert_scored(summary, objectives):
    """Every objective was scored on most steps, and every score and baseline is a finite number."""
    assert set(summary["prequential"]) == set(objectives)
    for name, figs in summary["prequential"].items():
        if name == "recall":  # waits --recall-delay (8) steps each life; scored only where the view changed since
            # (an animal that stands still sees nothing new to recall): at least half the steps, never the first 8
            assert summary["steps"] / 2 <= figs["scored"] <= summary["steps"] - 8, (name, figs["scored"])
        else:
            unscored = 10
            if any(s.kind == "a" and s.target for s in O.parse(O.LAYOUTS[name])):  # asleep, no action is its own
                unscored += summary["asleep"] * summary["steps"] * 2  # (a two-action layout may lose two per step)
            assert figs["scored"] >= summary["steps"] - unscored, name
        assert np.isfinite(figs["surprise"]) and np.isfinite(figs["seen_surprise"]), name  # new data, training data
        scores = [(k, v) for k, v in figs.items() if isinstance(v, dict) and k != "by_delay"]
        assert scores, name
        for label, fig in scores:
            assert all(np.isfinite(v) for v in fig.values() if not isinstance(v, str)), (name, label, fig)
        for bin_, fig in figs.get("by_delay", {}).items():  # the recall curve: each bin's score, where it was scored
            assert fig["scored"] > 0 and 0 <= fig["model"] <= 1, (name, bin_, fig)


def test_pixels_run_through_train_with_learning_progress_curiosity(tmp_path):
    names = ("autoencoder", "forward_dynamics", "location")
    cfg = ALL.replace(obs="pixels", objective=names, curiosity="progress", run_dir=str(tmp_path / "px"))
    summary = train.train(cfg, progress=False)
    assert_scored(summary, names)
    assert "pixel_mse" in summary["prequential"]["autoencoder"]
    metrics = [json.loads(x) for x in (tmp_path / "px" / "metrics.jsonl").read_text().splitlines()]
    assert any(abs(m["signal"]) > 0 for m in metrics)  # learning progress is a signal, not zeros


def run_cli(*args, cwd=ROOT, timeout=600):
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.run([sys.executable, str(ROOT / "train.py"), *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


@pytest.mark.parametrize("args, message", [  # the rest of the checks are tested in-process (above)
    (["--steps", "-5"], "--steps must be positive"),
    (["--env", "Craftax-Nope-v0"], "unknown env"),
    (["--objective", "dreaming"], "unknown objective 'dreaming'"),
    (["--max-grad-norm", "0"], "--max-grad-norm must be positive"),
])
def test_cli_bad_values_fail_in_one_line(args, message):
    out = run_cli(*args, timeout=120)
    assert out.returncode != 0
    lines = [ln for ln in out.stderr.splitlines() if ln.strip() and "Warning" not in ln and "warn(" not in ln]
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], out.stderr





def test_train_py_end_to_end_runs_every_objective_and_writes_the_run_directory(tmp_path):
    """The command line, every named objective in one model (weighted), ICM curiosity, the run directory."""
    run = tmp_path / "run"
    names = tuple(O.LAYOUTS)
    weights = [str(1.0 if i % 2 else 0.5) for i in range(len(names))]
    out = run_cli("--steps", "300", "--chunk", "150", "--run-dir", str(run), "--gif-steps", "0",
                  "--objective", *names, "--weights", *weights, "--curiosity", "icm",
                  "--d-model", "32", "--n-heads", "2", "--layers", "1", "--window", "6")  # 6: the reward layouts' reach
    assert out.returncode == 0, out.stderr[-2000:]
    for name in ("config.json", "metrics.jsonl", "summary.json", "curves.png", "checkpoint.eqx"):  # GIF: population
        assert (run / name).stat().st_size > 0, name
    s = json.loads((run / "summary.json").read_text())
    assert s["steps"] == 300 and s["curiosity"] == "icm"
    for key in ("steps_per_second", "episodes", "mean_episode_length", "crafter_score", "achievements"):
        assert key in s
    assert_scored(s, names)
    pq = s["prequential"]["forward_dynamics"]["cell_accuracy"]
    assert 0 <= pq["baseline"] <= 1 and 0 <= pq["model"] <= 1
    metrics = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert len(metrics) == 2
    assert all(np.isfinite(m[f"loss/{n}"]) for m in metrics for n in names)
    assert any(abs(m["signal"]) > 0 for m in metrics)
    assert "Crafter score" in out.stdout
    from conftest import tensorboard_scalars

    board = tensorboard_scalars(run)  # what `tensorboard --logdir` draws: every chunk's figures at its step
    for tag in ("rint", "entropy", "episodes", "loss/forward_dynamics", "forward_dynamics/cell_accuracy"):
        assert [st for st, _ in board[tag]] == [150, 300], tag
        assert all(np.isfinite(v) for _, v in board[tag]), tag
    assert [v for _, v in board["loss/reward"]] == pytest.approx([m["loss/reward"] for m in metrics], rel=1e-6)


def test_tensorboard_draws_every_number_of_a_metrics_line_and_each_organism_apart():
    """report.scalars: nested figures joined by '/', lists by index, each organism of a population under
    organism<i>/ (a population of one: its means only); None, NaN and the step are left out."""
    import report

    per = [{"rint": 0.5, "gates": [1.0, 0.25], "x": None}, {"rint": 1.5, "gates": [0.0, 0.5], "x": float("nan")}]
    m = {"step": 300, "rint": 1.0, "gates": [0.5, 0.375], "scores": {"a": 2.0}, "x": None, "organisms": per}
    got = report.scalars(m)
    assert got == {"rint": 1.0, "gates/0": 0.5, "gates/1": 0.375, "scores/a": 2.0, "organism0/rint": 0.5,
                   "organism0/gates/0": 1.0, "organism0/gates/1": 0.25, "organism1/rint": 1.5,
                   "organism1/gates/0": 0.0, "organism1/gates/1": 0.5}
    assert report.scalars({**m, "organisms": per[:1]}) == {k: v for k, v in got.items() if "organism" not in k}


def test_a_resumed_runs_tensorboard_forgets_what_the_stopped_run_wrote_after_its_checkpoint(tmp_path):
    """report.Board: a run stopped at step 5 after a checkpoint at 2 and resumed from it draws 1, 2 as first
    written and 3, 4 as written again, once each (as metrics.jsonl keeps them)."""
    import time

    from conftest import tensorboard_scalars

    import report

    first = report.Board(tmp_path)
    for step in range(1, 6):
        first.write({"x": float(step)}, step)
    first.close()
    time.sleep(1.1)  # event files are named by the second they were opened in
    again = report.Board(tmp_path, step=3)
    for step in (3, 4):
        again.write({"x": 10.0 * step}, step)
    again.close()
    assert tensorboard_scalars(tmp_path)["x"] == [(1, 1.0), (2, 2.0), (3, 30.0), (4, 40.0)]
