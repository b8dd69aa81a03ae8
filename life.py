"""The organism and its life: birth, one pure step of life, ``live`` (a chunk of steps).

One step: act from the newest frame -> Craftax step -> on death, a new world -> push the transition into
the short-term window -> one forward/backward pass over every layout instance in the window, which scores
the newest transition before learning from it (prequential), gives the curiosity signal that becomes the
reward, and the features and logits to act from next -> one Adam update of the model (``optim.py``) and,
with ``--learner stream``, one update of its actor and critic (``learner.py``). With ``--memory``, the last
K memory writes are recomputed first (truncated backprop, ``memory.read_rows``) and every sequence reads
them. Craftax's reward reaches no model and no curiosity: it is logged, and is the reward only of the oracle
control; the reward the window holds, and the objectives that name one predict, is the animal's own.

A step is two pure halves, ``act`` (policy + world) and ``learn`` (window + update), with the rebirth in
between. A single life is reborn with ``lax.cond`` (a new world is built only on death); a population
(``population.py``) runs the same two halves under ``vmap`` with its own rebirth between them. Every
function here takes a ``Life``: what an organism's computation depends on, and nothing else, so runs that
differ only in their length, seeds, files, evolution or growth share compiled code.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import equinox as eqx
import jax
import jax.numpy as jnp

import curiosity as C
import instincts
import learner
import memory as mem
import objectives as O
import optim
import targets
import world
from instincts import Instincts
from learner import Learning
from memory import Mind
from model import ActorCritic, Body, Model, Obs, n_patches


@dataclass(frozen=True)
class Life:
    """The settings one organism's life computes from: its body, its learning, its mind (sizes worked out)."""

    body: Body
    learning: Learning
    mind: Mind

    @property
    def spec(self) -> world.EnvSpec:
        return world.env_spec(self.body.world)

    @property
    def objectives(self) -> tuple[str, ...]:
        return self.learning.objectives

    @cached_property
    def batch(self) -> O.Batch:
        """Every objective's instances in the window, as one batch (static: built once, at trace time)."""
        m = self.mind
        return O.make_batch(self.objectives, m.window, n_patches(self.spec, self.body.patch), memory=m.memory,
                            think=m.think, recurrent=m.think_mode == "recurrent")

    @property
    def curiosity(self) -> C.Curiosity:
        return C.CURIOSITIES[self.learning.curiosity]

    @property
    def stream(self) -> bool:
        """An actor and a critic of their own on the model's features (``--learner stream``)."""
        return self.learning.learner == "stream"

    @property
    def through_body(self) -> bool:
        """Stream AC(lambda) through the transformer itself (``--learner body``)."""
        return self.learning.learner == "body"

    @property
    def reads_features(self) -> bool:
        """Whether anything reads the standardised prefix outputs (ICM's ``z`` layouts, E3B, the stream
        learner): only then does a step keep their running statistics (the others skip the work)."""
        return self.curiosity.features or self.stream or any(p.latent for p in self.batch.plans)

    @property
    def ac_reads(self) -> tuple[bool, bool]:
        """What the stream learner's actor and critic read: (the model's features, the observation itself)."""
        a = self.learning.ac_input
        return a != "observation", a != "features"

    def ac_fan_in(self) -> int:
        feats, raw = self.ac_reads
        return feats * (n_patches(self.spec, self.body.patch) + 1) * self.body.d_model + \
            raw * learner.observation_size(self.spec)


class Tally(eqx.Module):
    """Running totals over the whole life (they live in the checkpoint)."""

    episodes: jax.Array
    length_sum: jax.Array
    length_sq: jax.Array  # sum of squared episode lengths (a survival fitness's sampling error: evolve.noise)
    achievements: jax.Array  # [n_achievements] episodes in which each was unlocked
    action_counts: jax.Array  # [A] actions taken so far (the online majority baseline)
    reward_sum: jax.Array  # the animal's own reward so far (the reward objectives' online mean baseline)
    steps: jax.Array
    scores: dict  # "objective/score", "objective/score/baseline": sums over the newest instance of each step;
    # "objective/n": how many counted; "objective/surprise": its -log p (nats), scored before learning
    surprise_sq: dict  # objective -> sum of the squared surprise of its counted newest instances (evolve.noise)
    shared_rebirths: jax.Array  # rebirths into a world another organism was reborn into on the same step
    asleep: jax.Array  # steps whose action the game overrode (asleep; resting in full Craftax)


