"""
Linked API in the sandbox: seed 003's API (``conversations.synchronize``, ``conversations.get``, result links).

``result-handling: long`` (the default) holds the request until the job is done (at most
``long_poll_max_seconds``, then it answers ``processing`` with a result link); ``reslink`` answers
``processing`` at once with a result link, ``GET /account/results/{hash}``, that answers ``complete`` later.
"""

from __future__ import annotations

from typing import Any

from airflow_provider_linkmsg.sandbox.core import BadJson, Request, Response, reply
from airflow_provider_linkmsg.sandbox.linkedapi_world import CHANNELS, Job, LinkedApiWorld, parse_iso


class SeedApi(LinkedApiWorld):
    """The seed's routes and error envelope, on the shared world."""

    @staticmethod
    def _seed_error(status: int, kind: str, message: str) -> Response:
        """The seed's error envelope."""
        return reply(status, {"status": "error", "error": {"errorType": kind, "message": message}})

    def _seed_body(
        self, request: Request, *, with_since: bool
    ) -> tuple[list[tuple[str, Any, Any]], str | None]:
        """``[(list name, person, since)]`` from a seed body, or an error message."""
        try:
            body = request.json()
        except BadJson as exc:
            return [], f"The request body is not valid JSON: {exc}"
        if not isinstance(body, dict) or not set(body) & set(CHANNELS) or set(body) - set(CHANNELS):
            return [], "The body must be an object with 'standard' and/or 'salesNavigator' arrays."
        items = []
        for name in CHANNELS:
            entries = body.get(name, [])
            if not isinstance(entries, list):
                return [], f"'{name}' must be an array."
            for i, entry in enumerate(entries):
                if (
                    not isinstance(entry, dict)
                    or not isinstance(entry.get("person"), str)
                    or not entry["person"]
                ):
                    return [], f"'{name}[{i}].person' must be a LinkedIn URL."
                since = entry.get("since")
                if since is not None and (not with_since or parse_iso(since) is None):
                    return [], f"'{name}[{i}].since' must be an ISO-8601 timestamp."
                items.append((name, entry["person"], since))
        if not items:
            return [], "The body lists no persons."
        if problem := self._too_many(len(items)):
            return [], problem
        return items, None

    def _seed_job(self, request: Request, job: Job) -> Response:
        """Answer a new seed job in the requested result-handling mode."""
        self.jobs[job.id] = job
        mode = (request.header("result-handling") or "long").lower()
        if mode not in ("long", "reslink"):
            return self._seed_error(400, "invalidRequestBody", f"Unknown result-handling {mode!r}.")
        wait = max(0.0, job.ready_at() - self.sandbox.elapsed())
        if mode == "long" and wait <= float(self.options["long_poll_max_seconds"]):
            response = reply(200, {"status": "complete", "completion": job.results})
            response.hold = wait
            return response
        if mode == "long":
            response = self._processing(request, job)
            response.hold = float(self.options["long_poll_max_seconds"])
            return response
        return self._processing(request, job)

    def _processing(self, request: Request, job: Job) -> Response:
        host = request.header("Host") or self.sandbox.base_url.split("://", 1)[-1]
        link = f"http://{host}{self.prefix}/account/results/{job.id}"
        message = "The request is being processed; poll the result link."
        return reply(200, {"status": "processing", "process": {"message": message, "resultLink": link}})

    def seed_synchronize(self, request: Request) -> Response:
        account, denied = self._auth(request, seed=True)
        if denied:
            return denied
        items, problem = self._seed_body(request, with_since=False)
        if problem:
            return self._seed_error(400, "invalidRequestBody", problem)
        completion: dict[str, list] = {name: [] for name in CHANNELS}
        effects = []
        for name, person, _ in items:
            result, syncs = self._sync_result(account, person, CHANNELS[name])
            if not result["success"]:
                result["error"] = {
                    "errorType": result["error"]["type"],
                    "message": result["error"]["message"],
                }
            completion[name].append({"person": person, "result": result})
            if syncs:
                effects.append((person, CHANNELS[name]))
        duration = float(self.options["sync_seconds"])
        job = Job(
            self._next_id("result"),
            "sync",
            account.token,
            self.sandbox.elapsed(),
            duration,
            completion,
            effects,
        )
        self._count("jobs_started", "seed_synchronize")
        return self._seed_job(request, job)

    def seed_get(self, request: Request) -> Response:
        account, denied = self._auth(request, seed=True)
        if denied:
            return denied
        items, problem = self._seed_body(request, with_since=True)
        if problem:
            return self._seed_error(400, "invalidRequestBody", problem)
        self._count("seed_get", "get_or_poll")
        completion: dict[str, list] = {name: [] for name in CHANNELS}
        for name, person, since in items:
            conv = self._conversation(account, person, CHANNELS[name])
            if conv is None or not conv.synced:
                error = {
                    "errorType": "notSynchronized",
                    "message": "The conversation with this person isn't synchronized.",
                }
                result: dict[str, Any] = {"success": False, "error": error}
            else:
                messages = self._since(conv, since)
                result = {"success": True, "data": {"total": len(messages), "messages": messages}}
            completion[name].append({"person": person, "result": result})
        duration = float(self.options["get_seconds"])
        job = Job(self._next_id("result"), "get", account.token, self.sandbox.elapsed(), duration, completion)
        return self._seed_job(request, job)

    def seed_result(self, request: Request) -> Response:
        account, denied = self._auth(request, seed=True)
        if denied:
            return denied
        job = self.jobs.get(request.params["hash"])
        if job is None or job.kind == "workflow" or job.account != account.token:
            return self._seed_error(404, "resultNotFound", f"No result {request.params['hash']!r}.")
        if job.ready_at() > self.sandbox.elapsed():
            return self._processing(request, job)
        return reply(200, {"status": "complete", "completion": job.results})
