"""Genes: a gene is one transformer layer; the body is a fixed stack of D gene slots.

Each slot holds a gene (pre-LN multi-head attention + MLP), a residual gate ``g`` and an ``active`` flag:

    x <- x + active * g * f(x),   f(x) = layer(x) - x

With ``g = 0`` a slot leaves the residual stream exactly unchanged (ReZero), which is how a new gene can
be inserted during life without changing what the organism computes. ``D`` is fixed when the stack is
built, so growing (switching a slot on) or swapping genes never recompiles.

A gene works on any leading batch shape (``[..., N, d]``): at the sizes this project runs on a CPU, time
goes into the number of XLA ops, not FLOPs, so the layer is written as a few plain batched matmuls.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Bool, Float, PRNGKeyArray


def layer_norm(x, scale, bias):
    mu = x.mean(-1, keepdims=True)
    var = jnp.mean(jnp.square(x - mu), -1, keepdims=True)
    return (x - mu) * jax.lax.rsqrt(var + 1e-5) * scale + bias


class Gene(eqx.Module):
    """One pre-LN transformer layer. ``__call__`` returns the residual update f(x), not x + f(x)."""

    ln1: Float[Array, "2 d"]  # scale, bias
    qkv: Float[Array, "d 3d"]
    out: Float[Array, "d d"]
    ln2: Float[Array, "2 d"]
    up: Float[Array, "d m"]
    up_b: Float[Array, " m"]
    down: Float[Array, "m d"]
    down_b: Float[Array, " d"]
    n_heads: int = eqx.field(static=True)

    def __init__(self, d: int, n_heads: int, mlp_ratio: int, *, key: PRNGKeyArray):
        k1, k2, k3, k4 = jax.random.split(key, 4)
        m = mlp_ratio * d
        self.ln1 = self.ln2 = jnp.stack([jnp.ones(d), jnp.zeros(d)])
        self.qkv = jax.random.normal(k1, (d, 3 * d)) / jnp.sqrt(d)
        self.out = jax.random.normal(k2, (d, d)) / jnp.sqrt(d)
        self.up, self.up_b = jax.random.normal(k3, (d, m)) / jnp.sqrt(d), jnp.zeros(m)
        self.down, self.down_b = jax.random.normal(k4, (m, d)) / jnp.sqrt(m), jnp.zeros(d)
        self.n_heads = n_heads

    def __call__(self, x: Float[Array, "*b N d"], mask: Bool[Array, "*b N N"]) -> Float[Array, "*b N d"]:
        *b, N, d = x.shape
        h = layer_norm(x, *self.ln1)
        q, k, v = jnp.split((h @ self.qkv).reshape(*b, N, 3 * self.n_heads, d // self.n_heads), 3, axis=-2)
        att = jnp.einsum("...nhe,...mhe->...hnm", q, k) / jnp.sqrt(d // self.n_heads)  # [*b, heads, N, N]
        att = jax.nn.softmax(jnp.where(mask[..., None, :, :], att, -1e9), axis=-1)
        a = jnp.einsum("...hnm,...mhe->...nhe", att, v).reshape(*b, N, d) @ self.out
        m = jax.nn.gelu(layer_norm(x + a, *self.ln2) @ self.up + self.up_b) @ self.down + self.down_b
        return a + m


class GeneStack(eqx.Module):
    """D gene slots stacked along a leading axis (``filter_vmap``), applied in order with ``lax.scan``."""

    genes: Gene  # every array leaf has a leading axis of size D
    gates: Float[Array, " D"]  # residual gates g, learned
    active: Bool[Array, " D"]  # which slots are expressed (not learned)

    def __init__(self, slots: int, layers: int, d: int, n_heads: int, mlp_ratio: int, *, key: PRNGKeyArray):
        keys = jax.random.split(key, slots)
        self.genes = eqx.filter_vmap(lambda k: Gene(d, n_heads, mlp_ratio, key=k))(keys)
        self.active = jnp.arange(slots) < layers
        self.gates = self.active.astype(jnp.float32)  # a free slot's gate is 0: a gene grown there starts closed

    @property
    def slots(self) -> int:
        return self.gates.shape[0]

    def __call__(self, x: Float[Array, "*b N d"], mask: Bool[Array, "*b N N"]) -> Float[Array, "*b N d"]:
        params, static = eqx.partition(self.genes, eqx.is_array)

        def slot(x, p):
            gene_params, g, on = p
            gene = eqx.combine(gene_params, static)
            # an inactive slot is skipped outright (a real saving outside vmap; a select under vmap)
            dx = jax.lax.cond(on, lambda: gene(x, mask), lambda: jnp.zeros_like(x))
            return x + g * dx, None

        # unrolled: D is small and fixed, and unrolling saves the loop's per-iteration overhead
        x, _ = jax.lax.scan(slot, x, (params, self.gates, self.active), unroll=True)
        return x


def gene(stack: GeneStack, i: int) -> Gene:
    """Slot ``i``'s gene as a standalone layer."""
    return jax.tree.map(lambda leaf: leaf[i] if eqx.is_array(leaf) else leaf, stack.genes)


def shift_in(x: Array, k: ArrayLike, new: ArrayLike) -> Array:
    """Along the leading (slot) axis: slots from ``k`` on move up by one (the last falls off), ``new`` goes
    into slot ``k``. ``k`` may be traced: the shape never changes."""
    D = x.shape[0]
    src = jnp.where(jnp.arange(D) > k, jnp.arange(D) - 1, jnp.arange(D))
    return x[src].at[k].set(new)


def insert(stack: GeneStack, k: ArrayLike, new: Gene, gate: float = 0.0) -> GeneStack:
    """``new`` inserted in slot ``k`` behind a gate ``gate`` (0: closed; active), the genes from ``k`` on one slot
    higher. The last slot must be free (it falls off). With g = 0 every output is exactly what it was."""
    genes = jax.tree.map(lambda x, n: shift_in(x, k, n), stack.genes, new)
    return eqx.tree_at(lambda s: (s.genes, s.gates, s.active), stack,
                       (genes, shift_in(stack.gates, k, gate), shift_in(stack.active, k, True)))


def express(stack: GeneStack, genes: Gene) -> GeneStack:
    """The stack with its first ``k`` slots holding ``genes`` (stacked, leading axis k), in order; the other
    slots, the gates and the active flags are left as they are."""

    def put(slots, new):
        return slots.at[: new.shape[0]].set(new)

    return eqx.tree_at(lambda s: s.genes, stack, jax.tree.map(put, stack.genes, genes))
