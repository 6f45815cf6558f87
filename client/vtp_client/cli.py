"""`vtp`: the platform from a terminal (Typer + Rich). Every command here talks to the REST API
through `vtp_client.Client`, so it works wherever this package is installed, without the backend.

Where the backend is installed too, it adds its stack commands (`vtp up`, `vtp migrate`, ...) to
this same app through the `vtp.commands` entry-point group: `register(app)` per entry.

Read commands take `--output json` for scripts; failures print the server's sentence on stderr
and exit 1; `vtp train --wait` and `vtp jobs wait` exit 0 only when the job succeeded.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Sequence
from enum import StrEnum
from importlib.metadata import entry_points
from pathlib import Path
from typing import Annotated, Any, Literal

try:
    import typer
    from rich.console import Console
    from rich.markup import escape
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )
    from rich.table import Table
except ImportError as exc:  # pragma: no cover - the library works without the CLI extra
    raise SystemExit("The vtp command line needs its extra: pip install 'vtp-client[cli]'") from exc

from pydantic import BaseModel

from vtp_client import config
from vtp_client import models as m
from vtp_client.client import Client
from vtp_client.errors import InvalidInput, Unauthorized, VtpError

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


def example(*lines: str) -> str:
    """The `--help` epilog every command carries: runnable examples."""
    return "[bold]Examples[/bold]\n\n" + "\n\n".join(escape("  $ " + line) for line in lines)


app = typer.Typer(
    name="vtp",
    help="Vision AI Training Platform: datasets, training jobs and models from the terminal.",
    epilog=example(
        "vtp login --url http://127.0.0.1:3000 --username admin",
        "vtp datasets upload shapes.zip --project 'Demo project'",
        "vtp train --project 'Demo project' --dataset shapes --model yolo11n -p epochs=50 --wait",
    ),
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
projects_app = typer.Typer(help="Projects you belong to.", no_args_is_help=True, rich_markup_mode="rich")
datasets_app = typer.Typer(help="Datasets and their versions.", no_args_is_help=True, rich_markup_mode="rich")
jobs_app = typer.Typer(help="Training jobs.", no_args_is_help=True, rich_markup_mode="rich")
tokens_app = typer.Typer(
    help="Personal API tokens for CI and scripts.", no_args_is_help=True, rich_markup_mode="rich"
)
models_app = typer.Typer(
    help="Trained models: checkpoints and exports.", no_args_is_help=True, rich_markup_mode="rich"
)
for sub, name in (
    (projects_app, "projects"),
    (datasets_app, "datasets"),
    (jobs_app, "jobs"),
    (models_app, "models"),
    (tokens_app, "tokens"),
):
    app.add_typer(sub, name=name, epilog=example(f"vtp {name} --help"))


class Output(StrEnum):
    table = "table"
    json = "json"


class _Globals:
    url: str | None = None
    token: str | None = None


_globals = _Globals()

OutputOpt = Annotated[Output, typer.Option("--output", "-o", help="table for people, json for scripts")]
ProjectOpt = Annotated[
    str, typer.Option("--project", "-P", envvar="VTP_PROJECT", help="Project name or id ($VTP_PROJECT).")
]
JobArg = Annotated[int, typer.Argument(help="Job id (see `vtp jobs ls`).")]


@app.callback()
def _options(
    url: Annotated[
        str | None,
        typer.Option("--url", envvar="VTP_URL", help="Platform URL ($VTP_URL; else `vtp login`'s)."),
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(
            "--token", envvar="VTP_TOKEN", help="Personal API token ($VTP_TOKEN).", show_default=False
        ),
    ] = None,
) -> None:
    _globals.url, _globals.token = url, token


def client() -> Client:
    return Client.from_config(_globals.url, _globals.token)


def emit_json(value: Any) -> None:
    """Plain JSON on stdout (no Rich wrapping or colour), for `jq` and scripts."""

    def plain(item: Any) -> Any:
        if isinstance(item, BaseModel):
            return item.model_dump(mode="json")
        if isinstance(item, list | tuple):
            return [plain(i) for i in item]
        return item

    sys.stdout.write(json.dumps(plain(value), indent=2) + "\n")


def show_table(rows: Iterable[Any], columns: Sequence[tuple[str, Callable[[Any], Any]]], empty: str) -> None:
    rows = list(rows)
    if not rows:
        out.print(empty)
        return
    table = Table(*(header for header, _ in columns))
    for row in rows:
        table.add_row(*(escape("" if (v := get(row)) is None else str(v)) for _, get in columns))
    out.print(table)


def human_bytes(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


def when(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value is not None else ""


# --- login ---------------------------------------------------------------------------------------


@app.command(
    epilog=example(
        "vtp login --url http://127.0.0.1:3000 --username admin",
        "vtp login --url https://vtp.example.org --token vtp_pat_...",
        'echo "$PASSWORD" | vtp login --username ci --password-stdin',
    )
)
def login(
    url: Annotated[str | None, typer.Option("--url", help="Platform URL.")] = None,
    username: Annotated[str | None, typer.Option("--username", "-u", help="Sign in with a password.")] = None,
    token: Annotated[str | None, typer.Option("--token", help="Or save a personal API token.")] = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from stdin.")
    ] = False,
) -> None:
    """Sign in and save the credentials (mode 0600) for later commands and `Client.from_config()`."""
    url = url or _globals.url or (config.load_file() or config.Credentials()).url
    token = token or _globals.token
    if token:
        with Client(url, token) as session:
            user = session.me()
        path = config.save_file(config.Credentials(url=url, token=token))
    else:
        username = username or typer.prompt("Username")
        password = (
            sys.stdin.readline().rstrip("\n") if password_stdin else typer.prompt("Password", hide_input=True)
        )
        with Client.login(url, username, password) as session:
            user = session.me()
            creds = config.Credentials(
                url=url,
                access_token=session.access_token,
                refresh_token=session.refresh_token,
                expires_at=session.expires_at,
            )
        path = config.save_file(creds)
    out.print(
        f"Signed in to {escape(url)} as [bold]{escape(user.username)}[/bold]; saved to {escape(str(path))}"
    )


@app.command(epilog=example("vtp logout"))
def logout() -> None:
    """Sign out: end a password sign-in on the server and forget the saved credentials."""
    path = config.config_path()
    saved = config.load_file(path)
    if saved is not None and saved.refresh_token:
        try:
            with Client(saved.url, refresh_token=saved.refresh_token) as session:
                session.logout()
        except VtpError as exc:  # expired or unreachable: forgetting it locally is what is asked
            err.print(f"[yellow]The server did not confirm the sign-out:[/yellow] {escape(exc.message)}")
    path.unlink(missing_ok=True)
    out.print(f"Removed {escape(str(path))}")


@tokens_app.command(
    "create",
    epilog=example(
        "vtp tokens create ci --days 90", "export VTP_TOKEN=$(vtp tokens create ci -o json | jq -r .token)"
    ),
)
def tokens_create(
    name: Annotated[str, typer.Argument(help="What it is for, e.g. ci.")],
    days: Annotated[int, typer.Option(help="Days until it expires.")] = 90,
    output: OutputOpt = Output.table,
) -> None:
    """Make a personal API token (for VTP_TOKEN); its secret is shown this once."""
    created = client().create_token(name, expires_in_days=days)
    if output is Output.json:
        return emit_json(created)
    out.print(f"Token {escape(created.name)!r} (expires {when(created.expires_at)}), shown only now:")
    sys.stdout.write(created.token + "\n")


@tokens_app.command("ls", epilog=example("vtp tokens ls", "vtp tokens ls -o json"))
def tokens_ls(output: OutputOpt = Output.table) -> None:
    """Your personal API tokens."""
    found = client().tokens()
    if output is Output.json:
        return emit_json(found)
    show_table(
        found,
        [
            ("id", lambda t: t.id),
            ("name", lambda t: t.name),
            ("created", lambda t: when(t.created_at)),
            ("expires", lambda t: when(t.expires_at)),
            ("last used", lambda t: when(t.last_used_at)),
        ],
        "No tokens: `vtp tokens create ci`.",
    )


# --- projects ------------------------------------------------------------------------------------


@projects_app.command("ls", epilog=example("vtp projects ls", "vtp projects ls --output json"))
def projects_ls(output: OutputOpt = Output.table) -> None:
    """The projects you belong to, with your role."""
    found = client().projects.list()
    if output is Output.json:
        return emit_json(found)
    show_table(
        found,
        [
            ("id", lambda p: p.id),
            ("name", lambda p: p.name),
            ("role", lambda p: p.role),
            ("description", lambda p: p.description),
        ],
        "No projects yet: create one with `vtp projects create NAME`.",
    )


@projects_app.command("create", epilog=example("vtp projects create 'Defects' --description 'PCB defects'"))
def projects_create(
    name: str,
    description: Annotated[str, typer.Option(help="What the project is for.")] = "",
    output: OutputOpt = Output.table,
) -> None:
    """Create a project; you become its owner."""
    project = client().projects.create(name, description)
    if output is Output.json:
        return emit_json(project)
    out.print(f"Created project {project.id} {escape(project.name)!r}")


# --- datasets ------------------------------------------------------------------------------------

VERSION_COLUMNS: list[tuple[str, Callable[[Any], Any]]] = [
    ("dataset", lambda d: d.dataset_id),
    ("name", lambda d: d.name),
    ("version", lambda d: d.version),
    ("task", lambda d: d.task),
    ("images", lambda d: d.num_images),
    ("split", lambda d: " ".join(f"{k}={v}" for k, v in d.split_counts.items())),
    ("classes", lambda d: ", ".join(d.classes[:6]) + (" ..." if len(d.classes) > 6 else "")),
    ("created", lambda d: when(d.created_at)),
]


@datasets_app.command(
    "ls", epilog=example("vtp datasets ls --project 'Demo project'", "vtp datasets ls -P 1 -o json")
)
def datasets_ls(project: ProjectOpt, output: OutputOpt = Output.table) -> None:
    """The latest version of each dataset in a project."""
    session = client()
    found = session.datasets.list(session.projects.get(project).id)
    if output is Output.json:
        return emit_json(found)
    show_table(found, VERSION_COLUMNS, "No datasets yet: `vtp datasets upload data.zip --project P`.")


@datasets_app.command(
    "versions",
    epilog=example(
        "vtp datasets versions shapes --project 'Demo project'", "vtp datasets versions shapes -P 1 -o json"
    ),
)
def datasets_versions(
    dataset: Annotated[str, typer.Argument(help="Dataset name (or id).")],
    project: ProjectOpt,
    output: OutputOpt = Output.table,
) -> None:
    """Every version of one dataset, newest first."""
    session = client()
    project_id = session.projects.get(project).id
    head = session.datasets.resolve(project_id, dataset)
    found = session.datasets.versions(project_id, head.dataset_id)
    if output is Output.json:
        return emit_json(found)
    show_table(found, [*VERSION_COLUMNS, ("how", lambda d: d.split_method)], "No versions.")


def _upload_progress(label: str) -> tuple[Progress, Callable[[int, int | None], None]]:
    bar = Progress(
        TextColumn(escape(label)),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=False,
    )
    task = bar.add_task(label, total=None)

    def update(done: int, total: int | None) -> None:
        bar.update(task, completed=done, total=total)

    return bar, update


@datasets_app.command(
    "upload",
    epilog=example(
        "vtp datasets upload shapes.zip --project 'Demo project'",
        "vtp datasets upload more.zip --project 1 --to shapes   # the next version of 'shapes'",
    ),
)
def datasets_upload(
    file: Annotated[
        Path, typer.Argument(help="A .zip in YOLO, COCO or ImageFolder layout.", exists=True, dir_okay=False)
    ],
    project: ProjectOpt,
    name: Annotated[str, typer.Option(help="Dataset name (default: the file name).")] = "",
    to: Annotated[str | None, typer.Option("--to", help="Add as the next version of this dataset.")] = None,
    output: OutputOpt = Output.table,
) -> None:
    """Upload a zip as a new dataset (or, with --to, a new version), with a progress bar.

    The server validates it; a refused upload lists every problem and stores nothing.
    """
    session = client()
    project_id = session.projects.get(project).id
    bar, update = _upload_progress(f"uploading {file.name}")
    with bar:
        if to:
            dataset_id = session.datasets.resolve(project_id, to).dataset_id
            result = session.datasets.upload_version(project_id, dataset_id, file, progress=update)
        else:
            result = session.datasets.upload(project_id, file, name=name, progress=update)
    if output is Output.json:
        return emit_json(result)
    out.print(
        f"Dataset {escape(result.name)!r} version {result.version} (id {result.id}): "
        f"{result.num_images} images, {result.num_labels} labels, classes {escape(', '.join(result.classes))}"
    )
    for warning in result.report.warnings[:20]:
        out.print(f"  [yellow]warning[/yellow] {escape(warning.file)}: {escape(warning.message)}")


@datasets_app.command(
    "split",
    epilog=example("vtp datasets split shapes --project 1 --train 0.7 --val 0.2 --test 0.1 --seed 42"),
)
def datasets_split(
    dataset: Annotated[str, typer.Argument(help="NAME or NAME:VERSION to split.")],
    project: ProjectOpt,
    train: float = 0.8,
    val: float = 0.1,
    test: float = 0.1,
    seed: int = 0,
    method: Annotated[
        Literal["stratified", "random", "keep"], typer.Option(help="By class, at random, or as uploaded.")
    ] = "stratified",
    output: OutputOpt = Output.table,
) -> None:
    """Make a new version with a train/val/test split."""
    session = client()
    project_id = session.projects.get(project).id
    source = session.datasets.resolve(project_id, dataset)
    result = session.datasets.split(
        project_id,
        source.dataset_id,
        train=train,
        val=val,
        test=test,
        seed=seed,
        method=method,
        from_version=source.version,
    )
    if output is Output.json:
        return emit_json(result)
    counts = " ".join(f"{k}={v}" for k, v in result.split_counts.items())
    out.print(f"Dataset {escape(result.name)!r} version {result.version}: {counts}")


@datasets_app.command(
    "rename", epilog=example("vtp datasets rename shapes --project 1 -n circle=disc -n square=box")
)
def datasets_rename(
    dataset: Annotated[str, typer.Argument(help="NAME or NAME:VERSION to start from.")],
    project: ProjectOpt,
    name: Annotated[list[str], typer.Option("--name", "-n", help="old=new (repeatable).")],
    output: OutputOpt = Output.table,
) -> None:
    """Make a new version whose classes carry new names (labels, images and split unchanged)."""
    names = dict(parse_param(n) for n in name)
    session = client()
    project_id = session.projects.get(project).id
    source = session.datasets.resolve(project_id, dataset)
    result = session.datasets.rename_classes(
        project_id, source.dataset_id, {k: str(v) for k, v in names.items()}, from_version=source.version
    )
    if output is Output.json:
        return emit_json(result)
    out.print(
        f"Dataset {escape(result.name)!r} version {result.version}: {escape(', '.join(result.classes))}"
    )


@datasets_app.command("report", epilog=example("vtp datasets report shapes:1 --project 1 -o json"))
def datasets_report(
    dataset: Annotated[str, typer.Argument(help="NAME or NAME:VERSION.")],
    project: ProjectOpt,
    output: OutputOpt = Output.table,
) -> None:
    """The validation report of an uploaded version: counts and warnings."""
    session = client()
    project_id = session.projects.get(project).id
    version = session.datasets.resolve(project_id, dataset)
    report = session.datasets.report(project_id, version.dataset_id, version.version)
    if output is Output.json:
        return emit_json(report)
    if not report:
        out.print(f"Version {version.version} was made by a split or rename: it has no upload report.")
        return
    out.print(" ".join(f"{k}={v}" for k, v in (report.get("counts") or {}).items()))
    for warning in report.get("warnings") or []:
        where, message = escape(str(warning.get("file"))), escape(str(warning.get("message")))
        out.print(f"  [yellow]warning[/yellow] {where}: {message}")


# --- training --------------------------------------------------------------------------------------


def parse_param(text: str) -> tuple[str, Any]:
    """`key=value`, the value read as JSON when it parses (50, 0.01, true, "x"), else as text."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise typer.BadParameter(f"{text!r}: write hyperparameters as key=value, e.g. -p epochs=50")
    try:
        value = json.loads(raw)
    except ValueError:
        value = raw
    return key.strip(), value


