"""Python client for the Vision AI Training Platform's REST API (httpx + pydantic, nothing else).

from vtp_client import Client
vtp = Client.from_config()
for project in vtp.projects.list():
    print(project.name)
"""

from vtp_client.client import Client
from vtp_client.errors import (
    BadRequest,
    Conflict,
    ConnectionFailed,
    InvalidInput,
    JobFailed,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
    RateLimited,
    ServerError,
    Unauthorized,
    VtpError,
)

__all__ = [
    "BadRequest",
    "Client",
    "Conflict",
    "ConnectionFailed",
    "InvalidInput",
    "JobFailed",
    "NotFound",
    "PayloadTooLarge",
    "PermissionDenied",
    "RateLimited",
    "ServerError",
    "Unauthorized",
    "VtpError",
]
