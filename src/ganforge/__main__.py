"""``python -m ganforge``: the same as the ``ganforge`` command."""

from ganforge.cli import main

raise SystemExit(main())
