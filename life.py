"""The organism and its life: birth, one pure step of life, ``live`` (a chunk of steps).

One step: act from the newest frame -> Craftax step -> on death, a new world -> push the transition into
the short-term window -> one forward/backward pass over every layout instance in the window, which scores
the newest transition before learning from it (prequential), gives the curiosity signal that becomes the
intrinsic reward, and the logits to act from next -> one optax update. With ``--memory``, the last K
memory writes are recomputed first (truncated backprop, ``memory.read_rows``) and every sequence reads
them. The extrinsic reward is never a reward: it is logged, and sensed like any observation by the
objectives that predict it.

A step is two pure halves, ``act`` (policy + world) and ``learn`` (window + update), with the rebirth in
between. A single life is reborn with ``lax.cond`` (a new world is built only on death); a population
(``population.py``) runs the same two halves under ``vmap`` with its own rebirth between them.

``cfg`` is ``train.Config`` (duck-typed here: this file never imports the entry point).
"""

from __future__ import annotations

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp

import learner
import memory as mem
import novelty
import objectives as O
import optim
import targets
import world
from model import Model, Obs, n_patches

# config fields that do not change what an organism computes: they may differ between a run and its
# resumption, and runs differing only in them share compiled functions
RUN_FIELDS = ("steps", "resume", "run_dir", "checkpoint_every", "gif_steps", "gif_organism")
# config fields of evolution (evolve.py): they decide which lives are lived, not how one is lived
EVOLUTION_FIELDS = ("generations", "pool", "fitness", "inherit", "selection", "mutation", "turnover", "init_from")
# config fields of development (develop.py) that only the host's decisions read
DEVELOPMENT_FIELDS = ("grow", "grow_every", "plateau_span", "plateau_drop", "grow_gap", "grow_depth")


def core(cfg):
    """The config with the fields that do not change a life's computation set to their defaults (runs that
    differ only in them share compiled functions)."""
    free = RUN_FIELDS + EVOLUTION_FIELDS + DEVELOPMENT_FIELDS
    return dataclasses.replace(cfg, **{f.name: f.default for f in dataclasses.fields(cfg) if f.name in free})


def reads_features(cfg, batch: O.Batch) -> bool:
    """Whether anything reads the standardised prefix outputs (ICM's ``z`` layouts, E3B, the stream
    learner): only then does a step keep their running statistics (a static check: the others skip the work)."""
    return cfg.curiosity == "e3b" or cfg.learner == "stream" or any(p.latent for p in batch.plans)


def curious(cfg) -> str:
    """The objective whose surprise (or its drop, for learning progress) is the intrinsic reward."""
    return NEEDS.get(cfg.curiosity, (cfg.objective[0],))[-1]


# the objectives each curiosity brings with it (train.Config adds those missing from --objective)
NEEDS = {"forward": ("forward_dynamics",), "inverse": ("inverse_dynamics",), "rnd": ("rnd",),
         "icm": ("latent_inverse", "latent_forward")}


class Tally(eqx.Module):
    """Running totals over the whole life (they live in the checkpoint)."""

    episodes: jax.Array
    length_sum: jax.Array
    achievements: jax.Array  # [n_achievements] episodes in which each was unlocked
    action_counts: jax.Array  # [A] actions taken so far (the online majority baseline)
    reward_sum: jax.Array  # extrinsic reward so far (the online mean baseline)
    steps: jax.Array
    scores: dict  # "objective/score": sums over the newest instance of each step; "objective/n": how many counted;
    # "objective/surprise": its -log p (nats, up to a constant for continuous targets), scored before learning
    shared_rebirths: jax.Array  # rebirths into a world another organism was reborn into on the same step


class Organism(eqx.Module):
    model: Model
    opt_state: optim.Opt
    window: O.Window
    now: Obs  # what it sees now, with its senses
    logits: jax.Array  # its policy on ``now``, from the last forward pass
    life: jax.Array  # steps in the current life (episode)
    ret: jax.Array  # running discounted intrinsic return, and its running moments (Burda et al. 2018)
    ret_moments: jax.Array  # [count, mean, var], from a prior of one sample of variance 1 (no 1/0 on step one)
    last_surprise: jax.Array  # [surprise, valid] of the newest instance last step (for learning progress)
    episodic: jax.Array  # this life's novelty memory: view counts (count), C^-1 (e3b), or empty (novelty.py)
    features: jax.Array  # [2, P+1, d] running mean and variance of the prefix outputs (novelty.standardise)
    tally: Tally
    memory: jax.Array | None = None  # [M, d] what ``now`` reads from memory (memory.py); None: no memory
    delay: Obs | None = None  # [D] the last --recall-delay frames: the recall probe's delay line (its loss reads it)
    traces: learner.ActorCritic | None = None  # the stream learner's eligibility traces (learner.py)