class Organism(eqx.Module):
    model: Model
    opt_state: optim.Opt
    window: O.Window
    now: Obs  # what it sees now, with its senses
    logits: jax.Array  # its policy on ``now``, from the last forward pass
    life: jax.Array  # steps in the current life (episode)
    ret: jax.Array  # running discounted return of its reward, and its running moments (Burda et al. 2018)
    ret_moments: jax.Array  # [count, mean, var], from a prior of one sample of variance 1 (no 1/0 on step one)
    last_surprise: jax.Array  # [surprise, valid] of the newest instance last step (for learning progress)
    episodic: jax.Array  # this life's memory of its curiosity: view counts, C^-1 (e3b), or empty (curiosity.py)
    features: jax.Array  # [2, P+1, d] running mean and variance of the prefix outputs (curiosity.standardise)
    tally: Tally
    instincts: Instincts  # the numbers of its learner that evolution may shape (instincts.py): its flags, or evolved
    ent_coef: jax.Array  # the entropy coefficient now (--ent-coef; adapted when its entropy target is not 0)
    memory: jax.Array | None = None  # [M, d] what ``now`` reads from memory (memory.py); None: no memory
    delay: Obs | None = None  # [D] the last --recall-delay frames: the recall probe's delay line (its loss reads it)
    traces: ActorCritic | learner.AdamTraces | learner.BodyTraces | None = None  # the stream learner's eligibility
    # traces: shaped like ``model.ac`` (with Adam's moments: --ac-step adam), or over the whole model (--learner body)
    memory_trace: jax.Array | None = None  # [M, d, d+1] how its memory depends on the write gate (--rtrl; memory.py)
    obs_stats: jax.Array | None = None  # [2, 1, K] running mean and variance of the observation vector (--ac-input)


class Act(eqx.Module):
    """What one action did: the world before any rebirth, and the key a rebirth would use."""

    action: jax.Array  # the action that ran: the policy's, or noop where the game overrode it (asleep)
    logp: jax.Array  # log-prob of the policy's sampled action
    next_obs: jax.Array  # what came of it (the last frame of a life if ``done``)
    last_state: object
    reward: jax.Array
    done: jax.Array
    reset_key: jax.Array
    chosen: jax.Array  # False when the game overrode the action (asleep, or resting in full Craftax: noop instead)


class Record(eqx.Module):
    """One step of a life, as the host logs it (each field gains a leading [steps] axis in a chunk)."""

    losses: dict  # objective -> its loss on the window ("policy": the window learner's)
    scores: dict  # "objective/score", ".../baseline", "objective/surprise": the newest instance's (NaN if it
    # did not count), and "objective/n": whether it counted
    signal: jax.Array  # the curiosity signal (or the oracle's reward), before normalising
    rint: jax.Array  # the reward the learner got: the signal over the running std of its return
    entropy: jax.Array  # of the policy
    adv: jax.Array  # mean |advantage| (window) or |TD error| (stream)
    value_err: jax.Array  # the critic's squared error
    reward: jax.Array  # Craftax's reward (logged; learned from only by the oracle control)
    done: jax.Array
    episode_length: jax.Array  # the life's length if it ended on this step, else 0
    unlocked: jax.Array  # kinds of achievement unlocked so far
    achieved: jax.Array  # [n_achievements] what the life that ended on this step unlocked (zeros if none ended)
    finite: jax.Array  # the loss was finite
    ent_coef: jax.Array  # the entropy coefficient after this step (--ent-coef; --entropy-target adapts it)


