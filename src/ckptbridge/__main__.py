"""``python -m ckptbridge``: the same command line as the ``ckptbridge`` script."""

from ckptbridge.cli import main

raise SystemExit(main())
