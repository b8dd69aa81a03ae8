"""Several processes, one population (hosts.py): two train.py processes on localhost, one CPU device each,
joined by JAX's distributed runtime (gloo collectives), against the same population in one process."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest

import train

ROOT = Path(__file__).resolve().parents[1]
# a 2-generation evolution of 4 organisms: each process lives 2 of them, in one thread (a slice of 2, vmapped)
EVO = dict(population=4, steps=50, chunk=25, checkpoint_every=25, generations=2, d_model=32, n_heads=2, layers=3,
           slots=3, window=4, gif_steps=0)
FLAGS = [f"--{k.replace('_', '-')}={v}" for k, v in EVO.items()]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(*args) -> list[subprocess.Popen]:
    """train.py as processes 0 and 1 of two, meeting at a free port on localhost."""
    env = dict(os.environ, PYTHONUNBUFFERED="1", XLA_FLAGS="--xla_force_host_platform_device_count=1")
    port = free_port()
    return [subprocess.Popen([sys.executable, str(ROOT / "train.py"), *args, "--processes", "2", "--process-id",
                              str(i), "--coordinator", f"127.0.0.1:{port}", "--join-timeout", "10"],
                             cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            for i in (1, 0)][::-1]


def lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()]


def test_two_processes_evolve_one_population_as_one_process_does_killed_and_resumed(tmp_path):
    """The per-organism metrics, the generations' records and the final checkpoint of a 2-process evolution,
    whose process 1 is killed after the first checkpoint (process 0 then stops by itself) and which is then
    resumed, equal exactly those of the one-process run whose threads cut the population as the processes do."""
    two = tmp_path / "two"
    procs = launch(*FLAGS, "--threads", "1", "--run-dir", str(two))
    deadline = time.monotonic() + 400
    while not (two / "checkpoint.eqx").exists():
        assert time.monotonic() < deadline and procs[0].poll() is None, procs[0].stderr.read()[-2000:]
        time.sleep(0.05)
    assert not (two / "summary.json").exists()  # killed mid-run
    procs[1].send_signal(signal.SIGKILL)
    assert procs[0].wait(timeout=120) != 0  # process 0 does not wait for a dead process for ever
    for p in procs:
        p.wait()
        p.stderr.close()
    resumed = launch("--resume", "--run-dir", str(two))
    for p in resumed:
        assert p.wait(timeout=400) == 0, p.stderr.read()[-3000:]
        p.stderr.close()
    one = train.Config.of(**EVO, threads=2, run_dir=str(tmp_path / "one"))
    train.train(one, progress=False)

    a, b = lines(two / "metrics.jsonl"), lines(tmp_path / "one" / "metrics.jsonl")
    assert [m["step"] for m in a] == [25, 50, 75, 100] and [m["step"] for m in b] == [25, 50, 75, 100]
    assert [m["organisms"] for m in a] == [m["organisms"] for m in b]
    timing = ("seconds", "compiles")
    ga, gb = lines(two / "generations.jsonl"), lines(tmp_path / "one" / "generations.jsonl")
    assert len(ga) == 2 and [{k: v for k, v in g.items() if k not in timing} for g in ga] == \
        [{k: v for k, v in g.items() if k not in timing} for g in gb]
    assert json.loads((two / "summary.json").read_text())["population"] == 4
    (_, x, _), (_, y, _) = train.load_run(one, two / "checkpoint.eqx"), train.load_run(one, Path(one.run.run_dir)
                                                                                          / "checkpoint.eqx")
    for u, v in zip(jax.tree.leaves(x), jax.tree.leaves(y)):
        np.testing.assert_array_equal(np.asarray(u), np.asarray(v))


@pytest.mark.parametrize("args, message", [
    (["--processes", "2", "--process-id", "2"], "--process-id must name one of the 2 processes (0 to 1), got 2"),
    (["--processes", "2", "--population", "3", "--coordinator", "127.0.0.1:1"],
     "--processes (2) must divide --population (3)"),
    (["--processes", "2", "--process-id", "1", "--population", "2", "--coordinator", "127.0.0.1:{port}",
      "--join-timeout", "2"], "process 1 cannot reach the coordinator at 127.0.0.1:{port} (process 0) within 2 s"),
])
def test_cli_bad_processes_fail_in_one_line_before_compiling(args, message):
    port = str(free_port())
    args, message = [a.replace("{port}", port) for a in args], message.replace("{port}", port)
    t0 = time.monotonic()
    out = subprocess.run([sys.executable, str(ROOT / "train.py"), *args], cwd=ROOT, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode != 0 and time.monotonic() - t0 < 60
    lines = [ln for ln in out.stderr.splitlines() if ln.strip() and "Warning" not in ln and "warn(" not in ln]
    assert len(lines) == 1 and lines[0] == f"error: {message}", out.stderr
