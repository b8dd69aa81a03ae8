"""Throughput: the env alone vs the whole learning agent, in one process, on this machine.

    python bench.py [--steps 2000] [--repeats 3]

Both are timed as jitted ``lax.scan`` chunks after compiling and two warm-up calls; the best of
``--repeats`` timed calls is kept (the machine's noise only ever slows a call down). The last line is
one JSON object: env_sps, agent_sps, ratio (agent / env), multi_sps (the default multi-objective mix,
``train.MIX``), multi_ratio (multi / agent), compile_s, peak_rss_mb.
"""

from __future__ import annotations

import dataclasses
import json
import platform
import resource
import time
from dataclasses import dataclass

import jax
import tyro

import train
import world


@dataclass(frozen=True)
class Bench:
    steps: int = 2000
    """steps per timed call"""
    repeats: int = 3
    """timed calls per measurement (best kept)"""
    env: str = "Craftax-Classic-Symbolic-v1"
    """which Craftax to measure"""


def timed(fn, repeats: int) -> tuple[float, float]:
    """(compile + first call seconds, best seconds of ``repeats`` calls after two warm-ups)."""
    t0 = time.perf_counter()
    jax.block_until_ready(fn())
    first = time.perf_counter() - t0
    for _ in range(2):
        jax.block_until_ready(fn())
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        best = min(best, time.perf_counter() - t0)
    return first, best


def main(b: Bench) -> dict:
    cfg = train.Config(env=b.env)
    spec = world.env_spec(cfg.world)
    env, params = world.make_env(cfg.world)
    _, state = world.reset(env, params, jax.random.PRNGKey(0))

    @jax.jit
    def env_only(state, key):  # random actions, cond reset: the same world stepping the agent does
        def body(state, k):
            k_a, k_s = jax.random.split(k)
            a = jax.random.randint(k_a, (), 0, spec.n_actions)
            return world.step(env, params, state, a, k_s)[5], None

        return jax.lax.scan(body, state, jax.random.split(key, b.steps))[0]

    env_compile, env_s = timed(lambda: env_only(state, jax.random.PRNGKey(1)), b.repeats)
    org, es = train.born(cfg, jax.random.PRNGKey(0))
    agent_compile, agent_s = timed(lambda: train.live(cfg, org, es, jax.random.PRNGKey(1), b.steps), b.repeats)
    multi = dataclasses.replace(cfg, **train.MIX)
    org, es = train.born(multi, jax.random.PRNGKey(0))
    multi_compile, multi_s = timed(lambda: train.live(multi, org, es, jax.random.PRNGKey(1), b.steps), b.repeats)
    env_sps, agent_sps, multi_sps = b.steps / env_s, b.steps / agent_s, b.steps / multi_s
    rows = [("env alone (scan, cond reset, random actions)", env_sps, env_compile),
            (f"agent: {'+'.join(cfg.objective)}, d={cfg.d_model}, layers={cfg.layers}, window={cfg.window}",
             agent_sps, agent_compile),
            (f"agent, mix: {'+'.join(multi.objective)} (weights {' '.join(map(str, multi.weights))})",
             multi_sps, multi_compile)]
    print(f"{platform.processor() or platform.machine()}, {jax.devices()[0].platform}, jax {jax.__version__}, "
          f"{cfg.world}")
    print(f"{'what':<62} {'steps/s':>9} {'compile+1st (s)':>16}")
    for name, sps, comp in rows:
        print(f"{name:<62} {sps:>9.0f} {comp:>16.1f}")
    result = {"env_sps": round(env_sps, 1), "agent_sps": round(agent_sps, 1), "ratio": round(agent_sps / env_sps, 4),
              "multi_sps": round(multi_sps, 1), "multi_ratio": round(multi_sps / agent_sps, 4),
              "compile_s": round(agent_compile, 1),
              "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main(tyro.cli(Bench))
