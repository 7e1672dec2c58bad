import sys

from segwatch.entry import main

sys.exit(main())
