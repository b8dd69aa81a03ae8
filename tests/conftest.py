"""Shared fixtures: real Craftax, tiny models, one compile per configuration (session scope)."""

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=1")
# compiled programs go to a persistent cache shared by the two test workers and the command lines they start:
# a program one of them compiled is read back, not compiled again (the suite compiles many twice otherwise)
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(ROOT / ".pytest_cache" / "jax"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")

from jaxtyping import install_import_hook  # noqa: E402

# strict shape/type checking of every annotated function in the project, in tests only
with install_import_hook(["world", "genes", "pixels", "model", "objectives", "checkpoint", "report", "life", "train",
                          "compare", "evolve", "develop", "curiosity", "compare_curiosity", "compare_development",
                          "compare_memory", "memory", "targets", "learner", "optim", "population", "plots"],
                         "beartype.beartype"):
    import compare  # noqa: F401,E402
    import develop  # noqa: F401,E402
    import evolve  # noqa: F401,E402
    import life  # noqa: E402
    import objectives  # noqa: F401,E402
    import report  # noqa: F401,E402
    import train  # noqa: F401,E402

import jax  # noqa: E402
import pytest  # noqa: E402


def mappings() -> tuple[int, int]:
    """(memory mappings of this process, the kernel's limit): every compiled executable holds a few."""
    try:
        with open("/proc/self/maps") as f, open("/proc/sys/vm/max_map_count") as g:
            return sum(1 for _ in f), int(g.read())
    except OSError:  # not Linux
        return 0, 1


@pytest.fixture(scope="module", autouse=True)
def compiler_headroom():
    """After each test module, if this process holds more than half the kernel's memory mappings, drop
    jax's compiled executables (later modules recompile what they need). One long suite process compiles
    thousands of executables; near the limit, XLA's next compile crashes (seen as a segfault)."""
    yield
    used, limit = mappings()
    if used > limit // 2:
        import gc

        jax.clear_caches()
        gc.collect()


@pytest.fixture(scope="session")
def transitions():
    """32 real Classic transitions under a random policy, as one big fixed window (T = 32)."""
    return collect("Craftax-Classic-Symbolic-v1", 32, seed=0)


def collect(env_name: str, T: int, seed: int):
    """A Window of T real transitions (random actions) and the current observation after them."""
    import jax.numpy as jnp

    import world

    spec = world.env_spec(env_name)
    env, params = world.make_env(env_name)
    key = jax.random.PRNGKey(seed)
    obs, state = world.reset(env, params, key)
    now = life.observe(spec, obs, state, 0.0)

    @jax.jit
    def run(now, state, key):
        def body(carry, k):
            now, state = carry
            k_a, k_s = jax.random.split(k)
            a = jax.random.randint(k_a, (), 0, spec.n_actions)
            nxt, last, r, done, obs, state = world.step(env, params, state, a, k_s)
            seen = life.observe(spec, nxt, last, now.age + 1)
            new = life.observe(spec, obs, state, now.age + 1)
            return (new, state), (now, seen, a, r, done)

        (now, state), (o, n, a, r, d) = jax.lax.scan(body, (now, state), jax.random.split(key, T))
        return now, o, n, a, r, d

    now, o, n, a, r, d = run(now, state, key)
    win = objectives.Window(obs=o, next_obs=n, action=a.astype(jnp.int32), logp=jnp.full(T, -jnp.log(17.0)),
                            rint=r, done=d, valid=jnp.ones(T, bool))
    return win, now


def tensorboard_scalars(run) -> dict[str, list[tuple[int, float]]]:
    """Read a run's TensorBoard event files back (TFRecord framing, tensorboardX's Event protobuf), as
    TensorBoard draws them (a restart's purge drops the steps after it): tag -> [(step, value)]."""
    import struct

    from tensorboardX.proto import event_pb2

    out = {}
    for path in sorted(run.glob("events.out.tfevents.*")):
        data, i = path.read_bytes(), 0
        while i < len(data):
            n = struct.unpack("<Q", data[i:i + 8])[0]
            event = event_pb2.Event.FromString(data[i + 12:i + 12 + n])
            i += 12 + n + 4  # length, its crc, the record, its crc
            if event.session_log.status == event.session_log.START:  # a resumed run's purge of later steps
                out = {k: [(st, v) for st, v in vs if st < event.step] for k, vs in out.items()}
            for v in event.summary.value:
                out.setdefault(v.tag, []).append((event.step, v.simple_value))
    return out
