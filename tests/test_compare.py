"""compare.py end to end on a tiny budget: each row a population of seeds; the table, the plot, reused runs,
a row stopped mid-life going on from its checkpoint.

In this process, with the tiny body of test_population in its chunks of 200 steps (the rows, the row stopped
at step 200 and its resumption share one compiled chunk)."""

import json

import tyro
from test_population import TINY

import compare
import compare_memory
import study
import train


def test_compare_writes_a_table_with_baselines_reuses_finished_runs_and_resumes_stopped_ones(tmp_path):
    args = ["objectives", "--steps", "400", "--seeds", "4", "--run-dir", str(tmp_path), "--objectives",
            "inverse_dynamics", "--no-extras", "--no-fresh", "--d-model", "32", "--n-heads", "2", "--layers", "1",
            "--slots", "2", "--window", "4", "--chunk", "200"]  # the body of test_population; a stop below, at a chunk
    c = tyro.cli(compare.Compare, args=args)  # the command line, as `python compare.py ...` reads it
    assert c.base.life == TINY.life and c.steps == 400
    compare.main(c)
    table = (tmp_path / "compare.md").read_text()
    rows = [ln for ln in table.splitlines() if ln.startswith("| ") and not ln.startswith("| run")]
    assert [r.split("|")[1].strip() for r in rows] == ["inverse_dynamics", "random policy (inverse_dynamics)"]
    assert "action accuracy" in table and "majority " in table and "chance " in table  # scores beside baselines
    assert (tmp_path / "compare.png").stat().st_size > 0
    assert "± " in table  # four seeds: mean +- std
    summary = tmp_path / "inverse-dynamics" / "summary.json"
    before = summary.stat().st_mtime
    results = study.run_all(c, compare.rows(c))  # everything is there already: nothing is run again
    assert summary.stat().st_mtime == before and len(results) == 2
    assert [len(v) for v in results.values()] == [4, 4]  # each row: one population, one summary per seed

    # a row stopped mid-life (a checkpoint at step 200, no summary) goes on from there to the same end
    whole = json.loads(summary.read_text())
    for f in summary.parent.iterdir():
        f.unlink()
    train.train(study.config(c.at(steps=200), compare.objective_rows(c)[0]), False)
    summary.unlink()
    study.run_all(c, compare.rows(c))
    again = json.loads(summary.read_text())
    key = lambda s: [(o["steps"], o["episodes"], o["achievements"], o["crafter_score"]) for o in s["organisms"]]  # noqa: E731
    assert again["steps"] == 400 and key(again) == key(whole)


def test_rows_take_the_bases_policy_and_curiosity_unless_they_name_their_own():
    """compare.py development and memory live the base's policy and curiosity (--policy random: every row the
    same worlds and actions); the objectives comparison keeps each objective's own surprise as its curiosity."""
    base = train.Config.of(policy="random", curiosity="rnd")
    for what in ("development", "memory"):
        c = compare.Compare(what=what, base=base)
        cfgs = [study.config(c, r) for r in compare.rows(c)]
        assert {x.learning.policy for x in cfgs} == {"random"} and {x.learning.curiosity for x in cfgs} == {"rnd"}
    names = lambda c: [r.name for r in compare_memory.rows(c)]  # noqa: E731
    assert "random policy" not in names(c) and "random policy" in names(compare.Compare(what="memory"))  # no twin
    c = compare.Compare(what="objectives", base=train.Config.of(curiosity="effects"))
    cfgs = {r.name: study.config(c, r) for r in compare.objective_rows(c)}
    assert cfgs["inverse_dynamics"].learning.curiosity == "surprise" and cfgs["inverse_dynamics"].learning.policy == \
        "learned"
    assert cfgs["random policy (inverse_dynamics)"].learning.policy == "random"
    for cfg in cfgs.values():  # every row passes the checks: a layout reaching far back gets the window it needs
        train.validate(cfg)
    assert cfgs["two_state_prefix_reward (window 6)"].mind.window == 6 and cfgs["reward"].mind.window == 4