def observe(spec: world.EnvSpec, obs, state, age) -> Obs:
    tok = world.tokenize(spec, obs)
    return Obs(block=tok.get("block"), item=tok.get("item"), mob=tok.get("mob"), status=tok.get("status"),
               image=tok.get("image"), pos=state.player_position.astype(jnp.float32),
               age=jnp.asarray(age, jnp.float32))


def score_keys(plan: O.Plan, spec: world.EnvSpec) -> tuple[str, ...]:
    """What the tally sums for one objective: how many instances were scored, their surprise, the surprise on
    the data it already learned from (``seen_surprise``), each score and its baseline (targets.py names them)."""
    kinds = {s.kind for s in plan.segments if s.target}
    extras = [e for k in targets.KINDS.values() if k.letter in kinds and k.predicted for e in k.extras]
    return ("n", "surprise", "seen_surprise", *[k for sc in targets.scores(kinds, spec.image is not None)
                                                for k in (sc.name, f"{sc.name}/{sc.baseline}")], *extras)


# ----------------------------------------------------------------------------- birth


def new_model(cfg: Life, key) -> Model:
    """Fresh weights for the body ``cfg`` describes."""
    b, lrn = cfg.body, cfg.learning
    return Model(cfg.spec, d=b.d_model, n_heads=b.n_heads, layers=b.layers, slots=b.slots, mlp_ratio=b.mlp_ratio,
                 patch=b.patch, cell_dim=b.cell_dim, key=key, memory=cfg.mind.memory, think=cfg.mind.think,
                 ac_hidden=lrn.ac_hidden if cfg.stream else 0, ac_depth=lrn.ac_depth, ac_fan_in=cfg.ac_fan_in(),
                 write_bias=cfg.mind.write_bias, **targets.model_kinds())


def new_world(cfg: Life, key):
    """A new Craftax world (its env state): one program per game, whatever the body."""
    return world_of(cfg.body.world, key)


@eqx.filter_jit
def world_of(name: str, key):
    env, params = world.make_env(name)
    return world.reset(env, params, key)[1]


@eqx.filter_jit
def new_organism(cfg: Life, model: Model, env_state) -> Organism:
    """An organism with the given ``model`` (from anywhere: fresh, or assembled from a gene pool), a fresh
    optimizer, an empty window and zero age, seeing ``env_state``."""
    spec, m, d = cfg.spec, cfg.mind, cfg.body.d_model
    env, _ = world.make_env(cfg.body.world)
    now = observe(spec, env.get_obs(env_state), env_state, 0.0)
    T = m.window
    empty = jax.tree.map(lambda x: jnp.zeros((T, *x.shape), x.dtype), now)
    recall = "recall" in cfg.objectives
    win = O.Window(obs=empty, next_obs=empty, action=jnp.zeros(T, jnp.int32), logp=jnp.zeros(T),
                   rint=jnp.zeros(T), done=jnp.zeros(T, bool), valid=jnp.zeros(T, bool),
                   chosen=jnp.zeros(T, bool), memory=jnp.zeros((T, m.memory, d)) if m.memory else None,
                   memory_trace=jnp.zeros((T, m.memory, d, d + 1)) if m.rtrl else None,
                   recall=empty if recall else None, recall_ok=jnp.zeros(T, bool) if recall else None,
                   recall_delay=jnp.zeros(T, jnp.int32) if recall else None)
    z = jnp.zeros((), jnp.float32)
    scores = {f"{name}/{k}": z for name, plan in zip(cfg.objectives, cfg.batch.plans) for k in score_keys(plan, spec)}
    tally = Tally(episodes=z, length_sum=z, length_sq=z, achievements=jnp.zeros(len(spec.achievements)),
                  action_counts=jnp.zeros(spec.n_actions), reward_sum=z, steps=z, scores=scores,
                  surprise_sq={name: z for name in cfg.objectives}, shared_rebirths=z, asleep=z)
    delay = jax.tree.map(lambda x: jnp.zeros((m.recall_delay, *x.shape), x.dtype), now) if recall else None
    return Organism(model=model, opt_state=optim.init(model, cfg.learning.lr), window=win, now=now,
                    logits=jnp.zeros(spec.n_actions), life=jnp.zeros((), jnp.int32), ret=z,
                    ret_moments=jnp.array([1.0, 0.0, 1.0]), last_surprise=jnp.zeros(2),
                    episodic=cfg.curiosity.memory(d),
                    features=C.new_feature_stats(n_patches(spec, cfg.body.patch) + 1, d),
                    tally=tally, instincts=instincts.of_flags(cfg.learning),
                    ent_coef=jnp.asarray(cfg.learning.ent_coef, jnp.float32),
                    memory=mem.blank(m.memory, d) if m.memory else None, delay=delay,
                    traces=learner.zeros_like(model.ac, cfg.learning.ac_step == "adam") if model.ac is not None else
                    learner.body_traces(model) if cfg.through_body else None,
                    memory_trace=mem.blank_trace(m.memory, d) if m.rtrl else None,
                    obs_stats=C.new_feature_stats(1, learner.observation_size(spec))
                    if cfg.stream and cfg.ac_reads[1] else None)


