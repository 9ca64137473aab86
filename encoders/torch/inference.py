"""A trained torch classifier for prediction: loaded safely, run in eval mode on numpy batches.

The mirror of ``encoders.keras.inference``; ``encoders.load_run`` uses the one of the run's backend.
"""
from __future__ import annotations

from typing import Any, Tuple

import numpy as np

from encoders.config import ClassifierSpec
from encoders.errors import RunDirError
from encoders.torch.checkpoint_io import load_torch_checkpoint


def load_classifier(path: str) -> Tuple[Any, ClassifierSpec]:
    """The model of a checkpoint (``torch.load(weights_only=True)``), in eval mode on CPU: a
    ``SequenceClassifier``, ``SequenceTagger`` or ``SequenceRegressor`` as its ``task`` says.
    Its encoder takes ``path="auto"`` whatever training used (the same numbers either way).
    """
    from encoders.torch.models import torch_model_class

    ckpt = load_torch_checkpoint(path)
    if not isinstance(ckpt, dict) or "hyper_parameters" not in ckpt or "state_dict" not in ckpt:
        raise RunDirError(f"{path} is not a checkpoint of a SequenceClassifier/Tagger/Regressor (it has no "
                          f"hyper_parameters or state_dict)")
    hparams = dict(ckpt["hyper_parameters"])
    hparams["encoder_path"] = "auto"
    model = torch_model_class(hparams.get("task", "classification"))(**hparams)
    model.load_state_dict(ckpt["state_dict"])
    model.eval()
    return model, model.spec


def batch_logits(model, tokens: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """``model(tokens, lengths)`` on one right-padded batch, in eval mode without gradients.

    Args:
        model: a task module (``load_classifier``'s).
        tokens: ``[B, T]`` ids, right-padded.
        lengths: ``[B]`` row lengths.

    Returns:
        float32 ``[B, C]`` (a tagger: ``[B, T, C]``; a regressor: ``[B]``).
    """
    return model.numpy_logits(tokens, lengths)