def resolve_model(catalog: dict[str, Any], framework: str, task: str, model: str) -> str:
    """`yolo11n` -> `yolo11n.yaml` when the trainer lists the latter (as the web form does)."""
    for entry in catalog.get("frameworks") or []:
        if entry.get("name") != framework:
            continue
        for item in entry.get("tasks") or []:
            if item.get("name") == task:
                listed = list(item.get("models") or [])
                if model not in listed and f"{model}.yaml" in listed:
                    return f"{model}.yaml"
    return model


PREFERRED_METRICS = ("map50", "map50_95", "precision", "recall", "top1", "top5")


def epoch_line(job: m.JobDetail, point: m.MetricPoint) -> str:
    total = f"/{job.total_epochs}" if job.total_epochs else ""
    names = [k for k in PREFERRED_METRICS if k in point.metrics]
    names += sorted(k for k in point.metrics if k.endswith("loss") and k not in names)
    shown = "  ".join(f"{k} {point.metrics[k]:.4g}" for k in names[:8])
    return f"epoch {point.epoch + 1}{total}  {shown}"  # stored from 0; shown from 1, as in the web UI


def follow_job(session: Client, project_id: int, job_id: int, poll_s: float, quiet: bool) -> m.JobDetail:
    """Wait for the job, printing a line per state change and per epoch; a spinner on terminals."""
    with err.status(f"job {job_id}: waiting") as status:

        def update(job: m.JobDetail, fresh: list[m.MetricPoint]) -> None:
            epoch = (
                f" epoch {job.current_epoch + 1}/{job.total_epochs}" if job.current_epoch is not None else ""
            )
            status.update(f"job {job_id}: {job.state}{epoch}")
            if quiet:
                return
            for point in fresh:
                err.print(escape(epoch_line(job, point)))
            if not fresh and not job.finished:
                err.print(f"job {job_id} {job.state}")

        job = session.jobs.wait(project_id, job_id, on_update=update, poll_s=poll_s)
    if job.state == "succeeded":
        err.print(f"[green]job {job_id} succeeded[/green]")
    else:
        err.print(f"[red]job {job_id} {job.state}[/red]: {escape(job.error_message or '')}")
    return job


