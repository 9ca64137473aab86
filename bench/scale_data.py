"""A large labelled csv like real corpora: Zipf-distributed words, long-tailed lengths (mean about
22 words, a tail to 400), written fast. ``python -m bench.scale_data OUT.csv ROWS`` makes one."""
from __future__ import annotations

import sys

import numpy as np

VOCAB = 50_000
MAX_WORDS = 400


def lengths_of(rows: int, rng: np.random.Generator) -> np.ndarray:
    lengths = np.rint(rng.lognormal(mean=np.log(16.0), sigma=0.8, size=rows)).astype(np.int64)
    return np.clip(lengths, 1, MAX_WORDS)


def write_csv(path: str, rows: int, seed: int = 0, chunk: int = 100_000) -> int:
    """Write ``rows`` rows (``text,label``); returns the number of words written. The label says
    whether the text holds more words from the first half of the word list than from the second."""
    rng = np.random.default_rng(seed)
    words = np.array([f"w{i}" for i in range(VOCAB)], dtype=object)
    total = 0
    with open(path, "w", encoding="utf-8") as f:
        f.write("text,label\n")
        for start in range(0, rows, chunk):
            n = min(chunk, rows - start)
            lengths = lengths_of(n, rng)
            ids = (rng.zipf(1.3, size=int(lengths.sum())) - 1) % VOCAB
            total += ids.size
            ends = np.cumsum(lengths)
            first_half = np.add.reduceat((ids < VOCAB // 2).astype(np.int64), ends - lengths)
            labels = (2 * first_half > lengths).astype(np.int64)
            tokens = words[ids]
            lines = [" ".join(tokens[e - n_:e]) for e, n_ in zip(ends.tolist(), lengths.tolist())]
            f.write("".join(f"{t},{y}\n" for t, y in zip(lines, labels.tolist())))
    return total


if __name__ == "__main__":
    out, n = sys.argv[1], int(sys.argv[2])
    words = write_csv(out, n)
    print(f"{out}: {n} rows, {words} words ({words / n:.1f} a row)")
