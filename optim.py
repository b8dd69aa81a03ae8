"""The optimizer of the model's own update: ``optax.chain(clip_by_global_norm, adam)``, slot by slot.

It computes what that chain computes on the model's parameters (one Adam step after clipping the whole
gradient by its global norm; tested against the chain itself), with one difference that development needs:
Adam's state comes in two parts, the *trunk* (everything but the gene slots) as one flat vector, and each
gene *slot* (its gene and its gate) with its own moments and its own step count (every leaf has a leading
slot axis). A gene inserted into a slot (``develop.py``) starts with fresh moments and a count of 0, so its
first updates get the bias correction of a new history, not of the organism's whole life. Working on flat
vectors is also faster here: a few big ops instead of a few per leaf (per-op overhead rules at this size).

The stream learner's actor and critic (``model.ac``) are not Adam's: they learn by their own rule
(``learner.py``), and an update leaves them as they are. The stream learner through the body changes the
same weights Adam does: its change is added to Adam's step (``extra``).
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
from jax.flatten_util import ravel_pytree

from model import Model


class Opt(eqx.Module):
    """Adam's state: the trunk's, and each gene slot's (with its own step count)."""

    trunk: optax.OptState
    slots: optax.OptState


def flatten(tree):
    """(trunk vector, [D, n] slot vectors, rebuild): a model (or its gradient) as Adam sees it; a slot's
    vector is its gene's weights then its gate. ``rebuild(trunk, slots)`` puts vectors back into ``tree``,
    with its actor-critic (if any) as it was."""
    params, static = eqx.partition(tree, eqx.is_inexact_array)
    genes, gates, ac = params.stack.genes, params.stack.gates, params.ac
    trunk, unravel_trunk = ravel_pytree(eqx.tree_at(lambda m: (m.stack.genes, m.stack.gates, m.ac), params,
                                                    replace=(None, None, None), is_leaf=lambda x: x is None))
    unravel_gene = ravel_pytree(jax.tree.map(lambda x: x[0], genes))[1]
    slots = jax.vmap(lambda g, a: jnp.concatenate([ravel_pytree(g)[0], a[None]]))(genes, gates)

    def rebuild(trunk, slots):
        new = eqx.tree_at(lambda m: (m.stack.genes, m.stack.gates, m.ac), unravel_trunk(trunk),
                          (jax.vmap(unravel_gene)(slots[:, :-1]), slots[:, -1], ac), is_leaf=lambda x: x is None)
        return eqx.combine(new, static)

    return trunk, slots, rebuild


def init(model: Model, lr: float) -> Opt:
    trunk, slots, _ = flatten(model)
    adam = optax.adam(lr)
    return Opt(trunk=adam.init(trunk), slots=jax.vmap(adam.init)(slots))


def update(model: Model, grads, opt: Opt, *, lr: float | jax.Array, max_grad_norm: float,
           gate_lr: float = 1.0, extra: tuple | None = None) -> tuple[Model, Opt]:
    """One step of ``chain(clip_by_global_norm(max_grad_norm), adam(lr))``, slot by slot; ``gate_lr``
    multiplies the step of the residual gate of every gene grown in this life (--gate-lr: Adam moves a gate by at
    most about lr a step). A grown gene's slot restarted its Adam count at its insertion, so its count is behind
    that of the slots the organism was born with. ``extra``: a change of the parameters laid out as ``flatten``
    lays them (trunk, slots), added to Adam's step (the stream learner through the body: ``learner.body_update``)."""
    trunk, slots, rebuild = flatten(model)
    g_trunk, g_slots, _ = flatten(grads)
    clip = optax.clip_by_global_norm(max_grad_norm)
    (g_trunk, g_slots), _ = clip.update((g_trunk, g_slots), clip.init(None))  # one norm over both parts
    adam = optax.adam(lr)
    u_trunk, s_trunk = adam.update(g_trunk, opt.trunk, trunk)
    u_slots, s_slots = jax.vmap(adam.update)(g_slots, opt.slots, slots)
    if gate_lr != 1.0:  # the gate is the last entry of a slot's vector
        count = opt.slots[0].count  # [D]: steps each slot's Adam has taken
        u_slots = u_slots.at[:, -1].multiply(jnp.where(count < count.max(), gate_lr, 1.0))
    if extra is not None:
        u_trunk, u_slots = u_trunk + extra[0], u_slots + extra[1]
    return rebuild(trunk + u_trunk, slots + u_slots), Opt(trunk=s_trunk, slots=s_slots)