@app.command(
    epilog=example(
        "vtp train --project Demo --dataset shapes --model yolo11n -p epochs=50 -p imgsz=640 --wait",
        "vtp train -P 1 --dataset shapes:2 -p epochs=1 -p imgsz=64 --wait --output json",
    )
)
def train(
    project: ProjectOpt,
    dataset: Annotated[
        str, typer.Option("--dataset", "-d", help="NAME or NAME:VERSION (latest if omitted).")
    ],
    model: Annotated[str, typer.Option("--model", "-m", help="Model name, e.g. yolo11n.")] = "yolo11n",
    param: Annotated[
        list[str] | None, typer.Option("--param", "-p", help="Hyperparameter key=value (repeatable).")
    ] = None,
    name: Annotated[str, typer.Option(help="Job name.")] = "",
    framework: Annotated[str, typer.Option(help="Trainer plugin.")] = "ultralytics",
    task: Annotated[
        str | None, typer.Option(help="detect, classify, segment (default: the dataset's).")
    ] = None,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    predictions: Annotated[
        int,
        typer.Option(
            "--predictions",
            min=0,
            max=10_000,
            help="Val and test images whose predictions are stored at the end (0: none).",
        ),
    ] = 500,
    wait: Annotated[
        bool, typer.Option("--wait", "-w", help="Follow it; exit 0 if it succeeds, else 1.")
    ] = False,
    poll: Annotated[float, typer.Option(help="Seconds between status checks with --wait.")] = 2.0,
    output: OutputOpt = Output.table,
) -> None:
    """Start a training job on a dataset version; with --wait, follow it epoch by epoch."""
    hyperparameters = dict(parse_param(p) for p in param or [])  # usage errors before any request
    session = client()
    project_id = session.projects.get(project).id
    version = session.datasets.resolve(project_id, dataset)
    task = task or version.task
    model = resolve_model(session.catalog(), framework, task, model)
    job = session.jobs.submit(
        project_id,
        dataset_version_id=version.id,
        model=model,
        hyperparameters=hyperparameters,
        name=name,
        framework=framework,
        task=task,
        device=device,
        predictions_max_images=predictions,
    )
    err.print(f"job {job.id} queued: {escape(job.model)} on {escape(version.name)}:{version.version}")
    if not wait:
        if output is Output.json:
            emit_json(job)
        return
    final = follow_job(session, project_id, job.id, poll, quiet=False)
    if output is Output.json:
        emit_json(final)
    raise typer.Exit(0 if final.state == "succeeded" else 1)


