"""``python -m handprop`` is the ``handprop`` command."""

import sys

from handprop.cli import main

sys.exit(main())
