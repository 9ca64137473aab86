"""Padding efficiency (real / padded tokens) of our length buckets vs random batches."""
from __future__ import annotations

from typing import Dict

import numpy as np

from bench.common import DEFAULT
from encoders.data.bucketing import LengthBucketBatcher, padding_efficiency
from encoders.data.synthetic import make_synthetic


def default_train_lengths(n: int = DEFAULT["num_train"]) -> np.ndarray:
    """Lengths of the default training split (data=synthetic, seed 42), as sources.py makes it."""
    d = make_synthetic(n, [DEFAULT["seed"], 0], DEFAULT["vocab_size"], DEFAULT["max_length"])
    return np.array([len(t) for t in d["tokens"]], dtype=np.int64)


def imdb_like_lengths(n: int = 25000, seed: int = 0) -> np.ndarray:
    """Long-tailed review lengths like IMDB's (median about 230 tokens, a tail past 2000):
    log-normal with median 230 and sigma 0.58, clipped to [10, 2500]."""
    rng = np.random.default_rng(seed)
    return np.clip(np.rint(rng.lognormal(np.log(230.0), 0.58, n)), 10, 2500).astype(np.int64)


def random_batches(n: int, batch_size: int, seed: int, epoch: int):
    perm = np.random.default_rng([seed, epoch]).permutation(n)
    return [perm[i:i + batch_size] for i in range(0, n, batch_size)]


def efficiencies(lengths: np.ndarray, batch_size: int, seed: int, epochs: int = 3) -> Dict[str, float]:
    """Mean over ``epochs`` epochs (each epoch's batches differ: buckets are reshuffled)."""
    batcher = LengthBucketBatcher(lengths, batch_size, seed=seed, pool_batches=DEFAULT["pool_batches"])
    bucketed = [padding_efficiency(lengths, batcher.batches(e)) for e in range(epochs)]
    rand = [padding_efficiency(lengths, random_batches(len(lengths), batch_size, seed, e)) for e in range(epochs)]
    return {"bucketed": float(np.mean(bucketed)), "random": float(np.mean(rand))}


def run(mode: str) -> Dict[str, float]:
    n_default = DEFAULT["num_train"] if mode != "smoke" else 2000
    n_imdb = 25000 if mode != "smoke" else 2000
    bs = DEFAULT["batch_size"]
    d = efficiencies(default_train_lengths(n_default), bs, DEFAULT["seed"])
    lt = efficiencies(imdb_like_lengths(n_imdb), bs, DEFAULT["seed"])
    return {
        "padding_efficiency_bucketed": d["bucketed"],
        "padding_efficiency_random": d["random"],
        "padding_efficiency_longtail_bucketed": lt["bucketed"],
        "padding_efficiency_longtail_random": lt["random"],
    }
