"""Uni/bi-directional, multi-layer LSTM/GRU whose padded-batch outputs equal each row run alone.

Two execution paths give the same numbers:

* ``padded`` (the CPU default): the fused padded kernel (oneDNN on CPU) over the whole batch.
  Two tricks make it exact. (1) One extra input column is 1 at padding and 0 elsewhere; its
  weights push the LSTM input gate to 0 and forget gate to 1 (GRU: update gate to 1), so the
  cell state is carried unchanged through the padding and the kernel's ``c_n`` (GRU ``h_n``)
  is each row's state at its own last step. (2) The backward direction runs on each row
  reversed *within its own length*, so it starts at the row's last real token, not in the
  padding; its outputs are reversed back the same way.
* ``packed``: ``PackedSequence`` through the same fused call (what cuDNN is fast at). Empty rows
  are run with length 1 on zero input and zeroed afterwards, since packing rejects length 0.

``path="auto"`` picks ``packed`` on CUDA and ``padded`` elsewhere. ``forward_final`` computes
``final`` alone; on the padded path it needs neither trick (1) nor the zeroing of outputs.

Weight layout: each ``weight_ih_l{k}`` parameter is a view of the first ``I`` columns of a
``[G, I+1]`` block whose last column is the pad column, so the padded path hands the kernel that
block without concatenating anything per call. On CUDA the blocks (padded path) or all weights
(packed path) also sit in cuDNN's flat layout, as ``nn.LSTM`` keeps its own, so cuDNN never
repacks them. The layout is redone after ``.to()``/``.cuda()``/``.double()`` (``_apply``) and, at
the next call, after anything else replaced a parameter's storage (``load_state_dict(assign=True)``,
a deep copy); ``load_state_dict`` copies into the views, so state-dict keys and shapes stay
``nn.LSTM``'s.
"""
from __future__ import annotations

import contextlib
import logging
import math
from typing import List, NamedTuple, Optional, Tuple

import torch
from torch import nn
from torch.nn import functional as F

from encoders.config import CELLS
from encoders.torch.masking import check_lengths, last_step, lengths_to_mask, reverse_index, reverse_within_lengths

log = logging.getLogger(__name__)

GATES = {"lstm": 4, "gru": 3}  # gate blocks per cell in torch's weight layout
PATHS = ("auto", "padded", "packed")
# Large enough that sigmoid saturates to exactly 0 or 1 in float32/bf16/fp16, small enough for fp16.
_SATURATE = 1.0e4
_logged_paths: set = set()


class EncoderOutput(NamedTuple):
    sequence: torch.Tensor  # [B, T, D*H], zero at t >= lengths[b]
    final: torch.Tensor  # [B, D*H] = top layer [fw h at len-1 ; bw h at 0], zero for empty rows
    state: Tuple[torch.Tensor, Optional[torch.Tensor]]  # (h_n, c_n), each (L*D, B, H); c_n None for GRU


def _pad_gate_column(cell: str, hidden_size: int) -> torch.Tensor:
    """Weights of the "is padding" input column, one per gate row (torch gate order)."""
    col = torch.zeros(GATES[cell] * hidden_size, 1)
    H = hidden_size
    if cell == "lstm":  # gates i, f, g, o: input gate shut, forget gate open
        col[0:H] = -_SATURATE
        col[H:2 * H] = _SATURATE
    else:  # gates r, z, n: update gate open, so h_t = h_{t-1}
        col[H:2 * H] = _SATURATE
    return col


class _PadColumnBlock(torch.autograd.Function):
    """``weight_ih`` ``[G, I]`` (a view of a laid-out block) -> the whole ``[G, I+1]`` block, pad
    column included, without a copy; the gradient reaches the first ``I`` columns only, so the
    pad column is a constant."""

    @staticmethod
    def forward(ctx, w):
        G, I = w.shape
        return w.as_strided((G, I + 1), (I + 1, 1))

    @staticmethod
    def backward(ctx, grad):
        return grad[:, :-1]


