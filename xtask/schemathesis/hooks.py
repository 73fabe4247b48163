"""Schemathesis hooks for `xtask/schemathesis/run.sh`.

The run authenticates as the service's only admin. A generated
`PATCH /users/{id}` or `DELETE /users/{id}` aimed at that admin would demote,
disable or delete it, and every later request would fail with 401 or 403
for reasons that say nothing about the API. Until the service itself refuses
to remove its last enabled admin (409 `last_admin`), this hook keeps the
admin safe: such a request is sent to an id that does not exist instead
(a 404 the document allows). Nothing else is changed.
"""

import os

import schemathesis

PROTECTED_ID = os.environ.get("SCHEMATHESIS_PROTECTED_USER_ID")
# A valid id (a positive 64-bit integer) that no user has.
ELSEWHERE = 9_000_000_000_000_000_000


@schemathesis.hook
def before_call(context, case, **kwargs):
    if PROTECTED_ID is None or case.operation.path != "/users/{id}":
        return
    if case.method.upper() not in ("PATCH", "DELETE"):
        return
    parameters = case.path_parameters or {}
    if str(parameters.get("id")) == PROTECTED_ID:
        parameters["id"] = ELSEWHERE