def born(cfg: Life, key) -> tuple[Organism, object]:
    """A new organism (fresh weights) in a new world: (organism, env_state).

    Three programs, each compiled once for everything that shares it: the weights op by op (each random
    draw is a small program that every body with a leaf of that shape reuses, in this process and through
    the compilation cache), the world (one per game) and the organism around them. One program for all of
    it compiled its ~50 random draws (~200 threefry hashes) anew for every configuration, ~30 s on a
    2-core CPU each time (``bench.py --births``, docs/speed.md)."""
    k_model, k_world = jax.random.split(key)
    env_state = new_world(cfg, k_world)
    return new_organism(cfg, new_model(cfg, k_model), env_state), env_state


# ----------------------------------------------------------------------------- one step of life


def prior_of(t: Tally) -> targets.Prior:
    """The online baselines of a life so far: its most frequent action, its mean reward."""
    return targets.Prior(majority=jnp.argmax(t.action_counts), mean_reward=t.reward_sum / jnp.maximum(t.steps, 1))


class Outcome(eqx.Module):
    """What one forward pass gives besides the loss (none of it carries gradient)."""

    losses: dict  # objective -> its weighted loss term's loss
    scores: dict  # "objective/..." of the newest instance (see Record)
    signal: jax.Array  # the curiosity signal of this step
    rint: jax.Array  # the window's rewards, the newest set from ``signal``
    newest_surprise: jax.Array  # [surprise, counted] of the curious objective's newest instance
    episodic: jax.Array  # the curiosity's memory after this step
    z_now: jax.Array  # the prefix output of now as it is (the running feature statistics take it in)
    features: jax.Array  # [2, (P+1) d]: the standardised features of s_t and s_t+1 (the stream learner reads them)
    logits: jax.Array  # the window learner's policy on now (the stream learner's comes after its update)
    entropy: jax.Array
    adv: jax.Array
    value_err: jax.Array
    memory_now: jax.Array | None  # what now reads from memory
    memory_policy: jax.Array | None  # [2, M, d] what s_t and now read (the stream learner through the body)
    trace_now: jax.Array | None  # its RTRL trace (--rtrl; memory.trace_step)


