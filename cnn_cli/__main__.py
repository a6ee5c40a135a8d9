import sys

from cnn_cli.main import main

sys.exit(main())
