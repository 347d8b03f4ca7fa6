import sys

from paperlab.cli import main

sys.exit(main())
