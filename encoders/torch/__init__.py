"""PyTorch backend: padding-correct embedding, encoder, pooling, Lightning module and data module.

``import encoders.torch`` never imports tensorflow.
"""
from encoders.torch.embedding import PaddedEmbedding
from encoders.torch.pooling import MaskedPooling
from encoders.torch.rnn import EncoderOutput, RNNEncoder, reverse_within_lengths

__all__ = ["PaddedEmbedding", "RNNEncoder", "EncoderOutput", "MaskedPooling", "reverse_within_lengths",
           "SequenceClassifier", "SequenceDataModule"]


def __getattr__(name):  # Lightning is heavy: load it only for the training pieces
    if name == "SequenceClassifier":
        from encoders.torch.module import SequenceClassifier

        return SequenceClassifier
    if name == "SequenceDataModule":
        from encoders.torch.datamodule import SequenceDataModule

        return SequenceDataModule
    raise AttributeError(name)
