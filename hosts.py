"""The processes of a run: JAX's distributed runtime (multi-controller: one process per host, or per GPU).

``python train.py --processes 2 --process-id i --coordinator HOST:PORT`` on each of two processes (or
``--processes 0`` where the cluster says, Slurm, Open MPI or Kubernetes): the population is cut into equal
slices, one per process (``mine``), each lived as ``population.live_threads`` lives a slice; nothing crosses
processes inside a chunk. Between chunks the host gathers what it logs, checkpoints or selects on
(``gather``), so every process sees the whole population and draws the same next generation; process 0
alone writes the run directory.

JAX must join before any array exists, and Craftax makes arrays when it is imported, so ``train.py`` joins
(``join_from``) before it imports the rest of the project. This file imports only jax and equinox.
"""

from __future__ import annotations

import itertools
import json
import os
import socket
import time
from pathlib import Path

import equinox as eqx
import jax

FLAGS = {"--processes": 1, "--process-id": 0, "--coordinator": "", "--join-timeout": 120, "--population": 1,
         "--run-dir": ""}  # train.Run's defaults


def join_from(argv: list[str]) -> None:
    """``join`` with the flags of a command line (the rest of it is tyro's), before Craftax is imported; a
    population the processes cannot share is refused here, before any process waits for the others."""
    if "-h" in argv or "--help" in argv:
        return
    got = dict(FLAGS)
    for i, a in enumerate(argv):
        name, eq, value = a.partition("=")
        if name in got and (eq or i + 1 < len(argv)):
            value = value if eq else argv[i + 1]
            try:
                got[name] = type(FLAGS[name])(value)
            except ValueError:
                return  # not a number: tyro says so, in one line
    population = got["--population"]
    saved = Path(got["--run-dir"]) / "config.json"
    if "--resume" in argv and "--population" not in argv and saved.exists():
        try:
            population = json.loads(saved.read_text())["run"]["population"]
        except (ValueError, KeyError, TypeError):
            return  # train.py says what is wrong with it
    join(got["--processes"], got["--process-id"], got["--coordinator"], got["--join-timeout"], population)


def check(processes: int, process_id: int, timeout: float, population: int | None = None) -> None:
    """One line for flags no process could join with (``train.Run.check`` asks too)."""
    for ok, msg in [
        (processes >= 0, f"--processes cannot be negative, got {processes}"),
        (processes == 0 or 0 <= process_id < processes,
         f"--process-id must name one of the {processes} processes (0 to {processes - 1}), got {process_id}"),
        (population is None or processes == 0 or population % processes == 0,
         f"--processes ({processes}) must divide --population ({population})"),
        (timeout > 0, f"--join-timeout must be positive, got {timeout}"),
    ]:
        if not ok:
            raise ValueError(msg)


def join(processes: int, process_id: int, coordinator: str, timeout: float, population: int | None = None) -> None:
    """Join JAX's distributed runtime as process ``process_id`` of ``processes`` (1: nothing to join; 0: as the
    cluster says, JAX finding the coordinator, the count and the id itself). Joining twice is joining once.

    Every process first meets process 0 at ``coordinator`` (HOST:PORT, or ``$JAX_COORDINATOR_ADDRESS``) in
    ``rendezvous``: JAX's runtime aborts a process that cannot reach its coordinator, so a coordinator nobody
    reaches, or a process that never comes, is a one-line error after ``timeout`` seconds here instead.
    A process that falls silent once running stops the others after ``timeout`` seconds (JAX's heartbeat).
    """
    check(processes, process_id, timeout, population)
    if processes == 1 or jax.distributed.is_initialized():
        return
    from jax._src import xla_bridge

    if xla_bridge.backends_are_initialized():
        raise ValueError(f"--processes {processes}: JAX must join its distributed runtime before any array exists; "
                         "give the flags on train.py's command line (it joins before importing Craftax)")
    jax.config.update("jax_cpu_collectives_implementation", "gloo")  # CPU processes exchange through gloo
    if processes == 0:
        jax.distributed.initialize(initialization_timeout=int(timeout), heartbeat_timeout_seconds=int(timeout))
        return
    coordinator = coordinator or os.environ.get("JAX_COORDINATOR_ADDRESS", "")
    if not coordinator:
        raise ValueError(f"--processes {processes} needs --coordinator HOST:PORT (or $JAX_COORDINATOR_ADDRESS)")
    rendezvous(coordinator, processes, process_id, timeout)
    jax.distributed.initialize(coordinator, processes, process_id, initialization_timeout=int(timeout),
                               heartbeat_timeout_seconds=int(timeout))


