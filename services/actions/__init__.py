"""The application layer: one function per user action, called by both the REST API and the web UI.

Routes (`app/api/routes/`) and Reflex state classes (`state/`) stay thin: they turn a request or
an event into an `Actor` and arguments, call a function here, and shape its public result. The
functions here authorize, audit, commit and enqueue through `core.operation`; the domain modules
underneath (`services.domain`) hold the rules and never authorize or audit themselves.
One module per resource: jobs, datasets, projects (members, quotas), accounts (sign-in, tokens,
profile), admin, models (artifacts, validation, export, predict), experiments (runs, compare,
analytics).
"""