class RNNEncoder(nn.Module):
    """LSTM/GRU encoder for right-padded batches whose outputs equal each row run alone.

    Args:
        input_size: feature size ``I`` of the input.
        hidden_size: ``H``, per direction.
        cell: ``"lstm"`` or ``"gru"``.
        num_layers: stacked layers; layer ``k+1`` reads layer ``k``'s ``sequence``.
        bidirectional: ``D = 2`` directions when True, else ``D = 1``.
        dropout: dropout between stacked layers while training (as in ``nn.LSTM``).
        path: ``"auto"`` (packed on CUDA, padded elsewhere), ``"padded"`` or ``"packed"``;
            both give the same numbers.

    Input shape:
        x: float tensor ``[B, T, input_size]``; what it holds at padded steps is ignored (NaN too).
            Another float dtype than the parameters' (float64, float16, bfloat16) is cast to the
            parameters' dtype, as a Keras layer casts to its compute dtype (under ``torch.autocast``
            autocast decides); ``encoder.double()`` runs in float64.
        lengths: int tensor ``[B]`` with values in ``0..T``, on any device.

    Output shape:
        ``EncoderOutput(sequence, final, state)``:

        * ``sequence`` ``[B, T, D*H]``: exactly zero at ``t >= lengths[b]``; at real steps the
          outputs of the same sequence run alone (as ``nn.LSTM`` on a packed batch gives them);
        * ``final`` ``[B, D*H]``: top layer ``[forward h at lengths-1 ; backward h at step 0]``;
        * ``state`` ``(h_n, c_n)`` in ``nn.LSTM``'s layout ``(num_layers*D, B, H)``, each row's own
          final states (``c_n`` is None for GRU).

    Padding: length-0 rows and all-empty batches are legal and give zeros (with zero
    gradients). Parameters carry ``nn.LSTM``/``nn.GRU`` names and shapes
    (``weight_ih_l0_reverse``...), so weights load from those modules' state dicts.

    Raises:
        TypeError: ``x`` is not a floating-point tensor, or ``lengths`` is None.
        ValueError: wrong rank or feature size, lengths outside ``0..T`` or not one per row.
    """

    def __init__(self, input_size: int, hidden_size: int, cell: str = "lstm", num_layers: int = 1,
                 bidirectional: bool = False, dropout: float = 0.0, path: str = "auto"):
        super().__init__()
        if cell not in CELLS:
            raise ValueError(f"cell must be one of {CELLS}, got {cell!r}")
        if input_size < 1 or hidden_size < 1 or num_layers < 1:
            raise ValueError(f"input_size, hidden_size and num_layers must be >= 1, got "
                             f"{input_size}, {hidden_size}, {num_layers}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        if path not in PATHS:
            raise ValueError(f"path must be one of {PATHS}, got {path!r}")
        self.input_size, self.hidden_size, self.cell = input_size, hidden_size, cell
        self.num_layers, self.bidirectional, self.dropout = num_layers, bidirectional, float(dropout)
        self.path = path
        self.num_directions = 2 if bidirectional else 1
        G = GATES[cell] * hidden_size
        self._param_names: List[List[str]] = []
        for layer in range(num_layers):
            layer_in = input_size if layer == 0 else hidden_size * self.num_directions
            for sfx in ("", "_reverse")[: self.num_directions]:
                names = [f"weight_ih_l{layer}{sfx}", f"weight_hh_l{layer}{sfx}",
                         f"bias_ih_l{layer}{sfx}", f"bias_hh_l{layer}{sfx}"]
                shapes = [(G, layer_in), (G, hidden_size), (G,), (G,)]
                for n, s in zip(names, shapes):
                    self.register_parameter(n, nn.Parameter(torch.empty(*s)))
                self._param_names.append(names)
        self.register_buffer("pad_column", _pad_gate_column(cell, hidden_size), persistent=False)
        self._layout: Tuple[str, Tuple[int, ...]] = ("", ())  # (kind, data_ptr of each weight_ih)
        self.reset_parameters()
        self._lay_out()

    @property
    def output_size(self) -> int:
        return self.hidden_size * self.num_directions

    def reset_parameters(self) -> None:
        bound = 1.0 / math.sqrt(self.hidden_size)  # as nn.LSTM / nn.GRU
        for names in self._param_names:
            for n in names:
                nn.init.uniform_(getattr(self, n), -bound, bound)

    def extra_repr(self) -> str:
        return (f"{self.input_size}, {self.hidden_size}, cell={self.cell!r}, num_layers={self.num_layers}, "
                f"bidirectional={self.bidirectional}, dropout={self.dropout}, path={self.path!r}")

    def _weights(self, layer: int, direction: int) -> List[torch.Tensor]:
        return [getattr(self, n) for n in self._param_names[layer * self.num_directions + direction]]

    # -- weight layout (module docstring) ----------------------------------------------------
    def _apply(self, fn, *args, **kwargs):
        out = super()._apply(fn, *args, **kwargs)
        self._lay_out()
        return out

    def _ih_ptrs(self) -> Tuple[int, ...]:
        return tuple(getattr(self, names[0]).data_ptr() for names in self._param_names)

    def _lay_out(self) -> None:
        """Put the weights in the layout the device's path runs on without copies (module docstring)."""
        w0 = self.weight_ih_l0
        cudnn = w0.is_cuda and torch.backends.cudnn.is_acceptable(w0) and torch._use_cudnn_rnn_flatten_weight()
        kind = "cudnn-packed" if cudnn and self.resolved_path(w0.device) == "packed" else (
            "cudnn-blocks" if cudnn else "blocks")
        # cuDNN takes the weights as they are when they are one flat buffer in its layout (the
        # whole storage of the first weight, as nn.LSTM's flatten_parameters makes it)
        with torch.no_grad(), (torch.cuda.device_of(w0) if cudnn else contextlib.nullcontext()):
            if kind == "cudnn-packed":  # nn.LSTM's own layout: one flat buffer for all layers
                flat = [getattr(self, n) for names in self._param_names for n in names]
                for w in flat:
                    w.data = w.data.contiguous()
                torch._cudnn_rnn_flatten_weight(flat, 4, self.input_size, self._cudnn_mode(), self.hidden_size, 0,
                                                self.num_layers, True, self.bidirectional)
            else:
                for names in self._param_names:
                    w_ih, w_hh, b_ih, b_hh = (getattr(self, n) for n in names)
                    block = torch.cat([w_ih.data, self.pad_column.to(w_ih.dtype)], dim=1)
                    if cudnn:  # the block and this direction's other weights in one cuDNN buffer
                        rest = [w.data.contiguous() for w in (w_hh, b_hh, b_ih)]
                        for w, r in zip((w_hh, b_hh, b_ih), rest):
                            w.data = r
                        torch._cudnn_rnn_flatten_weight([block, w_hh, b_ih, b_hh], 4, w_ih.size(1) + 1,
                                                        self._cudnn_mode(), self.hidden_size, 0, 1, True, False)
                    w_ih.data = block[:, :-1]
        self._layout = (kind, self._ih_ptrs())

    def _cudnn_mode(self) -> int:
        from torch.backends.cudnn import rnn

        return rnn.get_cudnn_mode(self.cell.upper())

    def _check_layout(self) -> None:
        if self._layout[1] != self._ih_ptrs():  # a parameter's storage was replaced since _lay_out
            self._lay_out()

    def _with_pad_column(self, w_ih: torch.Tensor) -> torch.Tensor:
        """The ``[G, I+1]`` block of ``w_ih`` (its pad column last), as the padded path feeds the kernel."""
        if torch.jit.is_tracing() or self._layout[0] == "cudnn-packed":  # export traces the plain concatenation
            return torch.cat([w_ih, self.pad_column.to(w_ih.dtype)], dim=1)
        if torch.is_grad_enabled() and w_ih.requires_grad:
            return _PadColumnBlock.apply(w_ih)
        return w_ih.detach().as_strided((w_ih.size(0), w_ih.size(1) + 1), (w_ih.size(1) + 1, 1))

    def resolved_path(self, device: torch.device) -> str:
        path = self.path if self.path != "auto" else ("packed" if device.type == "cuda" else "padded")
        if (path, device.type) not in _logged_paths:
            _logged_paths.add((path, device.type))
            log.info("RNNEncoder: %s path on %s", path, device.type)
        return path

    def forward(self, x: torch.Tensor, lengths) -> EncoderOutput:
        x, lengths, host = self._checked(x, lengths)
        B, T, _ = x.shape
        H, D, L = self.hidden_size, self.num_directions, self.num_layers
        if B == 0 or T == 0 or not bool(host.any()):
            # nothing to run: zeros that still depend on x and the weights, so the graph stays connected
            # all of x is padding here and may hold NaN/inf: 0 * NaN is NaN, so mask it out instead
            anchor = (x.masked_fill(torch.ones_like(x, dtype=torch.bool), 0.0).sum()
                      + sum(p.sum() for p in self.parameters()) * 0.0)
            zeros = x.new_zeros(B, T, D * H) + anchor
            h = x.new_zeros(L * D, B, H) + anchor
            return EncoderOutput(zeros, x.new_zeros(B, D * H) + anchor, (h, h.clone() if self.cell == "lstm" else None))
        if self.resolved_path(x.device) == "packed":
            return self._forward_packed(x, lengths, host)
        return self._forward_padded(x, lengths)

    def forward_final(self, x: torch.Tensor, lengths) -> torch.Tensor:
        """``forward(x, lengths).final`` alone (same values, same gradients), for less work.

        What a classifier with ``pooling="last"`` needs. On the padded path it skips what only
        ``sequence`` and ``c_n`` need (the pad column, zeroing and reversing back the top layer's
        outputs): for the default model on CPU, 1.2x as fast in evaluation and 1.1x in training.
        Takes the same input and raises the same errors as ``forward``; it is a plain method, so
        forward hooks on this module do not run.
        """
        x, dev_lengths, host = self._checked(x, lengths)
        B, T, _ = x.shape
        if B == 0 or T == 0 or not bool(host.any()) or self.resolved_path(x.device) == "packed":
            return self.forward(x, host).final
        lengths = dev_lengths
        return self._final_padded(x, lengths)

    def _checked(self, x: torch.Tensor, lengths):
        """``x`` in the parameters' dtype, ``lengths`` as int64 on its device and on the host, or the
        error that names the problem.

        The host copy is what the caller gave when it is on the CPU (the Lightning modules keep a
        batch's lengths there): the emptiness test and packing read it without waiting for the
        device. Lengths given on an accelerator are copied to the host here (one sync per call).
        """
        if not isinstance(x, torch.Tensor) or x.dim() != 3:
            raise ValueError(f"x must be a [batch, time, features] tensor, got "
                             f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}")
        if not x.dtype.is_floating_point:
            raise TypeError(f"x must be a floating-point tensor (the embedded tokens), got dtype {x.dtype}; "
                            f"embed integer ids first (PaddedEmbedding)")
        weight = self.weight_ih_l0
        if x.dtype != weight.dtype and not torch.is_autocast_enabled(x.device.type):
            x = x.to(weight.dtype)  # as Keras layers do: the layer computes in its parameters' dtype
        B, T, I = x.shape
        if I != self.input_size:
            raise ValueError(f"x has feature size {I}, but this encoder was built with input_size={self.input_size}")
        self._check_layout()
        host = lengths if isinstance(lengths, torch.Tensor) and lengths.device.type == "cpu" else None
        lengths = check_lengths(lengths, B, T, x.device)
        host = lengths.cpu() if host is None else host.long()
        return x, lengths, host

    # -- padded path -----------------------------------------------------------------------
    def _run_direction(self, x: torch.Tensor, weights: List[torch.Tensor], pad_column: bool = True):
        """One direction over ``x`` (``[x ; is_pad]`` when ``pad_column``): outputs and, for LSTM, c_n."""
        w_ih, w_hh, b_ih, b_hh = weights
        if pad_column:
            w_ih = self._with_pad_column(w_ih)
        B = x.size(0)
        h0 = x.new_zeros(1, B, self.hidden_size)
        if self.cell == "lstm":
            out, _, c_n = torch.lstm(x, (h0, h0), [w_ih, w_hh, b_ih, b_hh], True, 1, 0.0,
                                     self.training, False, True)
            return out, c_n[0]
        out, _ = torch.gru(x, h0, [w_ih, w_hh, b_ih, b_hh], True, 1, 0.0, self.training, False, True)
        return out, None

    def _forward_padded(self, x: torch.Tensor, lengths: torch.Tensor) -> EncoderOutput:
        B, T, _ = x.shape
        mask = lengths_to_mask(lengths, T)  # [B, T]
        is_pad = (~mask).unsqueeze(-1).to(x.dtype)
        rev = reverse_index(lengths, T)  # computed once, used to reverse and to reverse back
        keep = mask.unsqueeze(-1)

        h_n, c_n = [], []
        # torch.where, not multiplication: it also clears NaN/inf a caller left in the padding
        layer_in = torch.where(keep, x, x.new_zeros(()))
        for layer in range(self.num_layers):
            outs = []
            for d in range(self.num_directions):
                inp = layer_in if d == 0 else reverse_within_lengths(layer_in, lengths, rev)
                out, c = self._run_direction(torch.cat([inp, is_pad], dim=-1), self._weights(layer, d))
                # processing order: the row's own last step holds its final state
                h_n.append(last_step(out, lengths))
                if c is not None:
                    c_n.append(c)
                if d == 1:
                    out = reverse_within_lengths(out, lengths, rev)
                outs.append(out)
            layer_out = torch.where(keep, torch.cat(outs, dim=-1), x.new_zeros(()))
            if layer + 1 < self.num_layers and self.dropout > 0.0:
                layer_out = F.dropout(layer_out, self.dropout, self.training)
            layer_in = layer_out
        D = self.num_directions
        final = torch.cat(h_n[-D:], dim=-1)
        h_n_t = torch.stack(h_n, 0)
        c_n_t = torch.stack(c_n, 0) if c_n else None
        return EncoderOutput(layer_in, final, (h_n_t, c_n_t))

    def _final_padded(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        # In both directions a row's padding comes after its real steps (the backward one runs on
        # the row reversed within its length), so what the kernel does there can't reach a real
        # step: no pad column, and the layers' outputs need no zeroing. Only x is zeroed once, as
        # NaN/inf left in its padding would turn the zero gradients of padded steps into NaN.
        B, T, _ = x.shape
        rev = reverse_index(lengths, T) if self.num_directions == 2 else None
        mask = lengths_to_mask(lengths, T).unsqueeze(-1)
        layer_in = torch.where(mask, x, x.new_zeros(()))
        # in cuDNN's buffer the weights are laid out with the pad column: the kernel gets that
        # block and an is-padding input column (the same numbers), so nothing is repacked
        blocks = self._layout[0] == "cudnn-blocks"
        is_pad = (~mask).to(x.dtype) if blocks else None
        finals: List[torch.Tensor] = []
        for layer in range(self.num_layers):
            top = layer + 1 == self.num_layers
            outs = []
            for d in range(self.num_directions):
                inp = layer_in if d == 0 else reverse_within_lengths(layer_in, lengths, rev)
                if blocks:
                    inp = torch.cat([inp, is_pad], dim=-1)
                out, _ = self._run_direction(inp, self._weights(layer, d), pad_column=blocks)
                if top:  # processing order: the row's own last step holds its final state
                    finals.append(last_step(out, lengths))
                else:
                    outs.append(out if d == 0 else reverse_within_lengths(out, lengths, rev))
            if not top:
                layer_in = torch.cat(outs, dim=-1)
                if self.dropout > 0.0:
                    layer_in = F.dropout(layer_in, self.dropout, self.training)
        return torch.cat(finals, dim=-1)

    # -- packed path -----------------------------------------------------------------------
    def _forward_packed(self, x: torch.Tensor, lengths: torch.Tensor, host: torch.Tensor) -> EncoderOutput:
        B, T, _ = x.shape
        nonempty = lengths > 0
        x = x.masked_fill(~lengths_to_mask(lengths, T).unsqueeze(-1), 0.0)
        # Packing as pack_padded_sequence(enforce_sorted=False) does, with the order worked out on
        # the host lengths and sent to the device without waiting (torch's own helpers copy the
        # indices with a sync). Packing rejects length 0: those rows run one step on zero input
        # and are zeroed after.
        run_len, order = torch.sort(host.clamp(min=1), descending=True)
        unsort = torch.empty_like(order)
        unsort[order] = torch.arange(B)
        order, unsort = (i.to(x.device, non_blocking=True) for i in (order, unsort))
        data, batch_sizes = torch._VF._pack_padded_sequence(x.index_select(0, order), run_len, True)
        flat = [w for names in self._param_names for w in (getattr(self, n) for n in names)]
        h0 = x.new_zeros(self.num_layers * self.num_directions, B, self.hidden_size)
        if self.cell == "lstm":
            data, h_n, c_n = torch.lstm(data, batch_sizes, (h0, h0), flat, True, self.num_layers,
                                        self.dropout, self.training, self.bidirectional)
        else:
            data, h_n = torch.gru(data, batch_sizes, h0, flat, True, self.num_layers,
                                  self.dropout, self.training, self.bidirectional)
            c_n = None
        seq, _ = torch._VF._pad_packed_sequence(data, batch_sizes, True, 0.0, T)
        # the kernel takes and returns rows in packed (sorted) order
        keep = nonempty.view(1, B, 1).to(x.dtype)
        h_n = h_n.index_select(1, unsort) * keep
        c_n = c_n.index_select(1, unsort) * keep if c_n is not None else None
        seq = seq.index_select(0, unsort) * nonempty.view(B, 1, 1).to(x.dtype)
        D = self.num_directions
        final = torch.cat(list(h_n[-D:]), dim=-1)
        return EncoderOutput(seq, final, (h_n, c_n))
