"""Throughput: the env alone, one learning organism, and a population, in one process, on this machine.

    python bench.py [--steps 2000] [--repeats 3] [--population 8]
    python bench.py --scaling 1 16 128 512    # populations of each size, nothing else
    python bench.py --births                  # what a birth costs to compile, cold, nothing else
    python bench.py --minds                   # one organism with each memory and thought setting, nothing else
    python bench.py --processes 2 --population 4   # the population over 2 train.py processes against 1

Everything is timed as jitted ``lax.scan`` chunks after compiling and two warm-up calls; the best of
``--repeats`` timed calls is kept (the machine's noise only ever slows a call down). The population is
timed over ``--steps`` steps, long enough that its organisms die several times (rebirths are paid), and
it runs in as many host threads as ``train.py`` would use (``population.threads_for``) and again in one; the
one-thread step is broken down into env, rebirths, model (forward + backward + bookkeeping) and
optimizer. The last line is one JSON object: env_sps, agent_sps, ratio (agent / env), old_default_sps
(one organism with the settings the defaults replaced: window learner, surprise, gamma 0.95) and
default_vs_old (agent / that), multi_sps (the
default multi-objective mix, ``train.MIX``), multi_ratio (multi / agent), population_sps
(organism-steps/s), population_ratio (population / agent, the same process), population_threads,
population_one_thread_sps, slots_sps (the population with half its gene slots inactive) and slots_ratio
(that / a body of only the active slots), evolution_sps (the population with an evolution's body of 3
genes), between_generations_s (credit, write-back, selection and births between two generations) and
between_generations_share (that, as a share of a generation with lives of 5,000 steps), grown_sps and
born4_sps (bodies grown from 1 gene to 4 slots, and born with 4) and grown_ratio (born / grown time:
1 means growing costs nothing once grown), memory_sps / memory_noread_sps / memory_rtrl_sps / think_sps /
think_recurrent_sps / body_sps / body_adam_sps (one organism with 4 memory tokens; the same with writes that see their
transition only, and with --rtrl; 2 pause thoughts, 2 recurrent thoughts; the learner through the body, with ObGD's
and with Adam's step) and their _ratio
(that / agent), compile_s, peak_rss_mb.
"""

from __future__ import annotations

import json
import platform
import resource
import time
from dataclasses import dataclass
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import tyro

