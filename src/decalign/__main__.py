"""``python -m decalign ...`` (what ``torchrun -m decalign`` runs)."""

import sys

from decalign.cli import main

sys.exit(main())
