"""Export a trained run for serving: ONNX or a TensorFlow SavedModel, from a torch run or a tf run.

    python -m encoders export RUN_DIR --format onnx|savedmodel [--output PATH] [--atol 1e-4] [--overwrite]

Both artefacts take ``tokens`` (int64 ``[B, T]``, right-padded with the pad id 0) and ``lengths``
(int64 ``[B]``) and return ``logits`` (float32 ``[B, C]``, class ``k`` is the run's ``labels[k]``);
``B`` and ``T`` are dynamic, tokens at ``t >= lengths[b]`` are padding whatever they hold.
A tagging run's ``logits`` are ``[B, T, C]`` (tag ``k`` is ``labels[k]``), exactly 0.0 at every
``t >= lengths[b]`` (the export zeroes them, so the check compares whole arrays); a regression
run's are ``[B]``, the predictions themselves, in both formats.

ONNX is written by torch (``encoders.torch.export``), the SavedModel by TensorFlow
(``encoders.keras.export``). A run of the other backend is first rebuilt in the needed framework
with ``encoders.convert`` (``torch_to_keras`` / ``keras_to_torch``). Before anything is written the
artefact, loaded back with onnxruntime or ``tf.saved_model.load``, scores ragged check batches (an
empty row, a row of one token, rows longer than any training text, an all-empty batch) and its
logits must agree with the run's *own* model within ``atol``; otherwise nothing is written. The
artefact is built under a temporary name next to the output and renamed into place.
"""
from __future__ import annotations

import contextlib
import os
import sys
from typing import Callable, List, Tuple

import numpy as np

from encoders.io import atomic_folder, atomic_write_with
from encoders.errors import EncodersError, ExportError
from encoders.run.files import EXPORT_DIR, check_run_dir, checkpoint_path, is_training_output, run_backend
from encoders.tasks import TASKS

__all__ = ["FORMATS", "DEFAULT_ATOL", "export_run", "default_output", "check_batches", "onnx_logits"]

FORMATS = ("onnx", "savedmodel")
DEFAULT_ATOL = 1e-4
CHECK_LENGTH = 300  # longer than the texts of a typical run, and than any the checks of convert use


def default_output(run_dir: str, fmt: str) -> str:
    return os.path.join(run_dir, EXPORT_DIR, "model.onnx" if fmt == "onnx" else "savedmodel")


