import sys

from hotdesk_cli.main import main

sys.exit(main())