def observe(spec: world.EnvSpec, obs, state, age) -> Obs:
    tok = world.tokenize(spec, obs)
    return Obs(block=tok.get("block"), item=tok.get("item"), mob=tok.get("mob"), status=tok.get("status"),
               image=tok.get("image"), pos=state.player_position.astype(jnp.float32),
               age=jnp.asarray(age, jnp.float32))


def now_tokens(spec: world.EnvSpec, cfg) -> int:
    return n_patches(spec, cfg.patch) + 1


def batch_for(cfg, spec: world.EnvSpec) -> O.Batch:
    return O.make_batch(cfg.objective, cfg.window, n_patches(spec, cfg.patch), memory=cfg.memory, think=cfg.think,
                        recurrent=cfg.think_mode == "recurrent")


# ----------------------------------------------------------------------------- birth


def new_model(cfg, key) -> Model:
    """Fresh weights for the body the config describes."""
    stream = cfg.learner == "stream"
    return Model(world.env_spec(cfg.world), d=cfg.d_model, n_heads=cfg.n_heads, layers=cfg.layers, slots=cfg.slots,
                 mlp_ratio=cfg.mlp_ratio, patch=cfg.patch, cell_dim=cfg.cell_dim, key=key, memory=cfg.memory,
                 think=cfg.think, ac_hidden=cfg.ac_hidden if stream else 0, ac_depth=cfg.ac_depth)


def new_world(cfg, key):
    """A new Craftax world (its env state)."""
    env, params = world.make_env(cfg.world)
    return world.reset(env, params, key)[1]


def new_organism(cfg, model: Model, env_state) -> Organism:
    """An organism with the given ``model`` (from anywhere: fresh, or assembled from a gene pool), a fresh
    optimizer, an empty window and zero age, seeing ``env_state``."""
    spec = world.env_spec(cfg.world)
    env, _ = world.make_env(cfg.world)
    now = observe(spec, env.get_obs(env_state), env_state, 0.0)
    T = cfg.window
    empty = jax.tree.map(lambda x: jnp.zeros((T, *x.shape), x.dtype), now)
    recall = "recall" in cfg.objective
    win = O.Window(obs=empty, next_obs=empty, action=jnp.zeros(T, jnp.int32), logp=jnp.zeros(T),
                   reward=jnp.zeros(T), rint=jnp.zeros(T), done=jnp.zeros(T, bool), valid=jnp.zeros(T, bool),
                   chosen=jnp.zeros(T, bool),
                   memory=jnp.zeros((T, cfg.memory, cfg.d_model)) if cfg.memory else None,
                   recall=empty if recall else None, recall_ok=jnp.zeros(T, bool) if recall else None)
    z = jnp.zeros((), jnp.float32)
    batch = batch_for(cfg, spec)
    scores = {f"{name}/{k}": z for name, plan in zip(cfg.objective, batch.plans) for k in score_keys(plan, spec)}
    tally = Tally(episodes=z, length_sum=z, achievements=jnp.zeros(len(spec.achievements)),
                  action_counts=jnp.zeros(spec.n_actions), reward_sum=z, steps=z, scores=scores, shared_rebirths=z)
    opt_state = optim.init(model, cfg.lr)
    return Organism(model=model, opt_state=opt_state, window=win, now=now, logits=jnp.zeros(spec.n_actions),
                    life=jnp.zeros((), jnp.int32), ret=z, ret_moments=jnp.array([1.0, 0.0, 1.0]),
                    last_surprise=jnp.zeros(2), episodic=novelty.new_episodic(cfg.curiosity, cfg.d_model),
                    features=novelty.new_feature_stats(now_tokens(spec, cfg), cfg.d_model), tally=tally,
                    memory=mem.blank(cfg.memory, cfg.d_model) if cfg.memory else None,
                    delay=jax.tree.map(lambda x: jnp.zeros((cfg.recall_delay, *x.shape), x.dtype), now)
                    if recall else None, traces=learner.zeros_like(model.ac) if model.ac is not None else None)


def score_keys(plan: O.Plan, spec: world.EnvSpec) -> tuple[str, ...]:
    """What the tally sums for one objective: how many instances were scored, their surprise, each score and
    its baseline (targets.py names them)."""
    kinds = {s.kind for s in plan.segments if s.target}
    return ("n", "surprise", *[k for sc in targets.scores(kinds, spec.image is not None)
                               for k in (sc.name, f"{sc.name}/{sc.baseline}")])


