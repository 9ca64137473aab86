"""Data-path throughput: batched Rust tokenization vs ``Vocab.encode``, ``TokenBuffer.pad`` vs ``collate``,
and padding efficiency of token-budget batches. Prints figures; not a test.

    PYTHONPATH=. python -m bench.data_throughput [--texts 200000] [--repeats 3]
"""
from __future__ import annotations

import argparse
import time
from itertools import chain
from typing import Callable, Dict, List

import numpy as np


def best_of(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def generated_texts(n: int, seed: int = 0) -> List[str]:
    """``n`` texts of about 22 words (Poisson) from a Zipf-like 20k-word vocabulary, some capitalised."""
    rng = np.random.default_rng(seed)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    words = ["".join(rng.choice(letters, rng.integers(2, 10))) for _ in range(20000)]
    words += [w.capitalize() for w in words[:2000]]
    p = 1.0 / np.arange(1, len(words) + 1)
    p /= p.sum()
    counts = rng.poisson(22, n)
    flat = rng.choice(len(words), size=int(counts.sum()), p=p)
    out, pos = [], 0
    for c in counts:
        out.append(" ".join(words[i] for i in flat[pos:pos + c]))
        pos += c
    return out


def tokenization(n: int, repeats: int) -> Dict[str, float]:
    from tokenizers import normalizers

    from encoders.data.tokenizers import encode_batch, train_tokenizer
    from encoders.data.vocab import Vocab

    texts = generated_texts(n)
    out: Dict[str, float] = {}
    t0 = time.perf_counter()
    vocab = Vocab.build(texts, "whitespace")
    out["vocab_build_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    tok = train_tokenizer(texts, "whitespace")
    out["train_tokenizer_s"] = time.perf_counter() - t0
    total = sum(len(vocab.encode(t)) for t in texts[:1000]) * n / 1000  # estimate, refined below
    values, offsets = encode_batch(tok, texts)
    assert values.tolist()[:50] == list(chain.from_iterable(vocab.encode(t) for t in texts[:10]))[:50]
    total = len(values)
    out["tokens"] = total

    out["vocab_encode_loop"] = total / best_of(lambda: [vocab.encode(t) for t in texts], repeats)
    out["encode_batch"] = total / best_of(lambda: encode_batch(tok, texts), repeats)

    # the alternatives behind encode_batch's choice (chunks of 1000 texts unless said)
    def chunked(extract: Callable, fast: bool = True, chunk: int = 1000) -> Callable[[], None]:
        def run():
            for s in range(0, n, chunk):
                part = texts[s:s + chunk]
                encs = (tok.encode_batch_fast if fast else tok.encode_batch)(part, add_special_tokens=False)
                extract(encs)
        return run

    def fromiter(encs):
        ids = [e.ids for e in encs]
        np.fromiter(chain.from_iterable(ids), dtype=np.int32, count=sum(map(len, ids)))

    def concat(encs):
        np.concatenate([np.asarray(e.ids, dtype=np.int32) for e in encs])

    def listflat(encs):
        np.array([i for e in encs for i in e.ids], dtype=np.int32)

    out["alt_fast_fromiter"] = total / best_of(chunked(fromiter), repeats)
    out["alt_full_encode_batch_fromiter"] = total / best_of(chunked(fromiter, fast=False), repeats)
    out["alt_fast_concat"] = total / best_of(chunked(concat), repeats)
    out["alt_fast_listflat"] = total / best_of(chunked(listflat), repeats)
    out["alt_fast_fromiter_chunk10000"] = total / best_of(chunked(fromiter, chunk=10000), repeats)
    out["alt_fast_only_rust_no_extract"] = total / best_of(chunked(lambda encs: None), repeats)
    # cost of exact Python lowercasing (final sigma rule) over the library's plain Lowercase
    plain = train_tokenizer(texts[:10], "whitespace")
    plain.normalizer = normalizers.Lowercase()
    out["alt_plain_lowercase_normalizer"] = total / best_of(lambda: encode_batch(plain, texts), repeats)
    return out


def padding(repeats: int) -> Dict[str, float]:
    from encoders.data.bucketing import LengthBucketBatcher, padding_efficiency
    from encoders.data.collate import collate
    from encoders.data.flat import TokenBuffer
    from encoders.data.synthetic import make_synthetic

    data = make_synthetic(20000, [42, 0], 32, 200)  # the default training split
    rows = [np.asarray(t, dtype=np.int64) for t in data["tokens"]]
    labels = np.asarray(data["label"], dtype=np.int64)
    buf = TokenBuffer.from_lists(data["tokens"])
    lengths = buf.lengths
    out: Dict[str, float] = {}
    batches = LengthBucketBatcher(lengths, 64, seed=42).batches(0)
    rand = np.random.default_rng(0).permutation(len(rows))
    random_batches = [rand[i:i + 64] for i in range(0, len(rand), 64)]
    for name, bs in (("bucketed", batches), ("random", random_batches)):
        k = len(bs)
        out[f"collate_ms_per_batch_{name}"] = 1e3 * best_of(
            lambda: [collate([{"tokens": rows[i], "label": labels[i]} for i in b]) for b in bs], repeats) / k
        lists = data["tokens"]
        out[f"collate_lists_ms_per_batch_{name}"] = 1e3 * best_of(
            lambda: [collate([{"tokens": lists[i], "label": int(labels[i])} for i in b]) for b in bs], repeats) / k
        out[f"pad_ms_per_batch_{name}"] = 1e3 * best_of(
            lambda: [buf.pad(b, labels=labels) for b in bs], repeats) / k

    out["efficiency_count_bs64"] = padding_efficiency(lengths, batches)
    for max_tokens, cap in ((1536, None), (4096, None), (8192, None), (4096, 64), (16384, None)):
        b = LengthBucketBatcher(lengths, cap, seed=42, max_tokens=max_tokens)
        effs, fill, nb, rows_mean = [], [], [], []
        for epoch in range(3):
            bb = b.batches(epoch)
            effs.append(padding_efficiency(lengths, bb))
            fill.append(sum(len(x) * max(int(lengths[x].max()), 1) for x in bb) / (len(bb) * max_tokens))
            nb.append(len(bb))
            rows_mean.append(np.mean([len(x) for x in bb]))
        key = f"budget{max_tokens}" + (f"_cap{cap}" if cap else "")
        out[f"{key}_efficiency"] = float(np.mean(effs))
        out[f"{key}_budget_fill"] = float(np.mean(fill))
        out[f"{key}_batches"] = float(np.mean(nb))
        out[f"{key}_rows_per_batch"] = float(np.mean(rows_mean))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=200000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    for name, value in {**tokenization(args.texts, args.repeats), **padding(args.repeats)}.items():
        print(f"{name:40s} {value:,.4f}" if isinstance(value, float) and value < 100 else f"{name:40s} {value:,.0f}")


if __name__ == "__main__":
    main()
