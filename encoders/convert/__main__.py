from encoders.cli import exit_process
from encoders.convert.models import main

exit_process(main())
