"""Keras 3 on jax: our classifier vs a plain ``Embedding(mask_zero=True) -> Bidirectional(LSTM)`` on
the same batches, and our torch backend on them too (CPU unless jax sees a GPU).

``python -m bench.jax_bench [N_BATCHES] [ROUNDS]`` (last stdout line: JSON). The first N batches of
the default training data (``BucketedBatches``, epoch 0), widened as ``backend=jax`` feeds them
(``compile_width``: jax compiles one program per shape). Both Keras models get the default run's
sizes and ``compile_classifier``; one warm-up pass compiles every width, then each round times
``train_on_batch`` of both models batch by batch in turn (the order alternating), so slow spells of
the machine fall on both. ``keras_jax_speed_vs_plain`` is the median over rounds of plain / ours;
tokens/s count real (non-pad) tokens.

Our torch backend (``SequenceClassifier``, the same sizes, the padded encoder path that
``encoder_path="auto"`` takes on a CPU) runs in a child process, so that jax's and torch's thread
pools never share one: a plain train step (cross-entropy, backward, global-norm clipping, AdamW
with the same lr and weight decay), denormals flushed as the torch training entry does, on the
same batches at their own width (torch needs no compile widths). One torch round runs between jax
rounds, before or after alternately; ``keras_jax_vs_torch`` is the median over rounds of
torch / ours-on-jax. Both use every core: torch ``set_num_threads(cores)``, jax XLA's default pool.
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

from bench.common import DEFAULT, paired_ratio, quartiles, rounded
from encoders.data.synthetic import make_synthetic

CHILD_TAG = "[torch-child] "  # the child's replies on stdout start with it (anything else there is ignored)


def first_batches(n: int):
    from encoders.keras.batches import BucketedBatches

    d = DEFAULT
    tr = make_synthetic(max(n * d["batch_size"] * 2, 4096), [d["seed"], 0], d["vocab_size"], d["max_length"])
    batches = BucketedBatches(tr["tokens"], tr["label"], d["batch_size"], seed=d["seed"], shuffle=True,
                              pool_batches=d["pool_batches"])
    return list(batches.batches())[:n]


def cores() -> int:
    return len(os.sched_getaffinity(0))


class TorchRounds:
    """Our torch backend's training rounds in a child process (``--torch-child``), one per ``round()``."""

    def __init__(self, batches):
        self.dir = tempfile.TemporaryDirectory(prefix="jax_bench_")
        path = os.path.join(self.dir.name, "batches.npz")
        np.savez(path, **{f"{k}{i}": a for i, (x, y) in enumerate(batches) for k, a in (("x", x), ("y", y))})
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])))
        self.proc = subprocess.Popen([sys.executable, "-m", "bench.jax_bench", "--torch-child", path], cwd=root,
                                     env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.info = json.loads(self._reply())  # after the child's warm-up pass

    def _reply(self) -> str:
        for line in self.proc.stdout:
            if line.startswith(CHILD_TAG):
                return line[len(CHILD_TAG):]
        raise RuntimeError(f"the torch child ended with exit status {self.proc.wait()}")

    def round(self) -> float:
        self.proc.stdin.write("round\n")
        self.proc.stdin.flush()
        return float(self._reply())

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait()
        self.dir.cleanup()


def torch_child(path: str) -> None:
    """Serve ``TorchRounds``: reply with the setup, then the seconds of one pass per ``round`` line."""
    import torch
    from torch.nn import functional as F

    from encoders.torch.models import SequenceClassifier
    from encoders.torch.runtime import flush_denormal

    flush_denormal(True)  # before the first parallel operation, as the training entry does
    torch.set_num_threads(cores())
    d = DEFAULT
    data = np.load(path)
    batches = []
    for i in range(len(data.files) // 2):
        x = torch.from_numpy(data[f"x{i}"])
        batches.append((x, (x != 0).sum(1), torch.from_numpy(data[f"y{i}"])))
    torch.manual_seed(0)
    model = SequenceClassifier(vocab_size=d["vocab_size"], num_classes=2, embedding_dim=d["embedding_dim"],
                               hidden_size=d["hidden_size"], cell="lstm", bidirectional=True, pooling="last")
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=d["lr"], weight_decay=0.0)

    def one_pass() -> float:
        t = time.perf_counter()
        for tokens, lengths, labels in batches:
            loss = F.cross_entropy(model(tokens, lengths), labels)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), d["clip"])
            opt.step()
        return time.perf_counter() - t

    one_pass()  # warm-up
    print(CHILD_TAG + json.dumps({"torch_version": torch.__version__, "torch_threads": torch.get_num_threads()}),
          flush=True)
    for line in sys.stdin:
        if line.strip() == "round":
            print(f"{CHILD_TAG}{one_pass()!r}", flush=True)