def world_model_loss(model: Model, cfg: Life, win: O.Window, now: Obs, prior: targets.Prior, features=None):
    """The objectives' weighted loss, from one shared forward pass: (total, losses, scores, seen, surprises,
    (the memory each row reads, its RTRL trace)).

    ``scores`` are each objective's on its newest instance (the one that ends with the newest transition,
    scored before the model learns from it: prequential); ``surprises``: objective -> (surprise, counted) of
    every instance.
    """
    batch = cfg.batch
    rows, trace = mem.read_rows(model, win, cfg.mind) if batch.memory else (None, None)  # truncated backprop
    seen = O.forward(model, batch, win, now, features, rows)  # [B, N, d]
    total, losses, scores, surprises = 0.0, {}, {}, {}
    for name, plan, span, w in zip(cfg.objectives, batch.plans, batch.ranges, cfg.learning.loss_weights):
        st = O.starts(plan, cfg.mind.window)
        out = targets.target_loss(model, plan, seen, span, win, st, prior)
        ok = O.instance_valid(plan, win, st)
        loss = jnp.sum(jnp.where(ok, out["loss"], 0.0)) / jnp.maximum(ok.sum(), 1)
        total = total + w * loss
        losses[name] = loss
        scores[f"{name}/n"] = ok[-1].astype(jnp.float32)
        scores.update({f"{name}/{k}": jax.lax.stop_gradient(v[-1]) for k, v in out.items() if k != "loss"})
        # the window's older instances, which the model has already learned from: its surprise on training data
        # (beside the newest's, on data it has not learned from, the gap says how much it overfits); the newest's
        # when no older instance counted
        old, s_ = ok[:-1], jax.lax.stop_gradient(out["surprise"])
        scores[f"{name}/seen_surprise"] = jnp.where(old.any(), jnp.sum(jnp.where(old, s_[:-1], 0.0))
                                                    / jnp.maximum(old.sum(), 1), s_[-1])
        surprises[name] = (jax.lax.stop_gradient(out["surprise"]), ok)
    return total, losses, scores, seen, surprises, (rows, trace)


def loss_fn(model: Model, cfg: Life, win: O.Window, now: Obs, prior: targets.Prior, rint_scale, last_surprise,
            episodic, features, inst: Instincts, ent_coef, extrinsic) -> tuple[jax.Array, Outcome]:
    """World-model loss (+ the window learner's actor-critic loss, with the organism's gamma, lambda and entropy
    coefficient) on the curiosity signal. ``extrinsic``: Craftax's reward of the newest step, which only the
    oracle control's signal reads."""
    total, losses, scores, seen, surprises, (rows, trace) = world_model_loss(model, cfg, win, now, prior, features)
    surprise, ok = surprises[cfg.learning.curious]
    d = cfg.body.d_model
    step = C.Step(spec=model.spec, win=win, surprise=surprise, ok=ok, last_surprise=last_surprise, episodic=episodic,
                  phi=jax.lax.stop_gradient(seen.z[-1, -1]) / jnp.sqrt(d), instincts=inst,
                  extrinsic=extrinsic if cfg.curiosity.control else None)
    signal, episodic, row = cfg.curiosity.signal(step)
    rint = win.rint.at[row].set(signal * rint_scale)
    if row == -2:  # paid to the step before: the newest is paid next step
        rint = rint.at[-1].set(0.0)
    lrn = cfg.learning
    if lrn.learner != "window":  # the actor-critic learns apart (learner.update, learner.body_update)
        ac, stats = 0.0, dict(logits=jnp.zeros(model.spec.n_actions), entropy=0.0, adv=0.0, value_err=0.0)
    else:
        batch = cfg.batch
        ac, stats = learner.actor_critic_loss(model, seen.h[batch.policy_rows, batch.readout], win, rint,
                                              gamma=inst.gamma, lam=inst.lam, clip=lrn.clip, ent_coef=ent_coef,
                                              value_coef=lrn.value_coef)
        stats = {k: stats[k] for k in ("logits", "entropy", "adv", "value_err")}
        losses["policy"] = ac
    newest = jnp.stack([surprise[-1], ok[-1].astype(jnp.float32)])
    out = Outcome(losses=losses, scores=scores, signal=signal, rint=rint, newest_surprise=newest, episodic=episodic,
                  z_now=jax.lax.stop_gradient(seen.z_now), features=jax.lax.stop_gradient(seen.z[-2:]).reshape(2, -1),
                  memory_now=None if rows is None else jax.lax.stop_gradient(rows[-1]), trace_now=trace,
                  memory_policy=None if rows is None else jax.lax.stop_gradient(rows[-2:]),
                  **{k: jnp.asarray(v, jnp.float32) for k, v in stats.items()})
    return total + ac, out


