"""The backend's commands on the one `vtp` app: `up`, `migrate`, `set-password`, `backup`, `restore`.

`vtp` is the client's command line (`vtp_client.cli`: login, datasets, train, jobs, ...). The
backend adds these through the `vtp.commands` entry point (pyproject.toml). This module stays
light (typer only): it is loaded on every `vtp` call, and the stack's imports (alembic, boto3,
SQLModel) happen only when a stack command runs.
"""

from __future__ import annotations

from typing import Annotated

import typer
from vtp_client.cli import example


def register(app: typer.Typer) -> None:
    """Add the stack commands to the `vtp` app."""

    @app.command(
        "up", epilog=example("vtp up   # Ctrl-C stops everything", "vtp up --ray   # and a local Ray cluster")
    )
    def up_command(
        ray: Annotated[
            bool,
            typer.Option(
                "--ray",
                help="Also start a local Ray head and run the trainer gateway on it (cluster mode "
                "on one machine; other machines join with `ray start --address`).",
            ),
        ] = False,
    ) -> None:
        """Start the whole local stack: Redis, S3, MLflow, trainer, worker and the web app."""
        from services.runtime import cli

        raise typer.Exit(cli.up(ray=ray))

    @app.command("migrate", epilog=example("vtp migrate", "vtp migrate --prepare"))
    def migrate_command(
        prepare: Annotated[
            bool,
            typer.Option(
                "--prepare",
                help="Also create the storage bucket and, on an empty database, the demo account and "
                "project (its password is printed once), as `vtp up` does. The Compose tier's "
                "one-shot `migrate` service runs this before the web app starts.",
            ),
        ] = False,
    ) -> None:
        """Apply database migrations."""
        from services.runtime import cli

        if prepare:
            cli.prepare()
        else:
            cli.migrate()

    @app.command("set-password", epilog=example("vtp set-password admin"))
    def set_password_command(
        username: Annotated[str, typer.Argument(help="The account's username.")],
    ) -> None:
        """Set a user's password (prompts for it)."""
        from services.runtime import cli

        raise typer.Exit(cli.set_password(username))

    @app.command(
        "backup",
        epilog=example(
            "vtp backup /backups/vtp",
            "vtp backup /backups/vtp --keep 14",
            "vtp backup /backups/vtp --schedule --every 3600 --keep 48",
        ),
    )
    def backup_command(
        dest: Annotated[str, typer.Argument(help="Backup directory; its snapshots share one object store.")],
        schedule: Annotated[
            bool, typer.Option(help="Keep running: one backup every --every seconds.")
        ] = False,
        every: Annotated[float, typer.Option(help="Seconds between scheduled backups.")] = 3600.0,
        keep: Annotated[
            int, typer.Option(help="Keep only the newest N snapshots (0: all; 7 with --schedule).")
        ] = 0,
    ) -> None:
        """Back up the database, the bucket and MLflow's store into DEST, while the platform runs."""
        from services.runtime import cli

        raise typer.Exit(cli.backup_run(dest, schedule=schedule, every_s=every, keep=keep))

    @app.command(
        "restore",
        epilog=example(
            "VTP_DATA_DIR=/srv/vtp-new vtp restore /backups/vtp",
            "vtp restore /backups/vtp --verify-only",
        ),
    )
    def restore_command(
        src: Annotated[
            str, typer.Argument(help="A backup directory (its newest snapshot) or one snapshot in it.")
        ],
        verify_only: Annotated[bool, typer.Option(help="Check every checksum; restore nothing.")] = False,
    ) -> None:
        """Rebuild a fresh data directory (or an empty database and bucket) from a backup."""
        from services.runtime import cli

        raise typer.Exit(cli.restore_run(src, verify_only=verify_only))