# --- jobs --------------------------------------------------------------------------------------------


@jobs_app.command(
    "ls", epilog=example("vtp jobs ls --project 1", "vtp jobs ls -P 1 --state running --state queued -o json")
)
def jobs_ls(
    project: ProjectOpt,
    state: Annotated[list[str] | None, typer.Option(help="Only jobs in this state (repeatable).")] = None,
    search: Annotated[str, typer.Option(help="Only jobs whose name or model contains this.")] = "",
    output: OutputOpt = Output.table,
) -> None:
    """A project's jobs, newest first."""
    session = client()
    found = session.jobs.list(session.projects.get(project).id, state=state, search=search)
    if output is Output.json:
        return emit_json(found)
    show_table(
        found,
        [
            ("id", lambda j: j.id),
            ("name", lambda j: j.name),
            ("state", lambda j: j.state + (f" (#{j.queue_position})" if j.queue_position else "")),
            ("model", lambda j: j.model),
            (
                "epoch",
                lambda j: f"{0 if j.current_epoch is None else j.current_epoch + 1}/{j.total_epochs or '?'}",
            ),
            ("owner", lambda j: j.owner),
            ("created", lambda j: when(j.created_at)),
        ],
        "No jobs yet: `vtp train --project P --dataset NAME --wait`.",
    )


