"""Bi-LSTM / bi-GRU forward+backward on CPU: packed nn.LSTM vs our padded encoder vs the raw kernel.

* packed: ``nn.LSTM`` on ``pack_padded_sequence(..., enforce_sorted=False)``, unpacked again --
  the correct recipe people write by hand;
* ours: ``RNNEncoder(path="padded")`` (oneDNN kernel on the padded batch, per-row reversal);
* raw: bidirectional ``nn.LSTM`` on the padded batch with no correctness at all (the backward
  direction starts in the padding) -- the speed limit for the padded kernel.

All three share one set of weights (ours loads the ``nn.LSTM`` state dict), and the loss is the
sum of the sequence output and the final states, so every output feeds the backward pass.

``final_only`` times ``RNNEncoder.forward(x, lengths).final`` against ``forward_final`` (what a
``pooling="last"`` classifier calls) on the default model's shape, training (forward+backward) and
evaluation (no gradients) alike.

``denormals`` times forward+backward of the default model's bi-LSTM over long rows (64 x 400
steps) in two child processes, one with ``trainer.flush_denormal``'s setting and one without it:
the setting belongs to the threads a process starts, so it can't be switched within one.
"""
from __future__ import annotations

import copy
import statistics
from typing import Dict

import numpy as np
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from bench.common import DEFAULT, interleaved, paired_ratio, run_child
from encoders.torch.rnn import RNNEncoder


