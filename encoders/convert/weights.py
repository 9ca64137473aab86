"""Weight port between the torch and Keras encoders, either direction.

``copy_weights(src, dst)`` looks at the types (``torch.nn.Module`` vs Keras ``Layer``) and at
the parameters, not at class names, so it also takes a plain ``torch.nn.LSTM``/``GRU`` or a
torch embedding-like module with a ``weight`` [num_embeddings, dim].

The layouts it translates (a port is only right if a parity test says so; tests/cross/test_convert.py):

* torch ``weight_ih_l{k}{sfx}`` [G*H, I], ``weight_hh_l{k}{sfx}`` [G*H, H], ``bias_ih``/``bias_hh``
  [G*H], ``sfx`` = "" or "_reverse"; G = 4 for LSTM (gates i,f,g,o), 3 for GRU (r,z,n).
* Keras LSTM: ``kernel`` [I, 4H], ``recurrent_kernel`` [H, 4H] in the same gate order (i,f,c,o),
  one ``bias`` [4H] = b_ih + b_hh (back to torch: all of it in ``bias_ih``, zeros in ``bias_hh``).
* Keras GRU (``reset_after=True``): gates z,r,h, ``bias`` [2, 3H] = [input bias; recurrent bias].

Neither torch nor TensorFlow is imported at module level: only the side you hand in is touched.
"""
from __future__ import annotations

import re
import sys
from typing import Optional, Tuple

import numpy as np

__all__ = ["copy_weights", "keras_encoder_like", "torch_encoder_like"]

_KEY = re.compile(r"^(?P<prefix>.*?)(?P<kind>weight_ih|weight_hh|bias_ih|bias_hh)_l(?P<layer>\d+)(?P<rev>_reverse)?$")
_GATES = {4: "lstm", 3: "gru"}


# -- type detection (never imports a framework that isn't loaded already) -------------------------
def _is_torch_module(obj) -> bool:
    if "torch" not in sys.modules:
        return False
    import torch

    return isinstance(obj, torch.nn.Module)


def _is_keras_layer(obj) -> bool:
    if "keras" not in sys.modules:
        return False
    import keras

    return isinstance(obj, keras.layers.Layer)


