"""``python -m encoders predict|evaluate|export|convert ...``: see ``encoders.cli``."""
import sys

from encoders.cli import main

sys.exit(main())
