"""``python -m encoders COMMAND`` (console script ``encoders``): use a trained run.

    encoders predict  RUN_DIR INPUT [--output FILE] [--batch-size N] [--probabilities] [--checkpoint best|last]
                      [--device D]
    encoders evaluate RUN_DIR INPUT [--output FILE.json] [--batch-size N] [--checkpoint best|last] [--device D]
    encoders export   RUN_DIR --format onnx|savedmodel [--output PATH] [--atol 1e-4] [--overwrite] [--checkpoint ...]
    encoders convert  RUN_DIR [--output PATH] [--checkpoint best|last] [...]  (= python -m encoders.convert)
    encoders cache    list|clear [--cache-dir DIR]

INPUT is a csv/tsv/json/jsonl/parquet table with the run's text column (``data.text_column``;
evaluate also needs ``data.label_column``), or ``-`` for one text per line on standard input.

What the commands do follows the run's task. Classification: ``prediction`` (a label) and
``probability``. Tagging: ``prediction`` is the list of tags of the row's words (space-joined in
csv); the words are the run's ``data.tokens_column`` when a json/jsonl/parquet input has it (lists
of words, as in the training files), else the text column split at whitespace; evaluate reads the
gold tags from ``data.tags_column`` (lists, or space-separated tags in csv). Regression:
``prediction`` is a float; evaluate reads the target from ``data.label_column``.
``--probabilities`` is for classification only.
What the commands do per task is ``encoders.tasks.TASKS[run.task]``'s.
Every command (``convert`` included) ends through :func:`main`: a problem the user can fix (a run
dir without checkpoint or vocabulary, a missing column, an unknown label...) prints one line on
stderr, ``error: TypeName: message``, and exits with code 2; Ctrl-C exits with 130
(``encoders.errors.exit_line``).
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import List, Optional

from encoders.errors import DataError, EncodersError, RunDirError, TableError, TaskError, exit_line
from encoders.tasks import TASKS


def _table_error(e: Exception) -> DataError:
    return DataError(str(e))


def _texts(df, column: str, path: str, first_row: int = 1) -> List[str]:
    from encoders.data.tables import texts_of

    name = "<stdin>" if path == "-" else path
    try:
        return texts_of(df, column, name, first_row)
    except TableError as e:
        raise DataError(f"{e} (the run's text column is data.text_column={column!r})") from None


def _check_table_output(path: Optional[str]) -> None:
    from encoders.data.tables import FORMATS

    if path in (None, "-"):
        return
    ext = os.path.splitext(path)[1].lower()
    if ext not in FORMATS:
        raise DataError(f"--output {path}: unknown table format ({ext or 'no extension'}); "
                        f"expected one of {', '.join(FORMATS)}")
    if os.path.isdir(path):
        raise DataError(f"--output {path} is a directory, not a table file")


def _uses_tokens_column(run, df, path: str) -> bool:
    """A tagging input's words come from ``data.tokens_column`` when the table has it (json, jsonl or
    parquet: csv cells can't be lists), else from the text column."""
    csv_like = path == "-" or os.path.splitext(path)[1].lower() in (".csv", ".tsv")
    return TASKS[run.task].per_word and not csv_like and run.tokens_column in df.columns


def _inputs(run, df, path: str, first_row: int = 1):
    """What the run scores of a chunk: its texts, or a tagger's lists of words."""
    if TASKS[run.task].per_word:
        return _words(run, df, path, first_row)
    return _texts(df, run.text_column, path, first_row)


def _words(run, df, path: str, first_row: int = 1):
    """The lists of words of a tagging input, row by row."""
    from encoders.use.evaluation import words_of

    name = "<stdin>" if path == "-" else path
    if _uses_tokens_column(run, df, path):
        return words_of(df[run.tokens_column].tolist(), name, run.tokens_column, first_row)
    return [t.split() for t in _texts(df, run.text_column, path, first_row)]


def _take_fair_share(run_dir: str) -> None:
    """A command that runs a model is one of our processes on this machine: it takes its fair share
    of the cores before the run's framework starts (``encoders.run.threads``, as training does), so
    a ``predict`` beside a training run does not stall both. ``OMP_NUM_THREADS`` fixes the count
    instead; jax's XLA keeps its own threads."""
    from encoders.run.files import run_backend

    try:
        backend = run_backend(run_dir)
    except Exception:  # not a run dir: load_run says so, by name
        return
    if backend == "torch":
        from encoders.torch.runtime import set_threads
    elif backend == "tf" and os.environ.get("KERAS_BACKEND", "tensorflow") == "tensorflow":
        from encoders.keras.runtime import set_threads
    else:
        return
    set_threads(None)


