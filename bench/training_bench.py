"""Training on the default data and model: Lightning vs a hand-written loop, collate cost,
tokens/s, and what padding-correctness is worth in accuracy (``padding_matters``).

Every loop here sees the same batches: ``SequenceDataModule``'s train loader (length buckets,
seed 42, epoch 0, the shared numpy ``collate``), the first ``n`` of them.
"""
from __future__ import annotations

import contextlib
import copy
import os
import statistics
import sys
import tempfile
import time
import types
import warnings
from typing import Dict

# as encoders/torch/runner.py: keep TensorBoard's writer from importing TensorFlow into this process
sys.modules.setdefault("tensorboard.compat.notf", types.ModuleType("tensorboard.compat.notf"))

import pytorch_lightning as pl  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402
from torch.nn import functional as F  # noqa: E402

from bench.common import DEFAULT, paired_ratio, quartiles  # noqa: E402
from encoders.data.synthetic import make_synthetic  # noqa: E402
from encoders.torch.batches import SequenceDataModule, TokenDataset, collate_torch  # noqa: E402
from encoders.torch.models import SequenceClassifier  # noqa: E402
from encoders.torch.runner import build_trainer  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def datasets(n_train: int, n_val: int):
    d = DEFAULT
    tr = make_synthetic(n_train, [d["seed"], 0], d["vocab_size"], d["max_length"])
    va = make_synthetic(n_val, [d["seed"], 1], d["vocab_size"], d["max_length"])
    return TokenDataset(tr["tokens"], tr["label"]), TokenDataset(va["tokens"], va["label"])


def datamodule(train: TokenDataset, val: TokenDataset, batch_size: int = DEFAULT["batch_size"]) -> SequenceDataModule:
    return SequenceDataModule(train, val, batch_size=batch_size, seed=DEFAULT["seed"], num_workers=0,
                              pool_batches=DEFAULT["pool_batches"])


def classifier(seed: int = 0) -> SequenceClassifier:
    torch.manual_seed(seed)
    d = DEFAULT
    return SequenceClassifier(vocab_size=d["vocab_size"], num_classes=2, embedding_dim=d["embedding_dim"],
                              hidden_size=d["hidden_size"], cell="lstm", num_layers=1, bidirectional=True,
                              pooling="last", lr=d["lr"])


class WrongRecipe(nn.Module):
    """The common mistake: bidirectional ``nn.LSTM`` over the padded batch, ``output[:, -1]``."""

    def __init__(self, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        d = DEFAULT
        self.embedding = nn.Embedding(d["vocab_size"], d["embedding_dim"], padding_idx=0)
        self.lstm = nn.LSTM(d["embedding_dim"], d["hidden_size"], batch_first=True, bidirectional=True)
        self.head = nn.Linear(2 * d["hidden_size"], 2)

    def forward(self, tokens, lengths):
        out, _ = self.lstm(self.embedding(tokens))
        return self.head(out[:, -1])


class HandLoop:
    """A plain PyTorch training loop as one writes it by hand: same optimizer (AdamW, lr 3e-3),
    same gradient clipping (norm 1.0, what ``gradient_clip_val`` does), loss and accuracy kept
    per epoch (as a real loop does; nothing here reads them). ``step()`` runs one batch; the time spent fetching+collating batches and in the
    steps is summed in ``data_s`` and ``step_s``."""

    def __init__(self, model: nn.Module, loader):
        self.model, self.loader = model, loader
        self.opt = torch.optim.AdamW(model.parameters(), lr=DEFAULT["lr"], weight_decay=0.0)
        self.loss_sum, self.correct = torch.zeros(()), torch.zeros((), dtype=torch.long)
        self.seen = self.tokens = 0
        self.data_s = self.step_s = 0.0
        self.it = None

    def start_epoch(self) -> None:
        t = time.perf_counter()
        self.model.train()
        self.it = iter(self.loader)
        self.data_s += time.perf_counter() - t

    def step(self) -> bool:
        t0 = time.perf_counter()
        batch = next(self.it, None)
        t1 = time.perf_counter()
        self.data_s += t1 - t0
        if batch is None:
            return False
        labels = batch["labels"]
        logits = self.model(batch["tokens"], batch["lengths"])
        loss = F.cross_entropy(logits, labels)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), DEFAULT["clip"])
        self.opt.step()
        self.loss_sum += loss.detach()
        self.correct += (logits.detach().argmax(-1) == labels).sum()
        self.seen += labels.numel()
        self.tokens += int(batch["lengths"].sum())
        self.step_s += time.perf_counter() - t1
        return True

    def save(self, path: str) -> None:
        """The checkpoint a hand-written loop writes at the end of an epoch."""
        torch.save({"model": self.model.state_dict(), "optimizer": self.opt.state_dict()}, path)