@jobs_app.command("show", epilog=example("vtp jobs show 12 --project 1", "vtp jobs show 12 -P 1 -o json"))
def jobs_show(job: JobArg, project: ProjectOpt, output: OutputOpt = Output.table) -> None:
    """One job: state, settings, errors and its per-epoch metrics."""
    session = client()
    found = session.jobs.get(session.projects.get(project).id, job)
    if output is Output.json:
        return emit_json(found)
    out.print(f"[bold]job {found.id}[/bold] {escape(found.name)}  [bold]{found.state}[/bold]")
    out.print(f"attempt {found.attempt}, model {escape(found.model)} ({found.framework}/{found.task})")
    out.print(f"dataset version {found.dataset_version_id}")
    out.print("hyperparameters " + escape(json.dumps(found.hyperparameters)))
    if found.error_message:
        out.print(f"[red]{found.error_kind or 'error'}[/red]: {escape(found.error_message)}")
    for point in found.metrics:
        out.print(escape(epoch_line(found, point)))


@jobs_app.command("cancel", epilog=example("vtp jobs cancel 12 --project 1"))
def jobs_cancel(job: JobArg, project: ProjectOpt, output: OutputOpt = Output.table) -> None:
    """Stop a job: queued ones at once, running ones at the trainer's next batch."""
    session = client()
    found = session.jobs.cancel(session.projects.get(project).id, job)
    if output is Output.json:
        return emit_json(found)
    out.print(f"job {found.id}: {found.state} (cancel requested)")


