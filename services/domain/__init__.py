"""Rules and data: the domain modules (see ARCHITECTURE.md).

Importing the package registers the ORM hook that tells watching pages when a job changed
(services.domain.live), in every process that writes jobs.
"""

from services.domain import live as _live  # noqa: F401  (registers session events)
