"""Seeing pixels: a small CNN that turns a Craftax frame into state tokens, and its mirror that paints one back.

``--obs pixels`` (Craftax-Classic-Pixels-v1, 63x63 RGB) swaps the symbolic cell embeddings for this eye.
A state is still P + 1 tokens, so every layout works unchanged: the frame (zero-padded to 64x64) goes
through two stride-4 convolutions to a 4x4 feature map; each 2x2 quarter of that map is one token, and a
global average of it is the last ("status") token, the one the policy reads. The decoder runs the same
path backwards: from the P + 1 outputs of a state's query tokens to a 64x64 frame, cropped to 63x63.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from einops import rearrange
from jaxtyping import Array, Float, PRNGKeyArray

SIDE = 64  # frames are zero-padded to this square
GRID = 4  # feature map side after two stride-4 convolutions
N_TOKENS = 4  # 2x2 quarters of the feature map, plus one global token


class PixelEye(eqx.Module):
    image: tuple[int, int, int] = eqx.field(static=True)
    conv1: eqx.nn.Conv2d
    conv2: eqx.nn.Conv2d
    quarter_in: eqx.nn.Linear
    global_in: eqx.nn.Linear
    quarter_out: eqx.nn.Linear
    global_out: eqx.nn.Linear
    deconv1: eqx.nn.ConvTranspose2d
    deconv2: eqx.nn.ConvTranspose2d

    def __init__(self, image: tuple[int, int, int], d: int, channels: int = 16, *, key: PRNGKeyArray):
        ks = jax.random.split(key, 8)
        c1, c2 = channels, 2 * channels
        self.image = tuple(image)
        self.conv1 = eqx.nn.Conv2d(3, c1, 4, stride=4, key=ks[0])
        self.conv2 = eqx.nn.Conv2d(c1, c2, 4, stride=4, key=ks[1])
        self.quarter_in = eqx.nn.Linear(4 * c2, d, key=ks[2])
        self.global_in = eqx.nn.Linear(c2, d, key=ks[3])
        self.quarter_out = eqx.nn.Linear(d, 4 * c2, key=ks[4])
        self.global_out = eqx.nn.Linear(d, c2, key=ks[5])
        self.deconv1 = eqx.nn.ConvTranspose2d(c2, c1, 4, stride=4, key=ks[6])
        self.deconv2 = eqx.nn.ConvTranspose2d(c1, 3, 4, stride=4, key=ks[7])

    def encode(self, frame: Float[Array, "h w 3"]) -> Float[Array, "P1 d"]:
        h, w, _ = self.image
        x = jnp.pad(frame, ((0, SIDE - h), (0, SIDE - w), (0, 0))).transpose(2, 0, 1)  # [3, 64, 64]
        f = self.conv2(jax.nn.gelu(self.conv1(x)))  # [c2, 4, 4]
        quarters = rearrange(f, "c (qh a) (qw b) -> (qh qw) (a b c)", a=2, b=2)
        return jnp.concatenate([jax.vmap(self.quarter_in)(quarters), self.global_in(f.mean((1, 2)))[None]])

    def decode(self, h: Float[Array, "P1 d"]) -> Float[Array, "h w 3"]:
        quarters = jax.vmap(self.quarter_out)(h[:-1])  # [4, 4 * c2]
        f = rearrange(quarters, "(qh qw) (a b c) -> c (qh a) (qw b)", qh=2, a=2, b=2)
        f = f + self.global_out(h[-1])[:, None, None]
        x = self.deconv2(jax.nn.gelu(self.deconv1(f)))  # [3, 64, 64]
        hh, ww, _ = self.image
        return jax.nn.sigmoid(x[:, :hh, :ww].transpose(1, 2, 0))