@jobs_app.command(
    "retry", epilog=example("vtp jobs retry 12 --project 1", "vtp jobs retry 12 -P 1 --no-resume")
)
def jobs_retry(
    job: JobArg,
    project: ProjectOpt,
    resume: Annotated[bool, typer.Option(help="Continue from the last checkpoint.")] = True,
    output: OutputOpt = Output.table,
) -> None:
    """Run a failed or cancelled job again, as a new job."""
    session = client()
    found = session.jobs.retry(session.projects.get(project).id, job, resume=resume)
    if output is Output.json:
        return emit_json(found)
    out.print(f"job {found.id} queued (retry of {job})")


@jobs_app.command("wait", epilog=example("vtp jobs wait 12 --project 1 && echo trained"))
def jobs_wait(job: JobArg, project: ProjectOpt, poll: float = 2.0, output: OutputOpt = Output.table) -> None:
    """Follow a job to its end; exit 0 if it succeeded, else 1."""
    session = client()
    final = follow_job(session, session.projects.get(project).id, job, poll, quiet=False)
    if output is Output.json:
        emit_json(final)
    raise typer.Exit(0 if final.state == "succeeded" else 1)


@jobs_app.command("logs", epilog=example("vtp jobs logs 12 --project 1", "vtp jobs logs 12 -P 1 -f"))
def jobs_logs(
    job: JobArg,
    project: ProjectOpt,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing until the job ends.")] = False,
    poll: float = 2.0,
) -> None:
    """The job's log: the whole file once uploaded, else the trainer's latest lines."""
    session = client()
    project_id = session.projects.get(project).id
    lines = (
        session.jobs.follow_logs(project_id, job, poll_s=poll)
        if follow
        else session.jobs.logs(project_id, job)
    )
    for line in lines:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


