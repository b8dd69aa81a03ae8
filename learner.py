"""The learner: how a reward becomes behaviour, one step at a time, from one stream of experience.

Three learners (``--learner``). ``window``: a PPO-style actor-critic loss over the short-term window (GAE
over its T transitions, clipped ratios), read from the model's own prefix output and added to the world
model's loss, so one Adam update serves both. ``stream``: stream AC(lambda) (Elsayed, Vasan & Mahmood
2024, "Streaming deep reinforcement learning finally works"; repository mohmdelsayed/streaming-drl), the
single-stream actor-critic that learns with batch size 1 where PPO, SAC and DQN at batch size 1 fail. Its
pieces, as they are here:

- an *actor* and a *critic* of their own (``model.ActorCritic``): two small MLPs (LayerNorm without
  parameters before each nonlinearity, leaky ReLU, sparse initialisation: 90 % of each unit's incoming
  weights zero) that read the transformer's view of the state (its prefix output at every state token,
  standardised by running statistics) through a ``stop_gradient``: the world model shapes the features,
  the reward shapes the actor and critic, and neither pulls the other around (``--ac-input``: the
  observation itself, fixed and standardised, instead of or beside the features);
- the TD error delta = r + gamma V(s') (1 - done) - V(s), with r the reward divided by the running
  standard deviation of its discounted return (``reward_scale``, ``update_return_moments``);
- one eligibility trace per network, z <- gamma lambda z + grad, zeroed when a life ends:
  z_V collects grad V(s), z_pi collects grad [log pi(a|s) + c sign(delta) H(pi(.|s))]; credit reaches
  about 1 / (1 - gamma lambda) steps back, beyond the short-term window;
- the ObGD step (overshooting-bounded gradient descent): w <- w + alpha' delta z with
  alpha' = alpha / max(1, alpha kappa max(|delta|, 1) ||z||_1), so no single step can overshoot its own
  TD error however large the trace (``--ac-step adam``: Adam on the update delta z instead).

``body``: the same stream AC(lambda) through the transformer itself: the policy and value heads read its
output, the traces cover every weight (genes and embeddings included) and their change is added to the world
model's Adam step (``body_update``; its step ObGD's, Adam's or the intentional update's, ``--ac-step``).

``--entropy-target`` (1.5 nats by default; 0: off) adapts the entropy coefficient c at every step, log c <- log c +
ENTROPY_RATE (target - H), so that the policy's entropy is held near the target instead of falling where a
fixed c lets it (what a fixed c did to the oracle control: docs/curiosity.md), for every learner. The
learner's numbers (--lr, --ac-lr, --gamma, --lam, --entropy-target) are the organism's *instincts*
(instincts.py): read by the step as data, so evolution can shape them without a recompile.

A step the animal did not choose (asleep, Craftax steps ``noop`` whatever the policy said) adds nothing to
the actor's trace: the trace decays through it, so the reward it leads to is credited to the decision
that started the sleep, not to an action the game ignored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import tyro
from jaxtyping import Array, Bool, Float, Int

import curiosity
import objectives as O
import optim
from model import ActorCritic, Obs
from world import EnvSpec

CuriosityName = Literal[tuple(curiosity.CURIOSITIES)]
Scalar = float | Float[Array, ""]  # a learner's number: a flag, or an organism's instinct (instincts.py)


@dataclass(frozen=True)
class Learning:
    """What it learns and how: the world model's objectives, the curiosity that rewards it, the policy and its
    learner, the update."""

    objective: tuple[str, ...] = ("inverse_dynamics",)
    """what the model learns to predict besides its policy: one or more layout names (objectives.LAYOUTS)"""
    weights: tuple[float, ...] = ()
    """loss weight of each objective, in the same order; empty means 1 each"""
    curiosity: Annotated[CuriosityName, tyro.conf.arg(help=curiosity.help_text())] = "effects"
    policy: Literal["learned", "random"] = "learned"
    """'random' acts uniformly at random (the baseline) but learns its predictions the same way"""
    learner: Literal["window", "stream", "body"] = "stream"
    """how reward becomes behaviour: 'window' = a PPO-style loss over the window (GAE), in the model's own
    update; 'stream' = stream AC(lambda): an actor and a critic of their own on the model's features,
    eligibility traces, the ObGD step; 'body' = stream AC(lambda) through the transformer itself: the policy
    and value heads read its output, and the traces cover every weight, genes and embeddings included
    (learner.py)"""
    lr: float = 1e-3
    """Adam learning rate of the model's own update"""
    max_grad_norm: float = 100.0
    """gradient clipping (global norm); a safety net only: clipping at 1 slowed learning several-fold"""
    gamma: float = 0.99
    """discount of the return (the window learner's old default: 0.95)"""
    lam: float = 0.8
    """lambda: of the eligibility traces (stream), of GAE (window; its old default: 0.9)"""
    clip: float = 0.2
    """--learner window: PPO ratio clip"""
    ent_coef: float = 0.01
    """entropy bonus of the policy (with --entropy-target: where the adapted coefficient starts)"""
    entropy_target: float = 1.5
    """hold the policy's entropy near this many nats by adapting the entropy coefficient at every step (log c
    <- log c + ENTROPY_RATE (target - entropy)); 0: the coefficient stays --ent-coef. 1.5 was set once, not
    tuned (what it changed: docs/curiosity.md); a random policy ignores it"""
    sleep_weight: float = 0.0
    """--curiosity mix: what falling asleep and waking up pay beside effect novelty (1 / sqrt(times this
    episode), times this weight); an instinct evolution can shape (instincts.py)"""
    count_weight: float = 0.0
    """--curiosity mix: what a new view pays beside effect novelty (1 / sqrt(visits of this view this
    episode), times this weight); an instinct evolution can shape"""
    gate_lr: float = 1.0
    """multiplies the Adam step of the residual gate of every gene grown during life (Adam moves a gate by at
    most about --lr a step; a grown gate opens faster with more: develop.py); the born genes' gates as before"""
    value_coef: float = 0.5
    """--learner window: weight of the value loss"""
    ac_hidden: int = 128
    """--learner stream: width of the actor's and the critic's hidden layers"""
    ac_depth: int = 2
    """--learner stream: hidden layers of the actor and of the critic"""
    ac_input: Literal["features", "observation", "both"] = "features"
    """--learner stream: what the actor and the critic read. 'features': the transformer's standardised prefix
    outputs at every state token (trained by Adam as the animal lives); 'observation': the observation itself
    (cells one-hot and the status; a pixel frame pooled to 9 x 9), standardised by running statistics, a fixed
    input as the stream AC(lambda) reference has; 'both': the two side by side (learner.observation_vector)"""
    ac_lr: float = 1.0
    """--learner stream: the ObGD step size alpha"""
    kappa_policy: float = 3.0
    """--learner stream: the actor's ObGD bound kappa"""
    kappa_value: float = 2.0
    """--learner stream: the critic's ObGD bound kappa"""
    ac_step: Literal["obgd", "intentional", "adam"] = "obgd"
    """how each step of the stream learner is sized. 'obgd': the ObGD bound (--ac-lr, --kappa-*); 'intentional'
    (--learner body): the step that moves the value by --eta-value of the TD error and the policy's
    log-probability by --eta-policy of the normalised TD error, whatever the body's size
    (learner.intentional_flat); 'adam': Adam on the trace's update delta z, delta clipped at +-1, at --adam-lr
    (learner.adam_trace, learner.adam_flat through the body)"""
    adam_lr: float = 3e-4
    """--ac-step adam: Adam's step size"""
    eta_policy: float = 0.01
    """--ac-step intentional: the actor's fraction (below the reference's 0.05: one shared body moves every state's
    policy with the one it steps on; docs/learner.md)"""
    eta_value: float = 0.5
    """--ac-step intentional: the critic's fraction"""

    @property
    def objectives(self) -> tuple[str, ...]:
        """--objective, and after it the objectives the curiosity needs that it lacks."""
        return self.objective + tuple(n for n in curiosity.CURIOSITIES[self.curiosity].needs if n not in self.objective)

    @property
    def loss_weights(self) -> tuple[float, ...]:
        extra = len(self.objectives) - len(self.objective)
        return (self.weights or (1.0,) * len(self.objective)) + (1.0,) * extra

    @property
    def curious(self) -> str:
        """The objective whose surprise (or its drop, for learning progress) the curiosity reads."""
        return (curiosity.CURIOSITIES[self.curiosity].needs or self.objective[:1])[-1]

    def check(self) -> None:
        """One clear line for impossible learning settings, before anything is compiled."""
        for name in self.objective:
            if name not in O.LAYOUTS:
                raise ValueError(f"unknown objective {name!r}; choose from {', '.join(O.LAYOUTS)}")
        for ok, msg in [
            (len(self.objective) >= 1, "--objective needs at least one name"),
            (len(set(self.objective)) == len(self.objective), "--objective lists a name twice"),
            (not self.weights or len(self.weights) == len(self.objective),
             f"--weights has {len(self.weights)} values for the {len(self.objective)} of --objective "
             f"({' '.join(self.objective)}); the objectives a curiosity adds get weight 1"),
            (all(w >= 0 for w in self.weights), f"--weights cannot be negative, got {self.weights}"),
            (self.lr > 0, f"--lr must be positive, got {self.lr}"),
            (self.max_grad_norm > 0, f"--max-grad-norm must be positive (a clip at 0 stops learning), "
                                     f"got {self.max_grad_norm}"),
            (0 <= self.gamma <= 1 and 0 <= self.lam <= 1, "--gamma and --lam must lie in [0, 1]"),
            (0 < self.clip < 1, f"--clip must lie in (0, 1), got {self.clip}"),
            (self.ent_coef >= 0, f"--ent-coef cannot be negative (it would reward certainty), got {self.ent_coef}"),
            (self.entropy_target >= 0, f"--entropy-target cannot be negative, got {self.entropy_target}"),
            (self.entropy_target == 0 or self.ent_coef > 0,
             "--entropy-target adapts the policy's entropy coefficient: it needs a positive --ent-coef to start "
             "from (or --entropy-target 0 for a fixed coefficient)"),
            (self.sleep_weight >= 0 and self.count_weight >= 0,
             f"--sleep-weight and --count-weight cannot be negative, got {self.sleep_weight}, {self.count_weight}"),
            (self.curiosity == "mix" or self.sleep_weight == self.count_weight == 0,
             f"--sleep-weight and --count-weight weigh the bonuses of --curiosity mix; --curiosity "
             f"{self.curiosity} does not read them"),
            (self.value_coef >= 0, f"--value-coef cannot be negative, got {self.value_coef}"),
            (self.ac_hidden >= 1 and self.ac_depth >= 0, "--ac-hidden must be positive and --ac-depth not negative"),
            (self.ac_lr > 0, f"--ac-lr must be positive, got {self.ac_lr}"),
            (self.gate_lr > 0, f"--gate-lr must be positive, got {self.gate_lr}"),
            (self.kappa_policy > 0 and self.kappa_value > 0, "--kappa-policy and --kappa-value must be positive"),
            (self.eta_policy > 0 and self.eta_value > 0, "--eta-policy and --eta-value must be positive"),
            (self.ac_input == "features" or self.learner == "stream",
             f"--ac-input {self.ac_input} is what the actor and critic of --learner stream read (here --learner "
             f"{self.learner})"),
            (self.ac_step != "intentional" or self.learner == "body",
             f"--ac-step intentional sizes the steps of --learner body (here --learner {self.learner})"),
            (self.ac_step != "adam" or self.learner != "window",
             "--ac-step adam sizes the steps of --learner stream or body (here --learner window)"),
            (self.adam_lr > 0, f"--adam-lr must be positive, got {self.adam_lr}"),
        ]:
            if not ok:
                raise ValueError(msg)