def overridden(env_state) -> jax.Array:
    """Whether Craftax will step ``noop`` whatever action is chosen (asleep; resting in full Craftax)."""
    return jnp.logical_or(env_state.is_sleeping, getattr(env_state, "is_resting", False))


def act(cfg: Life, org: Organism | None, env_state, key) -> Act:
    """Sample an action from the policy (or at random) and step the world, without rebirth."""
    env, params = world.make_env(cfg.body.world)
    k_act, k_env = jax.random.split(key)
    if cfg.learning.policy == "random":
        action = jax.random.randint(k_act, (), 0, cfg.spec.n_actions)
        logp = -jnp.log(float(cfg.spec.n_actions))
    else:
        action = jax.random.categorical(k_act, org.logits)
        logp = jax.nn.log_softmax(org.logits)[action]
    k_step, k_reset = jax.random.split(k_env)
    chosen = ~overridden(env_state)
    ran = jnp.where(chosen, action, world.NOOP)  # what the game steps: noop while asleep, whatever was sampled
    next_obs, last_state, reward, done = world.advance(env, params, env_state, ran, k_step)
    return Act(action=ran, logp=jnp.asarray(logp, jnp.float32), next_obs=next_obs, last_state=last_state,
               reward=reward, done=done, reset_key=k_reset, chosen=chosen)


def perceive(cfg: Life, org: Organism, a: Act, obs, env_state) -> tuple[O.Window, Obs, Obs | None]:
    """The window with the new transition pushed in, what the organism sees now (one step older), and the
    recall probe's delay line (None without the probe)."""
    age = org.now.age + 1
    seen = observe(cfg.spec, a.next_obs, a.last_state, age)
    now = observe(cfg.spec, obs, env_state, age)
    recall = recall_ok = delay = asked = None
    if org.delay is not None:  # the frame seen `asked` steps before the one leaving for the window (memory.py)
        asked = mem.recall_delay(cfg.mind, org.now.age)
        recall = jax.tree.map(lambda x: x[cfg.mind.recall_delay - asked], org.delay)
        recall_ok = org.life >= asked
        delay = jax.tree.map(lambda d, x: jnp.concatenate([d[1:], x[None]]), org.delay, org.now)
    win = org.window.push(obs=org.now, next_obs=seen, action=a.action.astype(jnp.int32), logp=a.logp,
                          rint=jnp.zeros(()), done=a.done, valid=jnp.array(True), chosen=a.chosen,
                          memory=org.memory, memory_trace=org.memory_trace, recall=recall, recall_ok=recall_ok,
                          recall_delay=asked)
    return win, now, delay


def ac_inputs(cfg: Life, features, seen: Obs, now: Obs, stats):
    """What the stream learner's actor and critic read of s_t (the newest window row) and s_t+1 (now): the
    model's standardised features, the observation standardised by its running statistics (updated with
    s_t+1's, after use), or both side by side. (phi, phi_next, the statistics after this step)"""
    feats, raw = cfg.ac_reads
    parts = [features] if feats else []
    if raw:
        x = jnp.stack([learner.observation_vector(cfg.spec, jax.tree.map(lambda o: o[-1], seen)),
                       learner.observation_vector(cfg.spec, now)])
        parts.append(C.standardise(x[:, None], stats)[:, 0])
        stats = C.update_feature_stats(stats, x[1:], now.age)
    phi = jnp.concatenate(parts, -1)
    return phi[0], phi[1], stats


class Learned(eqx.Module):
    """What one step of the stream learner gives back (``stream_step``)."""

    change: tuple | None  # through the body: every weight's change, laid out as optim.flatten lays it (or None)
    ac: ActorCritic | None  # apart: its actor and critic after the step (or None)
    traces: ActorCritic | learner.AdamTraces | learner.BodyTraces
    obs_stats: jax.Array | None
    update: learner.Update
    logits: jax.Array  # the policy on s_t+1, which the animal acts from next