def check_batches(vocab_size: int, pad_id: int = 0, seed: int = 0) -> List[Tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """``(tokens, lengths, reference_tokens)`` batches for checking an artefact.

    Args:
        vocab_size: ids are drawn from ``[1, vocab_size)`` (the pad id excluded).
        pad_id: the padding id.
        seed: the random ids' seed.

    Returns:
        The batches: ragged with an empty row, one token and ``CHECK_LENGTH`` tokens; a single
        one-token row; an all-empty batch with ``T = 0``. ``tokens`` holds random non-pad ids
        *beyond* each row's length too (the artefact must ignore them); ``reference_tokens`` is the
        same batch properly padded (at least one column wide), which the run's own model scores.
    """
    rng = np.random.default_rng(seed)
    low = 1 if vocab_size > 1 else 0
    out = []
    for lengths in (np.array([0, 1, CHECK_LENGTH, 7, 45, 3, 120, 0], dtype=np.int64),
                    np.array([1], dtype=np.int64),
                    np.array([0, 0], dtype=np.int64)):
        width = int(lengths.max())
        tokens = rng.integers(low, vocab_size, size=(len(lengths), width)).astype(np.int64)
        tokens[tokens == pad_id] = low
        reference = np.full((len(lengths), max(width, 1)), pad_id, dtype=np.int64)
        for b, n in enumerate(lengths):
            reference[b, :n] = tokens[b, :n]
        out.append((tokens, lengths, reference))
    return out


def onnx_logits(path: str) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """Run an exported ONNX model with onnxruntime.

    Args:
        path: the ``.onnx`` file.

    Returns:
        A function ``(tokens, lengths) -> logits``.

    Raises:
        ExportError: onnxruntime is not installed.
    """
    try:
        import onnxruntime as ort
    except ImportError:
        raise ExportError("checking an ONNX export needs onnxruntime: pip install 'padded-encoders[export]'") from None
    del ort  # present: the torch backend's loader runs it
    from encoders.torch.export import load_exported

    return load_exported(path)


def _models(run_dir: str, backend: str, fmt: str, which: str):
    """(the run's own model and its ``batch_logits``, the model to export)."""
    import importlib

    from encoders.convert import runs

    source = checkpoint_path(run_dir, which, backend)
    torch_run = backend == "torch"
    try:
        own = importlib.import_module("encoders.torch.inference" if torch_run else "encoders.keras.inference")
        if fmt == ("onnx" if torch_run else "savedmodel"):  # the run's own framework writes it
            model, _ = own.load_classifier(source)
            return own.batch_logits, model, model
        tm, km = (runs.torch_to_keras if torch_run else runs.keras_to_torch)(source)  # through the port
        tm.eval()
        return (own.batch_logits, tm, km) if torch_run else (own.batch_logits, km, tm)
    except EncodersError:
        raise
    except (FileNotFoundError, ValueError, KeyError, TypeError) as e:
        raise ExportError(f"cannot load {source}: {e}") from None


@contextlib.contextmanager
def _quiet_stdout():
    """The exporters print progress on stdout; send it to stderr, so stdout keeps the command's result."""
    with contextlib.redirect_stdout(sys.stderr):
        yield


def _write(fmt: str, model, tmp: str, padding_idx: int) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    with _quiet_stdout():
        if fmt == "onnx":
            from encoders.torch import export as exporter
        else:
            from encoders.keras import export as exporter
        exporter.export_model(model, tmp)
        return exporter.load_exported(tmp)


def export_run(run_dir: str, fmt: str, output: str = "", atol: float = DEFAULT_ATOL, overwrite: bool = False,
               which: str = "best") -> Tuple[str, float]:
    """Export a run's checkpoint for serving, checked against the run's own model first.

    Args:
        run_dir: the run dir.
        fmt: ``"onnx"`` or ``"savedmodel"``.
        output: where to write (default: ``RUN_DIR/export/model.onnx`` or ``RUN_DIR/export/savedmodel``).
        atol: the largest logit difference allowed on the check batches.
        overwrite: replace an earlier export at ``output``.
        which: the checkpoint, ``"best"`` or ``"last"``.

    Returns:
        ``(path written, largest logit difference)``.

    Raises:
        EncodersError: unknown format, an output that exists (without ``overwrite``) or that
            training wrote, a run dir lacking its checkpoint, or logits that differ by more than ``atol``.
    """
    if fmt not in FORMATS:
        raise EncodersError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    run_dir = check_run_dir(run_dir)
    backend = run_backend(run_dir)
    output = os.path.abspath(output or default_output(run_dir, fmt))
    if is_training_output(run_dir, output):
        raise ExportError(f"--output {output} is something training wrote in the run dir: choose another path")
    if fmt == "onnx" and os.path.isdir(output):
        raise ExportError(f"--output {output} is a directory; an ONNX export is one file (e.g. {output}/model.onnx)")
    if fmt == "savedmodel" and os.path.isfile(output):
        raise ExportError(f"--output {output} is a file; a SavedModel is a directory")
    if os.path.exists(output) and not overwrite:
        raise ExportError(f"{output} exists already (an earlier export?): pass --overwrite to replace it, "
                          f"or --output PATH to write elsewhere")
    own_logits, own_model, model = _models(run_dir, backend, fmt, which)
    spec = model.spec if fmt == "onnx" else None
    if spec is None:
        from encoders.keras.models import spec_of

        spec = spec_of(model)
    diff = [0.0]

    def write_checked(tmp: str) -> None:
        """Write the artefact to ``tmp`` and load it back: it must give the run's logits."""
        try:
            run_artefact = _write(fmt, model, tmp, spec.padding_idx)
        except EncodersError:
            raise
        except Exception as e:  # the exporters' own errors: name the step, keep the cause
            raise ExportError(f"writing the {fmt} export of {run_dir} failed ({type(e).__name__}: "
                              f"{str(e).strip().splitlines()[0][:300] if str(e).strip() else ''})") from e
        for tokens, lengths, reference in check_batches(spec.vocab_size, spec.padding_idx):
            expected = TASKS[spec.task].exported_logits(own_logits(own_model, reference, lengths), lengths,
                                                        tokens.shape[1])
            got = np.asarray(run_artefact(tokens, lengths))
            if got.shape != expected.shape:
                raise ExportError(f"the {fmt} export returns logits of shape {got.shape} for a batch of shape "
                                  f"{tokens.shape}, expected {expected.shape}; nothing written")
            diff[0] = max(diff[0], float(np.abs(got - expected).max()) if got.size else 0.0)
        if not diff[0] <= atol:
            raise ExportError(f"the {fmt} export's logits differ from the run's model by {diff[0]:.3g} "
                              f"(> atol {atol:g}) on the check batches; nothing written")

    if fmt == "onnx":
        atomic_write_with(output, write_checked)
    else:
        with atomic_folder(output, replace=True) as tmp:
            write_checked(tmp)
    return output, diff[0]