@jobs_app.command(
    "metrics",
    epilog=example("vtp jobs metrics 12 --project 1", "vtp jobs metrics 12 -P 1 -o json | jq '.[-1]'"),
)
def jobs_metrics(job: JobArg, project: ProjectOpt, output: OutputOpt = Output.table) -> None:
    """Per-epoch metrics, one row per epoch."""
    session = client()
    rows = session.jobs.metrics(session.projects.get(project).id, job)
    if output is Output.json:
        return emit_json(rows)
    names = sorted({k for row in rows for k in row if k != "epoch"})
    show_table(
        rows,
        [
            ("epoch", lambda r: r["epoch"]),
            *((n, lambda r, n=n: f"{r[n]:.4g}" if n in r else "") for n in names),
        ],
        "No epochs reported yet.",
    )


@jobs_app.command("artifacts", epilog=example("vtp jobs artifacts 12 --project 1 -o json"))
def jobs_artifacts(job: JobArg, project: ProjectOpt, output: OutputOpt = Output.table) -> None:
    """Every file the job stored: checkpoints, exports, plots, logs."""
    session = client()
    found = session.jobs.artifacts(session.projects.get(project).id, job)
    if output is Output.json:
        return emit_json(found)
    show_table(
        found,
        [("key", lambda a: a.key), ("kind", lambda a: a.kind), ("size", lambda a: human_bytes(a.size))],
        "No files yet.",
    )


@jobs_app.command(
    "download", epilog=example("vtp jobs download 12 artifacts/metrics.json --project 1 --dest out/")
)
def jobs_download(
    job: JobArg,
    key: Annotated[str, typer.Argument(help="Artifact key, from `vtp jobs artifacts`.")],
    project: ProjectOpt,
    dest: Annotated[Path, typer.Option(help="File or folder to write to.")] = Path("."),
) -> None:
    """Download one of the job's files."""
    session = client()
    path = session.jobs.download(session.projects.get(project).id, job, key, dest)
    out.print(f"Saved {escape(str(path))}")


# --- models ------------------------------------------------------------------------------------------


@models_app.command("ls", epilog=example("vtp models ls --project 1", "vtp models ls -P 1 -o json"))
def models_ls(project: ProjectOpt, output: OutputOpt = Output.table) -> None:
    """Succeeded jobs with a saved model, newest first."""
    session = client()
    found = session.models.list(session.projects.get(project).id)
    if output is Output.json:
        return emit_json(found)
    show_table(
        found,
        [
            ("job", lambda j: j.id),
            ("name", lambda j: j.name),
            ("model", lambda j: j.model),
            ("task", lambda j: j.task),
            ("dataset version", lambda j: j.dataset_version_id),
            (
                "exports",
                lambda j: ", ".join(
                    k.removeprefix("export_") for k in j.artifacts if k.startswith("export_")
                ),
            ),
            ("finished", lambda j: when(j.finished_at)),
        ],
        "No trained models yet.",
    )


