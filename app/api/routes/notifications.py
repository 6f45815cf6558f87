"""Notifications: a project's rules, delivery log and test sends (admins manage, members read),
and the caller's own in-app list and switch. Parse, call services.actions.notifications, shape."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from app.api.deps import CurrentActor, PathId
from services.actions import notifications
from services.domain.notifications import (
    DeliveryPublic,
    RuleCreate,
    RuleCreated,
    RulePublic,
    UserNotificationPublic,
)

router = APIRouter(tags=["notifications"])
PROJECT = "/projects/{project_id}/notifications"


class TestQueued(BaseModel):
    queued: bool = Field(description="False: saved, but the worker was unreachable; it sends it later.")


class MyNotifications(BaseModel):
    own_jobs: bool = Field(description="Whether your own jobs notify you (in-app list, e-mail).")
    unread: int
    items: list[UserNotificationPublic]


class MySettings(BaseModel):
    own_jobs: bool


@router.get(PROJECT + "/rules")
def list_rules(project_id: PathId, actor: CurrentActor) -> list[RulePublic]:
    """Targets are masked: their secrets are never shown back."""
    return notifications.list_rules(actor, project_id=project_id)


@router.post(PROJECT + "/rules", status_code=201)
def create_rule(project_id: PathId, body: RuleCreate, actor: CurrentActor) -> RuleCreated:
    """A webhook's `secret` (HMAC-SHA256 key of its `X-VTP-Signature`) is in this answer only."""
    return notifications.create_rule(actor, project_id=project_id, request=body)


@router.delete(PROJECT + "/rules/{rule_id}", status_code=204)
def delete_rule(project_id: PathId, rule_id: PathId, actor: CurrentActor) -> None:
    notifications.delete_rule(actor, project_id=project_id, rule_id=rule_id)


@router.post(PROJECT + "/rules/{rule_id}/test", status_code=202)
async def send_test(project_id: PathId, rule_id: PathId, actor: CurrentActor) -> TestQueued:
    """Queue a test message; its attempts appear in the delivery log."""
    return TestQueued(queued=await notifications.send_test(actor, project_id=project_id, rule_id=rule_id))


@router.get(PROJECT + "/deliveries")
def list_deliveries(
    project_id: PathId, actor: CurrentActor, limit: Annotated[int, Query(ge=1, le=500)] = 100
) -> list[DeliveryPublic]:
    """Every attempt to send, newest first."""
    return notifications.list_deliveries(actor, project_id=project_id, limit=limit)


@router.get("/me/notifications")
def my_notifications(actor: CurrentActor) -> MyNotifications:
    items, own_jobs = notifications.my_notifications(actor)
    return MyNotifications(own_jobs=own_jobs, unread=sum(not i.read for i in items), items=items)


@router.post("/me/notifications/read", status_code=204)
def mark_read(actor: CurrentActor) -> None:
    notifications.mark_my_notifications_read(actor)


@router.put("/me/notification-settings")
def set_settings(body: MySettings, actor: CurrentActor) -> MySettings:
    return MySettings(own_jobs=notifications.set_own_jobs_notifications(actor, enabled=body.own_jobs))
