import sys

from tradestore_chaos.cli import main

sys.exit(main())
