from encoders.use.cli import exit_process
from encoders.convert.runs import main

exit_process(main())
