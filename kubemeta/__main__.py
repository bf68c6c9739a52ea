import sys

from kubemeta.cli import main

sys.exit(main())
