"""Keras 3 / TensorFlow: our encoder vs a plain ``Bidirectional(LSTM)`` with a mask, same batches.

Run in its own process by ``bench/run.py`` (``python -m bench.tf_bench SIZE_JSON``; the last
stdout line is JSON), after the torch parts: TensorFlow and torch each size their own thread
pools to all cores, and loading both into one process would let one's idle spinning threads
slow the other's timings.

Both models: token ids -> embedding (mask from padding id 0) -> bi-LSTM, final state -> Dense,
with the default run's sizes and the same ``compile_classifier`` (AdamW 3e-3, clipnorm 1.0,
sparse CE, accuracy). Each repeat runs one ``model.fit`` epoch over the same first ``n`` batches
of the default training data (the ``BucketedBatches`` tf.data pipeline, epoch 0), alternating
which model goes first, after two warm-up rounds (epoch times, tokens/s). Step times are taken in
lockstep after that (``lockstep_steps``). The speed ratios are medians over rounds of each round's
ratio, plain / ours.
"""
from __future__ import annotations

import json
import os
import statistics
import sys
import time
from typing import Dict

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from bench.common import DEFAULT, paired_ratio, quartiles  # noqa: E402
from encoders.config import ClassifierSpec  # noqa: E402
from encoders.data.synthetic import make_synthetic  # noqa: E402
from encoders.keras.models import build_classifier, compile_classifier  # noqa: E402
from encoders.keras.batches import BucketedBatches  # noqa: E402


def plain_classifier() -> keras.Model:
    d = DEFAULT
    tokens = keras.Input(shape=(None,), dtype="int64", name="tokens")
    x = keras.layers.Embedding(d["vocab_size"], d["embedding_dim"], mask_zero=True)(tokens)
    x = keras.layers.Bidirectional(keras.layers.LSTM(d["hidden_size"]))(x)
    return keras.Model(tokens, keras.layers.Dense(2)(x), name="plain_bilstm")


def ours_classifier() -> keras.Model:
    d = DEFAULT
    return build_classifier(ClassifierSpec(vocab_size=d["vocab_size"], num_classes=2, embedding_dim=d["embedding_dim"],
                                           hidden_size=d["hidden_size"], cell="lstm", bidirectional=True))


class StepTimer(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.steps = []

    def on_train_batch_begin(self, batch, logs=None):
        self.t = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.steps.append(time.perf_counter() - self.t)


def lockstep_steps(models: Dict[str, keras.Model], batches: BucketedBatches, n: int, repeats: int) -> Dict:
    """Per round, the median time of one compiled train step of each model, the two models
    stepping in turn over the same ``n`` batches (``train_function`` is what ``fit`` calls once
    per step). Steps of both models share every slow or fast spell of the machine, which
    separate epochs (+-15% apart on a shared 2-core machine) do not."""
    for m in models.values():
        m.make_train_function()  # already traced by the fit rounds
    out = {k: [] for k in models}
    for r in range(repeats):
        its = {k: iter(batches.dataset().take(n)) for k in models}
        times = {k: [] for k in models}
        for i in range(n):
            for k in (list(models) if (r + i) % 2 == 0 else list(reversed(list(models)))):
                t = time.perf_counter()
                models[k].train_function(its[k])
                times[k].append(time.perf_counter() - t)
        for k in models:
            out[k].append(statistics.median(times[k]))
    return out


def run(s: Dict) -> Dict:
    d = DEFAULT
    n = s["tf_batches"]
    keras.utils.set_random_seed(0)
    tr = make_synthetic(max(n * d["batch_size"] * 2, 4096), [d["seed"], 0], d["vocab_size"], d["max_length"])
    batches = BucketedBatches(tr["tokens"], tr["label"], d["batch_size"], seed=d["seed"], shuffle=True,
                              pool_batches=d["pool_batches"])
    tokens = sum(int((t != 0).sum()) for t, _ in list(batches.batches())[:n])  # pad id 0 is never a token
    models = {"ours": ours_classifier(), "plain": plain_classifier()}
    for m in models.values():
        compile_classifier(m, d["lr"], 0.0, d["clip"])
    epoch = {k: [] for k in models}
    outside = {k: [] for k in models}  # fit time not spent inside train steps (iterator, callbacks, ...)
    warm = 2  # tracing happens in round 0; round 1 still pays one-off costs (seen: +0.5 s)
    for r in range(warm + s["tf_epoch_repeats"]):
        order = list(models) if r % 2 == 0 else list(reversed(list(models)))
        for k in order:
            timer = StepTimer()
            t = time.perf_counter()
            models[k].fit(batches.dataset().take(n), epochs=1, steps_per_epoch=n, verbose=0, callbacks=[timer])
            print(f"[tf_bench] round {r} {k}: epoch {time.perf_counter() - t:.3f} s, steps {sum(timer.steps):.3f} s",
                  file=sys.stderr, flush=True)
            if r >= warm:
                epoch[k].append(time.perf_counter() - t)
                outside[k].append(epoch[k][-1] - sum(timer.steps))
    step = lockstep_steps(models, batches, n, s["tf_repeats"])
    e = {k: statistics.median(v) for k, v in epoch.items()}
    return {
        # the measure is the step time, taken in lockstep (see lockstep_steps); whole
        # epochs also carry fit's occasional 0.5 s stalls outside the steps, which land on either
        # model at random
        "keras_speed_vs_plain": paired_ratio(step["plain"], step["ours"]),
        "keras_speed_vs_plain_quartiles": quartiles([p / o for p, o in zip(step["plain"], step["ours"])]),
        "keras_epoch_speed_vs_plain": paired_ratio(epoch["plain"], epoch["ours"]),
        "tokens_per_second_tf": tokens / e["ours"],
        "tokens_per_second_tf_plain": tokens / e["plain"],
        "tf_epoch_s": {"ours": e["ours"], "plain": e["plain"], "batches": n},
        "tf_fit_time_outside_steps_s": {k: statistics.median(v) for k, v in outside.items()},
        "tf_version": tf.__version__,
        "keras_version": keras.__version__,
        "tf_threads": {"intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
                       "inter_op": tf.config.threading.get_inter_op_parallelism_threads()},
    }


if __name__ == "__main__":
    print(json.dumps(run(json.loads(sys.argv[1]))))