def stream_step(cfg: Life, org: Organism, out: Outcome, a: Act, win: O.Window, now: Obs, reward) -> Learned | None:
    """The stream learner's step on the transition (s_t, the newest window row; s_t+1, now), on the model as it
    was this step: through the body (``learner.body_update``: a change of every weight, which the model's update
    adds to Adam's step) or apart (``learner.update``: its own actor and critic). None for the window learner,
    whose loss is the model's own."""
    lrn, inst, coef = cfg.learning, org.instincts, org.ent_coef  # the learner's numbers are the organism's
    if cfg.through_body:
        states = jax.tree.map(lambda w, n: jnp.stack([w[-1], n]), win.obs, now)
        change, traces, u, logits = learner.body_update(
            org.model, org.traces, lambda m: O.readout(m, cfg.batch, states, out.memory_policy), a.action, reward,
            a.done, a.chosen, gamma=inst.gamma, lam=inst.lam, lr=inst.ac_lr, kappa_actor=lrn.kappa_policy,
            kappa_critic=lrn.kappa_value, ent_coef=coef, rule=lrn.ac_step, eta_actor=lrn.eta_policy,
            eta_critic=lrn.eta_value, adam_lr=lrn.adam_lr)
        return Learned(change, None, traces, org.obs_stats, u, logits)
    if cfg.stream:
        phi, phi_next, obs_stats = ac_inputs(cfg, out.features, win.obs, now, org.obs_stats)
        ac, traces, u = learner.update(org.model.ac, org.traces, phi, phi_next, a.action, reward, a.done, a.chosen,
                                       gamma=inst.gamma, lam=inst.lam, lr=inst.ac_lr, kappa_actor=lrn.kappa_policy,
                                       kappa_critic=lrn.kappa_value, ent_coef=coef, adam_lr=lrn.adam_lr)
        return Learned(None, ac, traces, obs_stats, u, ac.logits(phi_next))
    return None