# -- predict ---------------------------------------------------------------------------------------
def cmd_predict(a: argparse.Namespace) -> int:
    """``encoders predict``: the input's rows with the columns of the run's task added.

    Reads, predicts and writes ``--chunk-rows`` rows at a time (length-sorted batches inside each
    chunk), so memory does not grow with the input; the output is the same as for one chunk.

    Args:
        a: the parsed command line.

    Returns:
        0.

    Raises:
        EncodersError: what the user can fix (a run dir, a column, an option the task lacks...).
    """
    from encoders.data.table_stream import TableWriter, iter_table
    from encoders.use.trained_run import load_run

    _check_table_output(a.output)
    _take_fair_share(a.run_dir)
    run = load_run(a.run_dir, a.checkpoint, device=a.device)
    if a.probabilities and not TASKS[run.task].has_probabilities:
        raise TaskError(f"--probabilities is for classification runs; {a.run_dir} is a {run.task} run "
                        f"(its prediction column is all predict writes)")
    writer = None
    try:
        for first_row, df in iter_table(a.input, run.text_column, a.chunk_rows):
            out = _predicted(run, df, a, first_row)
            writer = writer or TableWriter(a.output)
            writer.write(out)
        writer.close()
    except TableError as e:
        raise _table_error(e) from None
    if a.output not in (None, "-"):
        print(f"wrote {a.output} ({writer.rows} rows)", file=sys.stderr)
    return 0


def _predicted(run, df, a: argparse.Namespace, first_row: int):
    """One chunk of the input with the columns predict adds."""
    task = TASKS[run.task]
    added = task.prediction_columns(run.labels, a.probabilities)
    inputs = _inputs(run, df, a.input, first_row)
    clash = [c for c in added if c in df.columns]
    if clash:
        raise DataError(f"{a.input}: already has column(s) {', '.join(map(repr, clash))}, which predict adds: "
                        f"rename or drop them")
    out = df.copy()
    for column, values in task.predicted(run, inputs, a.batch_size, a.probabilities).items():
        out[column] = pd_object_column(values) if task.per_word else values  # a tagger's: a list per row
    return out


def pd_object_column(values):
    """A column of lists (pandas would try to spread lists of equal length over columns)."""
    import pandas as pd

    return pd.Series(values, dtype=object)


# -- evaluate --------------------------------------------------------------------------------------
def cmd_evaluate(a: argparse.Namespace) -> int:
    """``encoders evaluate``: the run's figures on a table with gold values, as JSON (and a png).

    Args:
        a: the parsed command line.

    Returns:
        0.

    Raises:
        EncodersError: what the user can fix (a missing gold column, an unknown label...).
    """
    from encoders.use.evaluation import format_report
    from encoders.io import write_json
    from encoders.run.report import plot_confusion
    from encoders.run.files import EVALUATION_FILE, check_run_dir, is_training_output
    from encoders.data.table_stream import iter_table
    from encoders.use.trained_run import load_run

    run_dir = check_run_dir(a.run_dir)
    output = a.output or os.path.join(run_dir, EVALUATION_FILE)
    if os.path.splitext(output)[1].lower() != ".json":
        raise DataError(f"--output {output}: the evaluation is written as JSON, give a .json path")
    if os.path.isdir(output):
        raise DataError(f"--output {output} is a directory, not a file")
    picture = os.path.join(os.path.dirname(os.path.abspath(output)), "confusion_matrix.png")
    for path in (output, picture):
        if is_training_output(run_dir, path):
            raise DataError(f"--output: {path} is something training wrote in the run dir: choose another path")
    _take_fair_share(run_dir)
    run = load_run(run_dir, a.checkpoint, device=a.device)
    name = "<stdin>" if a.input == "-" else a.input
    task = TASKS[run.task]
    gold_column, what, key = getattr(run, task.gold_key), task.gold_what, f"data.{task.gold_key}"
    tally = task.running_evaluation(run, a.batch_size)
    try:
        for first_row, df in iter_table(a.input, run.text_column, a.chunk_rows):
            if gold_column not in df.columns:
                has = ", ".join(repr(c) for c in df.columns)
                raise DataError(f"{name}: no {what} {gold_column!r} (the run's {key}); its columns are: {has}")
            inputs = _inputs(run, df, a.input, first_row)
            tally.add(inputs, task.gold(run, df[gold_column].tolist(), inputs, name, gold_column, first_row))
    except TableError as e:
        raise _table_error(e) from None
    report = tally.report()
    report.update(task=run.task, run_dir=os.path.abspath(run_dir), checkpoint=run.checkpoint, input=name)
    if task.has_labels:
        report["labels_as_trained"] = list(run.labels)
    write_json(output, report)
    wrote = output
    if "confusion_matrix" in report:
        plot_confusion(picture, report["confusion_matrix"], report["labels"])
        wrote = f"{output} and {picture}"
    print(format_report(report))
    print(f"\nwrote {wrote}")
    return 0


