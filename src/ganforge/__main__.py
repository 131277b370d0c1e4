"""``python -m ganforge`` (also what ``torchrun -m ganforge`` runs)."""

from ganforge.cli import main

raise SystemExit(main())