class ModelFormat(StrEnum):
    pt = "pt"
    onnx = "onnx"
    torchscript = "torchscript"


@models_app.command(
    "download",
    epilog=example(
        "vtp models download 12 --project 1", "vtp models download 12 -P 1 --format onnx --dest models/"
    ),
)
def models_download(
    job: JobArg,
    project: ProjectOpt,
    format: Annotated[
        ModelFormat, typer.Option(help="pt (checkpoint), onnx or torchscript (exported on demand).")
    ] = ModelFormat.pt,
    checkpoint: Annotated[str, typer.Option(help="best or last (for pt).")] = "best",
    dest: Annotated[Path, typer.Option(help="File or folder to write to.")] = Path("."),
) -> None:
    """Download a trained model's weights."""
    session = client()
    bar, update = _upload_progress(f"job {job} {format.value}")
    with bar:
        path = session.models.download(
            session.projects.get(project).id,
            job,
            dest,
            format=format.value,
            checkpoint=checkpoint,
            progress=update,
        )
    out.print(f"Saved {escape(str(path))}")


@models_app.command(
    "export",
    epilog=example("vtp models export 12 --project 1", "vtp models export 12 -P 1 --format onnx -o json"),
)
def models_export(
    job: JobArg,
    project: ProjectOpt,
    format: Annotated[
        list[str] | None, typer.Option(help="onnx, torchscript (repeatable; default both).")
    ] = None,
    output: OutputOpt = Output.table,
) -> None:
    """Export a succeeded job's best checkpoint; the files join the job's artifacts."""
    session = client()
    result = session.models.export(session.projects.get(project).id, job, format or None)
    if output is Output.json:
        return emit_json(result)
    for item in result.get("exports") or []:
        out.print(f"{escape(str(item.get('format')))}: {escape(str(item.get('uri')))}")


@models_app.command(
    "predict",
    epilog=example("vtp models predict 12 photo.jpg --project 1", "vtp models predict 12 a.png -P 1 -o json"),
)
def models_predict(
    job: JobArg,
    image: Annotated[
        Path, typer.Argument(help="A PNG, JPEG, WebP or BMP image.", exists=True, dir_okay=False)
    ],
    project: ProjectOpt,
    output: OutputOpt = Output.table,
) -> None:
    """Run a trained model on one image: boxes with scores, or class probabilities."""
    session = client()
    result = session.models.predict(session.projects.get(project).id, job, image)
    if output is Output.json:
        return emit_json(result)
    rows = result.get("boxes") or result.get("probabilities") or []
    show_table(
        rows,
        [
            ("class", lambda r: r.get("class_name")),
            ("score", lambda r: f"{r.get('score', 0):.3f}"),
            ("box", lambda r: " ".join(str(v) for v in r.get("box", []))),
        ],
        "Nothing found.",
    )


# --- entry point -------------------------------------------------------------------------------------


_PLUGGED: set[int] = set()


def add_plugin_commands(target: typer.Typer) -> None:
    """Commands other installed packages add (the backend's stack commands) via `vtp.commands`."""
    if id(target) in _PLUGGED:
        return
    _PLUGGED.add(id(target))
    for entry in entry_points(group="vtp.commands"):
        entry.load()(target)


def report(exc: VtpError) -> None:
    err.print(f"[red]Error:[/red] {escape(exc.message)}")
    if isinstance(exc, InvalidInput):
        for problem in exc.problems[:50]:
            where = f"{problem.get('file', '')}" + (f":{problem['line']}" if problem.get("line") else "")
            err.print(f"  {escape(where)}: {escape(str(problem.get('message', '')))}")
    if isinstance(exc, Unauthorized):
        err.print("Sign in with `vtp login`, or set VTP_TOKEN to a valid personal API token.")


def main() -> None:
    add_plugin_commands(app)
    try:
        app()
    except VtpError as exc:
        report(exc)
        sys.exit(1)
    except ValueError as exc:  # an unreadable config file
        err.print(f"[red]Error:[/red] {escape(str(exc))}")
        sys.exit(1)
