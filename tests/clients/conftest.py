"""Makes ``clients/python`` importable (the client is not an installed package)."""

from __future__ import annotations

import sys
from pathlib import Path

CLIENTS_PYTHON = Path(__file__).resolve().parents[2] / "clients" / "python"
if str(CLIENTS_PYTHON) not in sys.path:
    sys.path.insert(0, str(CLIENTS_PYTHON))
