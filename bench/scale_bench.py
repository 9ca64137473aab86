"""Data at scale: from a large csv to the first batch, the previous path against today's, cold and
warm, and end-to-end training tokens/s of the default model against a hand-written packed loop.

Every measurement runs in a fresh child process (``python -m bench.scale_bench ...``), so "cold"
means no cache and no warm interpreter, and peak memory (``ru_maxrss``) is that path's alone.

* ``previous``: what the data layer did before it kept tokens columnar: ``datasets.map`` of one
  ``Vocab.encode`` call per text into a list column, then one numpy array per example
  (``TokenDataset``), then ``collate`` of a list of examples.
* ``columnar``: ``encoders.data.load_splits`` (batched tokenization into flat buffers, cached
  memory-mapped) and ``SequenceDataModule``'s first batch.
"""
from __future__ import annotations

import json
import os
import resource
import shutil
import sys
import tempfile
import time
from typing import Dict

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _rss_mb() -> float:
    """This process's peak resident memory so far (MB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _status_mb(key: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _reset_peak() -> bool:
    """Restart the kernel's peak-memory count (VmHWM) here, so the peak measured next is the data's
    alone, not the imports' (Linux >= 4.0); False where that can't be done."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def previous_first_batch(path: str) -> Dict:
    """The earlier path, written out: list column, one array per example, collate of examples."""
    import numpy as np
    from datasets import load_dataset

    from encoders.data.collate import collate
    from encoders.data.vocab import Vocab

    ds = load_dataset("csv", data_files={"train": path}, split="train")
    parts = ds.train_test_split(test_size=0.1, seed=42)
    vocab = Vocab.build(parts["train"]["text"], "whitespace")
    enc = parts["train"].map(lambda b: {"tokens": [vocab.encode(t) for t in b["text"]]}, batched=True,
                             remove_columns=["text"])
    tokens = [np.asarray(t, dtype=np.int64) for t in enc["tokens"]]
    labels = [int(y) for y in enc["label"]]
    batch = collate([{"tokens": tokens[i], "label": labels[i]} for i in range(64)])
    return {"rows": len(ds), "tokens": int(sum(len(t) for t in tokens)), "batch_rows": len(batch["labels"])}


def columnar_first_batch(path: str) -> Dict:
    from encoders.config import DataConfig
    from encoders.data.sources import load_splits
    from encoders.torch.batches import SequenceDataModule

    splits = load_splits(DataConfig(source="files", train_file=path), 42)
    dm = SequenceDataModule(splits.train, splits.validation, batch_size=64, seed=42)
    batch = next(iter(dm.train_dataloader()))
    rows = len(splits.train) + len(splits.validation)
    return {"rows": rows, "tokens": int(splits.train.tokens.offsets[-1]), "batch_rows": int(batch["labels"].shape[0])}


def child_load(which: str, path: str) -> Dict:
    # imports first, on both sides: what is timed and measured is the data's own cost
    import datasets  # noqa: F401
    import torch  # noqa: F401

    import encoders.data.collate  # noqa: F401
    import encoders.data.sources  # noqa: F401
    import encoders.torch.batches  # noqa: F401

    base = _status_mb("VmRSS")
    exact = _reset_peak()
    t = time.perf_counter()
    out = (previous_first_batch if which == "previous" else columnar_first_batch)(path)
    peak = _status_mb("VmHWM") if exact else _rss_mb()
    out.update(seconds=time.perf_counter() - t, peak_mb=peak, peak_growth_mb=peak - base)
    # VmHWM counts resident pages of memory-mapped files too: what is held at the first batch, split
    out.update(anon_mb_at_end=_status_mb("RssAnon"), file_mb_at_end=_status_mb("RssFile"))
    return out


