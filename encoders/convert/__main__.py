import sys

from encoders.convert.models import main

sys.exit(main())
