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
    help="The model registry (versions, aliases, weights) and trained jobs' checkpoints and exports.",
    no_args_is_help=True,
    rich_markup_mode="rich",
)
alias_app = typer.Typer(
    help="Aliases (champion, staging, ...) that point at a model's versions; project admins move them.",
    no_args_is_help=True,
    rich_markup_mode="rich",
)
models_app.add_typer(alias_app, name="alias", epilog=example("vtp models alias --help"))
predict_app = typer.Typer(
    help="Batch inference: a model over a dataset version or a zip of images, as a queued job.",
    no_args_is_help=True,
    rich_markup_mode="rich",
)
for sub, name in (
    (projects_app, "projects"),
    (datasets_app, "datasets"),
    (jobs_app, "jobs"),
    (models_app, "models"),
    (predict_app, "predict"),
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


# A string, not a Path: Path drops the trailing "/" that says "a folder" when it does not exist yet.
DEST_HELP = "File or folder to write to; end it with / for a folder that does not exist yet."


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
    if found.dataset_version_id is None:
        out.print("over uploaded images (no dataset version)")
    else:
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
    dest: Annotated[str, typer.Option(help=DEST_HELP)] = ".",
) -> None:
    """Download one of the job's files."""
    session = client()
    path = session.jobs.download(session.projects.get(project).id, job, key, dest)
    out.print(f"Saved {escape(str(path))}")


# --- models ------------------------------------------------------------------------------------------