# -- export ----------------------------------------------------------------------------------------
def cmd_export(a: argparse.Namespace) -> int:
    """``encoders export``: ONNX or a SavedModel (``encoders.use.export.export_run``).

    Args:
        a: the parsed command line.

    Returns:
        0.
    """
    from encoders.use.export import export_run

    out, diff = export_run(a.run_dir, a.format, a.output, a.atol, a.overwrite, a.checkpoint)
    print(f"wrote {out} (largest logit difference from the run's model on the check batches: {diff:.2e})")
    return 0


def checkpoint_option(parser: argparse.ArgumentParser) -> None:
    """Add ``--checkpoint best|last``, the same on every command (convert's included).

    Args:
        parser: the command's parser.
    """
    parser.add_argument("--checkpoint", default="best", choices=["best", "last"],
                        help="which checkpoint of the run: best (on validation, the default) or last")


def add_device(parser: argparse.ArgumentParser) -> None:
    """Add ``--device`` (``encoders.use.devices``).

    Args:
        parser: the command's parser.
    """
    parser.add_argument("--device", default="auto", help="auto (the GPU when there is one), cpu, cuda or cuda:N")


# -- convert ---------------------------------------------------------------------------------------
def cmd_convert(a: argparse.Namespace) -> int:
    """``encoders convert`` (= ``python -m encoders.convert``): the run's checkpoint in the other backend.

    Args:
        a: the parsed command line.

    Returns:
        0.

    Raises:
        EncodersError: what ``convert_run`` refuses; a checkpoint its loaders can't read (truncated,
            corrupt) is a ``RunDirError`` naming the file.
    """
    from encoders.convert.runs import convert_run

    try:
        out, diff = convert_run(a.run_dir, a.out, a.checkpoint, a.atol, a.overwrite)
    except EncodersError:
        raise
    except ValueError as e:  # the checkpoint loaders' own: a file the user can replace
        raise RunDirError(str(e)) from None
    print(f"wrote {out} (largest logit difference on the sample batch: {diff:.2e})")
    return 0


# -- cache -----------------------------------------------------------------------------------------
def cmd_cache(a: argparse.Namespace) -> int:
    """``encoders cache list|clear`` (``encoders.data.cache.command``).

    Args:
        a: the parsed command line.

    Returns:
        The command's exit code.
    """
    from encoders.data.cache import command

    return command(a.action, a.cache_dir)