def ragged_batch(batch: int, max_len: int, emb: int, seed: int = 0):
    """Uniform ragged lengths in [1, max_len] (one row at max_len), random float inputs."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, max_len + 1, batch)
    lengths[0] = max_len
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, max_len, emb, generator=g), torch.as_tensor(lengths, dtype=torch.long)


def make_models(cell: str, emb: int, hidden: int, seed: int = 0):
    torch.manual_seed(seed)
    ref = (nn.LSTM if cell == "lstm" else nn.GRU)(emb, hidden, batch_first=True, bidirectional=True)
    ours = RNNEncoder(emb, hidden, cell, num_layers=1, bidirectional=True, path="padded")
    ours.load_state_dict(ref.state_dict())  # strict: every weight shared
    return ref, ours


def step_fns(ref: nn.Module, ours: RNNEncoder, x: torch.Tensor, lengths: torch.Tensor):
    """One forward+backward each; every function returns (sequence, h_n, input grad)."""
    T = x.size(1)

    def packed():
        xx = x.detach().requires_grad_()
        p = pack_padded_sequence(xx, lengths, batch_first=True, enforce_sorted=False)
        out, state = ref(p)
        h = state[0] if isinstance(state, tuple) else state
        seq, _ = pad_packed_sequence(out, batch_first=True, total_length=T)
        (seq.sum() + h.sum()).backward()
        return seq, h, xx.grad

    def padded_ours():
        xx = x.detach().requires_grad_()
        out = ours(xx, lengths)
        (out.sequence.sum() + out.state[0].sum()).backward()
        return out.sequence, out.state[0], xx.grad

    def raw_kernel():
        xx = x.detach().requires_grad_()
        seq, state = ref(xx)
        h = state[0] if isinstance(state, tuple) else state
        (seq.sum() + h.sum()).backward()
        return seq, h, xx.grad

    return {"packed": packed, "ours": padded_ours, "raw": raw_kernel}


def _max_diffs(a, b):
    return [float((u.detach().double() - v.detach().double()).abs().max()) for u, v in zip(a, b)]


def outputs_match(fns, exact_fns, atol: float = 5e-5):
    """Ours vs packed: sequence, h_n and the input gradient, all to ``atol``; and the largest
    absolute difference of each from packed ``nn.LSTM`` in float64 (``exact_fns``), for ours and
    for packed. (Packed float32 itself strays from float64 by up to 1.3e-5 on the sequence and 1.5e-5
    on the input gradient in some processes, 1.5e-7 and 1.7e-6 in others; ours stays within 1.8e-7
    and 1.8e-6: hence not 1e-5 between the two.)"""
    a, b, exact = fns["packed"](), fns["ours"](), exact_fns["packed"]()
    match = all(d <= atol for d in _max_diffs(a, b))
    return match, {"ours": _max_diffs(b, exact), "packed": _max_diffs(a, exact)}


def synced(fns, device: torch.device):
    """On CUDA, wait for the kernels to finish inside each timed call."""
    if device.type != "cuda":
        return fns

    def wrap(f):
        def g():
            r = f()
            torch.cuda.synchronize(device)
            return r
        return g
    return {k: wrap(f) for k, f in fns.items()}


def compare(cell: str, s: Dict, device: str = "cpu") -> Dict[str, float]:
    device = torch.device(device)
    x, lengths = ragged_batch(s["enc_batch"], s["enc_max_len"], s["enc_emb"])
    ref, ours = make_models(cell, s["enc_emb"], s["enc_hidden"])
    # lengths stay on the CPU: pack_padded_sequence wants them there, ours takes any device
    # (on CUDA ours takes path="auto", i.e. the packed cuDNN path chosen for that device)
    x, ref, ours = x.to(device), ref.to(device), ours.to(device)
    if device.type == "cuda":
        ours.path = "auto"
    fns = synced(step_fns(ref, ours, x, lengths), device)
    exact = copy.deepcopy(ref).double()
    match, diffs = outputs_match(fns, step_fns(exact, copy.deepcopy(ours).double(), x.double(), lengths))
    times = interleaved(fns, s["enc_repeats"], warmup=1)
    t = {k: statistics.median(v) for k, v in times.items()}
    return {"match": match, "diffs": diffs, "packed_s": t["packed"], "ours_s": t["ours"], "raw_s": t["raw"],
            "speedup": paired_ratio(times["packed"], times["ours"]),
            "kernel_speedup": paired_ratio(times["packed"], times["raw"]),
            "share_of_limit": paired_ratio(times["raw"], times["ours"]),
            "tokens": int(lengths.sum())}


def final_only(s: Dict, device: str = "cpu") -> Dict[str, float]:
    """Time of ``forward().final`` / time of ``forward_final``, bi-LSTM of the default model's size,
    on a ragged batch of the default training batch size (x4 rows for evaluation, as
    ``data.eval_batch_size`` defaults to); same weights, same values (asserted)."""
    device = torch.device(device)
    emb, hidden, rows = int(DEFAULT["embedding_dim"]), int(DEFAULT["hidden_size"]), int(DEFAULT["batch_size"])
    torch.manual_seed(0)
    enc = RNNEncoder(emb, hidden, "lstm", bidirectional=True).to(device)
    out = {}
    for mode, batch in (("train", rows), ("eval", 4 * rows)):
        x, lengths = ragged_batch(min(batch, s["enc_batch"] * 4), s["enc_max_len"] // 4, emb)
        x, lengths = x.to(device), lengths.to(device)

        def step(f, x=x, mode=mode):
            if mode == "eval":
                with torch.no_grad():
                    return f(x)
            xx = x.detach().requires_grad_()
            y = f(xx)
            y.sum().backward()
            return y

        def full(lengths=lengths):
            return step(lambda xx: enc(xx, lengths).final)

        def final(lengths=lengths):
            return step(lambda xx: enc.forward_final(xx, lengths))

        assert torch.allclose(full(), final(), atol=1e-6, rtol=0)
        times = interleaved(synced({"full": full, "final": final}, device), s["enc_repeats"] * 4, warmup=2)
        out[f"final_only_speedup_{mode}"] = paired_ratio(times["full"], times["final"])
    return out


def long_rows_child(flush: bool, repeats: int) -> float:
    """Median seconds of forward_final + backward over 64 rows of 400 steps (run in a child)."""
    if flush:
        from encoders.torch.runtime import flush_denormal

        flush_denormal(True)  # before the first parallel operation, as the training entry does
    torch.manual_seed(0)
    enc = RNNEncoder(int(DEFAULT["embedding_dim"]), int(DEFAULT["hidden_size"]), "lstm", bidirectional=True)
    x, lengths = torch.randn(64, 400, enc.input_size), torch.full((64,), 400)

    def step():
        xx = x.detach().requires_grad_()
        enc.forward_final(xx, lengths).sum().backward()
    return statistics.median(interleaved({"step": step}, repeats, warmup=1)["step"])


def denormals(s: Dict) -> Dict[str, float]:
    repeats = str(max(2, s["enc_repeats"]))
    off = float(run_child("bench.encoder_bench", "long-rows", "off", repeats))
    on = float(run_child("bench.encoder_bench", "long-rows", "on", repeats))
    return {"flush_denormal_speedup_long_rows": off / on, "long_rows_step_ms": {"kept": off * 1e3, "flushed": on * 1e3}}


def run(s: Dict, device: str = "cpu") -> Dict:
    lstm = compare("lstm", s, device)
    gru = compare("gru", s, device)
    return {
        **final_only(s, device),
        **(denormals(s) if device == "cpu" else {}),
        "encoder_speedup_vs_packed": lstm["speedup"],
        "kernel_speedup_vs_packed": lstm["kernel_speedup"],
        "encoder_share_of_limit": lstm["share_of_limit"],  # = raw kernel time / ours, per repeat
        "outputs_match": bool(lstm["match"] and gru["match"]),
        # sequence, h_n, input gradient of ours and of packed, each against packed in float64
        "outputs_max_abs_diff_vs_float64": {"lstm": lstm["diffs"], "gru": gru["diffs"]},
        "gru_speedup_vs_packed": gru["speedup"],
        "gru_kernel_speedup_vs_packed": gru["kernel_speedup"],
        "encoder_times_ms": {f"{c}_{k}": v[f"{k}_s"] * 1e3 for c, v in (("lstm", lstm), ("gru", gru))
                             for k in ("packed", "ours", "raw")},
        "encoder_batch": {"batch": s["enc_batch"], "max_len": s["enc_max_len"], "emb": s["enc_emb"],
                          "hidden": s["enc_hidden"], "real_tokens": lstm["tokens"],
                          "torch_threads": torch.get_num_threads(), "device": device},
    }


if __name__ == "__main__":  # python -m bench.encoder_bench long-rows on|off REPEATS (a child of denormals)
    import sys

    print(long_rows_child(sys.argv[2] == "on", int(sys.argv[3])))
