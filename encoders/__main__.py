"""``python -m encoders predict|evaluate|export|convert ...``: see ``encoders.cli``."""
from encoders.cli import exit_process, main

exit_process(main())