# ----------------------------------------------------------------------------- the stream learner


def observation_vector(spec: EnvSpec, obs: Obs) -> Float[Array, " K"]:
    """The observation as one fixed vector (``--ac-input observation``/``both``): each cell's block, item
    and mob one-hot, then the status; a pixel frame average-pooled to 9 x 9 x 3 (as RND's target reads it)."""
    if spec.image is None:
        parts = [jax.nn.one_hot(ids, n + 1).reshape(-1) for ids, n in
                 ((obs.block, spec.n_block), (obs.item, spec.n_item), (obs.mob, spec.n_mob)) if n > 0]
        return jnp.concatenate([*parts, obs.status])
    h, w, _ = obs.image.shape
    return obs.image[: h - h % 9, : w - w % 9].reshape(9, h // 9, 9, w // 9, 3).mean((1, 3)).reshape(-1)


def observation_size(spec: EnvSpec) -> int:
    """Length of ``observation_vector``."""
    if spec.image is not None:
        return 9 * 9 * 3
    H, W = spec.view
    return H * W * sum(n + 1 for n in (spec.n_block, spec.n_item, spec.n_mob) if n > 0) + spec.n_status

def reward_scale(moments: Float[Array, " 3"]) -> Float[Array, ""]:
    """What the learner's reward is multiplied by: 1 / the running standard deviation of its discounted return
    (Burda et al. 2018). ``moments``: [count, mean, variance] of that return (``update_return_moments``)."""
    return 1.0 / jnp.sqrt(moments[2] + 1e-8)


def update_return_moments(moments: Float[Array, " 3"], ret: Float[Array, ""]) -> Float[Array, " 3"]:
    """The running [count, mean, variance] of the discounted return after one more value (Welford's update;
    a life starts from a prior of one sample of variance 1, so the first scale is no 1/0)."""
    count, mean, var = moments
    count2 = count + 1
    mean2 = mean + (ret - mean) / count2
    var2 = var + ((ret - mean) * (ret - mean2) - var) / count2
    return jnp.stack([count2, mean2, var2])


ENTROPY_RATE = 1e-3  # --entropy-target: how fast log c follows the entropy's gap (per nat, per step)
ENTROPY_COEF_RANGE = (1e-4, 1.0)  # where the adapted coefficient stays


def adapt_entropy_coef(coef: Float[Array, ""], entropy: Float[Array, ""], target: Scalar) -> Float[Array, ""]:
    """An entropy target: the coefficient after one step, larger when the policy's entropy is below the
    target, smaller above it (multiplicatively, so it never changes sign), within ENTROPY_COEF_RANGE."""
    return jnp.clip(coef * jnp.exp(ENTROPY_RATE * (target - entropy)), *ENTROPY_COEF_RANGE)


class AdamTraces(eqx.Module):
    """``--ac-step adam``: the eligibility traces, and Adam's moments of the update they make."""

    z: ActorCritic
    m: ActorCritic  # running mean of the update delta z
    v: ActorCritic  # running mean of its square
    t: Float[Array, ""]  # steps taken (Adam's bias correction)


ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8
DELTA_CLIP = 1.0  # --ac-step adam: the TD error's bound (the derivative of a Huber TD loss)


def zeros_like(ac: ActorCritic, adam: bool = False) -> ActorCritic | AdamTraces:
    """Empty eligibility traces, one per weight of the actor and the critic (with Adam's moments)."""
    z = jax.tree.map(jnp.zeros_like, eqx.filter(ac, eqx.is_inexact_array))
    return AdamTraces(z, z, z, jnp.zeros(())) if adam else z


def adam_change(trace, m, v, t, grad, delta, *, lr: Scalar, decay: Scalar):
    """Adam on the trace's update (Gogianu, Lutu & Pascanu 2026: a bounded derivative and a variance-adjusted
    step), on any tree of arrays: z <- decay z + grad, u = clip(delta, +-1) z, m and v Adam's running moments of
    u, the change lr m_hat / (sqrt(v_hat) + eps). Every weight moves by at most about ``lr`` a step, however
    thin the gradient is spread and whatever delta's size. (change, trace, m, v, the mean change's size)"""
    b1, b2 = ADAM_BETAS
    trace = jax.tree.map(lambda z, g: decay * z + g, trace, grad)
    u = jax.tree.map(lambda z: jnp.clip(delta, -DELTA_CLIP, DELTA_CLIP) * z, trace)
    m = jax.tree.map(lambda a, x: b1 * a + (1 - b1) * x, m, u)
    v = jax.tree.map(lambda a, x: b2 * a + (1 - b2) * x * x, v, u)
    steps = jax.tree.map(lambda a, b: lr * (a / (1 - b1**t)) / (jnp.sqrt(b / (1 - b2**t)) + ADAM_EPS), m, v)
    n = sum(x.size for x in jax.tree.leaves(steps))
    return steps, trace, m, v, sum(jnp.sum(jnp.abs(s)) for s in jax.tree.leaves(steps)) / n


def adam_trace(params, trace, m, v, t, grad, delta, *, lr: Scalar, decay: Scalar):
    """``adam_change`` applied to one network: (params + change, trace, m, v, the mean step's size)."""
    steps, trace, m, v, size = adam_change(trace, m, v, t, grad, delta, lr=lr, decay=decay)
    return jax.tree.map(lambda w, s: w + s, params, steps), trace, m, v, size


def obgd(params, trace, grad, delta, *, lr: Scalar, decay: Scalar, kappa: float):
    """One ObGD step on one network: (params, trace) after z <- decay z + grad and
    w <- w + alpha' delta z, alpha' = lr / max(1, lr kappa max(|delta|, 1) ||z||_1)."""
    trace = jax.tree.map(lambda z, g: decay * z + g, trace, grad)
    norm = sum(jnp.sum(jnp.abs(z)) for z in jax.tree.leaves(trace))
    step = lr / jnp.maximum(1.0, lr * kappa * jnp.maximum(jnp.abs(delta), 1.0) * norm)
    params = jax.tree.map(lambda w, z: w + step * delta * z, params, trace)
    return params, trace, step


class Update(eqx.Module):
    """What one learning step of the actor-critic did (for the metrics)."""

    delta: Float[Array, ""]
    value: Float[Array, ""]
    entropy: Float[Array, ""]
    step_actor: Float[Array, ""]
    step_critic: Float[Array, ""]


def update(ac: ActorCritic, traces: ActorCritic | AdamTraces, phi: Float[Array, " n"], phi_next: Float[Array, " n"],
           action: Int[Array, ""], reward: Float[Array, ""], done: Bool[Array, ""], chosen: Bool[Array, ""], *,
           gamma: Scalar, lam: Scalar, lr: Scalar, kappa_actor: float, kappa_critic: float,
           ent_coef: Scalar, adam_lr: Scalar = 3e-4) -> tuple[ActorCritic, ActorCritic | AdamTraces, Update]:
    """One stream AC(lambda) step on the transition (phi, action, reward, phi_next, done): the new
    actor-critic and traces (zeroed if ``done``; Adam's moments are kept). ``chosen`` False: the game overrode
    the action, so the actor's trace only decays. ``traces`` an ``AdamTraces``: the step is Adam's
    (``adam_trace``), else ObGD's."""
    params, static = eqx.partition(ac, eqx.is_inexact_array)

    def value(p, x):
        return eqx.combine(p, static).value(x)

    v, g_v = jax.value_and_grad(value)(params, phi)
    v_next = value(params, phi_next)
    delta = reward + gamma * (1.0 - done) * v_next - v

    def objective(p):
        logp = jax.nn.log_softmax(eqx.combine(p, static).logits(phi))
        entropy = -jnp.sum(jnp.exp(logp) * logp)
        return logp[action] + ent_coef * jnp.sign(delta) * entropy, entropy

    g_pi, entropy = jax.grad(objective, has_aux=True)(params)
    g_pi = jax.tree.map(lambda g: jnp.where(chosen, g, 0.0), g_pi)
    decay = gamma * lam
    forget = lambda tree: jax.tree.map(lambda z: jnp.where(done, 0.0, z), tree)  # noqa: E731
    if isinstance(traces, AdamTraces):
        t = traces.t + 1
        steps = [adam_trace(getattr(params, k), getattr(traces.z, k), getattr(traces.m, k), getattr(traces.v, k), t,
                            g, delta, lr=adam_lr, decay=decay) for k, g in (("actor", g_pi.actor),
                                                                              ("critic", g_v.critic))]
        (actor, za, ma, va, s_actor), (critic, zc, mc, vc, s_critic) = steps
        pair = lambda tree, a, c: eqx.tree_at(lambda x: (x.actor, x.critic), tree, (a, c))  # noqa: E731
        traces = AdamTraces(forget(pair(traces.z, za, zc)), pair(traces.m, ma, mc), pair(traces.v, va, vc), t)
    else:
        actor, z_actor, s_actor = obgd(params.actor, traces.actor, g_pi.actor, delta, lr=lr, decay=decay,
                                       kappa=kappa_actor)
        critic, z_critic, s_critic = obgd(params.critic, traces.critic, g_v.critic, delta, lr=lr, decay=decay,
                                          kappa=kappa_critic)
        traces = forget(eqx.tree_at(lambda t: (t.actor, t.critic), traces, (z_actor, z_critic)))
    new = eqx.combine(eqx.tree_at(lambda p: (p.actor, p.critic), params, (actor, critic)), static)
    return new, traces, Update(delta, v, entropy, s_actor, s_critic)


# ----------------------------------------------------------------------------- stream AC(lambda) through the body


class Trace(eqx.Module):
    """One network's eligibility trace through the body (the actor's or the critic's), laid out as the model's
    Adam sees it (``optim.flatten``: the trunk as one vector, each gene slot as a row, so a step is a few big
    ops and a grown gene's slot starts from zero), with what the step's rule keeps beside it: a second moment
    (the intentional step: RMSProp's of the gradient; Adam's step: Adam's of the update delta z), a first
    moment (Adam's step: of delta z) and sigma, a running mean of the gradient's normalised squared norm (the
    intentional step)."""

    trunk: Float[Array, " n"]
    slots: Float[Array, "D m"]
    sq_trunk: Float[Array, " n"]
    sq_slots: Float[Array, "D m"]
    sigma: Float[Array, ""]
    m_trunk: Float[Array, " n"]
    m_slots: Float[Array, "D m"]


class BodyTraces(eqx.Module):
    """Stream AC(lambda) through the body: the actor's and the critic's traces over every weight of the model,
    and the TD error's running moments (the intentional step's clip and the actor's normalisation)."""

    actor: Trace
    critic: Trace
    delta_sq: Float[Array, ""]  # running mean of delta^2 (its bias corrected by ``t``)
    delta_abs: Float[Array, ""]  # running mean of |clipped delta|
    t: Float[Array, ""]  # steps learned


def body_traces(model) -> BodyTraces:
    """Empty traces for stream AC(lambda) through ``model``."""
    trunk, slots, _ = optim.flatten(model)
    zero = jnp.zeros(())

    def trace():
        return Trace(*(jnp.zeros_like(x) for x in (trunk, slots, trunk, slots)), zero, jnp.zeros_like(trunk),
                     jnp.zeros_like(slots))

    return BodyTraces(trace(), trace(), zero, zero, zero)


def obgd_flat(z: Trace, g_trunk, g_slots, delta, *, lr: Scalar, decay: Scalar, kappa: float):
    """``obgd`` on one trace laid out flat: (the new trace, the parameters' change (trunk, slots), the step)."""
    trunk, slots = decay * z.trunk + g_trunk, decay * z.slots + g_slots
    norm = jnp.sum(jnp.abs(trunk)) + jnp.sum(jnp.abs(slots))
    step = lr / jnp.maximum(1.0, lr * kappa * jnp.maximum(jnp.abs(delta), 1.0) * norm)
    new = eqx.tree_at(lambda t: (t.trunk, t.slots), z, (trunk, slots))
    return new, (step * delta * trunk, step * delta * slots), step


RMS_DECAY = 0.999  # the intentional step: RMSProp's decay of the squared gradient
CLIP_DECAY, CLIP_MULT = 0.9998, 20.0  # delta is clipped at CLIP_MULT times its running rms
NORM_DECAY = 0.9998  # the actor's delta is divided by the running mean of its magnitude


def intentional_flat(z: Trace, g_trunk, g_slots, delta, t, *, eta: Scalar, decay: Scalar):
    """The intentional step (Sharifnassab, Elsayed, De Asis, Mahmood & Sutton 2026; code
    sharifnassab/Intentional_RL) on one trace: the trace z <- decay z + g and the gradient's RMSProp moment v;
    the step w <- w + eta delta (z / sqrt v) / sqrt(sigma |z|^2_v), with sigma the running mean of |g|^2_v
    (the norms weighted by 1 / sqrt v). On a fresh trace the output the gradient belongs to moves by about
    eta delta: a set fraction of the TD error, whatever the number of weights and the gradient's scale (ObGD's
    moves it by delta |z|^2 / (kappa |z|_1), the size of a typical entry of the trace: small when the gradient
    is spread thin over a big body). Returns what ``obgd_flat`` does; ``t``: the steps learned, this one
    included."""
    sq_trunk = RMS_DECAY * z.sq_trunk + (1 - RMS_DECAY) * g_trunk**2
    sq_slots = RMS_DECAY * z.sq_slots + (1 - RMS_DECAY) * g_slots**2
    bias = 1.0 - RMS_DECAY**t
    r_trunk, r_slots = jnp.sqrt(sq_trunk / bias) + 1e-8, jnp.sqrt(sq_slots / bias) + 1e-8
    trunk, slots = decay * z.trunk + g_trunk, decay * z.slots + g_slots
    g_norm = jnp.sum(g_trunk**2 / r_trunk) + jnp.sum(g_slots**2 / r_slots)
    z_norm = jnp.sum(trunk**2 / r_trunk) + jnp.sum(slots**2 / r_slots)
    sigma = z.sigma + (1 - decay) * (g_norm - z.sigma)
    sigma_bc = sigma / jnp.maximum(1.0 - decay**t, 1e-8)
    step = eta / jnp.maximum(jnp.sqrt(sigma_bc * z_norm), 1e-8)
    new = Trace(trunk, slots, sq_trunk, sq_slots, sigma, z.m_trunk, z.m_slots)
    return new, (step * delta * trunk / r_trunk, step * delta * slots / r_slots), step


def adam_flat(z: Trace, g_trunk, g_slots, delta, t, *, lr: Scalar, decay: Scalar):
    """``adam_change`` on one trace laid out flat (``--ac-step adam`` through the body), its moments kept in
    ``m_*`` and ``sq_*``. ``t``: the steps learned, this one included (one count for every slot: a gene grown
    into a slot starts with zero moments, so its first steps are up to (1 - b1) / sqrt(1 - b2) ~ 3 times
    larger). Returns what ``obgd_flat`` does, the step being the mean absolute change."""
    change, (trunk, slots), (m_trunk, m_slots), (sq_trunk, sq_slots), step = adam_change(
        (z.trunk, z.slots), (z.m_trunk, z.m_slots), (z.sq_trunk, z.sq_slots), t, (g_trunk, g_slots), delta, lr=lr,
        decay=decay)
    return Trace(trunk, slots, sq_trunk, sq_slots, z.sigma, m_trunk, m_slots), change, step


def body_update(model, traces: BodyTraces, readout, action: Int[Array, ""], reward: Float[Array, ""],
                done: Bool[Array, ""], chosen: Bool[Array, ""], *, gamma: Scalar, lam: Scalar, lr: Scalar,
                kappa_actor: float, kappa_critic: float, ent_coef: Scalar, rule: str = "obgd",
                eta_actor: float = 0.01, eta_critic: float = 0.5, adam_lr: Scalar = 3e-4):
    """One stream AC(lambda) step through the body on the transition (s, action, reward, s', done).

    ``readout(model)`` gives the outputs [2, d] the heads read for s and s' (``objectives.readout``); the
    policy is ``model.policy_head`` and the value ``model.value_head`` on them. The gradients of V(s), of
    log pi(a|s) and of the policy's entropy reach every weight of the model (one batched backward pass for
    the three); each trace takes its own. ``rule`` sizes the step (--ac-step): 'obgd', each trace's ObGD bound
    as in ``update`` (step ``lr``, bound ``kappa_*``); 'adam', ``adam_flat`` at ``adam_lr``; 'intentional',
    ``intentional_flat`` with ``eta_*``, the
    TD error clipped at CLIP_MULT times its running rms and, for the actor, divided by its running mean
    magnitude. Returns (the parameters' change, laid out as ``optim.flatten`` lays the model: add it to the
    world model's Adam step; the new traces, zeroed if ``done``; the step's ``Update``; the policy's logits
    on s')."""
    params, static = eqx.partition(model, eqx.is_inexact_array)

    def heads(p):
        m = eqx.combine(p, static)
        h = readout(m)  # [2, d]: s, s'
        logits, values = jax.vmap(m.policy_head)(h), jax.vmap(m.value_head)(h)
        logp = jax.nn.log_softmax(logits[0])
        entropy = -jnp.sum(jnp.exp(logp) * logp)
        return jnp.stack([values[0], logp[action], entropy]), (values[1], logits[1])

    (v, _, entropy), pull, (v_next, logits_next) = jax.vjp(heads, params, has_aux=True)
    (grads,) = jax.vmap(pull)(jnp.eye(3))  # each leaf [3, ...]: grad V(s), grad log pi(a|s), grad H
    g_trunk, g_slots = jax.vmap(lambda g: optim.flatten(eqx.combine(g, static))[:2])(grads)
    delta = reward + gamma * (1.0 - done) * jax.lax.stop_gradient(v_next) - v
    # the actor's gradient: grad [log pi(a|s) + c sign(delta) H], none where the game overrode the action
    w = jnp.where(chosen, 1.0, 0.0) * jnp.stack([jnp.zeros(()), jnp.ones(()), ent_coef * jnp.sign(delta)])
    g_actor, g_critic = (w @ g_trunk, jnp.tensordot(w, g_slots, 1)), (g_trunk[0], g_slots[0])
    decay, t = gamma * lam, traces.t + 1
    delta_sq, delta_abs = traces.delta_sq, traces.delta_abs
    if rule == "obgd":
        actor, d_actor, s_actor = obgd_flat(traces.actor, *g_actor, delta, lr=lr, decay=decay, kappa=kappa_actor)
        critic, d_critic, s_critic = obgd_flat(traces.critic, *g_critic, delta, lr=lr, decay=decay, kappa=kappa_critic)
    elif rule == "adam":
        actor, d_actor, s_actor = adam_flat(traces.actor, *g_actor, delta, t, lr=adam_lr, decay=decay)
        critic, d_critic, s_critic = adam_flat(traces.critic, *g_critic, delta, t, lr=adam_lr, decay=decay)
    else:
        delta_sq = CLIP_DECAY * delta_sq + (1 - CLIP_DECAY) * delta**2
        cap = CLIP_MULT * jnp.sqrt(delta_sq / (1 - CLIP_DECAY**t))
        clipped = jnp.clip(delta, -cap, cap)
        delta_abs = NORM_DECAY * delta_abs + (1 - NORM_DECAY) * jnp.abs(clipped)
        normed = clipped / jnp.maximum(delta_abs / (1 - NORM_DECAY**t), 1e-12)
        actor, d_actor, s_actor = intentional_flat(traces.actor, *g_actor, normed, t, eta=eta_actor, decay=decay)
        critic, d_critic, s_critic = intentional_flat(traces.critic, *g_critic, clipped, t, eta=eta_critic,
                                                      decay=decay)
    change = (d_actor[0] + d_critic[0], d_actor[1] + d_critic[1])
    actor, critic = (eqx.tree_at(lambda z: (z.trunk, z.slots), z, (jnp.where(done, 0.0, z.trunk),
                                                                 jnp.where(done, 0.0, z.slots)))
                     for z in (actor, critic))  # a life's end empties the traces; the moments go on
    traces = BodyTraces(actor, critic, delta_sq, delta_abs, t)
    return change, traces, Update(delta, v, entropy, s_actor, s_critic), logits_next


# ----------------------------------------------------------------------------- the window learner


def gae(rint, values, done, gamma: Scalar, lam: Scalar):
    """Generalised advantage estimation over the window; ``values`` has T + 1 entries (bootstrap last)."""

    def back(carry, x):
        r, v, v_next, d = x
        delta = r + gamma * v_next * (1 - d) - v
        carry = delta + gamma * lam * (1 - d) * carry
        return carry, carry

    _, adv = jax.lax.scan(back, 0.0, (rint, values[:-1], values[1:], done.astype(jnp.float32)), reverse=True)
    return adv, adv + values[:-1]


def actor_critic_loss(model: eqx.Module, h: Float[Array, "T1 d"], win: eqx.Module, rint, *, gamma, lam, clip, ent_coef,
                      value_coef):
    """PPO-style clipped policy gradient + value regression over the window (``model``: a ``model.Model``,
    ``win``: an ``objectives.Window``), on the reward ``rint`` (intrinsic, or the oracle's).

    ``h``: the prefix outputs of s_0..s_T-1 and of the current observation (last). A step whose action the
    game overrode (asleep) gets no policy gradient and no entropy bonus.
    """
    logits = jax.vmap(model.policy_head)(h)  # [T+1, A]; the last is the current observation
    values = jax.vmap(model.value_head)(h)  # [T+1]
    adv, ret = gae(rint, jax.lax.stop_gradient(values), win.done, gamma, lam)
    logp_all = jax.nn.log_softmax(logits[:-1])
    logp = jnp.take_along_axis(logp_all, win.action[:, None], -1)[:, 0]
    ratio = jnp.exp(logp - win.logp)
    pg = -jnp.minimum(ratio * adv, jnp.clip(ratio, 1 - clip, 1 + clip) * adv)
    entropy = -jnp.sum(jnp.exp(logp_all) * logp_all, -1)
    w = win.valid.astype(jnp.float32) / jnp.maximum(win.valid.sum(), 1)
    chosen = 1.0 if win.chosen is None else win.chosen.astype(jnp.float32)  # no policy gradient where overridden
    loss = jnp.sum(w * (chosen * (pg - ent_coef * entropy) + value_coef * 0.5 * (values[:-1] - ret) ** 2))
    return loss, dict(entropy=jnp.sum(w * entropy), value=values[-1], logits=logits[-1],
                      adv=jnp.sum(w * jnp.abs(adv)), value_err=jnp.sum(w * (values[:-1] - ret) ** 2))