def child_train(path: str, steps: int) -> Dict:
    """Training tokens/s over ``steps`` steps: the default model through Lightning (our data path),
    and a hand-written loop with ``nn.LSTM`` on packed sequences, random batches of 64."""
    import numpy as np
    import torch
    from torch import nn
    from torch.nn.utils.rnn import pack_padded_sequence, pad_sequence

    from encoders.config import ClassifierSpec, DataConfig, TrainConfig
    from encoders.data.sources import load_splits
    from encoders.torch.batches import SequenceDataModule
    from encoders.torch.models import build_model
    from encoders.torch.runner import build_trainer

    torch.manual_seed(0)
    cfg = TrainConfig()
    cfg.data = DataConfig(source="files", train_file=path)
    cfg.trainer.max_epochs, cfg.trainer.limit_train_batches, cfg.trainer.limit_val_batches = 1, steps, 0
    cfg.trainer.enable_progress_bar, cfg.trainer.accelerator = False, "cpu"
    splits = load_splits(cfg.data, cfg.seed)
    model = build_model(ClassifierSpec.from_config(cfg, splits.vocab_size, splits.num_classes), cfg)
    dm = SequenceDataModule(splits.train, splits.validation, batch_size=64, seed=cfg.seed)
    with tempfile.TemporaryDirectory() as logdir:
        trainer = build_trainer(cfg, logdir)
        t = time.perf_counter()
        trainer.fit(model, datamodule=dm)
        ours_s = time.perf_counter() - t
    loader = dm.train_dataloader()
    ours_tokens = sum(int(b["lengths"].sum()) for b, _ in zip(loader, range(steps)))

    class Packed(nn.Module):  # what users write without us
        def __init__(self, vocab: int, classes: int):
            super().__init__()
            self.emb = nn.Embedding(vocab, 32, padding_idx=0)
            self.rnn = nn.LSTM(32, 64, batch_first=True, bidirectional=True)
            self.head = nn.Linear(128, classes)

        def forward(self, tokens, lengths):
            packed = pack_padded_sequence(self.emb(tokens), lengths.clamp(min=1), batch_first=True,
                                          enforce_sorted=False)
            _, (h, _) = self.rnn(packed)
            return self.head(torch.cat([h[-2], h[-1]], dim=-1))

    hand = Packed(splits.vocab_size, splits.num_classes)
    opt = torch.optim.AdamW(hand.parameters(), lr=3e-3)
    rows = [torch.from_numpy(np.asarray(splits.train.tokens.row(i), dtype=np.int64)) for i in range(len(splits.train))]
    labels = torch.from_numpy(np.asarray(splits.train.labels))
    order = torch.randperm(len(rows))
    hand_tokens = 0
    t = time.perf_counter()
    for step in range(steps):
        idx = order[step * 64:(step + 1) * 64].tolist()
        batch = [rows[i] for i in idx]
        lengths = torch.tensor([len(r) for r in batch])
        tokens = pad_sequence(batch, batch_first=True)
        loss = nn.functional.cross_entropy(hand(tokens, lengths), labels[idx])
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(hand.parameters(), 1.0)
        opt.step()
        hand_tokens += int(lengths.sum())
    hand_s = time.perf_counter() - t
    return {"ours_tokens_per_s": ours_tokens / ours_s, "hand_packed_tokens_per_s": hand_tokens / hand_s,
            "ours_s": ours_s, "hand_s": hand_s}


def _child(*args: str, env: Dict[str, str]) -> Dict:
    from bench.common import run_child

    return json.loads(run_child("bench.scale_bench", *args, **env))


def run(s: Dict) -> Dict:
    from bench.scale_data import write_csv

    out: Dict = {}
    work = tempfile.mkdtemp(prefix="scale-bench-")
    try:
        for rows in s["scale_rows"]:
            path = os.path.join(work, f"rows{rows}.csv")
            words = write_csv(path, rows)
            tag = f"{rows // 1000}k" if rows < 1_000_000 else f"{rows // 1_000_000}m"
            for which in ("previous", "columnar"):
                caches = {"HF_DATASETS_CACHE": os.path.join(work, f"hf-{which}-{rows}"),
                          "ENCODERS_CACHE": os.path.join(work, f"enc-{which}-{rows}"), "HF_HUB_OFFLINE": "1"}
                for temp in ("cold", "warm"):
                    r = _child("load", which, path, env=caches)
                    key = f"scale_{tag}_{which}_{temp}"
                    out[key + "_s"] = r["seconds"]
                    out[key + "_rows_per_s"] = rows / r["seconds"]
                    out[key + "_peak_mb"] = r["peak_mb"]  # of the whole process, imports included
                    out[key + "_mb_per_million_tokens"] = r["peak_growth_mb"] / (words / 1e6)
            out[f"scale_{tag}_speedup_cold"] = out[f"scale_{tag}_previous_cold_s"] / out[f"scale_{tag}_columnar_cold_s"]
        first = os.path.join(work, f"rows{s['scale_rows'][0]}.csv")
        train = _child("train", first, str(s["scale_train_steps"]),
                       env={"ENCODERS_CACHE": os.path.join(work, "enc-train"), "HF_HUB_OFFLINE": "1",
                            "HF_DATASETS_CACHE": os.path.join(work, "hf-train")})
        out.update({f"train_{k}": v for k, v in train.items()})
        out["train_speed_vs_hand_packed"] = train["ours_tokens_per_s"] / train["hand_packed_tokens_per_s"]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return out


if __name__ == "__main__":
    if ROOT not in sys.path:
        sys.path.insert(0, ROOT)
    if sys.argv[1] == "load":
        print(json.dumps(child_load(sys.argv[2], sys.argv[3])))
    else:
        print(json.dumps(child_train(sys.argv[2], int(sys.argv[3]))))
