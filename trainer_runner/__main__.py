"""`python -m trainer_runner`: serve the trainer API with uvicorn on the configured host/port."""

from __future__ import annotations

import uvicorn

from trainer_runner import errortracking
from trainer_runner.logs import configure_logging
from trainer_runner.server import create_app
from trainer_runner.settings import TrainerSettings


def main() -> None:
    settings = TrainerSettings()
    configure_logging({"service": "trainer"}, fmt=settings.log_format)
    errortracking.init(settings, "trainer")
    # log_config=None: uvicorn's own loggers go through the JSON root handler too.
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_config=None)


if __name__ == "__main__":
    main()
