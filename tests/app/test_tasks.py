"""task=tagging / task=regression and pretrained vectors through train.py, on both backends (real runs)."""
import gzip
import json
import os
import random

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

from encoders.app import ConfigError, check_config
from encoders.config import TrainConfig, register_configs
from tests.helpers import ROOT, case_tagging_rows, run_train, train_metrics, write_jsonl

QUIET = ["trainer.enable_progress_bar=false", "data.batch_size=16", "encoder.hidden_size=32"]
TAGGING_KEYS = ("val_acc", "val_loss", "val_macro_f1", "train_loss")


@pytest.fixture
def compose_train():
    register_configs()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=os.path.join(ROOT, "configs"), version_base="1.3"):
        yield lambda *o: OmegaConf.to_object(compose("train", overrides=list(o)))
    GlobalHydra.instance().clear()


def test_task_group_composes_and_defaults_to_classification(compose_train):
    assert compose_train().task.name == "classification" and compose_train().model.embedding_dim is None
    for task in ("tagging", "regression"):
        cfg = compose_train(f"task={task}", "data=files", "data.train_file=x.jsonl")
        assert isinstance(cfg, TrainConfig) and cfg.task.name == task
        check_config(cfg)


@pytest.mark.parametrize("overrides,match", [
    (["task=tagging"], "task=tagging needs data=files"),
    (["task=tagging", "data=files", "data.train_file=x.jsonl", "data.tokenizer=char"], "not supported"),
    (["data=files", "data.train_file=x.csv", "data.tokenizer=bpe", "model.pretrained_embeddings=v.txt"],
     "not supported with data.tokenizer=bpe"),
    (["model.freeze_embeddings=true"], "needs model.pretrained_embeddings"),
    (["task.name=ner"], "task must be one of"),
])
def test_impossible_task_settings_are_named(compose_train, overrides, match):
    with pytest.raises(ConfigError, match=match):
        check_config(compose_train(*overrides))


def entity_rows(n, seed):
    rng = random.Random(seed)
    ents = {"PER": ["john", "mary", "smith", "anna"], "LOC": ["paris", "london", "rome"]}
    words = ["the", "a", "lives", "in", "went", "to", "saw", "and", "with", "today"]
    rows = []
    for _ in range(n):
        toks, tags = [], []
        for _ in range(rng.randint(0, 8)):
            if rng.random() < 0.3:
                kind = rng.choice(sorted(ents))
                for i in range(rng.randint(1, 2)):
                    toks.append(rng.choice(ents[kind]).title())
                    tags.append(("B-" if i == 0 else "I-") + kind)
            else:
                toks.append(rng.choice(words))
                tags.append("O")
        rows.append({"tokens": toks, "tags": tags})
    return rows


def write_conll(path, rows):
    with open(path, "w") as f:
        f.write("-DOCSTART- -X- O\n\n")
        for r in rows:
            if r["tokens"]:
                f.write("".join(f"{w}\tNN\t{t}\n" for w, t in zip(r["tokens"], r["tags"])) + "\n")
    return str(path)


def write_vectors(path, words, dim=8, header=True, gz=True):
    rng = np.random.default_rng(0)
    lines = [f"{w.title() if i % 2 else w} " + " ".join(f"{x:.4f}" for x in rng.normal(size=dim)) for i, w in enumerate(words)]
    text = (f"{len(words)} {dim}\n" if header else "") + "\n".join(lines) + "\n"
    with (gzip.open(path, "wt") if gz else open(path, "w")) as f:
        f.write(text)
    return str(path)


@pytest.mark.parametrize("backend", ["torch", "tf"])
def test_tagging_real_text_beats_the_majority_tag(tmp_path, backend):
    rows = case_tagging_rows(600)
    cut = int(0.8 * len(rows))
    train, test = write_jsonl(tmp_path / "train.jsonl", rows[:cut]), write_jsonl(tmp_path / "test.jsonl", rows[cut:])
    m, _ = train_metrics(tmp_path / "run", f"backend={backend}", "task=tagging", "data=files",
                         f"data.train_file={train}", f"data.test_file={test}", "trainer.max_epochs=4", *QUIET)
    tags = [t for r in rows[cut:] for t in r["tags"]]
    majority = max(tags.count(t) for t in set(tags)) / len(tags)
    assert m["task"] == "tagging" and all(m[k] is not None for k in TAGGING_KEYS)
    assert m["test_tokens"] == len(tags) and "val_span_f1" not in m  # case tags are not BIO
    assert m["test_acc"] > majority + 0.03, (m["test_acc"], majority)
    assert sorted(m["history"]) == ["lr", "train/loss", "val/acc", "val/loss", "val/macro_f1"] or \
        sorted(m["history"]) == ["lr", "train/loss", "val/acc", "val/loss", "val/macro_f1", "val/span_f1"]
    vocab = json.loads((tmp_path / "run" / "vocab.json").read_text())
    assert vocab["labels"] == sorted(set(t for r in rows[:cut] for t in r["tags"]))


