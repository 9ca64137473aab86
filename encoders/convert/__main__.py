"""``python -m encoders.convert RUN_DIR ...``: the same command as ``python -m encoders convert``."""
import sys

from encoders.use.cli import exit_process, main

exit_process(main(["convert", *sys.argv[1:]]))