def hand_epoch(model: nn.Module, loader, n_batches: int) -> HandLoop:
    loop = HandLoop(model, loader)
    loop.start_epoch()
    for _ in range(n_batches):
        if not loop.step():
            break
    return loop


class Lockstep:
    """Runs the hand loop one step beside each step of another loop, on its own copy of the model
    and its own loader over the same batches, and times each hand call from outside (the call
    and the teardown of its locals included).

    Both loops then share every slow or fast spell of the machine at a 10 ms grain, which two
    epochs run one after the other do not (on a shared 2-core machine epoch times drift by
    +-15% from one epoch to the next, more than the difference being measured). The hand step
    runs just before the other loop's step on even steps and just after it on odd ones: a step
    runs faster right after the other loop's step on the same batch, so with a fixed order two
    identical hand loops differ by 3-4% (``lockstep_aa_bias`` measures what is left with the
    alternation, about 0)."""

    def __init__(self, hand: HandLoop):
        self.hand, self.hand_s = hand, 0.0

    def _timed(self, fn) -> None:
        t = time.perf_counter()
        fn()
        self.hand_s += time.perf_counter() - t

    def start(self) -> None:
        self._timed(self.hand.start_epoch)

    def before(self, i: int) -> None:
        if i % 2 == 0:
            self._timed(self.hand.step)

    def after(self, i: int) -> None:
        if i % 2:
            self._timed(self.hand.step)

    def finish(self, ckpt_path: str) -> None:
        self._timed(lambda: self.hand.save(ckpt_path))


class LockstepCallback(pl.Callback):
    """``Lockstep`` inside a Lightning fit. Lightning's own time is the fit's training time
    (``on_train_start`` to ``on_train_end``: every per-step and per-epoch hook, logging, the
    progress bar) minus the time spent in the hand loop."""

    def __init__(self, lock: Lockstep, hand_ckpt: str):
        self.lock, self.hand_ckpt = lock, hand_ckpt

    def on_train_start(self, trainer, pl_module):
        self.start = time.perf_counter()
        self.lock.start()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.lock.before(batch_idx)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.lock.after(batch_idx)

    def on_train_epoch_end(self, trainer, pl_module):
        self.lock.finish(self.hand_ckpt)

    def on_train_end(self, trainer, pl_module):
        self.total = time.perf_counter() - self.start
        self.lightning = self.total - self.lock.hand_s


def default_run_config(n_batches: int, batch_size: int):
    """The default run's composed config (configs/train.yaml), cut to one CPU epoch of
    ``n_batches`` with no validation (the hand loop has none)."""
    from hydra import compose, initialize_config_dir

    from encoders.app import to_schema
    from encoders.config import register_configs

    register_configs()
    overrides = ["trainer.max_epochs=1", f"trainer.limit_train_batches={n_batches}", "trainer.limit_val_batches=0",
                 "trainer.accelerator=cpu", f"data.batch_size={batch_size}"]
    with initialize_config_dir(config_dir=os.path.join(ROOT, "configs"), version_base="1.3"):
        return to_schema(compose("train", overrides=overrides))


def lockstep_epoch(lit_model: SequenceClassifier, hand_model: nn.Module, train, val, n_batches: int,
                   logdir: str, batch_size: int = DEFAULT["batch_size"]) -> Dict[str, float]:
    """One epoch of ``n_batches`` with the ``pl.Trainer`` the default run builds
    (``encoders.torch.runner.build_trainer``: its callbacks, CSV + TensorBoard loggers, progress
    bar, clipping, checkpoint IO) with validation off, and the hand loop in lockstep. Both write
    a checkpoint at the end of the epoch, as the default run does."""
    hand = HandLoop(hand_model, datamodule(train, val, batch_size).train_dataloader())
    lock = LockstepCallback(Lockstep(hand), os.path.join(logdir, "hand.ckpt"))
    trainer = build_trainer(default_run_config(n_batches, batch_size), logdir, callbacks=[lock])
    # the progress bar and the model summary write to stdout; send them to stderr so stdout
    # keeps only the report
    with contextlib.redirect_stdout(sys.stderr), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*could not find the monitored key")  # no validation here
        trainer.fit(lit_model, datamodule=datamodule(train, val, batch_size))
    return {"lightning": lock.lightning, "hand": lock.lock.hand_s, "hand_data": hand.data_s,
            "hand_step": hand.step_s, "tokens": hand.tokens}


