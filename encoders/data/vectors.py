"""Pretrained word vectors (GloVe, word2vec text, fastText ``.vec``) aligned to a vocabulary.

The file is read in blocks of whole lines and each block is split by pyarrow kernels; only the
lines of vocabulary words (and a sample of the first lines, for the scale of the random rows)
are converted to numbers, in one vectorised cast per block. Memory stays bounded by the block
size plus the vectors kept, so multi-gigabyte files load too.

A word that occurs on several lines takes the first line's vector, as gensim's
``load_word2vec_format`` does (the later lines are counted and logged). A word may contain spaces
(GloVe 840B has ``new york``): the word is everything before the line's last ``dim`` numbers.
"""
from __future__ import annotations

import codecs
import gzip
import logging
import zlib
from typing import Iterator, List, Sequence, Tuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from encoders.config import PAD, UNK
from encoders.data.conll import open_bytes, split_fields
from encoders.errors import DataError

log = logging.getLogger(__name__)
BLOCK_BYTES = 64 << 20  # bytes read (after decompression) per block
SAMPLE_LINES = 1000  # the first vectors of the file always read, for the random rows' scale
_GZIP_MAGIC = b"\x1f\x8b"


def _line_blocks(path: str, block_bytes: int = BLOCK_BYTES) -> Iterator[Tuple[int, str]]:
    """Yield ``(number of the block's first line, text)`` for blocks of whole lines of a
    UTF-8 file, gunzipped when it starts with the gzip magic bytes."""
    f = open_bytes(path, gunzip=True)
    gzipped = isinstance(f, gzip.GzipFile)
    line, rest, first = 1, b"", True
    with f:
        while True:
            try:
                chunk = f.read(block_bytes)
            except (OSError, EOFError, zlib.error) as e:  # a corrupt or truncated gzip stream
                raise DataError(f"{path}: could not read{' (gzip)' if gzipped else ''} after line "
                                f"{line - 1}: {e}") from e
            data = rest + chunk
            if chunk:
                cut = data.rfind(b"\n") + 1
                data, rest = data[:cut], data[cut:]
                if not data:
                    continue
            if first and data.startswith(codecs.BOM_UTF8):
                data = data[len(codecs.BOM_UTF8):]
            first = False
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError as e:
                bad = line + data.count(b"\n", 0, e.start)
                raise DataError(f"{path}, line {bad}: not UTF-8 text (byte {data[e.start]:#04x})") from None
            yield line, text
            line += data.count(b"\n")
            if not chunk:
                return


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def _spaced_words(fields: pa.Array, starts: np.ndarray, counts: np.ndarray, dim: int) -> np.ndarray:
    """Which lines (with more than ``dim + 1`` fields) hold a word with spaces: the field before
    their last ``dim`` numbers is not a number (else the line has too many numbers, an error)."""
    long = np.flatnonzero(counts > dim + 1)
    return long[[not _is_number(fields[int(starts[i] + counts[i] - dim - 1)].as_py()) for i in long]]


def _parse(path: str, fields: pa.Array, starts: np.ndarray, lines: np.ndarray, dim: int) -> np.ndarray:
    """The ``dim`` numbers from field ``starts[k]`` on, of each given line, as float32 ``[len(starts), dim]``."""
    idx = (starts[:, None] + np.arange(dim)).ravel()
    numbers = fields.take(pa.array(idx))
    try:
        vectors = pc.cast(numbers, pa.float32()).to_numpy().reshape(len(starts), dim)
    except pa.ArrowInvalid:  # find the first bad value, for the message (the slow path runs only on error)
        values = numbers.to_pylist()
        for k, value in enumerate(values):
            try:
                float(value)
            except ValueError:
                raise DataError(f"{path}, line {lines[k // dim]}: {value!r} is not a number") from None
        raise
    finite = np.isfinite(vectors).all(axis=1)
    if not finite.all():
        raise DataError(f"{path}, line {lines[np.argmin(finite)]}: a value is not finite (nan or inf)")
    return vectors


