"""
Linked API in the sandbox: the current public API (workflows, ``conversations/poll``).

``POST /workflows`` (``st.syncConversation`` / ``nv.syncConversation``, an object or an array), then
``GET /workflows/{id}``: ``pending`` → ``running`` → ``completed``; ``DELETE /workflows/{id}`` cancels;
``POST /conversations/poll`` fails the batch with ``conversationsNotSynced`` when a person is not synced.
"""

from __future__ import annotations

from typing import Any

from airflow_provider_linkmsg.sandbox.core import BadJson, Request, Response, reply
from airflow_provider_linkmsg.sandbox.linkedapi_world import Job, LinkedApiWorld, iso, parse_iso

SYNC_ACTIONS = {"st.syncConversation": "st", "nv.syncConversation": "nv"}
KNOWN_ACTIONS = {
    *SYNC_ACTIONS,
    "st.syncInbox",
    "nv.syncInbox",
    "st.sendMessage",
    "nv.sendMessage",
    "st.checkConnectionStatus",
    "st.manageConversation",
}


class CurrentApi(LinkedApiWorld):
    """The current API's routes and error envelope, on the shared world."""

    @staticmethod
    def _error(status: int, kind: str, message: str, **headers: str) -> Response:
        """The current API's error envelope."""
        return reply(status, {"success": False, "error": {"type": kind, "message": message}}, **headers)

    def _authed_body(self, request: Request) -> tuple[Any, Any, Response | None]:
        """The account and JSON body of a current-API call, or the error to answer instead."""
        account, denied = self._auth(request)
        if denied:
            return account, None, denied
        try:
            return account, request.json(), None
        except BadJson as exc:
            return (
                account,
                None,
                self._error(400, "invalidRequestPayload", f"The request body is not valid JSON: {exc}"),
            )

    def create_workflow(self, request: Request) -> Response:
        account, body, denied = self._authed_body(request)
        if denied:
            return denied
        actions = body if isinstance(body, list) else [body]
        if not actions or not all(isinstance(a, dict) for a in actions):
            return self._error(
                400, "invalidWorkflow", "A workflow is an action object or a non-empty array of them."
            )
        if problem := self._too_many(len(actions)):
            return self._error(400, "invalidWorkflow", problem)
        results, effects = [], []
        for i, action in enumerate(actions):
            kind = action.get("actionType")
            if kind not in KNOWN_ACTIONS:
                return self._error(400, "invalidWorkflow", f"actions[{i}]: unknown actionType {kind!r}.")
            if kind not in SYNC_ACTIONS:
                return self._error(
                    400, "invalidWorkflow", f"actions[{i}]: the sandbox runs only syncConversation."
                )
            url = action.get("personUrl")
            if not isinstance(url, str) or not url:
                return self._error(400, "invalidWorkflow", f"actions[{i}]: 'personUrl' is required.")
            result, syncs = self._sync_result(account, url, SYNC_ACTIONS[kind])
            item: dict[str, Any] = {"actionType": kind, **result}
            if "label" in action:
                item["label"] = action["label"]
            if syncs:
                until = self.sandbox.now() + int(self.options["sync_days"]) * 86400
                item["data"] = {"syncUntil": iso(until)}
                effects.append((url, SYNC_ACTIONS[kind]))
            results.append(item)
        job = Job(
            self._next_id("workflow"),
            "workflow",
            account.token,
            self.sandbox.elapsed(),
            float(self.options["sync_seconds"]),
            results if isinstance(body, list) else results[0],
            effects,
            pending=float(self.options["pending_seconds"]),
            held=bool(self.options["outside_working_hours"]),
            failure=self.options.get("fail_workflows"),
        )
        self.jobs[job.id] = job
        self._count("jobs_started", "workflows")
        return reply(200, {"success": True, "result": self._workflow_view(job)})

    def _workflow_view(self, job: Job) -> dict[str, Any]:
        view: dict[str, Any] = {"workflowId": job.id}
        now = self.sandbox.elapsed()
        if job.cancelled:
            message = "The workflow was cancelled."
            view.update(workflowStatus="failed", failure={"reason": "workflowCancelled", "message": message})
        elif job.held:
            opens = iso(self.sandbox.now() - self.sandbox.now() % 86400 + 86400 + 9 * 3600)
            message = f"The account is outside its working hours; the workflow will start at {opens}."
            view.update(workflowStatus="pending", pendingReason="outsideWorkingHours", message=message)
        elif now < job.created + job.pending:
            view.update(workflowStatus="pending", pendingReason="queued", message="Workflow queued.")
        elif now < job.ready_at():
            view.update(workflowStatus="running", message="Workflow is running.")
        elif job.failure:
            message = "The LinkedIn account is signed out; reconnect it in Linked API."
            view.update(workflowStatus="failed", failure={"reason": job.failure, "message": message})
        else:
            view.update(workflowStatus="completed", completion=job.results)
        return view

    def _workflow(self, request: Request) -> tuple[Job | None, Response | None]:
        account, denied = self._auth(request)
        if denied:
            return None, denied
        job = self.jobs.get(request.params["id"])
        if job is None or job.kind != "workflow" or job.account != account.token:
            return None, self._error(404, "workflowNotFound", f"Workflow {request.params['id']!r} not found.")
        return job, None

    def get_workflow(self, request: Request) -> Response:
        job, denied = self._workflow(request)
        if denied:
            return denied
        return reply(200, {"success": True, "result": self._workflow_view(job)})

    def cancel_workflow(self, request: Request) -> Response:
        job, denied = self._workflow(request)
        if denied:
            return denied
        cancel = not job.applied and not job.cancelled
        if cancel:
            job.cancelled = True
            self._count("cancelled")
        return reply(200, {"success": True, "result": {"cancelled": cancel}})

    def poll(self, request: Request) -> Response:
        account, body, denied = self._authed_body(request)
        if denied:
            return denied
        if not isinstance(body, list) or not body:
            return self._error(400, "invalidRequestPayload", "The body must be a non-empty array.")
        if problem := self._too_many(len(body)):
            return self._error(400, "invalidRequestPayload", problem)
        convs, unsynced = [], []
        for i, item in enumerate(body):
            ok = (
                isinstance(item, dict)
                and isinstance(item.get("personUrl"), str)
                and item.get("type") in ("st", "nv")
            )
            if not ok or ("since" in item and parse_iso(item["since"]) is None):
                msg = f"[{i}] must be {{personUrl, type: st|nv, since?: ISO-8601}}."
                return self._error(400, "invalidRequestPayload", msg)
            conv = self._conversation(account, item["personUrl"], item["type"])
            if conv is None or not conv.synced:
                unsynced.append(f"{item['personUrl']} ({item['type']})")
            convs.append(conv)
        self._count("poll", "get_or_poll")
        if unsynced:
            message = "Conversations are not synced: " + ", ".join(unsynced)
            return self._error(400, "conversationsNotSynced", message)
        result = []
        for item, conv in zip(body, convs, strict=True):
            entry = {"personUrl": item["personUrl"], "type": item["type"]}
            if "since" in item:
                entry["since"] = item["since"]
            messages = [{**m, "threadId": conv.thread_id} for m in self._since(conv, item.get("since"))]
            entry.update(
                messages=messages, syncUntil=iso(conv.sync_until) if conv.sync_until else None, personUrn=None
            )
            result.append(entry)
        return reply(200, {"success": True, "result": result})