import life
import optim
import population
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
    population: int = 8
    """organisms in the population rows"""
    scaling: tuple[int, ...] = ()
    """population sizes to time alone, nothing else (organism-steps/s of each, and per organism against the
    first size): ``--scaling 1 16 128 512`` shows where a device stops gaining from a wider population"""
    births: bool = False
    """time births alone, nothing else: a tiny body, the same body with another objective mix, a population
    of 4 of it, each the first time (compiling, in this fresh process; run it with no compilation cache) and
    again"""
    minds: bool = False
    """time one organism with the default body and with each memory and thought setting (``MINDS``), nothing
    else: each setting's organism-steps/s and its ratio to the default's"""
    processes: int = 0
    """time ``train.py --population`` over this many processes on localhost against one process, nothing else:
    each the difference of two runs of --steps and 2 x --steps (after a warm-up run that fills a compilation
    cache), so compiling and starting cancel and every gather and checkpoint is paid"""


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
    if b.steps < 1 or b.repeats < 1 or b.population < 1 or min(b.scaling, default=1) < 1:
        raise SystemExit("error: --steps, --repeats, --population and --scaling sizes must be positive")
    if b.scaling:
        return scaling(b)
    if b.births:
        return births()
    if b.processes:
        return processes(b)
    cfg = train.Config.of(env=b.env, gif_steps=0)
    if b.minds:
        return mind_costs(cfg, b)
    spec = world.env_spec(cfg.body.world)
    env, params = world.make_env(cfg.body.world)
    _, state = world.reset(env, params, jax.random.PRNGKey(0))

    @jax.jit
    def env_only(state, key):  # random actions, cond reset: the same world stepping the agent does
        def body(state, k):
            k_a, k_s = jax.random.split(k)
            a = jax.random.randint(k_a, (), 0, spec.n_actions)
            return world.step(env, params, state, a, k_s)[5], None

        return jax.lax.scan(body, state, jax.random.split(key, b.steps))[0]

    env_compile, env_s = timed(lambda: env_only(state, jax.random.PRNGKey(1)), b.repeats)
    agent_compile, agent_s = time_one(cfg, b)
    old_compile, old_s = time_one(cfg.replace(**OLD_DEFAULT), b)  # the settings the defaults replaced
    multi = cfg.replace(**train.MIX)
    multi_compile, multi_s = time_one(multi, b)
    minds = {name: time_one(cfg.replace(**change), b) for name, (_, change) in MINDS.items()}  # memory.py, thoughts
    N = b.population
    pop = cfg.replace(population=N)
    threads = population.threads_for(N)
    pop_compile, pop_s, _ = time_population(pop, b, threads)
    one_compile, one_s, deaths = time_population(pop, b, 1)
    parts = breakdown(pop, b, one_s / b.steps, deaths)
    # inactive gene slots under vmap: 2 of 4 slots expressed, against a body of 2 slots (pop above)
    slots = pop.replace(slots=2 * cfg.life.body.slots)
    slots_compile, slots_s, _ = time_population(slots, b, threads)
    evo = pop.replace(generations=2, layers=3, slots=3, inherit="lamarckian")
    evo_compile, evo_s, _ = time_population(evo, b, threads)
    between_s = between_generations(evo, b)
    # development: a body grown from 1 gene to 4 slots against one born with 4
    grown = pop.replace(layers=1, slots=4, grow="schedule")
    born4 = pop.replace(layers=4, slots=4)
    grown_compile, grown_s, _ = time_population(grown, b, threads, grow=3)
    born4_compile, born4_s, _ = time_population(born4, b, threads)
    env_sps, agent_sps, multi_sps = b.steps / env_s, b.steps / agent_s, b.steps / multi_s
    pop_sps, one_sps, slots_sps = N * b.steps / pop_s, N * b.steps / one_s, N * b.steps / slots_s
    rows = [("env alone (scan, cond reset, random actions)", env_sps, env_compile),
            (f"agent: {describe(cfg)}", agent_sps, agent_compile),
            (f"agent, old default settings: {describe(cfg.replace(**OLD_DEFAULT))}", b.steps / old_s, old_compile),
            (f"agent, mix: {'+'.join(multi.learning.objective)} (weights {' '.join(map(str, multi.learning.weights))})",
             multi_sps, multi_compile),
            *[(f"agent with {name}", b.steps / t, comp) for name, (comp, t) in minds.items()],
            (f"population of {N}, {threads} threads (organism-steps/s, rebirths paid)", pop_sps, pop_compile),
            (f"population of {N}, one thread (one vmapped computation)", one_sps, one_compile),
            (f"population of {N}, {threads} threads, {cfg.life.body.layers} of {slots.life.body.slots} gene slots "
             "active", slots_sps,
             slots_compile),
            (f"population of {N}, {threads} threads, 3 genes (an evolution's body)", N * b.steps / evo_s, evo_compile),
            (f"population of {N}, {threads} threads, bodies grown from 1 gene to 4", N * b.steps / grown_s,
             grown_compile),
            (f"population of {N}, {threads} threads, bodies born with 4 genes", N * b.steps / born4_s, born4_compile)]
    print(f"{platform.processor() or platform.machine()}, {jax.devices()[0].platform} x {len(jax.devices())}, "
          f"jax {jax.__version__}, {cfg.body.world}")
    print(f"{'what':<72} {'steps/s':>9} {'compile+1st (s)':>16}")
    for name, sps, comp in rows:
        print(f"{name:<72} {sps:>9.0f} {comp:>16.1f}")
    print(f"\none vmapped step of {N} organisms (one thread): {1e3 * one_s / b.steps:.2f} ms "
          f"(a death on {100 * deaths:.1f}% of steps)")
    for name, ms in parts.items():
        print(f"  {name:<72} {ms:>6.2f} ms  {100 * ms / (1e3 * one_s / b.steps):>4.0f}%")
    life_s = LIFE * evo_s / b.steps
    share = between_s / (between_s + life_s)
    print(f"\nbetween two generations of {N} (credit, knockouts, lamarckian write-back, selection, births): "
          f"{between_s:.3f} s; a life of {LIFE} steps: {life_s:.1f} s; share of a generation: {100 * share:.2f}%")
    result = {"env_sps": round(env_sps, 1), "agent_sps": round(agent_sps, 1), "ratio": round(agent_sps / env_sps, 4),
              "old_default_sps": round(b.steps / old_s, 1), "default_vs_old": round(old_s / agent_s, 4),
              "multi_sps": round(multi_sps, 1), "multi_ratio": round(multi_sps / agent_sps, 4),
              "population_sps": round(pop_sps, 1), "population_ratio": round(pop_sps / agent_sps, 4),
              "population_threads": threads, "population_one_thread_sps": round(one_sps, 1),
              "slots_sps": round(slots_sps, 1), "slots_ratio": round(slots_sps / pop_sps, 4),
              "evolution_sps": round(N * b.steps / evo_s, 1), "between_generations_s": round(between_s, 4),
              "between_generations_share": round(share, 5),
              "grown_sps": round(N * b.steps / grown_s, 1), "born4_sps": round(N * b.steps / born4_s, 1),
              "grown_ratio": round(born4_s / grown_s, 4),
              **{f"{key}_sps": round(b.steps / minds[name][1], 1) for name, (key, _) in MINDS.items()},
              **{f"{key}_ratio": round(agent_s / minds[name][1], 4) for name, (key, _) in MINDS.items()},
              "compile_s": round(agent_compile, 1),
              "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
    print(json.dumps(result))
    return result


OLD_DEFAULT = dict(learner="window", curiosity="surprise", gamma=0.95, entropy_target=0.0)  # before the stream learner
MINDS = {"memory 4 (bptt 3)": ("memory", dict(memory=4)),  # label: (summary key, flags)
         "memory 4, writes see their transition only": ("memory_noread", dict(memory=4, write_reads_memory=False)),
         "memory 4, the same with --rtrl": ("memory_rtrl", dict(memory=4, write_reads_memory=False, rtrl=True)),
         "think 2 (pause)": ("think", dict(think=2)),
         "think 2 (recurrent)": ("think_recurrent", dict(think=2, think_mode="recurrent")),
         "learner through the body (--learner body)": ("body", dict(learner="body")),
         "the same with Adam's step (--ac-step adam)": ("body_adam", dict(learner="body", ac_step="adam"))}
LIFE = 5000  # steps of one life in the evolution row's comparison (compare.py evolution's budget)


def mind_costs(cfg, b: Bench) -> dict:
    """One organism with the default body, then with each of ``MINDS``, in this process: organism-steps/s and
    the ratio to the default (what each memory and thought setting costs)."""
    _, agent_s = time_one(cfg, b)
    result = {"agent_sps": round(b.steps / agent_s, 1)}
    print(f"{'default body (no memory, no thoughts)':<48} {b.steps / agent_s:>9.1f} steps/s")
    for name, (key, change) in MINDS.items():
        _, s = time_one(cfg.replace(**change), b)
        result.update({f"{key}_sps": round(b.steps / s, 1), f"{key}_ratio": round(agent_s / s, 4)})
        print(f"{name:<48} {b.steps / s:>9.1f} steps/s  ({agent_s / s:.2f} of the default)")
    print(json.dumps(result))
    return result


def scaling(b: Bench) -> dict:
    """Populations of each ``--scaling`` size of the default body, timed alone (rebirths paid), in as many
    host threads as ``train.py`` would use; the last line is one JSON object."""
    cfg = train.Config.of(env=b.env, gif_steps=0)
    print(f"{platform.processor() or platform.machine()}, {jax.devices()[0].platform} x {len(jax.devices())} "
          f"({jax.devices()[0].device_kind}), jax {jax.__version__}, {cfg.body.world}, {describe(cfg)}, "
          f"{b.steps} steps per timed call", flush=True)
    print(f"{'population':>10} {'threads':>7} {'organism-steps/s':>16} {'per organism':>12} {'vs first':>8} "
          f"{'ms/step':>8} {'compile+1st (s)':>16}", flush=True)
    rows = []
    for n in b.scaling:
        pop = cfg.replace(population=n)
        threads = population.threads_for(n)
        compile_s, s, _ = time_population(pop, b, threads)
        sps = n * b.steps / s
        rows.append({"population": n, "threads": threads, "sps": round(sps, 1), "per_organism": round(sps / n, 1),
                     "vs_first": round(sps / n / rows[0]["per_organism"], 4) if rows else 1.0,
                     "ms_per_step": round(1e3 * s / b.steps, 3), "compile_s": round(compile_s, 1)})
        r = rows[-1]
        print(f"{n:>10} {threads:>7} {sps:>16.0f} {sps / n:>12.1f} {r['vs_first']:>8.3f} {r['ms_per_step']:>8.2f} "
              f"{compile_s:>16.1f}", flush=True)
    result = {"device": f"{jax.devices()[0].platform}: {jax.devices()[0].device_kind}", "jax": jax.__version__,
              "scaling": rows}
    print(json.dumps(result))
    return result


def processes(b: Bench) -> dict:
    """organism-steps/s of ``train.py --population`` in 1 process and in ``--processes`` processes on this
    machine (hosts.py), each as N x steps / (seconds of a 2 x --steps run - seconds of a --steps run)."""
    import os
    import socket
    import subprocess
    import sys
    import tempfile

    if b.population % b.processes:
        raise SystemExit(f"error: --processes ({b.processes}) must divide --population ({b.population})")
    tmp = Path(tempfile.mkdtemp(prefix="bench-processes-"))
    env = dict(os.environ, JAX_COMPILATION_CACHE_DIR=str(tmp / "cache"), JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0")

    def run(k: int, steps: int, name: str) -> float:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        args = [sys.executable, "train.py", "--env", b.env, "--population", str(b.population), "--steps", str(steps),
                "--chunk", str(max(b.steps // 4, 1)), "--gif-steps", "0", "--no-tensorboard", "--run-dir",
                str(tmp / name)]
        if k > 1:
            args += ["--processes", str(k), "--coordinator", f"127.0.0.1:{port}"]
        t0 = time.perf_counter()
        procs = [subprocess.Popen(args + (["--process-id", str(i)] if k > 1 else []), env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for i in range(k)]
        for p in procs:
            _, err = p.communicate()
            if p.returncode:
                raise SystemExit(f"error: train.py failed: {err.strip().splitlines()[-1]}")
        return time.perf_counter() - t0

    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, jax {jax.__version__}, {b.env}, "
          f"default body, population {b.population}, {b.steps} and {2 * b.steps} steps", flush=True)
    rows = []
    for k in (1, b.processes):
        run(k, b.steps, f"warm{k}")
        short, long = run(k, b.steps, f"short{k}"), run(k, 2 * b.steps, f"long{k}")
        sps = b.population * b.steps / (long - short)
        rows.append({"processes": k, "sps": round(sps, 1), "vs_one": round(sps / rows[0]["sps"], 3) if rows else 1.0,
                     "start_and_compile_s": round(2 * short - long, 1)})
        print(f"{k} process{'es' if k > 1 else ''}: {sps:.0f} organism-steps/s ({rows[-1]['vs_one']:.2f} of one), "
              f"start-up {rows[-1]['start_and_compile_s']:.1f} s", flush=True)
    state = (tmp / "long1" / "checkpoint.eqx").stat().st_size
    result = {"processes": rows, "checkpoint_mb_per_organism": round(state / b.population / 1e6, 2)}
    print(json.dumps(result))
    return result


def describe(cfg) -> str:
    c = cfg.life
    return (f"{'+'.join(c.objectives)}, learner {c.learning.learner}, curiosity {c.learning.curiosity}, "
            f"d={c.body.d_model}, layers={c.body.layers}, window={c.mind.window}")


def time_one(cfg, b: Bench) -> tuple[float, float]:
    """(compile + first s, best s) of ``b.steps`` steps of one organism's life."""
    org, es = life.born(cfg.life, jax.random.PRNGKey(0))
    return timed(lambda: life.live(cfg.life, org, es, jax.random.PRNGKey(1), b.steps), b.repeats)


def between_generations(cfg, b: Bench) -> float:
    """Best seconds of everything an evolution does between two generations: credit (fitness, knockouts),
    lamarckian write-back, selection (discard, split, mutate), drawing genomes, births in new worlds."""
    import numpy as np

    import evolve

    c, N, layers = cfg.life, cfg.run.population, cfg.life.body.layers
    ledger = evolve.new_ledger(cfg.evolution.pool_size(layers))
    pool = evolve.new_pool(c, jax.random.PRNGKey(0), len(ledger.ids))
    keys, k_born = train.first_keys(cfg)
    orgs, states = population.born_population(c, k_born)
    genomes = evolve.draw("evolve", layers, ledger, np.random.default_rng(0), N)
    orgs = population.live_threads(c, evolve.birth(orgs, pool, jnp.asarray(genomes)), states, keys, 200,
                                   population.threads_for(N))[0]
    for rec in ledger.genes.values():  # every gene judged already, so selection discards and splits
        rec.update(carried=2, carried_by_bin=[2, 0, 0], rank_sum=[float(rec["id"]) / len(ledger.ids) - 0.5, 0, 0])

    def once():
        mine = evolve.Ledger.from_json(json.loads(json.dumps(ledger.to_json())))
        new, mine, _, _ = evolve.end_of_life(c, cfg.evolution, pool, mine, genomes, orgs, jax.random.PRNGKey(1))
        nxt = evolve.draw("evolve", layers, mine, np.random.default_rng(1), N)
        born, _ = population.born_population(c, k_born)
        return evolve.birth(born, new, jnp.asarray(nxt))

    return timed(once, b.repeats)[1]


def time_population(cfg, b: Bench, threads: int, grow: int = 0) -> tuple[float, float, float]:
    """(compile + first s, best s of a ``b.steps`` chunk, fraction of steps on which an organism died);
    ``grow``: genes each organism grows (develop.py, in the middle of its stack) before it is timed."""
    import numpy as np

    import develop

    c, N = cfg.life, cfg.run.population
    keys = jax.random.split(jax.random.PRNGKey(0), N)
    orgs, es = population.born_population(c, keys)
    for n in range(c.body.layers, c.body.layers + grow):
        k = np.full(N, cfg.growth.depth(n))
        orgs = develop.grow(c, cfg.growth.grow_gene, orgs, np.ones(N, bool), k,
                            jax.random.split(jax.random.PRNGKey(n), N))
    out = {}

    def call():
        out["rec"] = population.live_threads(c, orgs, es, keys, b.steps, threads)[2]
        return out["rec"]

    first, best = timed(call, b.repeats)
    deaths = float(jnp.mean(jnp.any(out["rec"].done, axis=0)))
    return first, best, deaths


def breakdown(cfg, b: Bench, step_s: float, deaths: float) -> dict[str, float]:
    """Where a population step's time goes (ms): each part timed alone as a jitted scan of ``b.steps``."""
    N = cfg.run.population
    env, params = world.make_env(cfg.body.world)
    spec = world.env_spec(cfg.body.world)
    keys = jax.random.split(jax.random.PRNGKey(0), N)
    orgs, states = population.born_population(cfg.life, keys)
    R = population.fresh_worlds(N)

    @jax.jit
    def env_steps(states, key):  # N worlds stepped together, random actions, no rebirth
        def body(states, k):
            ks = jax.random.split(k, N)
            a = jax.vmap(lambda k: jax.random.randint(k, (), 0, spec.n_actions))(ks)
            return jax.vmap(lambda s, a, k: world.advance(env, params, s, a, k)[1])(states, a, ks), None

        return jax.lax.scan(body, states, jax.random.split(key, b.steps))[0]

    @jax.jit
    def worlds(key):  # the R fresh worlds of one step on which somebody died, built b.steps times
        def body(c, k):
            obs, st = jax.vmap(lambda k: world.reset(env, params, k))(jax.random.split(k, R))
            return c + obs.sum(), None

        return jax.lax.scan(body, 0.0, jax.random.split(key, b.steps))[0]

    @eqx.filter_jit
    def adam(models, opts):  # one optimizer update per organism and step, slot by slot (optim.update)
        def body(carry, _):
            models, opts = carry
            step = lambda m, o: optim.update(m, jax.tree.map(lambda x: 1e-3 * x, eqx.filter(  # noqa: E731
                m, eqx.is_inexact_array)), o, lr=cfg.learning.lr, max_grad_norm=cfg.learning.max_grad_norm)
            return eqx.filter_vmap(step)(models, opts), None

        return jax.lax.scan(body, (models, opts), None, length=b.steps)[0]

    per = lambda fn: 1e3 * timed(fn, b.repeats)[1] / b.steps  # noqa: E731
    env_ms = per(lambda: env_steps(states, jax.random.PRNGKey(1)))
    reset_ms = per(lambda: worlds(jax.random.PRNGKey(1))) * deaths
    adam_ms = per(lambda: adam(orgs.model, orgs.opt_state))
    total = 1e3 * step_s
    return {f"env: {N} worlds stepped": env_ms,
            f"rebirths: {R} fresh worlds on the {100 * deaths:.1f}% of steps with a death": reset_ms,
            "model: forward + backward over the window, acting, bookkeeping (the rest)":
                total - env_ms - reset_ms - adam_ms,
            "optimizer: Adam on the flat parameters, slot by slot": adam_ms}


def births() -> dict:
    """Seconds to bear a tiny body (A), the same body with another objective mix (B) and a population of 4
    of A: the first time each (what compiling costs after what came before) and again."""
    a = train.Config.of(d_model=32, n_heads=2, layers=1, slots=2, window=4, gif_steps=0)
    b = a.replace(objective=("forward_dynamics", "inverse_dynamics"))
    out = {}
    for name, bear in (("A", lambda k: life.born(a.life, k)), ("B", lambda k: life.born(b.life, k)),
                       ("A_population_4", lambda k: population.born_population(a.life, jax.random.split(k, 4)))):
        for when, seed in (("first", 0), ("again", 1)):
            t = time.perf_counter()
            jax.block_until_ready(bear(jax.random.PRNGKey(seed)))
            out[f"{name}_{when}_s"] = round(time.perf_counter() - t, 2)
            print(f"{name}, {when}: {out[f'{name}_{when}_s']} s", flush=True)
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main(tyro.cli(Bench))