def born(cfg, key) -> tuple[Organism, object]:
    """A new organism (fresh weights) in a new world: (organism, env_state). One jitted call: op by op,
    making the world and the weights took longer than compiling them."""
    world.make_env(cfg.world)  # import Craftax (it makes arrays at import time) outside the trace
    return _born(core(cfg), key)


@eqx.filter_jit
def _born(cfg, key):
    k_model, k_world = jax.random.split(key)
    env_state = new_world(cfg, k_world)
    return new_organism(cfg, new_model(cfg, k_model), env_state), env_state


# ----------------------------------------------------------------------------- one step of life


def world_model_loss(model: Model, cfg, batch: O.Batch, win: O.Window, now: Obs, prior: targets.Prior,
                     features=None):
    """The objectives' weighted loss, from one shared forward pass: (total, aux, seen, surprises).

    aux carries each objective's loss and its scores on its newest instance (the one that ends with the
    newest transition, scored before the model learns from it: prequential).
    """
    rows = mem.read_rows(model, win, cfg.bptt) if batch.memory else None  # truncated backprop through memory
    seen = O.forward(model, batch, win, now, features, rows)  # [B, N, d]
    total, aux, surprises = 0.0, {}, {}
    if rows is not None:
        aux["memory_now"] = jax.lax.stop_gradient(rows[-1])
    for name, plan, rows, w in zip(cfg.objective, batch.plans, batch.ranges, cfg.loss_weights):
        st = O.starts(plan, cfg.window)
        out = targets.target_loss(model, plan, seen, rows, win, st, prior)
        ok = O.instance_valid(plan, win, st)
        loss = jnp.sum(jnp.where(ok, out["loss"], 0.0)) / jnp.maximum(ok.sum(), 1)
        total = total + w * loss
        aux[f"loss/{name}"] = loss
        aux[f"{name}/n"] = ok[-1].astype(jnp.float32)
        aux.update({f"{name}/{k}": jax.lax.stop_gradient(v[-1]) for k, v in out.items() if k not in ("loss",)})
        surprises[name] = (jax.lax.stop_gradient(out["surprise"]), ok)
    return total, aux, seen, surprises


def prior_of(t: Tally) -> targets.Prior:
    """The online baselines of a life so far: its most frequent action, its mean reward."""
    return targets.Prior(majority=jnp.argmax(t.action_counts), mean_reward=t.reward_sum / jnp.maximum(t.steps, 1))


def loss_fn(model: Model, cfg, batch: O.Batch, win: O.Window, now: Obs, prior: targets.Prior, rint_scale,
            last_surprise, episodic, features):
    """World-model loss + actor-critic loss on the curiosity signal; aux has the scores, the signal and the
    episodic memory after this step."""
    total, aux, seen, surprises = world_model_loss(model, cfg, batch, win, now, prior, features)

    # curiosity: which signal becomes the intrinsic reward, and which transition earns it
    surprise, ok = surprises[curious(cfg)]
    newest = jnp.stack([surprise[-1], ok[-1].astype(jnp.float32)])
    memory = episodic
    if cfg.curiosity == "count":  # the newest outcome's view, counted in this life
        signal, memory = novelty.count_bonus(episodic, novelty.view_bucket(model.spec, O.last_outcome(win)),
                                             win.done[-1])
        rint = win.rint.at[-1].set(signal * rint_scale)
    elif cfg.curiosity == "e3b":  # the newest outcome (= now, unless a life ended) in the model's features
        phi = jax.lax.stop_gradient(seen.z[-1, -1]) / jnp.sqrt(cfg.d_model)
        signal, memory = novelty.elliptical_bonus(episodic, phi, win.done[-1])
        rint = win.rint.at[-1].set(signal * rint_scale)
    elif cfg.curiosity == "effects":  # what the newest transition did to the inventory and vitals, counted in this life
        bucket, changed = novelty.effect_bucket(model.spec, jax.tree.map(lambda x: x[-1], win.obs), O.last_outcome(win))
        signal, memory = novelty.effect_bonus(episodic, bucket, changed, win.done[-1])
        rint = win.rint.at[-1].set(signal * rint_scale)
    elif cfg.curiosity == "oracle":  # the control: Craftax's own reward (never the animal's)
        signal = win.reward[-1]
        rint = win.rint.at[-1].set(signal * rint_scale)
    elif cfg.curiosity == "progress":  # the same instance, one update later: its surprise dropped by this much
        signal = jnp.where(ok[-2] & (last_surprise[1] > 0), last_surprise[0] - surprise[-2], 0.0)
        rint = win.rint.at[-2].set(signal * rint_scale).at[-1].set(0.0)  # the newest is paid next step
    else:
        signal = jnp.where(ok[-1], surprise[-1], 0.0)
        rint = win.rint.at[-1].set(signal * rint_scale)
    if cfg.learner == "stream":  # the actor-critic learns apart (learner.py), from the features of the last two states
        ac, ac_aux = 0.0, {"features": jax.lax.stop_gradient(seen.z[-2:])}
    else:
        ac, ac_aux = learner.actor_critic_loss(model, seen.h[batch.policy_rows, batch.readout], win, rint,
                                              gamma=cfg.gamma, lam=cfg.lam, clip=cfg.clip, ent_coef=cfg.ent_coef,
                                              value_coef=cfg.value_coef)
        aux["loss/policy"] = ac
    aux.update({"curiosity": signal, "rint": signal * rint_scale, "rint_all": rint,
                "newest_surprise": newest, "episodic": memory, "z_now": jax.lax.stop_gradient(seen.z_now), **ac_aux})
    return total + ac, aux


