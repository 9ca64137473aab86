"""GPU benchmark (torch on CUDA): ours against a hand-written cuDNN loop, as ratios in one run.

    PYTHONPATH=. python3 -m bench.gpu_bench [--fp32-precision ieee|tf32] [--steps 200] [--warmup 30]

Where CUDA is absent it says so and exits 0 (``--device cpu --smoke`` runs every part on the CPU at
tiny sizes, to check the code, not to measure). Prints one JSON line with every figure:

* ``train``: training tokens/s (real tokens) of a 1-layer bi-LSTM classifier (vocab 20k, E=256,
  H=512, batch 128, log-normal lengths: mean 45, max 400) on the same batches from
  ``SequenceDataModule``: ours (``SequenceClassifier`` in a Lightning ``Trainer``, paths auto and
  padded) against a hand loop (``nn.Embedding`` + ``nn.LSTM`` on ``pack_padded_sequence`` +
  ``Linear``, AdamW, clip 1.0, batches moved to the GPU), fp32 and bf16 (``bf16-mixed`` /
  ``torch.autocast``). ``ratio_*`` = ours / hand loop at the same precision.
* ``encoder``: forward+backward ms at B=128, T=164, E=256, H=512: packed ``nn.LSTM``, the raw
  padded cuDNN call (wrong at the padding: the speed limit), ours packed, ours padded, ours padded
  ``forward_final``; ``share_of_raw_*`` = raw / ours.
* ``predict``: texts/s of ``batch_logits`` over length-sorted batches of 256 (what ``load_run``'s
  ``predict`` runs after tokenizing), GPU against CPU.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from typing import Dict, List

import numpy as np
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

SHAPE = dict(vocab=20000, emb=256, hidden=512, batch=128, classes=4, mean_len=45, max_len=400)
SMOKE = dict(vocab=50, emb=8, hidden=8, batch=8, classes=3, mean_len=6, max_len=20)


def lognormal_rows(n: int, s: Dict, seed: int = 0):
    """Token rows with log-normal lengths (mean ``mean_len``, cut at ``max_len``) and random labels."""
    from encoders.data.flat import TokenBuffer

    rng = np.random.default_rng(seed)
    sigma = 0.8
    lengths = np.clip(rng.lognormal(np.log(s["mean_len"]) - sigma ** 2 / 2, sigma, n).astype(int), 1, s["max_len"])
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    values = rng.integers(2, s["vocab"], int(offsets[-1]))
    return TokenBuffer(values, offsets), rng.integers(0, s["classes"], n)


def same_batches(s: Dict, count: int) -> List[Dict[str, torch.Tensor]]:
    """``count`` training batches of ``SequenceDataModule`` (bucketed, shuffled), on the CPU."""
    from encoders.torch.batches import SequenceDataModule, TokenDataset

    tokens, labels = lognormal_rows(s["batch"] * (count + 8), s)
    dm = SequenceDataModule(TokenDataset(tokens, labels), TokenDataset(tokens, labels), batch_size=s["batch"])
    out = []
    for b in dm.train_dataloader():
        out.append(b)
        if len(out) == count:
            return out
    return (out * (count // max(len(out), 1) + 1))[:count]


class HandLoop(nn.Module):
    def __init__(self, s: Dict):
        super().__init__()
        self.emb = nn.Embedding(s["vocab"], s["emb"], padding_idx=0)
        self.rnn = nn.LSTM(s["emb"], s["hidden"], batch_first=True, bidirectional=True)
        self.head = nn.Linear(2 * s["hidden"], s["classes"])

    def forward(self, tokens, lengths):
        packed = pack_padded_sequence(self.emb(tokens), lengths, batch_first=True, enforce_sorted=False)
        _, (h, _) = self.rnn(packed)
        return self.head(torch.cat([h[-2], h[-1]], dim=-1))


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def hand_loop_tokens_per_s(batches, s, device, warmup: int, bf16: bool) -> float:
    torch.manual_seed(0)
    model = HandLoop(s).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    real = 0
    for i, b in enumerate(batches):
        if i == warmup:
            sync(device)
            start, real = time.perf_counter(), 0
        tokens, labels = b["tokens"].to(device, non_blocking=True), b["labels"].to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = nn.functional.cross_entropy(model(tokens, b["lengths"]), labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        real += int(b["lengths"].sum())
    sync(device)
    return real / (time.perf_counter() - start)


def lightning_tokens_per_s(batches, s, device, warmup: int, bf16: bool, path: str) -> float:
    import pytorch_lightning as pl

    from encoders.torch import SequenceClassifier

    class Clock(pl.Callback):
        def __init__(self):
            self.start, self.real, self.i = None, 0, 0

        def on_train_batch_start(self, trainer, module, batch, batch_idx):
            if self.i == warmup:
                sync(device)
                self.start, self.real = time.perf_counter(), 0
            self.i += 1
            self.real += int(batch["lengths"].sum())  # on the host: no sync

        def on_train_end(self, trainer, module):
            sync(device)
            self.end = time.perf_counter()

    torch.manual_seed(0)
    model = SequenceClassifier(s["vocab"], s["classes"], s["emb"], s["hidden"], encoder_path=path)
    clock = Clock()
    trainer = pl.Trainer(accelerator="gpu" if device.type == "cuda" else "cpu", devices=1, max_epochs=1,
                         precision="bf16-mixed" if bf16 else "32-true", gradient_clip_val=1.0, logger=False,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                         log_every_n_steps=50, callbacks=[clock])
    trainer.fit(model, train_dataloaders=torch.utils.data.DataLoader(batches, batch_size=None))
    return clock.real / (clock.end - clock.start)


def train_figures(s, device, steps: int, warmup: int) -> Dict[str, float]:
    batches = same_batches(s, warmup + steps)
    out: Dict[str, float] = {}
    for bf16, tag in ((False, "fp32"), (True, "bf16")):
        out[f"hand_{tag}"] = hand_loop_tokens_per_s(batches, s, device, warmup, bf16)
        for path in ("auto", "padded", "packed"):
            out[f"ours_{path}_{tag}"] = lightning_tokens_per_s(batches, s, device, warmup, bf16, path)
            out[f"ratio_{path}_{tag}"] = out[f"ours_{path}_{tag}"] / out[f"hand_{tag}"]
    out["bf16_over_fp32_ours_auto"] = out["ours_auto_bf16"] / out["ours_auto_fp32"]
    return out


def encoder_figures(device, repeats: int, smoke: bool) -> Dict[str, float]:
    from bench.common import interleaved
    from encoders.torch.rnn import RNNEncoder

    B, T, E, H = (8, 20, 8, 8) if smoke else (128, 164, 256, 512)
    torch.manual_seed(0)
    ref = nn.LSTM(E, H, batch_first=True, bidirectional=True).to(device)
    ours = {p: RNNEncoder(E, H, "lstm", 1, True, path=p).to(device) for p in ("padded", "packed")}
    for enc in ours.values():
        enc.load_state_dict(ref.state_dict())
    rng = np.random.default_rng(0)
    lengths = torch.as_tensor(np.clip(rng.lognormal(np.log(T / 3.6), 0.8, B).astype(int), 1, T))
    lengths[0] = T
    x = torch.randn(B, T, E, device=device)

    def timed(fn):
        def run():
            xx = x.detach().requires_grad_()
            fn(xx).sum().backward()
            sync(device)
        return run

    fns = {
        "packed_nn_lstm": timed(lambda xx: ref(pack_padded_sequence(xx, lengths, batch_first=True,
                                                                    enforce_sorted=False))[0].data),
        "raw_padded_kernel": timed(lambda xx: ref(xx)[0]),
        "ours_packed": timed(lambda xx: ours["packed"](xx, lengths).sequence),
        "ours_padded": timed(lambda xx: ours["padded"](xx, lengths).sequence),
        "ours_padded_forward_final": timed(lambda xx: ours["padded"].forward_final(xx, lengths)),
    }
    times = interleaved(fns, repeats, warmup=3)
    out = {f"{k}_ms": statistics.median(v) * 1e3 for k, v in times.items()}
    for k in ("ours_packed", "ours_padded", "ours_padded_forward_final"):
        out[f"share_of_raw_{k}"] = out["raw_padded_kernel_ms"] / out[f"{k}_ms"]
    return out


def predict_figures(s, device, rows: int) -> Dict[str, float]:
    from encoders.torch import SequenceClassifier
    from encoders.torch.inference import batch_logits
    from encoders.data.flat import buffer_logits

    tokens, _ = lognormal_rows(rows, s, seed=1)
    torch.manual_seed(0)
    model = SequenceClassifier(s["vocab"], s["classes"], s["emb"], s["hidden"]).eval()
    out = {}
    for where in ("cpu", device.type):
        model.to(where)
        buffer_logits(batch_logits, model, tokens, s["classes"], 256, 0)  # warm-up
        sync(torch.device(where))
        t = time.perf_counter()
        buffer_logits(batch_logits, model, tokens, s["classes"], 256, 0)
        sync(torch.device(where))
        out[f"texts_per_s_{where}"] = rows / (time.perf_counter() - t)
    out["gpu_over_cpu"] = out[f"texts_per_s_{device.type}"] / out["texts_per_s_cpu"]
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--fp32-precision", default="ieee", choices=["ieee", "tf32"])
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--warmup", type=int, default=30)
    p.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    p.add_argument("--smoke", action="store_true", help="tiny sizes: checks that every part runs")
    a = p.parse_args(argv)
    if a.device == "cuda" and not torch.cuda.is_available():
        print("gpu_bench: no CUDA device here, nothing measured (run it where torch sees a GPU)")
        return 0
    from encoders.torch.runtime import set_fp32_precision

    set_fp32_precision(a.fp32_precision)
    device = torch.device(a.device)
    s = SMOKE if a.smoke else SHAPE
    steps, warmup = (3, 1) if a.smoke else (a.steps, a.warmup)
    report = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch": torch.__version__, "fp32_precision": a.fp32_precision, "shape": s, "steps": steps,
        "train": train_figures(s, device, steps, warmup),
        "encoder": encoder_figures(device, 3 if a.smoke else 30, a.smoke),
        "predict": predict_figures(s, device, 64 if a.smoke else 20000),
    }
    from bench.common import rounded

    print(json.dumps(rounded(report)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
