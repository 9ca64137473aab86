"""trainer.precision=bf16-mixed keeps pad vectors exactly zero (CPU autocast here; bf16 and fp16 on
CUDA: tests/torch/test_runtime_gpu.py)."""
import pytest
import torch

from encoders.torch import SequenceClassifier
from encoders.torch.models import SequenceTagger


@pytest.mark.parametrize("path", ["padded", "packed"])
def test_bf16_autocast_keeps_pads_exactly_zero(path):
    torch.manual_seed(0)
    tagger = SequenceTagger(vocab_size=30, num_classes=4, embedding_dim=8, hidden_size=6, num_layers=2,
                            encoder_path=path)
    tokens = torch.tensor([[3, 4, 5, 6, 0, 0], [0] * 6, [7, 0, 0, 0, 0, 0], [9] * 6])
    lengths = torch.tensor([4, 0, 1, 6])
    pad = tokens == 0
    with torch.autocast("cpu", dtype=torch.bfloat16):
        x = tagger.embedding(tokens)
        out = tagger.encoder(x, lengths)
        final = tagger.encoder.forward_final(x, lengths)
    assert x.dtype == torch.float32 and torch.all(x[pad] == 0)  # the table's dtype; pads exact zeros
    if path == "padded":  # CPU autocast lowers the padded kernel (the packed one stays float32 there)
        assert out.sequence.dtype == torch.bfloat16
    assert torch.all(out.sequence[pad] == 0) and torch.all(out.final[1] == 0) and torch.all(final[1] == 0)
    assert torch.all(out.state[0][:, 1] == 0) and torch.all(out.state[1][:, 1] == 0)
    # the real steps are those of float32 within bf16's 8-bit mantissa
    ref = tagger.encoder(tagger.embedding(tokens), lengths)
    torch.testing.assert_close(out.sequence.float(), ref.sequence, atol=2**-5, rtol=2**-5)


def test_bf16_mixed_training_keeps_the_pad_row_and_pad_outputs_zero(tmp_path):
    import pytorch_lightning as pl

    from encoders.config import DataConfig
    from encoders.data.sources import load_splits
    from encoders.torch.batches import SequenceDataModule

    splits = load_splits(DataConfig(num_train=256, num_val=64, max_length=40), 0)
    model = SequenceClassifier(splits.vocab_size, splits.num_classes, embedding_dim=8, hidden_size=8)
    trainer = pl.Trainer(accelerator="cpu", max_epochs=1, precision="bf16-mixed", logger=False,
                         enable_checkpointing=False, enable_progress_bar=False, default_root_dir=tmp_path)
    trainer.fit(model, datamodule=SequenceDataModule(splits.train, splits.validation, batch_size=64))
    assert trainer.global_step == 4
    tokens = torch.tensor([[5, 6, 0], [0, 0, 0]])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        seq = model.encoder(model.embedding(tokens), torch.tensor([2, 0])).sequence
    assert torch.all(seq[0, 2] == 0) and torch.all(seq[1] == 0)
