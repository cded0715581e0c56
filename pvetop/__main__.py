import sys

from pvetop.cli import main

sys.exit(main())