def build_parser() -> argparse.ArgumentParser:
    """The parser of every command.

    Returns:
        The ``encoders`` parser; each subcommand sets ``func``, the ``cmd_*`` function it runs.
    """
    from encoders.convert.runs import DEFAULT_ATOL as CONVERT_ATOL
    from encoders.use.export import DEFAULT_ATOL, FORMATS
    from encoders.data.table_stream import DEFAULT_CHUNK_ROWS
    from encoders.use.trained_run import DEFAULT_BATCH_SIZE

    p = argparse.ArgumentParser(prog="encoders", description="Use a run trained by train.py: predict, evaluate, "
                                "export it, or convert it to the other backend.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def batch_size(text: str) -> int:
        value = int(text)
        if value < 1:
            raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
        return value

    pr = sub.add_parser("predict", help="label the texts of a table (or of stdin)",
                        description="Add 'prediction' and 'probability' (of the predicted class) to every row of "
                                    "INPUT, keeping its rows and columns in order.")
    pr.add_argument("run_dir", metavar="RUN_DIR", help="a run dir written by train.py")
    pr.add_argument("input", metavar="INPUT", help="csv, tsv, json, jsonl or parquet with the run's text column, "
                                                   "or - for one text per line on stdin")
    pr.add_argument("--output", "-o", default=None, help="output table; its extension picks the format "
                                                         "(default: csv on stdout)")
    pr.add_argument("--batch-size", type=batch_size, default=DEFAULT_BATCH_SIZE)
    pr.add_argument("--probabilities", action="store_true", help="add one column per class: probability_LABEL")
    pr.add_argument("--chunk-rows", type=batch_size, default=DEFAULT_CHUNK_ROWS,
                    help="rows read, predicted and written at a time (memory use; the output is the same)")
    checkpoint_option(pr)
    add_device(pr)
    pr.set_defaults(func=cmd_predict)

    ev = sub.add_parser("evaluate", help="score the run on a labelled table",
                        description="Accuracy, macro F1, loss and per-class figures on INPUT (with the run's text "
                                    "and label columns); writes JSON and confusion_matrix.png next to it.")
    ev.add_argument("run_dir", metavar="RUN_DIR", help="a run dir written by train.py")
    ev.add_argument("input", metavar="INPUT", help="csv, tsv, json, jsonl or parquet with text and label columns")
    ev.add_argument("--output", "-o", default=None, help="the JSON report (default: RUN_DIR/evaluation.json); "
                                                         "confusion_matrix.png goes in the same folder")
    ev.add_argument("--batch-size", type=batch_size, default=DEFAULT_BATCH_SIZE)
    ev.add_argument("--chunk-rows", type=batch_size, default=DEFAULT_CHUNK_ROWS,
                    help="rows read and scored at a time (memory use; the figures are the same)")
    checkpoint_option(ev)
    add_device(ev)
    ev.set_defaults(func=cmd_evaluate)

    ex = sub.add_parser("export", help="write ONNX or a TensorFlow SavedModel for serving",
                        description="Export the run (torch or tf) as ONNX or a SavedModel taking tokens int64 "
                                    "[B, T] and lengths int64 [B], returning logits [B, C] (tagging: [B, T, C], zero "
                                    "past each length; regression: [B]); checked against the run's model before "
                                    "it is written.")
    ex.add_argument("run_dir", metavar="RUN_DIR", help="a run dir written by train.py")
    ex.add_argument("--format", required=True, choices=FORMATS)
    ex.add_argument("--output", "-o", default="", help="default: RUN_DIR/export/model.onnx or "
                                                       "RUN_DIR/export/savedmodel/")
    ex.add_argument("--atol", type=float, default=DEFAULT_ATOL, help="largest logit difference allowed")
    ex.add_argument("--overwrite", action="store_true", help="replace an earlier export at the output path")
    checkpoint_option(ex)
    ex.set_defaults(func=cmd_export)

    ca = sub.add_parser("cache", help="list or clear the tokens cache of train.py",
                        description="list: every cache entry (last use, size) and leftovers of killed runs; "
                                    "clear: delete them all. The next run tokenizes its files again.")
    ca.add_argument("action", choices=["list", "clear"])
    ca.add_argument("--cache-dir", default=None, help="the runs' data.cache_dir (default: $ENCODERS_CACHE, "
                                                      "else ~/.cache/padded-encoders)")
    ca.set_defaults(func=cmd_cache)

    co = sub.add_parser("convert", prog="python -m encoders convert",
                        help="move the run to the other backend (python -m encoders.convert; "
                             "encoders convert --help for its options)",
                        description="Turn a trained run of one backend into a model of the other, checking outputs "
                                    "agree first.")
    co.add_argument("run_dir", help="a run dir written by train.py (backend=torch or backend=tf)")
    co.add_argument("--output", "-o", "--out", dest="out", default="", metavar="PATH",
                    help="output path (default: checkpoints/WHICH.keras for a torch run, "
                         "checkpoints/WHICH.ckpt for a tf run)")
    checkpoint_option(co)
    co.add_argument("--atol", type=float, default=CONVERT_ATOL, help="largest logit difference allowed")
    co.add_argument("--overwrite", action="store_true", help="replace the output file of an earlier conversion")
    co.set_defaults(func=cmd_convert)
    return p


def main(argv: Optional[List[str]] = None) -> int:
    """Run one command; every command's errors end here, in one format.

    Args:
        argv: the arguments after the program's name (default: ``sys.argv[1:]``).

    Returns:
        The exit code: 0, ``USER_ERROR`` for a problem the user can fix (one line on stderr:
        ``error: TypeName: message``), ``INTERRUPTED`` after Ctrl-C. A bad option is argparse's
        usage message and exit code 2.
    """
    args = build_parser().parse_args(sys.argv[1:] if argv is None else list(argv))
    try:
        return args.func(args)
    except BrokenPipeError:  # `encoders predict ... | head`
        return 0
    except (Exception, KeyboardInterrupt) as e:
        from encoders.io import storage_error

        ended = exit_line(storage_error(e) if isinstance(e, OSError) else e)
        if ended is None:
            raise
        print(f"error: {ended[0]}", file=sys.stderr)
        return ended[1]


def exit_process(code: Optional[int] = 0) -> None:
    """End a command-line process whose work is done, without the interpreter's teardown.

    Tearing torch and Lightning down at exit takes wall time in which nothing is written
    (measured on 2 cores: 0.26 s after ``import torch``, 0.87 s after ``import pytorch_lightning``).
    What a normal exit does for the user's files still happens first: non-daemon threads are
    joined, the exit handlers run (logging flushes and closes its files, multiprocessing joins its
    children) and stdout/stderr are flushed. For ``__main__`` blocks only: it ends the process.

    Args:
        code: the exit code (None is 0).
    """
    import atexit
    import threading

    for thread in threading.enumerate():
        if thread is not threading.main_thread() and not thread.daemon:
            thread.join()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # closed, or a reader that went away (| head)
            pass
    os._exit(0 if code is None else int(code))


def console() -> None:
    """The ``encoders`` console script: ``main`` with the command line's arguments."""
    exit_process(main())