def address(coordinator: str) -> tuple[str, int]:
    host, _, port = coordinator.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"--coordinator must be HOST:PORT, got {coordinator!r}")
    return host, int(port)


def rendezvous(coordinator: str, processes: int, process_id: int, timeout: float) -> None:
    """Process 0 listens at the coordinator's address until the other processes have said who they are; each of
    them knocks until it is let in; all go on together (then the port is JAX's). Raises ``TimeoutError`` with
    one line if that does not happen within ``timeout`` seconds, ``ValueError`` for two processes of one id."""
    host, port = address(coordinator)
    deadline = time.monotonic() + timeout
    if process_id == 0:
        try:
            server = socket.create_server((host, port))
        except OSError as e:
            raise ValueError(f"--coordinator {coordinator}: process 0 cannot listen there "
                             f"({e.strerror or e})") from None
        peers = {}
        with server:
            while len(peers) < processes - 1:
                server.settimeout(max(deadline - time.monotonic(), 0.01))
                try:
                    conn, _ = server.accept()
                except TimeoutError:
                    missing = ", ".join(str(i) for i in sorted(set(range(1, processes)) - set(peers)))
                    raise TimeoutError(f"only {len(peers) + 1} of {processes} processes reached the coordinator at "
                                       f"{coordinator} within {timeout:g} s (missing: {missing})") from None
                conn.settimeout(5)
                try:
                    who = int(conn.recv(16).decode())
                except (OSError, ValueError):  # not one of ours (a probe of the port): ignore it
                    conn.close()
                    continue
                if who in peers:
                    raise ValueError(f"two processes say they are --process-id {who}")
                peers[who] = conn
            for conn in peers.values():
                conn.sendall(b"go")
                conn.close()
        return
    while True:
        try:
            conn = socket.create_connection((host, port), timeout=1)
            break
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"process {process_id} cannot reach the coordinator at {coordinator} (process 0) "
                                   f"within {timeout:g} s") from None
            time.sleep(0.2)
    with conn:
        conn.sendall(str(process_id).encode())
        conn.settimeout(max(deadline - time.monotonic(), 1.0) + timeout)  # the others may still be on their way
        try:
            said = conn.recv(2)
        except TimeoutError:
            said = b""
    if said != b"go":
        raise TimeoutError(f"process {process_id} reached the coordinator at {coordinator}, but the other processes "
                           f"did not all come within {timeout:g} s")


def mine(population: int) -> slice:
    """The organisms this process lives: an equal slice of the population, in process order."""
    n = population // jax.process_count()
    return slice(jax.process_index() * n, (jax.process_index() + 1) * n)


GATHERS = itertools.count()  # this process's gathers so far: the name of the barrier before the next one
BARRIER_S = 3600  # how long a gather waits for a slower (living) process: a dead one stops the run by heartbeat


def gather(tree):
    """Every process's slice of a population's tree (each array leaf with a leading population axis),
    concatenated in organism order, on every process (as numpy); the tree itself in a single process. Every
    process must call it at the same point (it is a collective).

    The processes first meet at a barrier of the coordination service: gloo gives up on a collective that
    one process reaches 30 s after another (one still compiling, or living a slower slice), a barrier waits."""
    if jax.process_count() == 1:
        return tree
    from jax._src import distributed
    from jax.experimental import multihost_utils

    distributed.global_state.client.wait_at_barrier(f"gather-{next(GATHERS)}", BARRIER_S * 1000)
    arrays, rest = eqx.partition(tree, eqx.is_array)
    return eqx.combine(multihost_utils.process_allgather(arrays, tiled=True), rest)
