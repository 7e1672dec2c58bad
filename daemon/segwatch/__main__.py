"""`python -m segwatch`: what the console script (entry.py) does, SIGHUP held from the first moment; it calls
the command line directly rather than through entry.py, one import level less."""

import sys

from segwatch.service.early import hold_early

hold_early(hangup_only=True)

from segwatch.cli import main  # noqa: E402  (after the handler: importing the command line takes a while)

sys.exit(main())