def keras_run(n: int, rounds: int) -> dict:
    os.environ["KERAS_BACKEND"] = "jax"
    import jax
    import keras

    from encoders.config import ClassifierSpec
    from encoders.keras.batches import widen
    from encoders.keras.models import build_classifier, compile_classifier

    d = DEFAULT
    load_start = [round(v, 2) for v in os.getloadavg()]
    raw = first_batches(n)
    torch_rounds = TorchRounds(raw)  # warms up while jax compiles below
    batches = [widen(x, y) for x, y in raw]
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
    times = {k: [] for k in (*models, "torch")}
    try:
        for r in range(rounds):
            if r % 2:
                times["torch"].append(torch_rounds.round())
            total = {k: 0.0 for k in models}
            for i, (x, y) in enumerate(batches):
                for k in (list(models) if (r + i) % 2 == 0 else list(reversed(list(models)))):
                    t = time.perf_counter()
                    models[k].train_on_batch(x, y)
                    total[k] += time.perf_counter() - t
            for k in models:
                times[k].append(total[k])
            if r % 2 == 0:
                times["torch"].append(torch_rounds.round())
            print(f"[jax_bench] round {r}: " + ", ".join(f"{k} {v[-1]:.3f} s" for k, v in times.items()),
                  file=sys.stderr)
    finally:
        torch_rounds.close()
    e = {k: statistics.median(v) for k, v in times.items()}
    vs_plain = [p / o for p, o in zip(times["plain"], times["ours"])]
    vs_torch = [t / o for t, o in zip(times["torch"], times["ours"])]
    # a torch round 3x slower than its median: torch's threads lost a core to another process
    # (its OpenMP steps wait for every thread; XLA's pool shares work out and slows far less)
    stalled = sum(t > 3 * e["torch"] for t in times["torch"])
    return {"keras_jax_speed_vs_plain": paired_ratio(times["plain"], times["ours"]),
            "keras_jax_speed_vs_plain_quartiles": quartiles(vs_plain), "keras_jax_speed_vs_plain_rounds": vs_plain,
            "keras_jax_vs_torch": paired_ratio(times["torch"], times["ours"]),
            "keras_jax_vs_torch_quartiles": quartiles(vs_torch), "keras_jax_vs_torch_rounds": vs_torch,
            "tokens_per_second_jax": tokens / e["ours"], "tokens_per_second_jax_plain": tokens / e["plain"],
            "tokens_per_second_torch": tokens / e["torch"], "torch_stalled_rounds": stalled,
            "jax_epoch_s": {**e, "batches": n, "rounds": rounds},
            "jax_version": jax.__version__, "jax_device": str(jax.devices()[0]), "keras_version": keras.__version__,
            "cpu_cores": cores(), **torch_rounds.info,
            "load_average_start_end": [load_start, [round(v, 2) for v in os.getloadavg()]]}


if __name__ == "__main__":
    args = sys.argv[1:]
    if args[:1] == ["--torch-child"]:
        torch_child(args[1])
        sys.exit(0)
    n, rounds = int(args[0]) if args else 40, int(args[1]) if len(args) > 1 else 5
    out = keras_run(n, rounds)
    print(json.dumps(rounded(out)))
