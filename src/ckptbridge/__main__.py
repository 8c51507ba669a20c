"""``python -m ckptbridge``: the same command line as the ``ckptbridge`` script."""

from ckptbridge._cli import main

raise SystemExit(main())