def lockstep_aa(model: nn.Module, train, val, n_batches: int) -> float:
    """The method's own bias: two identical hand loops in the same lockstep arrangement, the
    first in Lightning's place; (its time - the other's) / the other's, which should be 0."""
    other = HandLoop(copy.deepcopy(model), datamodule(train, val).train_dataloader())
    lock = Lockstep(HandLoop(copy.deepcopy(model), datamodule(train, val).train_dataloader()))
    with tempfile.TemporaryDirectory() as d:
        t = time.perf_counter()
        lock.start()
        other.start_epoch()
        for i in range(n_batches):
            lock.before(i)
            other.step()
            lock.after(i)
        other.save(os.path.join(d, "a.ckpt"))
        lock.finish(os.path.join(d, "b.ckpt"))
        return (time.perf_counter() - t - lock.hand_s) / lock.hand_s - 1


def lightning_vs_hand(s: Dict) -> Dict:
    n = s["lit_batches"]
    train, val = datasets(s["lit_train"], 64)  # the default 20000 rows, bucketed as in the default run
    init = classifier(0)
    rounds = []
    with tempfile.TemporaryDirectory() as logdir:
        for r in range(1 + s["lit_repeats"]):  # round 0 is the warm-up
            res = lockstep_epoch(copy.deepcopy(init), copy.deepcopy(init), train, val, n, os.path.join(logdir, str(r)))
            if r:
                rounds.append(res)
        # Lightning's own cost per step, with the compute made negligible: a tiny model (embedding
        # and hidden size 2) on batches of 4, same Trainer, same lockstep
        tiny = []
        for r in range(1 + s["tiny_repeats"]):
            torch.manual_seed(0)
            model = SequenceClassifier(vocab_size=DEFAULT["vocab_size"], num_classes=2, embedding_dim=2, hidden_size=2)
            res = lockstep_epoch(copy.deepcopy(model), model, train, val, s["tiny_batches"],
                                 os.path.join(logdir, f"tiny{r}"), batch_size=4)
            if r:
                tiny.append((res["lightning"] - res["hand"]) / s["tiny_batches"])
        aa = [lockstep_aa(init, train, val, n) for _ in range(s["aa_repeats"])]
    lit, hand = [r["lightning"] for r in rounds], [r["hand"] for r in rounds]
    ml, mh, tok = statistics.median(lit), statistics.median(hand), rounds[0]["tokens"]
    collate_s = collate_time(train, n)
    return {
        "lightning_overhead": paired_ratio(lit, hand) - 1,
        # the spread over rounds, in the same unit
        "lightning_overhead_quartiles": [q - 1 for q in quartiles([l / h for l, h in zip(lit, hand)])],
        "lockstep_aa_bias": statistics.median(aa),
        "lightning_ms_per_step_tiny_model": 1e3 * statistics.median(tiny),
        "step_ms_hand_loop": 1e3 * statistics.median(r["hand"] for r in rounds) / n,
        "collate_share_of_step": collate_s / statistics.median(r["hand_step"] for r in rounds),
        "data_fetch_share_of_step": statistics.median(r["hand_data"] / r["hand_step"] for r in rounds),
        "tokens_per_second_torch": tok / ml,
        "tokens_per_second_torch_hand_loop": tok / mh,
        "torch_epoch_s": {"lightning": ml, "hand_loop": mh, "batches": n},
    }


def collate_time(train: TokenDataset, n_batches: int, repeats: int = 5) -> float:
    """Median time of ``collate_torch`` (the numpy collate + tensor conversion the loader calls)
    over the same ``n_batches`` batches the loops train on, examples already fetched."""
    sampler = datamodule(train, train).train_dataloader().batch_sampler
    batches = [[train[i] for i in idx] for idx, _ in zip(sampler, range(n_batches))]
    times = []
    for _ in range(repeats + 1):
        t = time.perf_counter()
        for b in batches:
            collate_torch(b)
        times.append(time.perf_counter() - t)
    return statistics.median(times[1:])


@torch.no_grad()
def accuracy(model: nn.Module, loader) -> float:
    model.eval()
    correct = seen = 0
    for b in loader:
        correct += int((model(b["tokens"], b["lengths"]).argmax(-1) == b["labels"]).sum())
        seen += b["labels"].numel()
    return correct / max(seen, 1)


def padding_matters(s: Dict) -> Dict[str, float]:
    """Same data, batches, optimizer and number of steps; only the model differs."""
    train, val = datasets(s["pm_train"], s["pm_val"])
    out = {}
    for name, make in (("correct_acc", lambda: classifier(0)), ("wrong_recipe_acc", lambda: WrongRecipe(0))):
        model, dm = make(), datamodule(train, val)
        loader = dm.train_dataloader()
        for epoch in range(s["pm_epochs"]):
            loader.batch_sampler.set_epoch(epoch)
            hand_epoch(model, loader, len(loader))
        out[name] = accuracy(model, dm.val_dataloader())
    out["train_examples"], out["epochs"] = s["pm_train"], s["pm_epochs"]
    return out


def run(s: Dict) -> Dict:
    res = lightning_vs_hand(s)
    res["padding_matters"] = padding_matters(s)
    return res
