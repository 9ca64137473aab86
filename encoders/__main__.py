"""``python -m encoders predict|evaluate|export|convert ...``: see ``encoders.use.cli``."""
from encoders.use.cli import exit_process, main

exit_process(main())