class Act(eqx.Module):
    """What one action did: the world before any rebirth, and the key a rebirth would use."""

    action: jax.Array
    logp: jax.Array
    next_obs: jax.Array  # what came of it (the last frame of a life if ``done``)
    last_state: object
    reward: jax.Array
    done: jax.Array
    reset_key: jax.Array
    chosen: jax.Array  # False when the game overrode the action (asleep, or resting in full Craftax: noop instead)


def overridden(env_state) -> jax.Array:
    """Whether Craftax will step ``noop`` whatever action is chosen (asleep; resting in full Craftax)."""
    return jnp.logical_or(env_state.is_sleeping, getattr(env_state, "is_resting", False))


def act(cfg, org: Organism | None, env_state, key) -> Act:
    """Sample an action from the policy (or at random) and step the world, without rebirth."""
    spec = world.env_spec(cfg.world)
    env, params = world.make_env(cfg.world)
    k_act, k_env = jax.random.split(key)
    if cfg.policy == "random":
        action = jax.random.randint(k_act, (), 0, spec.n_actions)
        logp = -jnp.log(float(spec.n_actions))
    else:
        action = jax.random.categorical(k_act, org.logits)
        logp = jax.nn.log_softmax(org.logits)[action]
    k_step, k_reset = jax.random.split(k_env)
    next_obs, last_state, reward, done = world.advance(env, params, env_state, action, k_step)
    return Act(action=action, logp=jnp.asarray(logp, jnp.float32), next_obs=next_obs, last_state=last_state,
               reward=reward, done=done, reset_key=k_reset, chosen=~overridden(env_state))


def perceive(cfg, org: Organism, a: Act, obs, env_state) -> tuple[O.Window, Obs, Obs | None]:
    """The window with the new transition pushed in, what the organism sees now (one step older), and the
    recall probe's delay line (None without the probe)."""
    spec = world.env_spec(cfg.world)
    age = org.now.age + 1
    seen = observe(spec, a.next_obs, a.last_state, age)
    now = observe(spec, obs, env_state, age)
    recall = recall_ok = delay = None
    if org.delay is not None:  # the frame seen --recall-delay steps before the one leaving for the window
        recall, recall_ok = jax.tree.map(lambda x: x[0], org.delay), org.life >= cfg.recall_delay
        delay = jax.tree.map(lambda d, x: jnp.concatenate([d[1:], x[None]]), org.delay, org.now)
    win = org.window.push(obs=org.now, next_obs=seen, action=a.action.astype(jnp.int32), logp=a.logp,
                          reward=a.reward, rint=jnp.zeros(()), done=a.done, valid=jnp.array(True), chosen=a.chosen,
                          memory=org.memory,
                          recall=recall, recall_ok=recall_ok)
    return win, now, delay


