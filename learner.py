"""The learner: how a reward becomes behaviour, one step at a time, from one stream of experience.

Two learners (``--learner``). ``window``: a PPO-style actor-critic loss over the short-term window (GAE
over its T transitions, clipped ratios), read from the model's own prefix output and added to the world
model's loss, so one Adam update serves both. ``stream``: stream AC(lambda) (Elsayed, Vasan & Mahmood
2024, "Streaming deep reinforcement learning finally works"; repository mohmdelsayed/streaming-drl), the
single-stream actor-critic that learns with batch size 1 where PPO, SAC and DQN at batch size 1 fail. Its pieces, as they are here:

- an *actor* and a *critic* of their own: two small MLPs (LayerNorm without parameters before each
  nonlinearity, leaky ReLU, sparse initialisation: 90 % of each unit's incoming weights zero) that read
  the transformer's view of the state (its prefix output at every state token, standardised by running
  statistics) through a ``stop_gradient``: the world model shapes the features, the reward shapes the
  actor and critic, and neither pulls the other around;
- the TD error delta = r + gamma V(s') (1 - done) - V(s), with r the reward divided by the running
  standard deviation of its discounted return (``life.py`` keeps the moments);
- one eligibility trace per network, z <- gamma lambda z + grad, zeroed when a life ends:
  z_V collects grad V(s), z_pi collects grad [log pi(a|s) + c sign(delta) H(pi(.|s))]; credit reaches
  about 1 / (1 - gamma lambda) steps back, beyond the short-term window;
- the ObGD step (overshooting-bounded gradient descent): w <- w + alpha' delta z with
  alpha' = alpha / max(1, alpha kappa max(|delta|, 1) ||z||_1), so no single step can overshoot its own
  TD error however large the trace.

A step the animal did not choose (asleep, Craftax steps ``noop`` whatever the policy said) adds nothing to
the actor's trace: the trace decays through it, so the reward it leads to is credited to the decision
that started the sleep, not to an action the game ignored.
"""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray

SPARSITY = 0.9  # share of each unit's incoming weights that start at zero (sparse initialisation)


def normalise(x: Float[Array, " n"]) -> Float[Array, " n"]:
    """LayerNorm without parameters."""
    mu = x.mean()
    return (x - mu) * jax.lax.rsqrt(jnp.mean((x - mu) ** 2) + 1e-5)


def sparse_linear(fan_in: int, fan_out: int, key: PRNGKeyArray) -> eqx.nn.Linear:
    """A linear map with uniform(+-1/sqrt(fan_in)) weights, ``SPARSITY`` of each output's inputs zeroed,
    zero bias."""
    k_w, k_mask = jax.random.split(key)
    bound = 1.0 / math.sqrt(fan_in)
    w = jax.random.uniform(k_w, (fan_out, fan_in), minval=-bound, maxval=bound)
    zeros = math.ceil(SPARSITY * fan_in)
    order = jax.vmap(lambda k: jax.random.permutation(k, fan_in))(jax.random.split(k_mask, fan_out))
    w = jnp.where(jnp.argsort(order, axis=1) < zeros, 0.0, w)  # each row: a random ``zeros`` of its inputs
    lin = eqx.nn.Linear(fan_in, fan_out, key=key)
    return eqx.tree_at(lambda m: (m.weight, m.bias), lin, (w, jnp.zeros(fan_out)))


class Net(eqx.Module):
    """input -> [Linear -> LayerNorm -> leaky ReLU] x hidden layers -> Linear."""

    layers: tuple[eqx.nn.Linear, ...]

    def __init__(self, fan_in: int, hidden: int, out: int, depth: int, *, key: PRNGKeyArray):
        sizes = [fan_in] + [hidden] * depth + [out]
        keys = jax.random.split(key, len(sizes) - 1)
        self.layers = tuple(sparse_linear(a, b, k) for a, b, k in zip(sizes[:-1], sizes[1:], keys))

    def __call__(self, x: Float[Array, " n"]) -> Float[Array, " out"]:
        for layer in self.layers[:-1]:
            x = jax.nn.leaky_relu(normalise(layer(x)))
        return self.layers[-1](x)


class ActorCritic(eqx.Module):
    """The actor (action logits) and the critic (value) of the state features."""

    actor: Net
    critic: Net

    def __init__(self, fan_in: int, n_actions: int, hidden: int, depth: int, *, key: PRNGKeyArray):
        k1, k2 = jax.random.split(key)
        self.actor = Net(fan_in, hidden, n_actions, depth, key=k1)
        self.critic = Net(fan_in, hidden, 1, depth, key=k2)

    def logits(self, phi: Float[Array, " n"]) -> Float[Array, " A"]:
        return self.actor(phi)

    def value(self, phi: Float[Array, " n"]) -> Float[Array, ""]:
        return self.critic(phi)[0]


def zeros_like(ac: ActorCritic) -> ActorCritic:
    """Empty eligibility traces, one per weight of the actor and the critic."""
    return jax.tree.map(jnp.zeros_like, eqx.filter(ac, eqx.is_inexact_array))


def obgd(params, trace, grad, delta, *, lr: float, decay: float, kappa: float):
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


def update(ac: ActorCritic, traces: ActorCritic, phi: Float[Array, " n"], phi_next: Float[Array, " n"],
           action: Int[Array, ""], reward: Float[Array, ""], done: Bool[Array, ""], chosen: Bool[Array, ""], *,
           gamma: float, lam: float, lr: float, kappa_actor: float, kappa_critic: float,
           ent_coef: float) -> tuple[ActorCritic, ActorCritic, Update]:
    """One stream AC(lambda) step on the transition (phi, action, reward, phi_next, done): the new
    actor-critic and traces (zeroed if ``done``). ``chosen`` False: the game overrode the action, so the
    actor's trace only decays."""
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
    actor, z_actor, s_actor = obgd(params.actor, traces.actor, g_pi.actor, delta, lr=lr, decay=decay,
                                   kappa=kappa_actor)
    critic, z_critic, s_critic = obgd(params.critic, traces.critic, g_v.critic, delta, lr=lr, decay=decay,
                                      kappa=kappa_critic)
    new = eqx.combine(eqx.tree_at(lambda p: (p.actor, p.critic), params, (actor, critic)), static)
    traces = eqx.tree_at(lambda t: (t.actor, t.critic), traces, (z_actor, z_critic))
    traces = jax.tree.map(lambda z: jnp.where(done, 0.0, z), traces)
    return new, traces, Update(delta, v, entropy, s_actor, s_critic)


# ----------------------------------------------------------------------------- the window learner


def gae(rint, values, done, gamma: float, lam: float):
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
    game overrode (asleep) gets no policy gradient.
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
    loss = jnp.sum(w * (chosen * pg + value_coef * 0.5 * (values[:-1] - ret) ** 2 - ent_coef * entropy))
    return loss, dict(entropy=jnp.sum(w * entropy), value=values[-1], logits=logits[-1],
                      adv=jnp.sum(w * jnp.abs(adv)), value_err=jnp.sum(w * (values[:-1] - ret) ** 2))
