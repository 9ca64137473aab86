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
from typing import Dict, List

# as encoders/torch/runner.py: keep TensorBoard's writer from importing TensorFlow into this process
sys.modules.setdefault("tensorboard.compat.notf", types.ModuleType("tensorboard.compat.notf"))

import pytorch_lightning as pl  # noqa: E402
import torch  # noqa: E402
from pytorch_lightning.callbacks import TQDMProgressBar  # noqa: E402
from pytorch_lightning.loggers import CSVLogger, TensorBoardLogger  # noqa: E402
from torch import nn  # noqa: E402
from torch.nn import functional as F  # noqa: E402

from bench.common import DEFAULT, paired_ratio, quartiles  # noqa: E402
from encoders.data.synthetic import make_synthetic  # noqa: E402
from encoders.torch.datamodule import SequenceDataModule, TokenDataset, collate_torch  # noqa: E402
from encoders.torch.module import SequenceClassifier  # noqa: E402


def datasets(n_train: int, n_val: int):
    d = DEFAULT
    tr = make_synthetic(n_train, [d["seed"], 0], d["vocab_size"], d["max_length"])
    va = make_synthetic(n_val, [d["seed"], 1], d["vocab_size"], d["max_length"])
    return TokenDataset(tr["tokens"], tr["label"]), TokenDataset(va["tokens"], va["label"])


def datamodule(train: TokenDataset, val: TokenDataset) -> SequenceDataModule:
    return SequenceDataModule(train, val, batch_size=DEFAULT["batch_size"], seed=DEFAULT["seed"], num_workers=0,
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


def hand_epoch(model: nn.Module, loader, n_batches: int) -> Dict[str, float]:
    """A plain PyTorch epoch as one writes it by hand: same optimizer (AdamW, lr 3e-3), same
    gradient clipping (norm 1.0, what ``gradient_clip_val`` does), loss and accuracy kept per
    epoch. Returns wall time, and the time spent fetching+collating batches vs in the step."""
    opt = torch.optim.AdamW(model.parameters(), lr=DEFAULT["lr"], weight_decay=0.0)
    model.train()
    loss_sum, correct, seen, tokens = torch.zeros(()), torch.zeros((), dtype=torch.long), 0, 0
    data_s = step_s = 0.0
    start = time.perf_counter()
    it = iter(loader)
    for _ in range(n_batches):
        t0 = time.perf_counter()
        batch = next(it, None)
        t1 = time.perf_counter()
        if batch is None:
            break
        labels = batch["labels"]
        logits = model(batch["tokens"], batch["lengths"])
        loss = F.cross_entropy(logits, labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), DEFAULT["clip"])
        opt.step()
        loss_sum += loss.detach()
        correct += (logits.detach().argmax(-1) == labels).sum()
        seen += labels.numel()
        tokens += int(batch["lengths"].sum())
        step_s += time.perf_counter() - t1
        data_s += t1 - t0
    return {"time": time.perf_counter() - start, "data": data_s, "step": step_s, "tokens": tokens,
            "loss": float(loss_sum) / max(seen, 1), "acc": int(correct) / max(seen, 1)}


class EpochTimer(pl.Callback):
    """Wall time from ``on_train_start`` (before the loader's iterator is made) to the end of the
    epoch's hooks (epoch-end logging and metric compute included)."""

    def on_train_start(self, trainer, pl_module):
        self.start = time.perf_counter()

    def on_train_epoch_end(self, trainer, pl_module):
        self.epoch = time.perf_counter() - self.start


def lightning_epoch(model: SequenceClassifier, dm: SequenceDataModule, n_batches: int, logdir: str) -> Dict:
    """One epoch of ``n_batches`` with a real ``pl.Trainer`` configured as the default run
    (CSV + TensorBoard loggers, progress bar redrawn every 10 batches, log_every_n_steps 50, clipping 1.0, fp32) except
    that validation and checkpointing are off (the hand loop has neither)."""
    timer = EpochTimer()
    trainer = pl.Trainer(max_epochs=1, limit_train_batches=n_batches, limit_val_batches=0, num_sanity_val_steps=0,
                         accelerator="cpu", devices=1, precision="32-true", gradient_clip_val=DEFAULT["clip"],
                         log_every_n_steps=DEFAULT["log_every_n_steps"], enable_progress_bar=True,
                         enable_checkpointing=False, enable_model_summary=False, use_distributed_sampler=False,
                         default_root_dir=logdir,
                         callbacks=[timer, TQDMProgressBar(refresh_rate=DEFAULT["progress_bar_refresh_rate"])],
                         logger=[CSVLogger(logdir, name="csv"), TensorBoardLogger(logdir, name="tb")])
    start = time.perf_counter()
    # the progress bar writes to stdout; send it to stderr so stdout keeps only the report
    with contextlib.redirect_stdout(sys.stderr):
        trainer.fit(model, datamodule=dm)
    return {"time": timer.epoch, "fit": time.perf_counter() - start}


def lightning_vs_hand(s: Dict) -> Dict:
    n = s["lit_batches"]
    train, val = datasets(s["lit_train"], 64)  # the default 20000 rows, bucketed as in the default run
    init = classifier(0)
    hand, lit, fit, data, step, tok = [], [], [], [], [], 0
    with tempfile.TemporaryDirectory() as logdir:
        for r in range(1 + s["lit_repeats"]):  # round 0 is the warm-up
            order = ("hand", "lit") if r % 2 == 0 else ("lit", "hand")
            for which in order:
                model = copy.deepcopy(init)
                if which == "hand":
                    dm = datamodule(train, val)
                    h = hand_epoch(model, dm.train_dataloader(), n)
                    if r:
                        hand.append(h["time"]), data.append(h["data"]), step.append(h["step"])
                        tok = h["tokens"]
                else:
                    res = lightning_epoch(model, datamodule(train, val), n, os.path.join(logdir, str(r)))
                    if r:
                        lit.append(res["time"]), fit.append(res["fit"])
    mh, ml = statistics.median(hand), statistics.median(lit)
    # each round's two epochs run back to back: the median of the per-round ratios cancels the
    # slow drifts of a shared machine that a ratio of separate medians keeps
    paired, paired_fit = paired_ratio(lit, hand) - 1, paired_ratio(fit, hand) - 1
    collate_s = collate_time(train, n)
    return {
        "lightning_overhead": paired,
        # the spread of the per-round figures: the machine's noise, in the same unit
        "lightning_overhead_quartiles": [q - 1 for q in quartiles([l / h for l, h in zip(lit, hand)])],
        "lightning_fit_overhead": paired_fit,
        "collate_share_of_step": collate_s / statistics.median(step),
        "data_fetch_share_of_step": statistics.median(d / st for d, st in zip(data, step)),
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
