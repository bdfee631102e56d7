import sys

from hatch_modelpack.cli import main

sys.exit(main())
