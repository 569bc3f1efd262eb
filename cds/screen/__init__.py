"""Population screening of FHIR Bulk Data exports: one row per patient (local processes, or Spark)."""

from cds.screen.local import ScreenResult, screen_local
from cds.screen.row import COLUMNS

__all__ = ["COLUMNS", "ScreenResult", "screen_local"]
