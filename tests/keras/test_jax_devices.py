"""``backend=jax trainer.devices=2`` on 2 CPU devices (``XLA_FLAGS``): batches whose row count is odd
train through ``pad_rows`` (empty rows of weight 0), and the validation figures equal a one-device
run's on the same data."""
import json

import numpy as np

from tests.helpers import real_text_rows, run_train, write_text_csv
from tests.keras.test_jax_run import OVERRIDES

TWO_CPUS = {"XLA_FLAGS": "--xla_force_host_platform_device_count=2"}


def test_jax_two_devices_odd_batches_match_one_device(tmp_path):
    rows = real_text_rows(68, seed=3)
    train = write_text_csv(tmp_path / "train.csv", rows[:45])  # batches of 8: the last has 5 rows
    val = write_text_csv(tmp_path / "val.csv", rows[45:])  # 23 rows in batches of 8: the last has 7
    common = [o for o in OVERRIDES if not o.startswith(("trainer.limit_", "data.batch_size"))]
    common += [f"data.train_file={train}", f"data.validation_file={val}", "data.batch_size=8",
               "data.eval_batch_size=8", "trainer.max_epochs=1", "trainer.accelerator=cpu"]
    figures = {}
    for n in (1, 2):
        run_dir = tmp_path / f"devices{n}"
        proc = run_train(run_dir, *common, f"trainer.devices={n}", extra_env=TWO_CPUS if n == 2 else None)
        figures[n] = json.loads((run_dir / "metrics.json").read_text())
        used = "DataParallel over ['cpu:0', 'cpu:1']" in proc.stdout + proc.stderr + _logs(run_dir)
        assert used == (n == 2), proc.stderr[-3000:]
        assert figures[n]["epochs"] == 1 and figures[n]["global_step"] == 6  # 45 rows: 5 x 8 + 5
    one, two = figures[1], figures[2]
    for key in ("val_acc", "val_loss"):
        assert np.isfinite(one[key]) and abs(one[key] - two[key]) <= 1e-5, (key, one[key], two[key])
    for key in ("val/acc", "val/loss", "train/loss"):
        assert np.allclose(one["history"][key], two["history"][key], rtol=0, atol=1e-5), key


def test_pad_rows_keeps_the_batch_and_its_mean_loss():
    from encoders.config import TAG_PAD_ID
    from encoders.keras.batches import pad_rows

    rng = np.random.default_rng(0)
    for _ in range(200):
        rows, replicas, width = int(rng.integers(1, 20)), int(rng.integers(1, 5)), int(rng.integers(1, 9))
        tokens = rng.integers(0, 9, (rows, width))
        kind = rng.integers(3)
        target = (rng.integers(0, 3, rows) if kind == 0 else rng.normal(size=(rows, 1)).astype(np.float32)
                  if kind == 1 else rng.integers(0, 3, (rows, width)))
        t, y, w = pad_rows(tokens, target, replicas, pad_id=7)
        padded = t.shape[0]
        assert padded % replicas == 0 and rows <= padded < rows + replicas and len(y) == len(w) == padded
        assert w.shape == (y.shape if kind == 2 else (padded,))
        assert (t[:rows] == tokens).all() and (y[:rows] == target).all() and (t[rows:] == 7).all()
        assert (w[rows:] == 0).all() and (w[:rows] > 0).all()
        if kind == 2:  # tags: the loss is a mean over real tags already; pad rows' tags are skipped
            assert (w[:rows] == 1).all() and (y[rows:] == TAG_PAD_ID).all()
        else:  # sum(w * loss) / padded is the mean over the real rows
            assert abs(w.sum() / padded - 1.0) < 1e-6



def test_widen_pads_tags_of_one_token_sentences_too():
    """Tags are told from regression targets by type, not width: a batch whose longest sentence
    has one token has tags [B, 1] and must be widened with its tokens."""
    from encoders.config import TAG_PAD_ID
    from encoders.keras.batches import compile_width, widen

    rng = np.random.default_rng(1)
    for width in (1, 2, 9, 70):
        tokens = rng.integers(1, 9, (3, width))
        tags = rng.integers(0, 4, (3, width))
        scores = rng.normal(size=(3, 1)).astype(np.float32)
        classes = rng.integers(0, 2, 3)
        t, y = widen(tokens, tags)
        assert t.shape == y.shape == (3, compile_width(width)) and (y[:, width:] == TAG_PAD_ID).all()
        assert (y[:, :width] == tags).all() and (t[:, width:] == 0).all()
        assert widen(tokens, scores)[1] is scores and widen(tokens, classes)[1] is classes

def _logs(run_dir) -> str:
    return "".join(p.read_text() for p in run_dir.rglob("*.log"))