# -- torch side ----------------------------------------------------------------------------------
class _TorchRNNSpec:
    """Structure of a torch RNN read off its state_dict: cell, sizes, layers, directions."""

    def __init__(self, module):
        arrays, prefixes = {}, set()
        for key, value in module.state_dict().items():
            m = _KEY.match(key)
            if m is None:
                if re.search(r"weight_hr_l\d+", key):
                    raise ValueError("torch LSTM with proj_size > 0 has no Keras equivalent")
                continue
            prefixes.add(m["prefix"])
            arrays[(m["kind"], int(m["layer"]), 1 if m["rev"] else 0)] = (key, value)
        if not arrays:
            raise ValueError(f"{type(module).__name__} has no LSTM/GRU parameters (weight_ih_l0, ...)")
        if len(prefixes) > 1:
            raise ValueError(f"{type(module).__name__} holds several RNNs (parameter prefixes {sorted(prefixes)}); "
                             "pass the RNN encoder itself")
        self.prefix = prefixes.pop()
        self.keys = {k: key for k, (key, _) in arrays.items()}
        self.values = {k: v.detach().cpu().float().numpy() for k, (_, v) in arrays.items()}
        self.num_layers = 1 + max(layer for _, layer, _ in arrays)
        self.num_directions = 2 if any(d for _, _, d in arrays) else 1
        gh, self.hidden_size = self.values[("weight_hh", 0, 0)].shape
        if gh % self.hidden_size or gh // self.hidden_size not in _GATES:
            raise ValueError(f"weight_hh_l0 has shape {(gh, self.hidden_size)}: expected [4H, H] (LSTM) or [3H, H] (GRU)")
        self.cell = _GATES[gh // self.hidden_size]
        self.input_size = self.values[("weight_ih", 0, 0)].shape[1]
        # cross-check with what the module says about itself, when it says anything
        declared_cell = getattr(module, "cell", None) or getattr(module, "mode", None)
        if isinstance(declared_cell, str) and declared_cell.lower() in ("lstm", "gru") \
                and declared_cell.lower() != self.cell:
            raise ValueError(f"{type(module).__name__} says cell={declared_cell!r} but its weights are {self.cell}")
        declared_h = getattr(module, "hidden_size", None)
        if isinstance(declared_h, int) and declared_h != self.hidden_size:
            raise ValueError(f"{type(module).__name__}.hidden_size={declared_h} but weight_hh_l0 gives {self.hidden_size}")
        self.dropout = float(getattr(module, "dropout", 0.0) or 0.0)
        for layer in range(self.num_layers):
            for d in range(self.num_directions):
                for kind in ("weight_ih", "weight_hh"):
                    if (kind, layer, d) not in self.values:
                        raise ValueError(f"{type(module).__name__} lacks {kind}_l{layer}{'_reverse' if d else ''}")
                if ("bias_ih", layer, d) not in self.values:
                    raise ValueError(f"{type(module).__name__} has no biases (bias=False): Keras' cuDNN-eligible "
                                     "LSTM/GRU always has them")


def _torch_param(module, key):
    return dict(module.named_parameters())[key]


def _set_torch(tensor, array: np.ndarray) -> None:
    import torch

    if tuple(tensor.shape) != array.shape:
        raise ValueError(f"shape mismatch: torch tensor {tuple(tensor.shape)} vs {array.shape}")
    with torch.no_grad():
        tensor.copy_(torch.from_numpy(np.ascontiguousarray(array)).to(dtype=tensor.dtype, device=tensor.device))


# -- gate layouts --------------------------------------------------------------------------------
def _gru_swap(a: np.ndarray, H: int, axis: int) -> np.ndarray:
    """Swap the first two gate blocks: torch (r,z,n) <-> Keras (z,r,h). It is its own inverse."""
    blocks = np.split(a, [H, 2 * H], axis=axis)
    return np.concatenate([blocks[1], blocks[0], blocks[2]], axis=axis)


def _torch_to_keras(cell: str, H: int, w_ih, w_hh, b_ih, b_hh) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    if cell == "lstm":
        return w_ih.T, w_hh.T, b_ih + b_hh
    return (_gru_swap(w_ih, H, 0).T, _gru_swap(w_hh, H, 0).T,
            np.stack([_gru_swap(b_ih, H, 0), _gru_swap(b_hh, H, 0)]))


def _keras_to_torch(cell: str, H: int, kernel, recurrent, bias):
    if cell == "lstm":
        return kernel.T, recurrent.T, bias, np.zeros_like(bias)
    return (_gru_swap(kernel, H, 1).T, _gru_swap(recurrent, H, 1).T,
            _gru_swap(bias[0], H, 0), _gru_swap(bias[1], H, 0))


# -- Keras side ----------------------------------------------------------------------------------
def _keras_rnns(layer):
    """The built inner RNNs [layer][direction] of a Keras RNNEncoder, or a clear error."""
    if not hasattr(layer, "hidden_size") or not hasattr(layer, "num_layers"):
        raise TypeError(f"{type(layer).__name__} is not an encoders.keras.RNNEncoder")
    if not layer.built or not getattr(layer, "rnns", None):
        raise ValueError(f"the Keras {type(layer).__name__} {layer.name!r} is not built: build it first with the "
                         f"input size, e.g. encoder.build((None, None, input_size)) or call it on a sample batch")
    return layer.rnns


def _check_same_structure(spec: _TorchRNNSpec, enc, input_size: int) -> None:
    mine = (enc.cell, enc.num_layers, enc.num_directions, enc.hidden_size, input_size)
    theirs = (spec.cell, spec.num_layers, spec.num_directions, spec.hidden_size, spec.input_size)
    if mine != theirs:
        names = ("cell", "num_layers", "directions", "hidden_size", "input_size")
        diff = ", ".join(f"{n}: torch {t!r} vs keras {k!r}" for n, t, k in zip(names, theirs, mine) if t != k)
        raise ValueError(f"torch and Keras encoders differ ({diff})")


def _keras_input_size(enc) -> int:
    return int(_keras_rnns(enc)[0][0].cell.kernel.shape[0])


def _assign(variable, array: np.ndarray, what: str) -> None:
    if tuple(variable.shape) != array.shape:
        raise ValueError(f"{what}: Keras variable has shape {tuple(variable.shape)}, source gives {array.shape}")
    variable.assign(array.astype(np.float32))  # Keras casts to the variable's own dtype


def _rnn_torch_to_keras(src, dst) -> None:
    spec = _TorchRNNSpec(src)
    rnns = _keras_rnns(dst)
    _check_same_structure(spec, dst, _keras_input_size(dst))
    H = spec.hidden_size
    for layer in range(spec.num_layers):
        for d in range(spec.num_directions):
            v = [spec.values[(kind, layer, d)] for kind in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
            kernel, recurrent, bias = _torch_to_keras(spec.cell, H, *v)
            cell = rnns[layer][d].cell
            name = f"l{layer}{'_reverse' if d else ''}"
            _assign(cell.kernel, kernel, f"kernel {name}")
            _assign(cell.recurrent_kernel, recurrent, f"recurrent_kernel {name}")
            _assign(cell.bias, bias, f"bias {name}")


def _rnn_keras_to_torch(src, dst) -> None:
    rnns = _keras_rnns(src)
    spec = _TorchRNNSpec(dst)
    _check_same_structure(spec, src, _keras_input_size(src))
    H = spec.hidden_size
    for layer in range(spec.num_layers):
        for d in range(spec.num_directions):
            cell = rnns[layer][d].cell
            k = [np.asarray(cell.kernel.numpy(), np.float32), np.asarray(cell.recurrent_kernel.numpy(), np.float32),
                 np.asarray(cell.bias.numpy(), np.float32)]
            for kind, array in zip(("weight_ih", "weight_hh", "bias_ih", "bias_hh"), _keras_to_torch(spec.cell, H, *k)):
                _set_torch(_torch_param(dst, spec.keys[(kind, layer, d)]), array)


# -- embeddings ----------------------------------------------------------------------------------
def _torch_embedding_weight(module):
    weight = getattr(module, "weight", None)
    if weight is None or getattr(weight, "dim", lambda: 0)() != 2:
        raise TypeError(f"{type(module).__name__} has no 2-D `weight` [num_embeddings, dim]: not an embedding")
    return weight


def _keras_embedding_variable(layer):
    if not hasattr(layer, "embeddings") and hasattr(layer, "input_dim") and hasattr(layer, "build"):
        layer.build((None, None))  # an embedding's shape is fully known from its config
    variable = getattr(layer, "embeddings", None)
    if variable is None:
        raise TypeError(f"{type(layer).__name__} has no `embeddings` weight: not an embedding layer")
    return variable


def _check_padding_idx(torch_module, keras_layer) -> None:
    t, k = getattr(torch_module, "padding_idx", None), getattr(keras_layer, "padding_idx", None)
    if t is not None and k is not None and int(t) != int(k):
        raise ValueError(f"padding_idx differs: torch {t} vs keras {k}; the outputs would not agree")


def _embedding_torch_to_keras(src, dst) -> None:
    weight = _torch_embedding_weight(src).detach().cpu().float().numpy()
    variable = _keras_embedding_variable(dst)
    _check_padding_idx(src, dst)
    _assign(variable, weight, "embeddings [num_embeddings, dim]")


def _embedding_keras_to_torch(src, dst) -> None:
    array = np.asarray(_keras_embedding_variable(src).numpy(), np.float32)
    _check_padding_idx(dst, src)
    _set_torch(_torch_embedding_weight(dst), array)


def _is_torch_rnn(module) -> bool:
    return any(_KEY.match(k) for k in module.state_dict())


def _is_keras_encoder(layer) -> bool:
    return hasattr(layer, "num_layers") and hasattr(layer, "hidden_size") and hasattr(layer, "cell")


# -- public --------------------------------------------------------------------------------------
def copy_weights(src, dst) -> None:
    """Copy weights from ``src`` to ``dst``: torch -> Keras or Keras -> torch, in place.

    After the copy both sides give the same outputs (to float32 round-off).

    Args:
        src, dst: a supported pair, either way round: a torch RNN encoder
            (``encoders.torch.RNNEncoder``, ``nn.LSTM``, ``nn.GRU``) and ``encoders.keras.RNNEncoder``
            (which must be built, since its input size is only known then); or a torch embedding
            (``encoders.torch.PaddedEmbedding`` or any module with a 2-D ``weight``) and
            ``encoders.keras.PaddedEmbedding``.

    Raises:
        ValueError: a structural mismatch (cell, layers, directions, sizes, padding_idx), named.
        TypeError: an unsupported pair.
    """
    if _is_torch_module(src) and _is_keras_layer(dst):
        torch_side, keras_side, to_keras = src, dst, True
    elif _is_keras_layer(src) and _is_torch_module(dst):
        torch_side, keras_side, to_keras = dst, src, False
    else:
        raise TypeError(f"copy_weights copies between a torch.nn.Module and a Keras Layer, got "
                        f"{type(src).__name__} -> {type(dst).__name__}")
    if _is_torch_rnn(torch_side):
        if not _is_keras_encoder(keras_side):
            raise TypeError(f"cannot copy between torch RNN {type(torch_side).__name__} and Keras "
                            f"{type(keras_side).__name__}: expected encoders.keras.RNNEncoder")
        (_rnn_torch_to_keras if to_keras else _rnn_keras_to_torch)(src, dst)
        return
    if _is_keras_encoder(keras_side):
        raise TypeError(f"cannot copy between torch {type(torch_side).__name__} (no LSTM/GRU parameters) "
                        f"and Keras RNNEncoder")
    (_embedding_torch_to_keras if to_keras else _embedding_keras_to_torch)(src, dst)


def keras_encoder_like(torch_encoder, copy: bool = True, **kwargs):
    """A built ``encoders.keras.RNNEncoder`` with the torch encoder's structure.

    Args:
        torch_encoder: an ``encoders.torch.RNNEncoder``, ``nn.LSTM`` or ``nn.GRU``.
        copy: copy its weights too.
        **kwargs: more arguments of the Keras ``RNNEncoder`` (``name``...).

    Returns:
        The Keras encoder, built for the torch encoder's input size.
    """
    from encoders.keras import RNNEncoder

    spec = _TorchRNNSpec(torch_encoder)
    enc = RNNEncoder(spec.hidden_size, cell=spec.cell, num_layers=spec.num_layers,
                     bidirectional=spec.num_directions == 2, dropout=spec.dropout, **kwargs)
    enc.build((None, None, spec.input_size))
    if copy:
        copy_weights(torch_encoder, enc)
    return enc


def torch_encoder_like(keras_encoder, input_size: Optional[int] = None, copy: bool = True):
    """An ``encoders.torch.RNNEncoder`` with the Keras encoder's structure.

    Args:
        keras_encoder: an ``encoders.keras.RNNEncoder``.
        input_size: read off a built Keras encoder; an unbuilt one is built with it.
        copy: copy its weights too.

    Returns:
        The torch encoder.

    Raises:
        ValueError: an unbuilt encoder without ``input_size``, or one built for another size.
    """
    from encoders.torch import RNNEncoder

    if not keras_encoder.built:
        if input_size is None:
            raise ValueError("the Keras encoder is not built: pass input_size (or build it first)")
        keras_encoder.build((None, None, int(input_size)))
    built_size = _keras_input_size(keras_encoder)
    if input_size is not None and int(input_size) != built_size:
        raise ValueError(f"input_size={input_size} but the Keras encoder was built for {built_size}")
    enc = RNNEncoder(built_size, keras_encoder.hidden_size, keras_encoder.cell, keras_encoder.num_layers,
                     keras_encoder.bidirectional, keras_encoder.dropout)
    if copy:
        copy_weights(keras_encoder, enc)
    return enc
