"""vae's random streams (src/core/rng.rs, src/core/kernels.rs::dequantized) in Python, so a
PyTorch run can draw exactly what `vae train` draws: the epoch's shuffle, each example's
N(0, 1) noise and each value's dequantization u. With the same initial weights, the two
trainings then differ only by rounding (bench/torch_colour.py SAME_NOISE=1).

    python3 bench/vae_rng.py        # checks the port against values pinned in rng.rs's tests
"""
import math

import numpy as np

M64 = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15
PURPOSE = {"shuffle": 2, "train_noise": 3, "dequantize": 14}


def splitmix64(state):
    """One SplitMix64 step: (new state, output)."""
    state = (state + GOLDEN) & M64
    z = state
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return state, z ^ (z >> 31)


def rotl(x, k):
    return ((x << k) | (x >> (64 - k))) & M64


class Rng:
    """xoshiro256++ seeded through SplitMix64, as `Rng::new`."""

    def __init__(self, seed):
        s, sm = [], seed & M64
        for _ in range(4):
            sm, z = splitmix64(sm)
            s.append(z)
        self.s = s

    @staticmethod
    def stream(seed, purpose, epoch):
        """`Rng::stream(seed, purpose, epoch)`."""
        _, a = splitmix64((seed ^ 0x5EED000000000000) & M64)
        _, b = splitmix64(a ^ (PURPOSE[purpose] * 0xD1B54A32D192ED03) & M64)
        return Rng(b ^ (epoch * GOLDEN) & M64)

    @staticmethod
    def example_key(seed, purpose, epoch):
        return Rng.stream(seed, purpose, epoch).next_u64()

    @staticmethod
    def example(key, ident):
        _, z = splitmix64(key ^ (ident * 0xBF58476D1CE4E5B9) & M64)
        return Rng(z)

    def next_u64(self):
        s = self.s
        result = (rotl((s[0] + s[3]) & M64, 23) + s[0]) & M64
        t = (s[1] << 17) & M64
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = rotl(s[3], 45)
        return result

    def uniform(self):
        return (self.next_u64() >> 11) * (1.0 / (1 << 53))

    def below(self, n):
        return (self.next_u64() * n) >> 64

    def shuffle(self, items):
        """Fisher–Yates, in place, as `Rng::shuffle`."""
        for i in range(len(items) - 1, 0, -1):
            j = self.below(i + 1)
            items[i], items[j] = items[j], items[i]


def epoch_order(seed, epoch, n):
    """The order `train_epoch` visits the n training examples in (epoch counts from 1)."""
    order = list(range(n))
    Rng.stream(seed, "shuffle", epoch).shuffle(order)
    return order


def example_normals(key, ids, rows):
    """`Rng::fill_example_normals` for one sample: float32 [len(ids), rows], row b the
    example ids[b]'s draws (Box–Muller pairs in f64, rounded to f32)."""
    out = np.empty((len(ids), rows), np.float32)
    for b, ident in enumerate(ids):
        rng = Rng.example(key, int(ident))
        for l in range(0, rows, 2):
            u, v = rng.uniform(), rng.uniform()
            r = math.sqrt(-2.0 * math.log(1.0 - u))
            out[b, l] = r * math.cos(math.tau * v)
            if l + 1 < rows:
                out[b, l + 1] = r * math.sin(math.tau * v)
    return out


def dequantize_u(key, ids, features):
    """The u of `kernels::dequantized` for images `ids` and every feature: float32
    [len(ids), features], so x = (v + u)/256 (computed in f32, as vae does)."""
    ids = np.asarray(ids, np.uint64)[:, None]
    f = np.arange(features, dtype=np.uint64)[None, :]
    with np.errstate(over="ignore"):
        h = np.uint64(key) ^ (((ids << np.uint64(32)) | f) * np.uint64(GOLDEN))
        h = (h ^ (h >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        h = (h ^ (h >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    h ^= h >> np.uint64(31)
    return (h >> np.uint64(40)).astype(np.float32) * np.float32(1.0 / (1 << 24))


def _check():
    """The values rng.rs's `python_port_reference_values` pins."""
    r = Rng(0)
    r.s = [1, 2, 3, 4]
    assert (r.next_u64(), r.next_u64()) == (41943041, 58720359)
    assert Rng.stream(1, "shuffle", 1).next_u64() == 0x9961CA2C75122DF8
    assert epoch_order(1, 1, 10) == [0, 7, 1, 8, 6, 3, 4, 2, 9, 5], epoch_order(1, 1, 10)
    eps = example_normals(Rng.example_key(1, "train_noise", 1), [7], 3)
    assert np.array_equal(eps, np.array([[0.3960029, -1.5154743, 0.8641994]], np.float32)), eps.tolist()
    u = dequantize_u(Rng.example_key(1, "dequantize", 1), [3], 2)
    assert np.array_equal(u, np.array([[0.6696226, 0.19544166]], np.float32)), u.tolist()
    print("vae_rng: matches rng.rs")


if __name__ == "__main__":
    _check()
