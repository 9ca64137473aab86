"""PyTorch backend: padding-correct embedding, encoder, pooling, Lightning module and data module.

``import encoders.torch`` never imports tensorflow. The modules mirror ``encoders.keras``:
masking, checks, embedding, rnn, pooling, classifier, batches, checkpoint_io, runtime, runner.
"""
from encoders.torch.embedding import PaddedEmbedding
from encoders.torch.masking import reverse_within_lengths
from encoders.torch.pooling import MaskedPooling
from encoders.torch.rnn import EncoderOutput, RNNEncoder

__all__ = ["PaddedEmbedding", "RNNEncoder", "EncoderOutput", "MaskedPooling", "reverse_within_lengths",
           "SequenceClassifier", "SequenceDataModule"]


def __getattr__(name):  # Lightning is heavy: load it only for the training pieces
    if name == "SequenceClassifier":
        from encoders.torch.models import SequenceClassifier

        return SequenceClassifier
    if name == "SequenceDataModule":
        from encoders.torch.batches import SequenceDataModule

        return SequenceDataModule
    raise AttributeError(name)