def learn(cfg, org: Organism, a: Act, obs, env_state, shared=False) -> tuple[Organism, dict]:
    """Push the transition, learn once, keep the tallies. ``obs``/``env_state``: the world to act in next
    (a new one if ``a.done``). Pure: returns the new organism and this step's record."""
    batch = batch_for(cfg, world.env_spec(cfg.world))
    win, now, delay = perceive(cfg, org, a, obs, env_state)

    # intrinsic-return normaliser: r / std(discounted intrinsic return)
    count, mean, var = org.ret_moments
    scale = 1.0 / jnp.sqrt(var + 1e-8)
    features = org.features if reads_features(cfg, batch) else None
    t = org.tally
    prior = prior_of(t)
    (loss, aux), grads = eqx.filter_value_and_grad(loss_fn, has_aux=True)(
        org.model, cfg, batch, win, now, prior, scale, org.last_surprise, org.episodic, features)
    if features is not None:
        features = novelty.update_feature_stats(features, aux["z_now"], now.age)
    model, opt_state = optim.update(org.model, grads, org.opt_state, lr=cfg.lr, max_grad_norm=cfg.max_grad_norm)
    finite = jnp.isfinite(loss)  # the host stops the run at the first non-finite loss, and says so
    done = a.done
    traces = org.traces
    if cfg.learner == "stream":  # s_t (the newest window row) and s_t+1 (now), as the transformer sees them
        phi, phi_next = aux["features"].reshape(2, -1)
        ac, traces, u = learner.update(model.ac, traces, phi, phi_next, a.action, aux["rint"], done, a.chosen,
                                       gamma=cfg.gamma, lam=cfg.lam, lr=cfg.ac_lr, kappa_actor=cfg.kappa_policy,
                                       kappa_critic=cfg.kappa_value, ent_coef=cfg.ent_coef)
        model = eqx.tree_at(lambda m: m.ac, model, ac)
        aux.update(logits=ac.logits(phi_next), entropy=u.entropy, adv=jnp.abs(u.delta), value_err=u.delta**2)
        finite = finite & jnp.isfinite(u.delta)
    ret = org.ret * cfg.gamma * (1 - done) + aux["curiosity"]
    count2 = count + 1
    mean2 = mean + (ret - mean) / count2
    var2 = var + ((ret - mean) * (ret - mean2) - var) / count2
    win = eqx.tree_at(lambda w: w.rint, win, aux["rint_all"])

    # prequential scores of the newest instances, beside their baselines
    scores = dict(t.scores)
    record = {}
    for name in cfg.objective:
        n = aux[f"{name}/n"]
        for k in scores:
            if k.startswith(name + "/"):
                v = n if k.endswith("/n") else aux[k]
                scores[k] = scores[k] + jnp.where(n > 0, v, 0.0)
                record[k] = jnp.where(n > 0, v, jnp.nan) if not k.endswith("/n") else n
    life = org.life + 1
    tally = Tally(
        episodes=t.episodes + done, length_sum=t.length_sum + done * life,
        achievements=t.achievements + done * a.last_state.achievements,
        action_counts=t.action_counts.at[a.action].add(1.0), reward_sum=t.reward_sum + a.reward, steps=t.steps + 1,
        scores=scores, shared_rebirths=t.shared_rebirths + shared)
    org = Organism(model=model, opt_state=opt_state, window=win, now=now,
                   logits=jax.lax.stop_gradient(aux["logits"]), life=jnp.where(done, 0, life), ret=ret,
                   ret_moments=jnp.stack([count2, mean2, var2]), last_surprise=aux["newest_surprise"],
                   episodic=aux["episodic"], features=org.features if features is None else features,
                   tally=tally, memory=aux.get("memory_now"), delay=delay, traces=traces)
    record.update({k: v for k, v in aux.items() if k.startswith("loss/")})
    record.update(curiosity=aux["curiosity"], rint=aux["rint"], entropy=aux["entropy"], reward=a.reward,
                  adv=aux["adv"], value_err=aux["value_err"],
                  done=done, episode_length=jnp.where(done, life, 0), unlocked=(tally.achievements > 0).sum(),
                  finite=finite)
    return org, record


def reborn_alone(cfg, a: Act):
    """A single life's rebirth: a new world on death (``lax.cond``: built only then). (obs, env_state)"""
    env, params = world.make_env(cfg.world)
    return jax.lax.cond(a.done, lambda: world.reset(env, params, a.reset_key), lambda: (a.next_obs, a.last_state))


def live_step(cfg, org: Organism, env_state, key):
    """One step of one life: act, rebirth on death, learn."""
    a = act(cfg, org, env_state, key)
    obs, env_state = reborn_alone(cfg, a)
    org, record = learn(cfg, org, a, obs, env_state)
    return org, env_state, record


# ----------------------------------------------------------------------------- chunks of life


def live(cfg, org: Organism, env_state, key, steps: int):
    """``steps`` steps of one life in one jitted ``lax.scan``: (organism, env_state, records [steps])."""
    return _live(core(cfg), org, env_state, key, steps)


@eqx.filter_jit
def _live(cfg, org, env_state, key, steps: int):
    def body(carry, k):
        org, env_state = carry
        org, env_state, rec = live_step(cfg, org, env_state, k)
        return (org, env_state), rec

    (org, env_state), records = jax.lax.scan(body, (org, env_state), jax.random.split(key, steps))
    return org, env_state, records