def load_vectors(path: str, tokens: Sequence[str], lowercase: bool = True,
                 seed: int = 0) -> Tuple[np.ndarray, np.ndarray, int]:
    """Load pretrained word vectors for the words of a vocabulary.

    Args:
        path: a GloVe text file (``word x1 ... xE`` per line, no header), or a word2vec text /
            fastText ``.vec`` file (the same after a first line ``N E``); gzipped or not, told
            by the file's first bytes, not its name. Fields are separated by spaces or tabs.
        tokens: the vocabulary, by id: ``tokens[0]`` is ``"<pad>"``, ``tokens[1]`` is ``"<unk>"``
            (``Vocab.tokens``).
        lowercase: lowercase the file's words before matching them (use the vocabulary's own
            ``lowercase``); when several lines give the same word (repeated, or lowercased to
            it), the first one wins and the others are counted in a logged warning.
        seed: seed of the random rows.

    Returns:
        ``(matrix, found, dim)``: ``matrix`` float32 ``[len(tokens), dim]`` whose row ``i`` is the
        vector of ``tokens[i]``; row 0 (pad) is all zeros; words missing from the file get
        normal random rows with the standard deviation of the file's vectors that were read
        (the same ``seed``, vocabulary size and ``dim`` give the same random rows). ``found`` is
        a bool ``[len(tokens)]`` mask of the rows taken from the file (never row 0). ``dim`` is
        the vectors' dimension.

    Raises:
        DataError: (a ``ValueError``) naming the file and, where there is one, the 1-based
            line: the file is missing, a directory, unreadable, a broken gzip, or not UTF-8;
            it is empty or has no vectors; a line has more or fewer numbers than the dimension
            (set by the header, else by the first line), which also catches a header that
            misstates the dimension and a truncated last line; a value is not a number or not
            finite. Values are converted only for the lines of vocabulary words and the first
            ``SAMPLE_LINES`` vectors, so a non-number elsewhere is not reported.
        ValueError: ``tokens`` does not start with ``"<pad>", "<unk>"``.
    """
    tokens = list(tokens)
    if tokens[:2] != [PAD, UNK]:
        raise ValueError(f"tokens must start with {[PAD, UNK]}, got {tokens[:2]}")
    vocab = pa.array(tokens, pa.string())
    found = np.zeros(len(tokens), dtype=bool)
    dim, header, seen = None, None, 0  # header: (line, dimension) of a word2vec/fastText header
    repeats, spaced = [0, None], [0, None]  # (count, (word, line) of the first) of repeated / spaced words
    kept_ids: List[np.ndarray] = []
    kept: List[np.ndarray] = []
    sample: List[np.ndarray] = []

    for first_line, text in _line_blocks(path):
        fields, starts, counts = split_fields(text)
        lines = np.flatnonzero(counts)  # indices of the non-blank lines of the block
        if dim is None and len(lines):
            i = lines[0]
            head = fields.slice(starts[i], counts[i]).to_pylist()
            if len(head) == 2 and head[0].isdigit() and head[1].isdigit():
                header = (first_line + i, int(head[1]))
                dim = header[1]
                if dim < 1:
                    raise DataError(f"{path}, line {header[0]}: the header says dimension {dim}")
                lines = lines[1:]
            elif len(head) < 2:
                raise DataError(f"{path}, line {first_line + i}: a word without numbers")
            else:  # the numbers at the end of the line (a first word may have spaces, or be a number)
                numeric = next((k for k in range(len(head) - 1, 0, -1) if not _is_number(head[k - 1])), 1)
                dim = len(head) - numeric
        if not len(lines):
            continue

        word_fields = np.ones(len(counts), dtype=np.int64)  # fields of each line's word
        spaced_lines = _spaced_words(fields, starts, counts, dim)  # a header has 2 fields: never one
        word_fields[spaced_lines] = counts[spaced_lines] - dim
        if len(spaced_lines):
            if spaced[1] is None:
                i = spaced_lines[0]
                spaced[1] = (" ".join(fields.slice(starts[i], word_fields[i]).to_pylist()), first_line + i)
            spaced[0] += len(spaced_lines)
        wrong = np.flatnonzero(counts[lines] - word_fields[lines] != dim)
        if len(wrong):
            i = lines[wrong[0]]
            said = f"the header (line {header[0]}) says {dim}" if header else f"line 1 has {dim}"
            raise DataError(f"{path}, line {first_line + i}: {counts[i] - 1} numbers, but {said}")

        words = fields.take(pa.array(starts[lines]))
        if len(spaced_lines):  # join a spaced word's fields with one space
            at = np.flatnonzero(word_fields[lines] > 1)
            joined = [" ".join(fields.slice(starts[lines[k]], word_fields[lines[k]]).to_pylist()) for k in at]
            mask = np.zeros(len(lines), dtype=bool)
            mask[at] = True
            words = pc.replace_with_mask(words, pa.array(mask), pa.array(joined, words.type))
        if lowercase:
            words = pc.utf8_lower(words)
        ids = pc.index_in(words, value_set=vocab).fill_null(-1).to_numpy(zero_copy_only=False)
        known = np.flatnonzero(ids > 0)
        new = known[~found[ids[known]]]
        _, first = np.unique(ids[new], return_index=True)  # within the block, the first line wins
        new = new[np.sort(first)]
        if len(known) > len(new):
            if repeats[1] is None:
                k = known[~np.isin(known, new)][0]
                repeats[1] = (tokens[ids[k]], first_line + lines[k])
            repeats[0] += len(known) - len(new)
        head = np.arange(min(len(lines), max(0, SAMPLE_LINES - seen)))
        read = np.union1d(new, head)
        seen += len(lines)

        vectors = _parse(path, fields, starts[lines[read]] + word_fields[lines[read]], first_line + lines[read], dim)
        is_new = np.isin(read, new)
        kept_ids.append(ids[read[is_new]])
        kept.append(vectors[is_new])
        sample.append(vectors[~is_new])
        found[ids[read[is_new]]] = True

    if dim is None:
        raise DataError(f"{path}: empty file, no vectors")
    if seen == 0:
        raise DataError(f"{path}: no vectors after the header (line {header[0]})")
    if spaced[0]:
        log.info("%s: %d line(s) have a word with spaces (first %r, line %d): the word is everything before "
                 "the last %d numbers", path, spaced[0], *spaced[1], dim)
    if repeats[0]:
        log.warning("%s: %d line(s) repeat a vocabulary word read before%s (first %r, line %d); the first "
                    "occurrence's vector is used, as gensim does", path, repeats[0],
                    " (words compared lowercased, data.lowercase=true)" if lowercase else "", *repeats[1])
    read_vectors = np.concatenate(kept + sample)
    scale = float(read_vectors.std()) or 1.0
    matrix = np.random.default_rng(seed).standard_normal((len(tokens), dim), dtype=np.float32)
    matrix *= np.float32(scale)
    if kept_ids:
        matrix[np.concatenate(kept_ids)] = np.concatenate(kept)
    matrix[0] = 0.0
    return matrix, found, dim


def vocab_coverage(found: np.ndarray) -> float:
    """Share of the vocabulary's words (all but pad and unk) found in the vectors file.

    Args:
        found: the bool mask returned by ``load_vectors``.

    Returns:
        A float in ``[0, 1]``; 0.0 for a vocabulary of only pad and unk.
    """
    words = np.asarray(found, dtype=bool)[2:]
    return float(words.mean()) if len(words) else 0.0
