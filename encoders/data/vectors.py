"""Pretrained word vectors (GloVe, word2vec text, fastText ``.vec``) aligned to a vocabulary.

The file is read in blocks of whole lines and each block is split by pyarrow kernels; only the
lines of vocabulary words (and a sample of the first lines, for the scale of the random rows)
are converted to numbers, in one vectorised cast per block. Memory stays bounded by the block
size plus the vectors kept, so multi-gigabyte files load too.
"""
from __future__ import annotations

import codecs
import gzip
import zlib
from typing import Iterator, List, Sequence, Tuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from encoders.data.conll import open_bytes, split_fields
from encoders.data.sources import DataError
from encoders.data.vocab import PAD, UNK

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


def _parse(path: str, fields: pa.Array, starts: np.ndarray, lines: np.ndarray, dim: int) -> np.ndarray:
    """The ``dim`` numbers after the word of each given line, as float32 ``[len(starts), dim]``."""
    idx = (starts[:, None] + 1 + np.arange(dim)).ravel()
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

    # Arguments
        path: a GloVe text file (``word x1 ... xE`` per line, no header), or a word2vec text /
            fastText ``.vec`` file (the same after a first line ``N E``); gzipped or not, told
            by the file's first bytes, not its name. Fields are separated by spaces or tabs.
        tokens: the vocabulary, by id: ``tokens[0]`` is ``"<pad>"``, ``tokens[1]`` is ``"<unk>"``
            (``Vocab.tokens``).
        lowercase: lowercase the file's words before matching them (use the vocabulary's own
            ``lowercase``); when several lines lowercase to the same word, the first one wins.
        seed: seed of the random rows.

    # Returns
        ``(matrix, found, dim)``: ``matrix`` float32 ``[len(tokens), dim]`` whose row ``i`` is the
        vector of ``tokens[i]``; row 0 (pad) is all zeros; words missing from the file get
        normal random rows with the standard deviation of the file's vectors that were read
        (the same ``seed``, vocabulary size and ``dim`` give the same random rows). ``found`` is
        a bool ``[len(tokens)]`` mask of the rows taken from the file (never row 0). ``dim`` is
        the vectors' dimension.

    # Raises
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
            else:
                dim = len(head) - 1
        if not len(lines):
            continue

        wrong = np.flatnonzero(counts[lines] != dim + 1)
        if len(wrong):
            i = lines[wrong[0]]
            said = f"the header (line {header[0]}) says {dim}" if header else f"line 1 has {dim}"
            raise DataError(f"{path}, line {first_line + i}: {counts[i] - 1} numbers, but {said}")

        words = fields.take(pa.array(starts[lines]))
        if lowercase:
            words = pc.utf8_lower(words)
        ids = pc.index_in(words, value_set=vocab).fill_null(-1).to_numpy(zero_copy_only=False)
        new = np.flatnonzero((ids > 0) & ~found[np.maximum(ids, 0)])
        _, first = np.unique(ids[new], return_index=True)  # within the block, the first line wins
        new = new[np.sort(first)]
        head = np.arange(min(len(lines), max(0, SAMPLE_LINES - seen)))
        read = np.union1d(new, head)
        seen += len(lines)

        vectors = _parse(path, fields, starts[lines[read]], first_line + lines[read], dim)
        is_new = np.isin(read, new)
        kept_ids.append(ids[read[is_new]])
        kept.append(vectors[is_new])
        sample.append(vectors[~is_new])
        found[ids[read[is_new]]] = True

    if dim is None:
        raise DataError(f"{path}: empty file, no vectors")
    if seen == 0:
        raise DataError(f"{path}: no vectors after the header (line {header[0]})")
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

    # Arguments
        found: the bool mask returned by ``load_vectors``.

    # Returns
        A float in ``[0, 1]``; 0.0 for a vocabulary of only pad and unk.
    """
    words = np.asarray(found, dtype=bool)[2:]
    return float(words.mean()) if len(words) else 0.0
