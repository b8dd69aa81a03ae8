"""compare.py end to end on a tiny budget: each row a population of seeds; the table, the plot, reused runs."""

import os
import subprocess
import sys
from pathlib import Path

import compare
import train

ROOT = Path(__file__).resolve().parents[1]


def run_compare(out: Path):
    args = [sys.executable, str(ROOT / "compare.py"), "objectives", "--steps", "200", "--seeds", "2",
            "--run-dir", str(out), "--objectives", "location", "--no-extras", "--base.d-model", "32",
            "--base.n-heads", "2",
            "--base.layers", "1", "--base.chunk", "100"]
    return subprocess.run(args, cwd=ROOT, env=dict(os.environ, PYTHONUNBUFFERED="1"), capture_output=True, text=True,
                          timeout=600)


def test_compare_writes_a_table_with_baselines_and_reuses_finished_runs(tmp_path):
    out = run_compare(tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    table = (tmp_path / "compare.md").read_text()
    rows = [ln for ln in table.splitlines() if ln.startswith("| ") and not ln.startswith("| run")]
    assert [r.split("|")[1].strip() for r in rows] == ["location", "random policy (inverse_dynamics)"]
    assert "place error cells" in table and "copy " in table  # each score beside its baseline
    assert "majority " in table and "chance " in table
    assert (tmp_path / "compare.png").stat().st_size > 0
    assert "± " in table  # two seeds: mean +- std
    summary = tmp_path / "location" / "summary.json"
    before = summary.stat().st_mtime
    again = compare.Compare(steps=200, seeds=2, run_dir=str(tmp_path), objectives=("location",), extras=False,
                            base=train.Config(d_model=32, n_heads=2, layers=1, chunk=100, gif_steps=0))
    results = compare.run_all(again)  # everything is there already: nothing is run again
    assert summary.stat().st_mtime == before and len(results) == 2
    assert [len(v) for v in results.values()] == [2, 2]  # each row: one population, one summary per seed