@pytest.mark.parametrize("backend", ["torch", "tf"])
def test_conll_tagging_with_frozen_gzipped_fasttext_vectors(tmp_path, backend):
    rows = entity_rows(300, 0)
    train, val = write_conll(tmp_path / "train.conll", rows[:240]), write_conll(tmp_path / "val.conll", rows[240:])
    vec = write_vectors(tmp_path / "v.vec.gz", ["the", "a", "lives", "paris", "john", "nothere"], dim=8)
    m, out = train_metrics(tmp_path / "run", f"backend={backend}", "task=tagging", "data=files",
                           f"data.train_file={train}", f"data.validation_file={val}", "trainer.max_epochs=3",
                           f"model.pretrained_embeddings={vec}", "model.freeze_embeddings=true", *QUIET)
    assert m["val_span_f1"] is not None and m["val_acc"] > 0.6
    assert m["embedding_dim"] == 8 and m["freeze_embeddings"] is True
    assert m["pretrained_coverage"] == pytest.approx(5 / 17)  # 17 words in training, 5 in the file
    assert "5 of 17 vocabulary words found" in out
    # frozen: the table in the best checkpoint is the file's (pad row zero)
    run = tmp_path / "run"
    if backend == "torch":
        import torch

        table = torch.load(run / "checkpoints" / "best.ckpt", weights_only=True)["state_dict"]["embedding.weight"].numpy()
    else:
        from encoders.keras.checkpoint_io import load_keras_model

        table = np.asarray(load_keras_model(str(run / "checkpoints" / "best.keras"), compile=False)
                           .get_layer("embedding").embeddings.numpy())
    vocab = json.loads((run / "vocab.json").read_text())["tokens"]
    assert (table[0] == 0).all() and table.shape == (len(vocab), 8)
    from encoders.data.vectors import load_vectors

    expected, found, _ = load_vectors(vec, vocab, seed=42)
    assert np.allclose(table[found], expected[found])


@pytest.mark.parametrize("backend", ["torch", "tf"])
def test_regression_with_glove_vectors(tmp_path, backend):
    rng = random.Random(0)
    words = ["good", "bad", "fine", "ok", "the", "a"]
    rows = []
    for _ in range(400):
        text = [rng.choice(words) for _ in range(rng.randint(0, 8))]
        rows.append({"text": " ".join(text), "label": text.count("good") - text.count("bad") + 0.5})
    train, test = write_jsonl(tmp_path / "train.jsonl", rows[:350]), write_jsonl(tmp_path / "test.jsonl", rows[350:])
    vec = write_vectors(tmp_path / "glove.txt", ["good", "bad", "zzz"], dim=6, header=False, gz=False)
    m, out = train_metrics(tmp_path / "run", f"backend={backend}", "task=regression", "data=files",
                           f"data.train_file={train}", f"data.test_file={test}", "trainer.max_epochs=4",
                           f"model.pretrained_embeddings={vec}", "model.pooling=mean", "model.lr=0.01", *QUIET)
    spread = float(np.std([r["label"] for r in rows[350:]]))
    assert m["task"] == "regression" and m["val_acc"] is None and m["embedding_dim"] == 6
    assert m["test_rmse"] < 0.8 * spread, (m["test_rmse"], spread)  # learnt something over predicting the mean
    assert set(m["history"]) == {"train/loss", "val/loss", "val/rmse", "val/mae", "lr"}
    assert m["best_val_rmse"] == min(m["history"]["val/rmse"]) and m["pretrained_coverage"] == pytest.approx(2 / 6)
    assert "val_rmse=" in out


def test_explicit_embedding_dim_that_conflicts_with_the_vectors_is_an_error(tmp_path):
    rows = entity_rows(40, 1)
    train = write_jsonl(tmp_path / "t.jsonl", rows)
    vec = write_vectors(tmp_path / "v.vec.gz", ["the", "a"], dim=8)
    proc = run_train(tmp_path / "run", "task=tagging", "data=files", f"data.train_file={train}",
                     f"model.pretrained_embeddings={vec}", "model.embedding_dim=16", check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2 and "model.embedding_dim=16 conflicts with the 8-dimensional vectors" in out
    assert "Traceback" not in out
