"""The project notifications page (`/projects/[project_id]/notifications`): where a project's
events are sent, the delivery log, and "send a test"."""

from __future__ import annotations

import reflex as rx

from app.pages.shared import maybe_error, notice, select, shell
from components import tokens
from components.layout import card, field
from components.permission_gate import permission_gate
from components.project_nav import data_table, empty_state, error_state, primary_button, project_nav
from services.domain.permissions import Action
from state.notifications_state import EVENT_CHOICES, NotificationsState

N = NotificationsState
KIND_HELP = (
    "Webhook: we POST JSON to your https:// URL, signed with HMAC-SHA256 in the X-VTP-Signature "
    "header (the secret is shown once, when you add the rule). Apprise: any Apprise service URL, "
    "such as slack://…, msteams://…, discord://… or mailto://…. Secrets in URLs are never shown back."
)


def rules_table() -> rx.Component:
    def row(r: rx.Var) -> rx.Component:
        buttons = rx.hstack(
            rx.button(
                rx.icon("send", size=14, aria_hidden="true"),
                "Send a test",
                size="1",
                variant="outline",
                on_click=N.send_test(r["id"]),
                disabled=N.nt_busy,
                id="test-" + r["id"],
                aria_label="Send a test to rule " + r["id"],
            ),
            rx.button(
                rx.icon("trash_2", size=14, aria_hidden="true"),
                "Remove",
                size="1",
                variant="outline",
                color=tokens.DANGER,
                on_click=N.remove_rule(r["id"]),
                disabled=N.nt_busy,
                id="remove-rule-" + r["id"],
                aria_label="Remove rule " + r["id"],
            ),
            spacing="2",
        )
        return rx.table.row(
            rx.table.row_header_cell(r["kind"]),
            rx.table.cell(rx.code(r["target"])),
            rx.table.cell(r["events"]),
            rx.table.cell(
                permission_gate(
                    buttons, allowed=N.can_manage, action=Action.notifications_manage, what="Managing rules"
                )
            ),
            custom_attrs={"data-rule": r["id"]},
        )

    return data_table(
        ["Kind", "Target", "Events", ""],
        rx.foreach(N.nt_rules, row),
        id="rules-table",
        caption="Notification rules",
    )


def add_rule_form() -> rx.Component:
    return rx.form(
        rx.vstack(
            rx.flex(
                field(
                    "Kind",
                    select("rule-kind", "kind", ["webhook", "apprise"], "webhook"),
                    html_for="rule-kind",
                ),
                field(
                    "Target URL",
                    rx.input(
                        id="rule-target",
                        name="target",
                        required=True,
                        width="420px",
                        max_length=2000,
                        placeholder="https://example.org/hooks/vtp or slack://…",
                        custom_attrs={"aria-describedby": "rule-help"},
                    ),
                    html_for="rule-target",
                ),
                spacing="3",
                align="end",
                wrap="wrap",
            ),
            rx.el.fieldset(
                rx.el.legend("Send on", class_name="sr-only"),
                rx.flex(
                    *[
                        rx.el.label(
                            rx.el.input(
                                type="checkbox", name=f"event-{c['value']}", id=f"event-{c['value']}"
                            ),
                            " " + c["label"],
                            html_for=f"event-{c['value']}",
                            style={"display": "inline-flex", "gap": "4px", "align-items": "center"},
                        )
                        for c in EVENT_CHOICES
                    ],
                    spacing="4",
                    wrap="wrap",
                ),
                border="none",
                padding="0",
            ),
            primary_button(
                rx.icon("bell_plus", size=16, aria_hidden="true"), "Add rule", type="submit", id="rule-submit"
            ),
            rx.text(KIND_HELP, size="2", color=tokens.TEXT_MUTED, id="rule-help"),
            spacing="3",
            align="start",
        ),
        on_submit=N.add_rule,
        reset_on_submit=True,
        aria_label="Add a notification rule",
    )


def delivery_log() -> rx.Component:
    def row(d: rx.Var) -> rx.Component:
        return rx.table.row(
            rx.table.cell(d["when"]),
            rx.table.cell(d["event"]),
            rx.table.cell(rx.code(d["target"])),
            rx.table.cell(d["attempt"]),
            rx.table.row_header_cell(d["status"]),
            rx.table.cell(d["detail"]),
            custom_attrs={"data-status": d["status"], "data-event": d["event"]},
        )

    return rx.cond(
        N.nt_log.length() > 0,
        data_table(
            ["When (UTC)", "Event", "Target", "Attempt", "Status", "Detail"],
            rx.foreach(N.nt_log, row),
            id="delivery-log",
            caption="Delivery log",
        ),
        empty_state("Nothing sent yet.", "delivery-empty"),
    )


def notifications_page() -> rx.Component:
    return shell(
        N,
        project_nav(N.nt_project_id, "Notifications", N.nt_project_name),
        rx.cond(
            N.nt_error != "",
            error_state(N.nt_error, "notifications-error"),
            rx.vstack(
                card(
                    permission_gate(
                        add_rule_form(),
                        allowed=N.can_manage,
                        action=Action.notifications_manage,
                        what="Adding rules",
                        id="add-rule",
                    ),
                    title="Add a rule",
                ),
                rx.cond(
                    N.nt_secret != "",
                    rx.callout(
                        rx.vstack(
                            rx.text("Signing secret of the new webhook: copy it now, it is shown only once."),
                            rx.code(N.nt_secret, id="webhook-secret", word_break="break-all"),
                        ),
                        icon="key_round",
                        color_scheme="green",
                        role="status",
                    ),
                ),
                notice(N.nt_notice, "notifications-notice"),
                maybe_error(N.nt_action_error, "notifications-action-error"),
                card(
                    rx.cond(
                        N.nt_rules.length() > 0,
                        rules_table(),
                        empty_state("No rules yet: events of this project go nowhere.", "rules-empty"),
                    ),
                    title="Rules",
                ),
                card(
                    rx.hstack(
                        rx.text("Every attempt to send, newest first.", size="2", color=tokens.TEXT_MUTED),
                        rx.button(
                            rx.icon("refresh_cw", size=14, aria_hidden="true"),
                            "Refresh",
                            size="1",
                            variant="outline",
                            on_click=N.refresh_log,
                            id="refresh-log",
                        ),
                        justify="between",
                        align="center",
                        width="100%",
                    ),
                    delivery_log(),
                    title="Delivery log",
                ),
                spacing="4",
                align="stretch",
                width="100%",
            ),
        ),
        title="Notifications",
    )
