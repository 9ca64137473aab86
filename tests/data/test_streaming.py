"""Tokenizing into the cache a chunk at a time gives exactly the ids of tokenizing everything in memory,
wherever the chunks fall (a chunk of one row, rows longer than a renumbering step, empty rows at
chunk edges), with a held-out validation split and rows cut to ``max_tokens_per_example``."""
import json

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import encoders.data.cache as cache
import encoders.data.sources as sources
from encoders.config import DataConfig
from encoders.data.sources import load_splits
from encoders.data.vocab import Vocab

WORDS = st.lists(st.sampled_from(["a", "b", "c", "Dd", "e", "ΣΑ"]), max_size=9).map(" ".join)


def write_jsonl(path, texts, labels):
    path.write_text("".join(json.dumps({"text": t, "label": y}) + "\n" for t, y in zip(texts, labels)),
                    encoding="utf-8")


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(texts=st.lists(WORDS, min_size=4, max_size=14), chunk=st.integers(1, 5), step=st.integers(1, 7),
       kind=st.sampled_from(["whitespace", "char"]), cut=st.sampled_from([None, 2, 5]),
       held_out=st.booleans(), data=st.data())
def test_chunked_ids_equal_the_in_memory_path(tmp_path_factory, monkeypatch, texts, chunk, step, kind, cut,
                                              held_out, data):
    monkeypatch.setattr(sources, "_CHUNK", chunk)
    monkeypatch.setattr(cache, "REMAP_STEP", step)
    labels = [i % 2 for i in range(len(texts))]  # both classes stay in training after the hold-out
    val_texts = data.draw(st.lists(WORDS, min_size=1, max_size=6))
    tmp = tmp_path_factory.mktemp("s")
    write_jsonl(tmp / "t.jsonl", texts, labels)
    write_jsonl(tmp / "v.jsonl", val_texts, [i % 2 for i in range(len(val_texts))])
    cfg = DataConfig(source="files", train_file=str(tmp / "t.jsonl"), tokenizer=kind, cache_dir=str(tmp / "c"),
                     validation_file=None if held_out else str(tmp / "v.jsonl"), max_tokens_per_example=cut)
    if not "".join(texts).strip():
        return  # no word in any training row: refused, as before
    try:
        s = load_splits(cfg, 3)
    except sources.DataError as e:
        assert "is empty in every training row" in str(e)
        return
    train_texts = [texts[r] for r in s.train.rows]
    ref = Vocab.build(train_texts, kind)
    assert s.vocab.tokens == ref.tokens
    expect_val = [texts[r] for r in s.validation.rows] if held_out else val_texts
    for split, wanted in ((s.train, train_texts), (s.validation, expect_val)):
        assert split.tokens.to_lists() == [ref.encode(t)[:cut] for t in wanted]
    assert s.train.labels.tolist() == [labels[r] for r in s.train.rows]
    if held_out:
        assert sorted(np.concatenate([s.train.rows, s.validation.rows]).tolist()) == list(range(len(texts)))
    else:
        assert s.train.rows.tolist() == list(range(len(texts))) and s.validation.rows.tolist() == list(
            range(len(val_texts)))
    n_cut = sum(len(ref.encode(t)) > cut for t in train_texts) if cut else 0
    assert s.truncated.get("train", 0) == n_cut
