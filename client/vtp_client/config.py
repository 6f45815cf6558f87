"""Where the client finds its server and credentials: arguments, then the environment, then the
file `vtp login` writes.

- `VTP_URL` and `VTP_TOKEN` (a personal API token, `vtp_pat_...`): what CI and notebooks set.
- `$VTP_CONFIG`, else `$XDG_CONFIG_HOME/vtp/config.json`, else `~/.config/vtp/config.json`: written
  by `vtp login` with mode 0600. It holds either a personal token or, after a password login, the
  access/refresh pair, which the client refreshes and writes back as it goes.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

DEFAULT_URL = "http://127.0.0.1:3000"


@dataclass
class Credentials:
    url: str = DEFAULT_URL
    token: str | None = None  # a personal API token
    access_token: str | None = None  # a password login's pair
    refresh_token: str | None = None
    expires_at: float | None = None  # unix time the access token runs out


def config_path() -> Path:
    if os.environ.get("VTP_CONFIG"):
        return Path(os.environ["VTP_CONFIG"])
    base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "vtp" / "config.json"


def load_file(path: Path | None = None) -> Credentials | None:
    path = path or config_path()
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path} is not a readable vtp config ({exc}); run `vtp login` again") from exc
    known = {k: v for k, v in data.items() if k in Credentials.__dataclass_fields__}
    return Credentials(**known)


def save_file(credentials: Credentials, path: Path | None = None) -> Path:
    """Write the file readable by its owner only (it holds a secret)."""
    path = path or config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump({k: v for k, v in asdict(credentials).items() if v is not None}, handle, indent=2)
    os.replace(temporary, path)
    return path


def resolve(url: str | None = None, token: str | None = None) -> Credentials:
    """Arguments win over `VTP_URL`/`VTP_TOKEN`, which win over the config file.

    A token given by argument or environment replaces the file's credentials entirely, so a CI
    job's `VTP_TOKEN` is never mixed with someone's saved password login.
    """
    saved = load_file() or Credentials()
    url = url or os.environ.get("VTP_URL") or saved.url or DEFAULT_URL
    token = token or os.environ.get("VTP_TOKEN")
    if token:
        return Credentials(url=url, token=token)
    saved.url = url
    return saved
