"""Keras 3 on jax: our classifier vs a plain ``Embedding(mask_zero=True) -> Bidirectional(LSTM)`` on
the same batches (CPU unless jax sees a GPU).

``python -m bench.jax_bench [N_BATCHES] [ROUNDS]`` (last stdout line: JSON). The first N batches of
the default training data (``BucketedBatches``, epoch 0), widened as ``backend=jax`` feeds them
(``compile_width``: jax compiles one program per shape). Both Keras models get the default run's
sizes and ``compile_classifier``; one warm-up pass compiles every width, then each round times
``train_on_batch`` of both models batch by batch in turn (the order alternating), so slow spells of
the machine fall on both. ``keras_jax_speed_vs_plain`` is the median over rounds of plain / ours;
tokens/s count real (non-pad) tokens.
"""
from __future__ import annotations

import json
import os
import statistics
import sys
import time

from bench.common import DEFAULT, paired_ratio
from encoders.data.synthetic import make_synthetic


def first_batches(n: int):
    from encoders.keras.batches import BucketedBatches

    d = DEFAULT
    tr = make_synthetic(max(n * d["batch_size"] * 2, 4096), [d["seed"], 0], d["vocab_size"], d["max_length"])
    batches = BucketedBatches(tr["tokens"], tr["label"], d["batch_size"], seed=d["seed"], shuffle=True,
                              pool_batches=d["pool_batches"])
    return list(batches.batches())[:n]


def keras_run(n: int, rounds: int) -> dict:
    os.environ["KERAS_BACKEND"] = "jax"
    import jax
    import keras

    from encoders.config import ClassifierSpec
    from encoders.keras.batches import widen
    from encoders.keras.models import build_classifier, compile_classifier

    d = DEFAULT
    batches = [widen(x, y) for x, y in first_batches(n)]
    tokens = sum(int((x != 0).sum()) for x, _ in batches)
    tokens_in = keras.Input(shape=(None,), dtype="int64")  # the plain model, as bench/tf_bench.py builds it
    x = keras.layers.Embedding(d["vocab_size"], d["embedding_dim"], mask_zero=True)(tokens_in)
    x = keras.layers.Bidirectional(keras.layers.LSTM(d["hidden_size"]))(x)
    plain = keras.Model(tokens_in, keras.layers.Dense(2)(x), name="plain_bilstm")
    ours = build_classifier(ClassifierSpec(vocab_size=d["vocab_size"], num_classes=2, embedding_dim=d["embedding_dim"],
                                           hidden_size=d["hidden_size"], cell="lstm", bidirectional=True))
    models = {"ours": ours, "plain": plain}
    for m in models.values():
        compile_classifier(m, d["lr"], 0.0, d["clip"])
        for x, y in batches:  # warm-up: every width compiled
            m.train_on_batch(x, y)
    times = {k: [] for k in models}
    for r in range(rounds):
        total = {k: 0.0 for k in models}
        for i, (x, y) in enumerate(batches):
            for k in (list(models) if (r + i) % 2 == 0 else list(reversed(list(models)))):
                t = time.perf_counter()
                models[k].train_on_batch(x, y)
                total[k] += time.perf_counter() - t
        for k in models:
            times[k].append(total[k])
        print(f"[jax_bench] round {r}: " + ", ".join(f"{k} {v:.3f} s" for k, v in total.items()), file=sys.stderr)
    e = {k: statistics.median(v) for k, v in times.items()}
    return {"keras_jax_speed_vs_plain": paired_ratio(times["plain"], times["ours"]),
            "tokens_per_second_jax": tokens / e["ours"], "tokens_per_second_jax_plain": tokens / e["plain"],
            "jax_epoch_s": {"ours": e["ours"], "plain": e["plain"], "batches": n, "rounds": rounds},
            "jax_version": jax.__version__, "jax_device": str(jax.devices()[0]), "keras_version": keras.__version__}


if __name__ == "__main__":
    args = sys.argv[1:]
    n, rounds = int(args[0]) if args else 40, int(args[1]) if len(args) > 1 else 5
    out = keras_run(n, rounds)
    print(json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in out.items()}))