def learn(cfg: Life, org: Organism, a: Act, obs, env_state, shared=False) -> tuple[Organism, Record]:
    """One step of learning, in five phases: perceive (the transition pushed into the window), the world model's
    loss and the curiosity's signal, the stream learner's step, the model's update, the tallies. ``obs`` and
    ``env_state``: the world to act in next (a new one if ``a.done``). Pure: returns the new organism and this
    step's record."""
    lrn, t, inst, coef = cfg.learning, org.tally, org.instincts, org.ent_coef
    win, now, delay = perceive(cfg, org, a, obs, env_state)

    scale = learner.reward_scale(org.ret_moments)  # the reward normaliser: r / std(discounted return)
    features = org.features if cfg.reads_features else None
    (loss, out), grads = eqx.filter_value_and_grad(loss_fn, has_aux=True)(
        org.model, cfg, win, now, prior_of(t), scale, org.last_surprise, org.episodic, features, inst, coef, a.reward)
    if features is not None:
        features = C.update_feature_stats(features, out.z_now, now.age)
    reward = out.signal * scale  # what the learner gets (learning progress: the step before's, one step late)

    step = stream_step(cfg, org, out, a, win, now, reward)
    finite = jnp.isfinite(loss)  # the host stops the run at the first non-finite loss, and says so
    traces, obs_stats = org.traces, org.obs_stats
    if step is not None:
        u, traces, obs_stats = step.update, step.traces, step.obs_stats
        out = eqx.tree_at(lambda o: (o.logits, o.entropy, o.adv, o.value_err), out,
                          (step.logits, u.entropy, jnp.abs(u.delta), u.delta**2))
        finite = finite & jnp.isfinite(u.delta)

    model, opt_state = optim.update(org.model, grads, org.opt_state, lr=inst.lr, max_grad_norm=lrn.max_grad_norm,
                                     gate_lr=lrn.gate_lr, extra=None if step is None else step.change)
    if step is not None and step.ac is not None:  # the actor and critic apart are not Adam's
        model = eqx.tree_at(lambda m: m.ac, model, step.ac)
    if lrn.policy == "learned":  # an entropy target of 0 leaves the coefficient where it is
        coef = jnp.where(inst.entropy_target > 0, learner.adapt_entropy_coef(coef, out.entropy, inst.entropy_target),
                         coef)
    done = a.done
    ret = org.ret * inst.gamma * (1 - done) + out.signal
    moments = learner.update_return_moments(org.ret_moments, ret)

    # prequential scores of the newest instances, beside their baselines
    sums, scores = dict(t.scores), {}
    for k in sums:
        n = out.scores[k.split("/")[0] + "/n"]
        v = n if k.endswith("/n") else out.scores[k]
        sums[k] = sums[k] + jnp.where(n > 0, v, 0.0)
        scores[k] = n if k.endswith("/n") else jnp.where(n > 0, v, jnp.nan)
    life = org.life + 1
    tally = Tally(
        episodes=t.episodes + done, length_sum=t.length_sum + done * life, length_sq=t.length_sq + done * life**2,
        achievements=t.achievements + done * a.last_state.achievements,
        action_counts=t.action_counts.at[a.action].add(1.0), reward_sum=t.reward_sum + reward, steps=t.steps + 1,
        scores=sums, surprise_sq={k: q + jnp.where(out.scores[f"{k}/n"] > 0, out.scores[f"{k}/surprise"]**2, 0.0)
                                  for k, q in t.surprise_sq.items()},
        shared_rebirths=t.shared_rebirths + shared, asleep=t.asleep + ~a.chosen)
    org = Organism(model=model, opt_state=opt_state, window=eqx.tree_at(lambda w: w.rint, win, out.rint), now=now,
                   logits=jax.lax.stop_gradient(out.logits), life=jnp.where(done, 0, life), ret=ret,
                   ret_moments=moments, last_surprise=out.newest_surprise,
                   episodic=out.episodic, features=org.features if features is None else features,
                   tally=tally, instincts=inst, ent_coef=coef, memory=out.memory_now, delay=delay, traces=traces,
                   memory_trace=out.trace_now, obs_stats=obs_stats)
    return org, Record(losses=out.losses, scores=scores, signal=out.signal, rint=reward,
                       entropy=out.entropy, adv=out.adv, value_err=out.value_err, reward=a.reward, done=done,
                       episode_length=jnp.where(done, life, 0), unlocked=(tally.achievements > 0).sum(),
                       achieved=done * a.last_state.achievements.astype(jnp.float32), finite=finite,
                       ent_coef=coef)


def reborn_alone(cfg: Life, a: Act):
    """A single life's rebirth: a new world on death (``lax.cond``: built only then). (obs, env_state)"""
    env, params = world.make_env(cfg.body.world)
    return jax.lax.cond(a.done, lambda: world.reset(env, params, a.reset_key), lambda: (a.next_obs, a.last_state))


def live_step(cfg: Life, org: Organism, env_state, key):
    """One step of one life: act, rebirth on death, learn."""
    a = act(cfg, org, env_state, key)
    obs, env_state = reborn_alone(cfg, a)
    org, record = learn(cfg, org, a, obs, env_state)
    return org, env_state, record


# ----------------------------------------------------------------------------- chunks of life


@eqx.filter_jit
def live(cfg: Life, org: Organism, env_state, key, steps: int):
    """``steps`` steps of one life in one jitted ``lax.scan``: (organism, env_state, records [steps])."""

    def body(carry, k):
        org, env_state = carry
        org, env_state, rec = live_step(cfg, org, env_state, k)
        return (org, env_state), rec

    (org, env_state), records = jax.lax.scan(body, (org, env_state), jax.random.split(key, steps))
    return org, env_state, records
