import sys

from matbench.cli import main

sys.exit(main())