def show_trained_jobs(found: list[m.JobListItem]) -> None:
    show_table(
        found,
        [
            ("job", lambda j: j.id),
            ("name", lambda j: j.name),
            ("model", lambda j: j.model),
            ("task", lambda j: j.task),
            (
                "dataset version",
                lambda j: "uploaded images" if j.dataset_version_id is None else j.dataset_version_id,
            ),
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


def aliases_text(aliases: dict[str, int]) -> str:
    return ", ".join(f"{alias}→v{version}" for alias, version in sorted(aliases.items()))


def metrics_text(metrics: dict[str, float], limit: int = 3) -> str:
    return "  ".join(f"{k}={v:.3g}" for k, v in list(metrics.items())[:limit])


@models_app.command(
    "ls",
    epilog=example("vtp models ls --project 1", "vtp models ls -P 1 --jobs", "vtp models ls -P 1 -o json"),
)
def models_ls(
    project: ProjectOpt,
    jobs: Annotated[
        bool, typer.Option("--jobs", help="List succeeded jobs with a checkpoint instead of the registry.")
    ] = False,
    output: OutputOpt = Output.table,
) -> None:
    """Registered models with their latest version and aliases (or, with --jobs, trained jobs)."""
    session = client()
    project_id = session.projects.get(project).id
    if jobs:
        trained = session.models.list(project_id)
        return emit_json(trained) if output is Output.json else show_trained_jobs(trained)
    found = session.models.registered(project_id)
    if output is Output.json:
        return emit_json(found)
    show_table(
        found,
        [
            ("name", lambda r: r.name),
            ("versions", lambda r: len(r.versions)),
            ("latest", lambda r: r.latest_version),
            ("aliases", lambda r: aliases_text(r.aliases)),
            ("task", lambda r: r.versions[0].task if r.versions else ""),
            ("description", lambda r: r.description),
        ],
        "No registered models yet: `vtp models register JOB --name NAME` or `vtp models upload FILE`.",
    )


def show_version(found: m.ModelVersion) -> None:
    aliases = f"  [bold]{escape(', '.join(found.aliases))}[/bold]" if found.aliases else ""
    out.print(f"[bold]{escape(found.ref)}[/bold]{aliases}")
    source = f"job {found.job_id}" if found.source == "job" else f"uploaded {found.filename}"
    out.print(f"{escape(found.framework)}/{escape(found.task)} {escape(found.architecture)}, from {source}")
    out.print(f"classes: {escape(', '.join(found.classes))}")
    if found.dataset_version_id is not None:
        out.print(f"dataset version {found.dataset_version_id}")
    if found.val_metrics:
        out.print("val " + escape(metrics_text(found.val_metrics, 10)))
    if found.test_metrics:
        out.print("test " + escape(metrics_text(found.test_metrics, 10)))
    if found.exports:
        out.print("exports: " + escape(", ".join(e.format for e in found.exports)))
    out.print(
        f"registered by {escape(found.registered_by)} on {when(found.created_at)}; MLflow {found.mlflow_name}"
    )


@models_app.command(
    "show",
    epilog=example(
        "vtp models show shapes --project 1",
        "vtp models show shapes@champion -P 1",
        "vtp models show shapes/2 -P 1 -o json",
    ),
)
def models_show(
    ref: Annotated[str, typer.Argument(help="NAME (all versions), NAME@ALIAS or NAME/VERSION.")],
    project: ProjectOpt,
    output: OutputOpt = Output.table,
) -> None:
    """A registered model's versions with metrics and aliases, or one version's lineage."""
    session = client()
    project_id = session.projects.get(project).id
    plain = ref.removeprefix("models/")
    if "@" in plain or "/" in plain:
        version = session.models.resolve(project_id, plain)
        return emit_json(version) if output is Output.json else show_version(version)
    found = session.models.get(project_id, plain)
    if output is Output.json:
        return emit_json(found)
    if found.description:
        out.print(escape(found.description))
    show_table(
        found.versions,
        [
            ("version", lambda v: v.version),
            ("aliases", lambda v: ", ".join(v.aliases)),
            ("source", lambda v: f"job {v.job_id}" if v.source == "job" else "upload"),
            ("architecture", lambda v: v.architecture),
            ("val", lambda v: metrics_text(v.val_metrics)),
            ("exports", lambda v: ", ".join(e.format for e in v.exports)),
            ("registered", lambda v: f"{when(v.created_at)} {v.registered_by}"),
        ],
        f"{found.name} has no versions.",
    )


@models_app.command(
    "register",
    epilog=example(
        "vtp models register 12 --name shapes --project 1",
        "vtp models register 12 -n shapes -P 1 --description 'first try' -o json",
    ),
)
def models_register(
    job: JobArg,
    project: ProjectOpt,
    name: Annotated[str, typer.Option("--name", "-n", help="The model's name (created if new).")],
    description: Annotated[str, typer.Option(help="A line for the model card.")] = "",
    output: OutputOpt = Output.table,
) -> None:
    """Register a succeeded job's best checkpoint as the next version of a model (in MLflow too)."""
    if not name.strip():
        raise typer.BadParameter("give the model a name, e.g. --name shapes", param_hint="--name")
    session = client()
    found = session.models.register(session.projects.get(project).id, job, name, description=description)
    if output is Output.json:
        return emit_json(found)
    out.print(f"Registered job {job} as [bold]{escape(found.ref)}[/bold]")


@models_app.command(
    "upload",
    epilog=example(
        "vtp models upload yolo11n.pt --name coco-start --project 1",
        "vtp models upload resnet18.safetensors -n backbone -P 1 --architecture resnet18",
    ),
)
def models_upload(
    file: Annotated[
        Path,
        typer.Argument(help="Ultralytics .pt, timm state_dict .pt/.pth, or .safetensors.", dir_okay=False),
    ],
    project: ProjectOpt,
    name: Annotated[str, typer.Option("--name", "-n", help="The model's name (created if new).")],
    description: Annotated[str, typer.Option(help="A line for the model card.")] = "",
    architecture: Annotated[str, typer.Option(help="timm model name, for a bare state_dict.")] = "",
    output: OutputOpt = Output.table,
) -> None:
    """Upload pretrained weights as a new model version; the trainer checks they load safely."""
    if not file.is_file():
        raise typer.BadParameter(f"{file}: no such file", param_hint="FILE")
    session = client()
    project_id = session.projects.get(project).id
    bar, update = _upload_progress(file.name)
    with bar:
        found = session.models.upload(
            project_id, file, name, description=description, architecture=architecture, progress=update
        )
    if output is Output.json:
        return emit_json(found)
    out.print(
        f"Uploaded as [bold]{escape(found.ref)}[/bold]: {escape(found.framework)}/{escape(found.task)} "
        f"{escape(found.architecture)}, {len(found.classes)} classes"
    )


@alias_app.command(
    "set",
    epilog=example("vtp models alias set shapes champion 2 --project 1"),
)
def alias_set(
    name: Annotated[str, typer.Argument(help="The model's name.")],
    alias: Annotated[str, typer.Argument(help="champion, staging, ...")],
    version: Annotated[int, typer.Argument(help="The version it points at.", min=1)],
    project: ProjectOpt,
    output: OutputOpt = Output.table,
) -> None:
    """Point an alias at a version (moves it if it pointed elsewhere); project admins only."""
    session = client()
    found = session.models.set_alias(session.projects.get(project).id, name, alias, version)
    if output is Output.json:
        return emit_json(found)
    out.print(
        f"models/{escape(name)}@{escape(alias)} now points at version {found.aliases.get(alias, version)}"
    )


@alias_app.command("rm", epilog=example("vtp models alias rm shapes staging --project 1"))
def alias_rm(
    name: Annotated[str, typer.Argument(help="The model's name.")],
    alias: Annotated[str, typer.Argument(help="The alias to remove.")],
    project: ProjectOpt,
) -> None:
    """Remove an alias; the version it pointed at stays."""
    session = client()
    session.models.remove_alias(session.projects.get(project).id, name, alias)
    out.print(f"Removed models/{escape(name)}@{escape(alias)}")


@models_app.command(
    "resolve",
    epilog=example(
        "vtp models resolve shapes@champion --project 1", "vtp models resolve models/shapes/2 -P 1 -o json"
    ),
)
def models_resolve(
    ref: Annotated[
        str, typer.Argument(help="models/NAME@ALIAS or models/NAME/VERSION (the prefix is optional).")
    ],
    project: ProjectOpt,
    output: OutputOpt = Output.table,
) -> None:
    """Which version a reference names now, with its lineage."""
    session = client()
    found = session.models.resolve(session.projects.get(project).id, ref)
    if output is Output.json:
        return emit_json(found)
    show_version(found)


@models_app.command(
    "download",
    epilog=example(
        "vtp models download shapes@champion --project 1 --dest models/",
        "vtp models download shapes/2 -P 1 --format onnx",
        "vtp models download 12 -P 1 --format torchscript   # a job's checkpoint or export",
    ),
)
def models_download(
    ref: Annotated[
        str, typer.Argument(help="NAME@ALIAS or NAME/VERSION of a registered model, or a job id.")
    ],
    project: ProjectOpt,
    format: Annotated[
        str,
        typer.Option(
            help="pt (the weights) or an export format (onnx, torchscript, openvino, ...); "
            "for a job, onnx and torchscript are exported on demand."
        ),
    ] = "pt",
    checkpoint: Annotated[str, typer.Option(help="best or last (a job's pt).")] = "best",
    dest: Annotated[str, typer.Option(help=DEST_HELP)] = ".",
) -> None:
    """Download a model's weights or an export: of a registered version, or of a job."""
    session = client()
    project_id = session.projects.get(project).id
    bar, update = _upload_progress(f"{ref} {format}")
    with bar:
        if ref.strip().isdigit():
            path = session.models.download(
                project_id, int(ref), dest, format=format, checkpoint=checkpoint, progress=update
            )
        else:
            if "@" not in ref and "/" not in ref.removeprefix("models/"):
                raise typer.BadParameter(
                    f"{ref!r}: name a version, e.g. {ref}@champion or {ref}/1 (or give a job id)",
                    param_hint="REF",
                )
            wanted = "weights" if format == "pt" else format
            path = session.models.download_version(project_id, ref, dest, format=wanted, progress=update)
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


# --- batch inference ---------------------------------------------------------------------------


def batch_line(job: m.JobDetail) -> str:
    images = f" {job.current_epoch or 0}/{job.total_epochs} images" if job.total_epochs else ""
    return f"batch run {job.id} {job.state}{images}"


def download_batch(session: Client, project_id: int, job_id: int, dest: Path) -> None:
    """The run's JSON Lines and CSV into `dest`; the lines go to stderr, so `-o json` stays JSON."""
    for path in session.batch.download(project_id, job_id, dest):
        err.print(f"Saved {escape(str(path))}")


@predict_app.command(
    "batch",
    epilog=example(
        "vtp predict batch --model shapes@champion --dataset shapes:2 --project 1 --wait --dest results/",
        "vtp predict batch --model 12 --images photos.zip -P 1 --conf 0.4 --wait",
    ),
)
def predict_batch(
    project: ProjectOpt,
    model: Annotated[
        str,
        typer.Option(
            "--model", "-m", help="A job id, NAME@ALIAS, NAME/VERSION, jobs/ID or models/NAME@ALIAS."
        ),
    ],
    dataset: Annotated[
        str | None, typer.Option("--dataset", "-d", help="NAME or NAME:VERSION: every image, all splits.")
    ] = None,
    images: Annotated[
        Path | None, typer.Option("--images", "-i", help="Or a local .zip of images.", dir_okay=False)
    ] = None,
    conf: Annotated[float, typer.Option(min=0.0, max=1.0, help="Confidence threshold.")] = 0.25,
    name: Annotated[str, typer.Option(help="Run name.")] = "",
    wait: Annotated[
        bool, typer.Option("--wait", "-w", help="Follow it; exit 0 if it succeeds, else 1.")
    ] = False,
    dest: Annotated[
        Path | None, typer.Option(help="With --wait: download the JSON Lines and CSV results here.")
    ] = None,
    poll: Annotated[float, typer.Option(help="Seconds between status checks with --wait.")] = 2.0,
    output: OutputOpt = Output.table,
) -> None:
    """Run a model over a dataset version or a zip of images, as a queued job."""
    if (dataset is None) == (images is None):
        raise typer.BadParameter("give exactly one of --dataset NAME[:VERSION] or --images FILE.zip")
    if images is not None and not images.is_file():
        raise typer.BadParameter(f"{images}: no such file", param_hint="--images")
    if dest is not None and not wait:
        raise typer.BadParameter("--dest needs --wait (results exist once the run finished)")
    session = client()
    project_id = session.projects.get(project).id
    if images is not None:
        bar, update = _upload_progress(images.name)
        with bar:
            job = session.batch.start_zip(project_id, model, images, conf=conf, name=name, progress=update)
        source = images.name
    else:
        version = session.datasets.resolve(project_id, dataset or "")
        job = session.batch.start(project_id, model, dataset_version_id=version.id, conf=conf, name=name)
        source = f"{version.name}:{version.version}"
    err.print(f"batch run {job.id} queued: {escape(job.model)} on {escape(source)}")
    if not wait:
        if output is Output.json:
            emit_json(job)
        return
    final = follow_batch(session, project_id, job.id, poll)
    if final.state == "succeeded" and dest is not None:
        download_batch(session, project_id, job.id, dest)
    if output is Output.json:
        emit_json(session.batch.results(project_id, job.id))
    raise typer.Exit(0 if final.state == "succeeded" else 1)


def follow_batch(session: Client, project_id: int, job_id: int, poll_s: float) -> m.JobDetail:
    """Wait for a batch run, printing each change of state and of images done."""
    with err.status(f"batch run {job_id}: waiting") as status:

        def update(job: m.JobDetail) -> None:
            status.update(batch_line(job))
            err.print(escape(batch_line(job)))

        job = session.batch.wait(project_id, job_id, on_update=update, poll_s=poll_s)
    if job.state != "succeeded":
        err.print(f"[red]batch run {job_id} {job.state}[/red]: {escape(job.error_message or '')}")
    return job


@predict_app.command(
    "results",
    epilog=example("vtp predict results 31 --project 1", "vtp predict results 31 -P 1 --dest results/"),
)
def predict_results(
    job: Annotated[int, typer.Argument(help="The batch run's job id.")],
    project: ProjectOpt,
    dest: Annotated[Path | None, typer.Option(help="Download the JSON Lines and CSV results here.")] = None,
    output: OutputOpt = Output.table,
) -> None:
    """A batch run's progress, then its summary (counts per class); --dest downloads the results."""
    session = client()
    project_id = session.projects.get(project).id
    found = session.batch.results(project_id, job)
    if dest is not None:
        download_batch(session, project_id, job, dest)
    if output is Output.json:
        return emit_json(found)
    summary = found.get("summary") or {}
    done, total = found.get("images_done") or 0, found.get("images_total") or "?"
    out.print(f"batch run {job} {found.get('state')}: {done}/{total} images")
    if summary:
        out.print(f"{summary.get('images', 0)} images, {summary.get('predictions', 0)} predictions")
        show_table(
            sorted((summary.get("counts") or {}).items()),
            [("class", lambda r: r[0]), ("predictions", lambda r: r[1])],
            "No predictions above the threshold.",
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
