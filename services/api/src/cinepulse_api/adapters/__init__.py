"""What the api reads from: the warehouse (PostgreSQL, :mod:`.warehouse` and its SQL in
:mod:`.queries`) and the archiver's live counters (:mod:`.archiver`)."""

from cinepulse_api.adapters.archiver import Archiver
from cinepulse_api.adapters.warehouse import Warehouse

__all__ = ["Archiver", "Warehouse"]
