"""The dispatch worker: checks, sends to Twill, and reports back on GitHub.

Each dispatch moves through the states below; every move is one conditional
UPDATE (so two workers can never both make it) plus a timeline entry.

    queued ──checks (bridge/prepare.py)──▶ denied | skipped | dropped
       │
       └─claim (lease)──▶ sending ──▶ created ──report──▶ reported
       ▲                    │ │ │
       └─ 429 / 502-504 / ──┘ │ └──▶ uncertain  (may have reached Twill)
          no connection,      └────▶ failed     (refused, or retries ran out)
          with backoff

A claimed dispatch whose worker dies before `sending` is taken over when the
lease runs out; one that dies while `sending` becomes `uncertain`, because
Twill has no idempotency key and a second request could start a second task.
Reporting is its own step with its own retries, so a GitHub failure never
sends anything to Twill again. The same loop posts replies (usage, refusals)
and forgets attachments past their retention.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import and_, case, delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bridge import log
from bridge.budget import RateBudget
from bridge.follow import JobView, merge_prs, poll_delay
from bridge.github import GitHubClient, GitHubError, GitHubNotFound
from bridge.handover import Handover
from bridge.models import Delivery, Dispatch, Redelivery, Reply, StoredFile, utcnow
from bridge.prepare import (
    ActiveTask,
    IssueTasks,
    Prepared,
    prepare,
    when_asked,
)
from bridge.redact import redact
from bridge.repo_access import ConfigCache, PermissionCache
from bridge.report import (
    DispatchView,
    answer_comment,
    answer_is_long,
    answer_marker,
    fit,
    marker,
    reply_marker,
    tracking_comment,
)
from bridge.retry import backoff_seconds
from bridge.settings import Settings
from bridge.store import add_event, get_flag, insert_ignoring_conflict, set_flag
from bridge.triggers import from_snapshot
from bridge.twill import (
    CreatedTask,
    TwillClient,
    TwillError,
    TwillMissing,
    TwillOutcomeUnknown,
    TwillRateLimited,
    TwillRefused,
    TwillUnavailable,
    task_not_found,
)

RECOVERY_INTERVAL = 5.0
# A follow-up or cancel waits this long for an earlier trigger on its issue.
IN_ORDER_WAIT = 3.0
# How long "Twill has no task-status endpoint" holds before it is tried again.
UNAVAILABLE_RECHECK = timedelta(hours=1)
STATUS_FLAG = "task_status"
SWEEP_INTERVAL = 600.0
REPORT_MAX_ATTEMPTS = 12


def _lease_free(model: Any, now: Any) -> Any:
    return or_(model.lease_expires_at.is_(None), model.lease_expires_at < now)


class Worker:
    """One worker loop; `run` until `stop`. Safe to run in many processes at once."""

    def __init__(
        self,
        settings: Settings,
        sessions: async_sessionmaker[AsyncSession],
        owner: str,
        twill: TwillClient | None = None,
        github: GitHubClient | None = None,
        budget: RateBudget | None = None,
        rand: Callable[[], float] = random.random,
        configs: ConfigCache | None = None,
        permissions: PermissionCache | None = None,
        handover: Handover | None = None,
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.owner = owner
        self.twill = twill
        self.github = github
        self.budget = budget
        self.configs = configs or (ConfigCache(github) if github else None)
        self.permissions = permissions or (PermissionCache(github) if github else None)
        self.handover = handover
        self.rand = rand
        self._stopping = asyncio.Event()
        self._wake = asyncio.Event()
        self._last_recovery = 0.0
        self._last_sweep = float("-inf")
        self._secrets = [s.reveal() for s in (settings.twill_api_key,) if s is not None]
        self._status_logged = False

    def wake(self) -> None:
        """Look for work now rather than at the next poll."""
        self._wake.set()

    def stop(self) -> None:
        """Finish the step in progress, then return from `run`."""
        self._stopping.set()
        self._wake.set()

    async def run(self) -> None:
        """Work until stopped; a failing step is logged and the loop goes on."""
        log.info("worker started", worker=self.owner)
        while not self._stopping.is_set():
            try:
                busy = await self.step()
            except (
                Exception
            ) as error:  # a bad row or a database blip must not stop the loop
                log.error(
                    "worker step failed",
                    worker=self.owner,
                    error=type(error).__name__,
                    exc_info=True,
                )
                busy = False
            if not busy and not self._stopping.is_set():
                self._wake.clear()
                try:
                    await asyncio.wait_for(
                        self._wake.wait(), self.settings.worker_poll_seconds
                    )
                except TimeoutError:
                    pass
        await self.release()
        log.info("worker stopped", worker=self.owner)

    async def step(self) -> bool:
        """Do at most one piece of each kind of work; True if anything was done."""
        loop_time = asyncio.get_running_loop().time()
        if loop_time - self._last_recovery >= RECOVERY_INTERVAL:
            self._last_recovery = loop_time
            await self.recover()
        if loop_time - self._last_sweep >= SWEEP_INTERVAL:
            self._last_sweep = loop_time
            await self.sweep_files()
        did = False
        if self.twill is not None and self.github is not None:
            did |= await self.prepare_one()
        if self.twill is not None:
            did |= await self.dispatch_one()
            if self.github is not None and self.settings.follow_tasks:
                did |= await self.poll_one()
        if self.github is not None:
            did |= await self.report_one()
            did |= await self.reply_one()
        return did

    # Checking before sending (bridge/prepare.py).

    async def prepare_one(self) -> bool:
        """Claim one new dispatch and run its checks; True if one was claimed."""
        assert self.github is not None
        ready = [
            Dispatch.status == "queued",
            Dispatch.prepared.is_(False),
            Dispatch.next_attempt_at <= utcnow(),
        ]
        dispatch = await self._claim(Dispatch, ready, Dispatch.next_attempt_at)
        if dispatch is None:
            return False
        fields = trace(dispatch)
        try:
            tasks = await self._issue_tasks(dispatch)
            result = await prepare(
                dispatch,
                self.settings,
                self.github,
                self.configs,
                self.permissions,
                self.handover,
                tasks,
            )
        except GitHubError as error:
            await self._prepare_failed(dispatch, error)
            log.warning(
                "could not check the trigger",
                error=type(error).__name__,
                status=error.status,
                **fields,
            )
            return True
        except Exception as error:
            # A bug or an input nobody foresaw: fail this dispatch, visibly,
            # rather than let every worker trip over it at each lease.
            log.error(
                "checking the trigger failed",
                error=type(error).__name__,
                exc_info=True,
                **fields,
            )
            # GitHubError's base class is final (not retryable): the dispatch fails.
            await self._prepare_failed(
                dispatch,
                GitHubError(f"the checks failed unexpectedly ({type(error).__name__})"),
            )
            return True
        await self._apply(dispatch, result)
        if result.outcome == "wait":
            return True
        log.info(
            "trigger checked", outcome=result.outcome, reason=result.reason, **fields
        )
        if result.outcome == "ready":
            await self._react(dispatch, "eyes")
        return True

    async def _apply(self, dispatch: Dispatch, result: Prepared) -> None:
        now = utcnow()
        owned = [Dispatch.id == dispatch.id, Dispatch.lease_owner == self.owner]
        async with self.sessions() as session:
            if result.outcome == "wait":
                await session.execute(
                    update(Dispatch)
                    .where(*owned)
                    .values(
                        next_attempt_at=now + timedelta(seconds=IN_ORDER_WAIT),
                        lease_owner=None,
                        lease_expires_at=None,
                    )
                )
            elif result.outcome == "drop":
                # Not a trigger after all: no dispatch (so its key is free for
                # an edit that makes it one), and the delivery says why.
                await session.execute(delete(Dispatch).where(*owned))
                await self._set_delivery(
                    session, dispatch, "ignored", result.reason, dispatch_id=None
                )
                await self._queue_reply(session, dispatch, result)
            elif result.outcome == "ready":
                await session.execute(
                    update(Dispatch)
                    .where(*owned)
                    .values(
                        prepared=True,
                        lease_owner=None,
                        lease_expires_at=None,
                        report_pending=True,
                        report_next_at=now,
                        **result.values,
                    )
                )
                await add_event(session, dispatch.id, "queued", result.reason)
            else:
                await session.execute(
                    update(Dispatch)
                    .where(*owned)
                    .values(
                        status=result.outcome,
                        last_error=result.reason,
                        lease_owner=None,
                        lease_expires_at=None,
                    )
                )
                await add_event(session, dispatch.id, result.outcome, result.reason)
                outcome = "denied" if result.outcome == "denied" else "ignored"
                await self._set_delivery(session, dispatch, outcome, result.reason)
                await self._queue_reply(session, dispatch, result)
            await session.commit()

    async def _queue_reply(
        self, session: AsyncSession, dispatch: Dispatch, result: Prepared
    ) -> None:
        """The reply the checks ask for, once per key (the caller commits)."""
        if not (result.reply and result.reply_key):
            return
        now = utcnow()
        await insert_ignoring_conflict(
            session,
            Reply,
            "key",
            {
                "key": result.reply_key,
                "delivery_id": dispatch.delivery_id,
                "installation_id": dispatch.installation_id,
                "repository": dispatch.repository,
                "issue_number": dispatch.issue_number,
                "body": result.reply,
                "status": "pending",
                "attempts": 0,
                "next_attempt_at": now,
                "created_at": now,
                "updated_at": now,
            },
        )

    async def _set_delivery(
        self,
        session: AsyncSession,
        dispatch: Dispatch,
        outcome: str,
        reason: str,
        **values: Any,
    ) -> None:
        await session.execute(
            update(Delivery)
            .where(Delivery.delivery_id == dispatch.delivery_id)
            .values(outcome=outcome, reason=reason, **values)
        )

    async def _prepare_failed(self, dispatch: Dispatch, error: GitHubError) -> None:
        message = redact(error.message, self._secrets)
        age = (utcnow() - dispatch.created_at).total_seconds()
        if error.retryable and age < self.settings.max_retry_age_seconds:
            # No count of checks is kept; the wait grows with the dispatch's age.
            step = min(1 + int(age // 60), 8)
            delay = max(
                (error.retry_at or 0) - utcnow().timestamp(),
                backoff_seconds(step, rand=self.rand),
            )
            values: dict[str, Any] = {
                "next_attempt_at": utcnow() + timedelta(seconds=delay),
                "last_error": message,
            }
            status, reason = (
                "queued",
                f"could not check the trigger yet ({message}); retrying in {delay:.0f} s",
            )
        else:
            values = {
                "status": "failed",
                "last_error": f"could not check the trigger: {message}",
                "report_pending": True,
                "report_next_at": utcnow(),
            }
            status, reason = "failed", values["last_error"]
        async with self.sessions() as session:
            await session.execute(
                update(Dispatch)
                .where(Dispatch.id == dispatch.id, Dispatch.lease_owner == self.owner)
                .values(lease_owner=None, lease_expires_at=None, **values)
            )
            await add_event(session, dispatch.id, status, reason)
            await session.commit()

    async def _react(self, dispatch: Dispatch, content: str) -> None:
        """Add a reaction to the triggering comment (or the issue), once; best effort."""
        assert self.github is not None
        if content in dispatch.reactions.split(","):
            return
        try:
            await self.github.react(
                dispatch.installation_id
                or await self.github.repo_installation(dispatch.repository),
                dispatch.repository,
                content,
                dispatch.issue_number,
                dispatch.trigger_comment_id,
            )
        except GitHubError as error:
            # A missing reaction is cosmetic; the tracking comment carries the news.
            log.info(
                "reaction not added",
                content=content,
                status=error.status,
                **trace(dispatch),
            )
            return
        async with self.sessions() as session:
            done = ",".join(filter(None, [*dispatch.reactions.split(","), content]))
            await session.execute(
                update(Dispatch)
                .where(Dispatch.id == dispatch.id)
                .values(reactions=done)
            )
            await session.commit()
        dispatch.reactions = done

    # Sending to Twill.

    async def dispatch_one(self) -> bool:
        """Claim one due dispatch and send it; True if one was claimed."""
        assert self.twill is not None
        if self.budget is not None and await self.budget.paused_for() > 0:
            return False
        dispatch = await self._claim_dispatch()
        if dispatch is None:
            return False
        if not await self._wait_for_slot(dispatch):
            return True
        if not await self._mark_sending(dispatch):
            return True
        fields = trace(dispatch)
        log.info(
            "sending to twill",
            action=dispatch.action,
            attempt=dispatch.attempts,
            **fields,
        )
        try:
            if dispatch.action == "message":
                target = await self._target(dispatch)
                job = await self.twill.send_message(
                    target.twill_task_id or "", dispatch.request
                )
            elif dispatch.action == "cancel":
                await self.twill.cancel_task(str(dispatch.request.get("task")))
            else:
                created = await self.twill.create_task(dispatch.request)
        except TwillError as error:
            if isinstance(error, TwillRateLimited) and self.budget is not None:
                await self.budget.pause(_retry_after(error))
            if dispatch.action == "message" and isinstance(error, TwillMissing):
                await self._message_missed(dispatch, error)
            elif dispatch.action == "cancel" and isinstance(error, TwillOutcomeUnknown):
                # Cancelling twice does no harm, so an unknown outcome is retried.
                await self._after_error(
                    dispatch, TwillUnavailable(error.message, error.status)
                )
            else:
                await self._after_error(dispatch, error)
            log.warning(
                "twill refused or failed",
                action=dispatch.action,
                error=type(error).__name__,
                status=error.status,
                **fields,
            )
        else:
            if dispatch.action == "message":
                await self._after_message(dispatch, target, job)
                log.info("follow-up sent", task_id=target.twill_task_id, **fields)
            elif dispatch.action == "cancel":
                await self._after_cancel(dispatch)
                log.info(
                    "task cancelled", task_id=dispatch.request.get("task"), **fields
                )
            else:
                await self._after_created(dispatch, created)
                log.info(
                    "task created",
                    task_id=created.task_id,
                    job_id=created.job_id,
                    **fields,
                )
        return True

    async def _wait_for_slot(self, dispatch: Dispatch) -> bool:
        """Wait for a rate-budget slot; False (claim given back) if stopped or paused."""
        if self.budget is None:
            return True
        slot = await self.budget.reserve()
        if slot.wait > 0:
            async with self.sessions() as session:
                await session.execute(
                    update(Dispatch)
                    .where(
                        Dispatch.id == dispatch.id, Dispatch.lease_owner == self.owner
                    )
                    .values(lease_expires_at=slot.at + self._lease())
                )
                await session.commit()
            try:
                await asyncio.wait_for(self._stopping.wait(), slot.wait)
            except TimeoutError:
                pass
        # A 429 seen by another replica while we waited pauses us too.
        if self._stopping.is_set() or await self.budget.paused_for() > 0:
            await self._unclaim(dispatch)
            return False
        return True

    async def _unclaim(self, dispatch: Dispatch) -> None:
        async with self.sessions() as session:
            await session.execute(
                update(Dispatch)
                .where(
                    Dispatch.id == dispatch.id,
                    Dispatch.lease_owner == self.owner,
                    Dispatch.status == "queued",
                )
                .values(lease_owner=None, lease_expires_at=None)
            )
            await session.commit()

    async def _claim(
        self, model: Any, ready: list[Any], order: Any, **values: Any
    ) -> Any:
        """Lease the first row of `model` meeting `ready` (and free); it, or None.

        One UPDATE ... WHERE id = (SELECT ... [FOR UPDATE SKIP LOCKED]), so two
        workers never take the same row and never wait for each other's rows.
        """
        now = utcnow()
        free = _lease_free(model, now)
        async with self.sessions() as session:
            due = (
                select(model.id).where(*ready, free).order_by(order, model.id).limit(1)
            )
            if session.get_bind().dialect.name == "postgresql":
                due = due.with_for_update(skip_locked=True)
            claimed = await session.scalar(
                update(model)
                .where(model.id == due.scalar_subquery(), *ready, free)
                .values(
                    lease_owner=self.owner,
                    lease_expires_at=now + self._lease(),
                    **values,
                )
                .returning(model.id)
            )
            await session.commit()
            if claimed is None:
                return None
            return await session.get(model, claimed)

    async def _claim_dispatch(self) -> Dispatch | None:
        now = utcnow()
        ready = [
            Dispatch.status == "queued",
            Dispatch.prepared.is_(True),
            Dispatch.next_attempt_at <= now,
        ]
        return await self._claim(Dispatch, ready, Dispatch.next_attempt_at)  # type: ignore[no-any-return]

    async def _mark_sending(self, dispatch: Dispatch) -> bool:
        now = utcnow()
        async with self.sessions() as session:
            moved = await session.execute(
                update(Dispatch)
                .where(
                    Dispatch.id == dispatch.id,
                    Dispatch.status == "queued",
                    Dispatch.lease_owner == self.owner,
                )
                .values(
                    status="sending",
                    attempts=Dispatch.attempts + 1,
                    lease_expires_at=now + self._lease(),
                )
            )
            if moved.rowcount != 1:  # type: ignore[attr-defined]
                await session.rollback()
                return False
            await add_event(
                session, dispatch.id, "sending", f"attempt {dispatch.attempts + 1}"
            )
            await session.commit()
        dispatch.attempts += 1
        return True

    async def _after_created(self, dispatch: Dispatch, created: CreatedTask) -> None:
        # `uncertain` too: if a slow answer lost the lease, the task still exists
        # and its id is worth more than the guess that it might not.
        await self._finish(
            dispatch,
            "created",
            f"task {created.task_id}, job {created.job_id} ({created.job_status})",
            allowed=("sending", "uncertain"),
            twill_task_id=created.task_id,
            twill_task_slug=created.slug,
            twill_task_url=created.url,
            twill_job_id=created.job_id,
            twill_job_status=created.job_status,
            twill_response=created.raw,
            last_error=None,
            report_pending=True,
            report_next_at=utcnow(),
            **await self._start_following(created.job_id, created.job_status),
        )

    async def _start_following(self, job_id: str, job_status: str) -> dict[str, Any]:
        """The columns that put a just-created task on the poller's list."""
        if not self.settings.follow_tasks:
            return {}
        job = JobView(id=job_id, status=job_status.upper()).to_json()
        until = await self._status_unavailable_until()
        if until is not None:
            # Read once the mark runs out: Twill may have gained the endpoint.
            return {"follow": "unavailable", "job": job, "poll_next_at": until}
        first = poll_delay(
            0,
            self.settings.poll_first_seconds,
            self.settings.poll_max_seconds,
            self.rand,
        )
        return {
            "follow": "active",
            "job": job,
            "polls": 0,
            "poll_next_at": utcnow() + timedelta(seconds=first),
        }

    async def _target(self, dispatch: Dispatch) -> Dispatch:
        """The dispatch whose task a follow-up or cancel addresses."""
        async with self.sessions() as session:
            target = await session.get(Dispatch, dispatch.target_dispatch_id)
        if target is None or not target.twill_task_id:
            raise TwillRefused("the task this follow-up was meant for is gone")
        return target

    async def _after_message(
        self, dispatch: Dispatch, target: Dispatch, job: JobView
    ) -> None:
        """A follow-up went in: its task now runs the new job."""
        await self._finish(
            dispatch,
            "created",
            f"follow-up to task {target.twill_task_id}: job {job.id} ({job.status})",
            twill_task_id=target.twill_task_id,
            twill_task_slug=target.twill_task_slug,
            twill_task_url=target.twill_task_url,
            twill_job_id=job.id,
            twill_job_status=job.status,
            last_error=None,
            report_pending=True,
            report_next_at=utcnow(),
        )
        earlier = JobView.from_json(target.job)
        prs = merge_prs(earlier.prs if earlier else (), job.prs)
        following = await self._start_following(job.id, job.status)
        if "job" in following:
            following["job"] = replace(job, prs=prs).to_json()
        await self._note_on_target(
            target.id,
            {"kind": "message", "dispatch": dispatch.id, "job": job.id},
            dispatch,
            twill_job_id=job.id,
            twill_job_status=job.status,
            answer_comment_id=None,
            **following,
        )

    async def _after_cancel(self, dispatch: Dispatch) -> None:
        """Twill cancelled the task: read its status soon, and say who asked."""
        async with self.sessions() as session:
            target = await session.get(Dispatch, dispatch.target_dispatch_id)
        await self._finish(
            dispatch,
            "created",
            f"cancelled task {dispatch.request.get('task')}",
            twill_task_id=str(dispatch.request.get("task")),
            twill_task_url=target.twill_task_url if target else None,
            last_error=None,
            report_pending=True,
            report_next_at=utcnow(),
        )
        await self._note_on_target(
            dispatch.target_dispatch_id,
            {"kind": "cancel", "dispatch": dispatch.id},
            dispatch,
            poll_next_at=utcnow(),
        )

    async def _note_on_target(
        self,
        target_id: int | None,
        note: dict[str, Any],
        dispatch: Dispatch,
        **values: Any,
    ) -> None:
        """Add a follow-up or cancel to the target's list; its comment is edited."""
        note = {**note, "by": dispatch.requester, "at": utcnow().isoformat()}
        async with self.sessions() as session:
            target = await session.get(Dispatch, target_id, with_for_update=True)
            if target is None:
                return
            await session.execute(
                update(Dispatch)
                .where(Dispatch.id == target.id)
                .values(
                    follow_ups=[*(target.follow_ups or []), note],
                    report_pending=True,
                    report_next_at=utcnow(),
                    **values,
                )
            )
            await add_event(
                session,
                target.id,
                target.status,
                f"{note['kind']} from @{dispatch.requester} (dispatch {dispatch.id})",
            )
            await session.commit()

    async def _message_missed(self, dispatch: Dispatch, error: TwillError) -> None:
        """404/405 on a follow-up: the task or the endpoint is gone; start a new task.

        The dispatch goes back through the checks, which compose a create once
        its target no longer counts as running.
        """
        message = redact(error.message, self._secrets)
        async with self.sessions() as session:
            await session.execute(
                update(Dispatch)
                .where(Dispatch.id == dispatch.target_dispatch_id)
                .values(
                    follow="gone" if task_not_found(error) else "unavailable",
                    poll_next_at=None,
                )
            )
            await session.commit()
        await self._finish(
            dispatch,
            "queued",
            f"the follow-up was refused ({message}); starting a new task instead",
            action="create",
            target_dispatch_id=None,
            prepared=False,
            attempts=0,
            next_attempt_at=utcnow(),
        )

    async def _after_error(self, dispatch: Dispatch, error: TwillError) -> None:
        message = redact(error.message, self._secrets)
        now = utcnow()
        age = (now - dispatch.created_at).total_seconds()
        too_old = age >= self.settings.max_retry_age_seconds
        if isinstance(error, TwillRateLimited) and not too_old:
            await self._requeue(dispatch, message, _retry_after(error))
        elif (
            isinstance(error, TwillUnavailable)
            and not too_old
            and dispatch.attempts < self.settings.max_attempts
        ):
            await self._requeue(
                dispatch, message, backoff_seconds(dispatch.attempts, rand=self.rand)
            )
        elif isinstance(error, TwillOutcomeUnknown):
            await self._finish(
                dispatch,
                "uncertain",
                message,
                last_error=message,
                report_pending=True,
                report_next_at=now,
            )
        else:
            if error.retryable:
                message = f"gave up after {dispatch.attempts} attempts over {age:.0f} s: {message}"
            await self._finish(
                dispatch,
                "failed",
                message,
                last_error=message,
                report_pending=True,
                report_next_at=now,
            )

    async def _requeue(self, dispatch: Dispatch, message: str, wait: float) -> None:
        await self._finish(
            dispatch,
            "queued",
            f"{message}; retrying in {wait:.0f} s",
            last_error=message,
            next_attempt_at=utcnow() + timedelta(seconds=wait),
        )

    async def _finish(
        self,
        dispatch: Dispatch,
        status: str,
        reason: str,
        allowed: tuple[str, ...] = ("sending",),
        **values: Any,
    ) -> None:
        """Move a dispatch we are sending to `status`, releasing the lease."""
        async with self.sessions() as session:
            owned = and_(
                Dispatch.status == "sending", Dispatch.lease_owner == self.owner
            )
            taken_over = and_(
                Dispatch.status.in_(allowed), Dispatch.status != "sending"
            )
            moved = await session.execute(
                update(Dispatch)
                .where(Dispatch.id == dispatch.id, or_(owned, taken_over))
                .values(
                    status=status, lease_owner=None, lease_expires_at=None, **values
                )
            )
            if moved.rowcount != 1:  # type: ignore[attr-defined]
                log.warning(
                    "dispatch moved while it was being sent",
                    wanted=status,
                    **trace(dispatch),
                )
                await session.rollback()
                return
            await add_event(session, dispatch.id, status, reason)
            await session.commit()

    # Following the task (bridge/follow.py).

    async def poll_one(self) -> bool:
        """Read the status of one followed task that is due; True if one was read.

        Reads take only spare rate-budget slots and never run while a create
        is due, so following many tasks never delays handing over a new one.
        """
        assert self.twill is not None
        now = utcnow()
        ready = [
            Dispatch.follow.in_(("active", "unavailable")),
            Dispatch.poll_next_at <= now,
            Dispatch.twill_task_id.is_not(None),
        ]
        async with self.sessions() as session:
            due = await session.scalar(select(Dispatch.id).where(*ready).limit(1))
            if due is None or await session.scalar(_creates_due(now)):
                return False
        if self.budget is not None and not await self.budget.reserve_spare(
            self.settings.poll_share
        ):
            return False
        dispatch = await self._claim(Dispatch, ready, Dispatch.poll_next_at)
        if dispatch is None:
            return False
        fields = trace(dispatch)
        try:
            job = await self.twill.get_task(dispatch.twill_task_id or "")
        except TwillMissing as error:
            await self._status_missing(dispatch, error)
            return True
        except TwillError as error:
            if isinstance(error, TwillRateLimited) and self.budget is not None:
                await self.budget.pause(_retry_after(error))
            await self._polled(dispatch, None, retry_after=error.retry_after)
            log.info(
                "task status not read",
                error=type(error).__name__,
                status=error.status,
                **fields,
            )
            return True
        ended = await self._polled(dispatch, job)
        if dispatch.follow == "unavailable":
            async with self.sessions() as session:
                await set_flag(session, STATUS_FLAG, "available")
                await session.commit()
            log.info("task status available again", **fields)
        if ended is not None:
            log.info("task ended", status=ended.status, job_id=ended.id, **fields)
            await self._react_to_end(dispatch, ended)
        return True

    async def _polled(
        self,
        dispatch: Dispatch,
        job: JobView | None,
        retry_after: float | None = None,
    ) -> JobView | None:
        """Write down a status read; the job if it has just ended."""
        s = self.settings
        now = utcnow()
        wait = poll_delay(
            dispatch.polls + 1, s.poll_first_seconds, s.poll_max_seconds, self.rand
        )
        if retry_after is not None:
            wait = max(wait, retry_after)
        values: dict[str, Any] = {
            "polls": dispatch.polls + 1,
            "poll_next_at": now + timedelta(seconds=wait),
            "lease_owner": None,
            "lease_expires_at": None,
        }
        earlier = JobView.from_json(dispatch.job)
        ended = None
        if job is not None:
            job = replace(job, prs=merge_prs(earlier.prs if earlier else (), job.prs))
            if job != earlier:
                values |= {
                    "job": job.to_json(),
                    "twill_job_id": job.id,
                    "twill_job_status": job.status,
                    "report_pending": True,
                    "report_next_at": now,
                }
            if dispatch.follow == "unavailable":
                # Twill answers again: follow as usual, and say so on the issue.
                values |= {
                    "follow": "active",
                    "report_pending": True,
                    "report_next_at": now,
                }
            if job.terminal:
                values |= {"follow": "done", "poll_next_at": None}
                ended = job if earlier is None or not earlier.terminal else None
        age = (now - _followed_since(dispatch)).total_seconds()
        if values.get("follow") in (None, "active") and age >= s.poll_max_age_seconds:
            values |= {
                "follow": "expired",
                "poll_next_at": None,
                "report_pending": True,
                "report_next_at": now,
            }
        async with self.sessions() as session:
            # A follow-up sent meanwhile started a new job; this read is stale.
            moved = await session.execute(
                update(Dispatch)
                .where(
                    Dispatch.id == dispatch.id,
                    Dispatch.lease_owner == self.owner,
                    _same(Dispatch.twill_job_id, dispatch.twill_job_id),
                )
                .values(**values)
            )
            if moved.rowcount != 1:  # type: ignore[attr-defined]
                await session.execute(
                    update(Dispatch)
                    .where(
                        Dispatch.id == dispatch.id, Dispatch.lease_owner == self.owner
                    )
                    .values(lease_owner=None, lease_expires_at=None)
                )
                await session.commit()
                return None
            if "job" in values and job is not None:
                await add_event(
                    session, dispatch.id, dispatch.status, f"job {job.id}: {job.status}"
                )
            if values.get("follow") == "expired":
                await add_event(
                    session,
                    dispatch.id,
                    dispatch.status,
                    f"stopped following the task after {age / 3600:.0f} h",
                )
            await session.commit()
        return ended

    async def _status_missing(self, dispatch: Dispatch, error: TwillError) -> None:
        """404/405 on a status read: Twill lost this task, or lacks the endpoint.

        Twill's own "no such task" answer ends following that task alone. Any
        other 404, or a 405, means the endpoint is missing: logged once per
        process, every replica stops reading for UNAVAILABLE_RECHECK and goes on
        dispatching as before, and the task is read again when the mark runs out.
        """
        now = utcnow()
        gone = task_not_found(error)
        reason = f"HTTP {error.status}"
        async with self.sessions() as session:
            if not gone:
                await set_flag(session, STATUS_FLAG, f"unavailable: {reason}")
            await session.execute(
                update(Dispatch)
                .where(Dispatch.id == dispatch.id)
                .values(
                    follow="gone" if gone else "unavailable",
                    poll_next_at=None if gone else now + UNAVAILABLE_RECHECK,
                    polls=dispatch.polls + 1,
                    lease_owner=None,
                    lease_expires_at=None,
                    report_pending=True,
                    report_next_at=now,
                )
            )
            await add_event(
                session,
                dispatch.id,
                dispatch.status,
                "Twill no longer has this task"
                if gone
                else f"task status is not available from Twill ({reason})",
            )
            await session.commit()
        if not gone and not self._status_logged:
            self._status_logged = True
            log.warning(
                "task status unavailable; following tasks stops, dispatching goes on",
                status=error.status,
                **trace(dispatch),
            )

    async def _status_unavailable_until(self) -> Any:
        """When the "no status endpoint" mark runs out, if it is on; else None."""
        async with self.sessions() as session:
            flag = await get_flag(session, STATUS_FLAG)
        if flag is None or not flag.value.startswith("unavailable"):
            return None
        until = flag.updated_at + UNAVAILABLE_RECHECK
        return until if until > utcnow() else None

    async def _status_available(self) -> bool:
        """False for a while after Twill answered 404/405 to a status read."""
        return await self._status_unavailable_until() is None

    async def _react_to_end(self, dispatch: Dispatch, job: JobView) -> None:
        """🎉 or 👎 on the comment that started the job that just ended."""
        content = {"COMPLETED": "hooray", "FAILED": "-1"}.get(job.status)
        if content is None:
            return
        async with self.sessions() as session:
            starter = await session.scalar(
                select(Dispatch)
                .where(
                    Dispatch.twill_job_id == job.id,
                    or_(
                        Dispatch.id == dispatch.id,
                        Dispatch.target_dispatch_id == dispatch.id,
                    ),
                )
                .order_by(Dispatch.id.desc())
                .limit(1)
            )
        await self._react(starter or dispatch, content)

    async def _superseded(self, dispatch: Dispatch) -> bool:
        """Whether a redelivered trigger was overtaken by a later one on its issue.

        Only deliveries that bridge/redeliver.py asked GitHub to resend are
        judged: they can be hours old, and the maintainer may have asked again
        (or cancelled) in the meantime.
        """
        _, trigger = from_snapshot(dispatch.snapshot or {})
        asked = when_asked(trigger)
        if asked is None:
            return False
        async with self.sessions() as session:
            redelivered = await session.scalar(
                select(Redelivery.id).where(Redelivery.guid == dispatch.delivery_id)
            )
            if redelivered is None:
                return False
            others = (
                await session.scalars(
                    select(Dispatch.snapshot)
                    .where(
                        Dispatch.repository == dispatch.repository,
                        Dispatch.issue_number == dispatch.issue_number,
                        Dispatch.id != dispatch.id,
                        # Acted on: sent, or being sent. A refused or queued one
                        # (a stranger's, or another lost one) overtakes nothing.
                        Dispatch.status.in_(
                            ("sending", "created", "reported", "uncertain")
                        ),
                    )
                    .order_by(Dispatch.id.desc())
                    .limit(50)
                )
            ).all()
        for snapshot in others:
            later = when_asked(from_snapshot(snapshot or {})[1]) if snapshot else None
            if later is not None and later > asked:
                return True
        return False

    async def _issue_tasks(self, dispatch: Dispatch) -> IssueTasks:
        """The issue's other dispatches, for routing follow-ups and cancels."""
        same_issue = [
            Dispatch.repository == dispatch.repository,
            Dispatch.issue_number == dispatch.issue_number,
            Dispatch.id != dispatch.id,
        ]
        async with self.sessions() as session:
            pending = await session.scalar(
                select(Dispatch.id)
                .where(
                    *same_issue,
                    Dispatch.id < dispatch.id,
                    Dispatch.status.in_(("queued", "sending")),
                )
                .limit(1)
            )
            rows = (
                await session.scalars(
                    select(Dispatch)
                    .where(
                        *same_issue,
                        Dispatch.action == "create",
                        Dispatch.twill_task_id.is_not(None),
                        Dispatch.status.in_(("created", "reported")),
                        or_(
                            Dispatch.follow.is_(None),
                            Dispatch.follow.in_(("active", "unavailable", "done")),
                        ),
                    )
                    .order_by(Dispatch.id.desc())
                    .limit(20)
                )
            ).all()
        tasks = [_active_task(row) for row in rows]
        newest = tasks[0] if tasks else None
        return IssueTasks(
            superseded=await self._superseded(dispatch),
            earlier_pending=pending is not None,
            # A task whose job ended is no longer there to cancel.
            active=tuple(
                t for t, row in zip(tasks, rows, strict=True) if row.follow != "done"
            ),
            follow_ups=self.settings.follow_tasks and await self._status_available(),
            continuable=newest if newest is not None and _continues(rows[0]) else None,
        )

    # Reporting on GitHub.

    async def report_one(self) -> bool:
        """Claim one dispatch whose issue needs telling and post or edit its comment."""
        assert self.github is not None
        ready = [
            Dispatch.report_pending.is_(True),
            Dispatch.report_next_at <= utcnow(),
            Dispatch.status != "sending",
        ]
        dispatch = await self._claim(
            Dispatch,
            ready,
            Dispatch.report_next_at,
            report_attempts=Dispatch.report_attempts + 1,
        )
        if dispatch is None:
            return False
        values: dict[str, Any] = {}
        try:
            if dispatch.action == "message" and dispatch.status == "created":
                # A follow-up that went in is told on its task's comment.
                comment_id, installation_id = None, dispatch.installation_id
            else:
                answer_id = await self._post_answer(dispatch)
                if answer_id is not None:
                    values["answer_comment_id"] = answer_id
                    dispatch.answer_comment_id = answer_id
                comment_id, installation_id = await self._post_tracking_comment(
                    dispatch
                )
        except GitHubError as error:
            await self._report_failed(dispatch, error)
            return True
        except Exception as error:
            # A bug or an answer nobody foresaw: give up on this report, visibly,
            # rather than trip over it again at every lease.
            log.error(
                "telling the issue failed",
                error=type(error).__name__,
                exc_info=True,
                **trace(dispatch),
            )
            await self._report_failed(
                dispatch,
                GitHubError(f"the report failed unexpectedly ({type(error).__name__})"),
            )
            return True
        async with self.sessions() as session:
            status = "reported" if dispatch.status == "created" else dispatch.status
            await session.execute(
                update(Dispatch)
                .where(Dispatch.id == dispatch.id, Dispatch.lease_owner == self.owner)
                .values(
                    comment_id=comment_id or dispatch.comment_id,
                    installation_id=installation_id,
                    # News that came in while we posted keeps the report pending.
                    report_pending=case(
                        (
                            _same(Dispatch.report_next_at, dispatch.report_next_at),
                            False,
                        ),
                        else_=True,
                    ),
                    report_error=None,
                    status=status,
                    lease_owner=None,
                    lease_expires_at=None,
                    **values,
                )
            )
            if status != dispatch.status or (
                comment_id is not None and dispatch.comment_id is None
            ):
                told = f"comment {comment_id} on the issue" if comment_id else "sent"
                await add_event(session, dispatch.id, status, told)
            await session.commit()
        if dispatch.status in ("created", "failed"):
            sent = "+1" if dispatch.action == "cancel" else "rocket"
            await self._react(
                dispatch, sent if dispatch.status == "created" else "confused"
            )
        log.info("issue told", status=status, comment_id=comment_id, **trace(dispatch))
        return True

    async def _post_answer(self, dispatch: Dispatch) -> int | None:
        """Post a long final answer as its own comment, once; its id, or None."""
        assert self.github is not None
        job = JobView.from_json(dispatch.job)
        if job is None or not job.terminal or not answer_is_long(job):
            return None
        if dispatch.answer_comment_id is not None:
            return None
        installation = dispatch.installation_id or await self.github.repo_installation(
            dispatch.repository
        )
        if dispatch.report_attempts > 1:
            found = await self.github.find_comment(
                installation,
                dispatch.repository,
                dispatch.issue_number,
                answer_marker(dispatch.id, job.id),
            )
            if found is not None:
                return found
        return await self.github.create_comment(
            installation,
            dispatch.repository,
            dispatch.issue_number,
            answer_comment(_view(dispatch), job),
        )

    async def _post_tracking_comment(self, dispatch: Dispatch) -> tuple[int, int]:
        assert self.github is not None
        installation = dispatch.installation_id or await self.github.repo_installation(
            dispatch.repository
        )
        body = tracking_comment(
            _view(dispatch), self.settings.poll_max_age_seconds / 3600
        )
        if dispatch.comment_id is not None:
            try:
                await self.github.update_comment(
                    installation, dispatch.repository, dispatch.comment_id, body
                )
                return dispatch.comment_id, installation
            except GitHubNotFound:
                # Someone deleted it; the issue still deserves the news.
                log.info("tracking comment gone; posting a new one", **trace(dispatch))
                comment_id = await self.github.create_comment(
                    installation, dispatch.repository, dispatch.issue_number, body
                )
                return comment_id, installation
        if dispatch.report_attempts > 1:
            # An earlier attempt may have posted before its answer was lost.
            found = await self.github.find_comment(
                installation,
                dispatch.repository,
                dispatch.issue_number,
                marker(dispatch.id),
            )
            if found is not None:
                await self.github.update_comment(
                    installation, dispatch.repository, found, body
                )
                return found, installation
        comment_id = await self.github.create_comment(
            installation, dispatch.repository, dispatch.issue_number, body
        )
        return comment_id, installation

    async def _report_failed(self, dispatch: Dispatch, error: GitHubError) -> None:
        message = redact(error.message, self._secrets)
        give_up = not error.retryable or dispatch.report_attempts >= REPORT_MAX_ATTEMPTS
        if error.retry_at is not None:
            delay = max(error.retry_at - utcnow().timestamp(), 1.0)
        else:
            delay = backoff_seconds(dispatch.report_attempts, rand=self.rand)
        async with self.sessions() as session:
            await session.execute(
                update(Dispatch)
                .where(Dispatch.id == dispatch.id, Dispatch.lease_owner == self.owner)
                .values(
                    report_error=message,
                    report_pending=not give_up,
                    report_next_at=utcnow() + timedelta(seconds=delay),
                    lease_owner=None,
                    lease_expires_at=None,
                )
            )
            reason = f"could not tell the issue: {message}" + (
                "; giving up" if give_up else f"; retrying in {delay:.0f} s"
            )
            await add_event(session, dispatch.id, dispatch.status, reason)
            await session.commit()
        log.warning(
            "could not tell the issue",
            status=error.status,
            error=type(error).__name__,
            give_up=give_up,
            **trace(dispatch),
        )

    # Replies (usage and refusals).

    async def reply_one(self) -> bool:
        """Post one pending reply; True if one was claimed."""
        assert self.github is not None
        ready = [Reply.status == "pending", Reply.next_attempt_at <= utcnow()]
        reply = await self._claim(
            Reply, ready, Reply.next_attempt_at, attempts=Reply.attempts + 1
        )
        if reply is None:
            return False
        values: dict[str, Any]
        try:
            installation = reply.installation_id or await self.github.repo_installation(
                reply.repository
            )
            body = fit(f"{reply_marker(reply.key)}\n{reply.body}")
            found = None
            if reply.attempts > 1:
                found = await self.github.find_comment(
                    installation,
                    reply.repository,
                    reply.issue_number,
                    reply_marker(reply.key),
                )
            comment_id = found or await self.github.create_comment(
                installation, reply.repository, reply.issue_number, body
            )
            values = {"status": "posted", "comment_id": comment_id, "last_error": None}
        except GitHubError as error:
            give_up = not error.retryable or reply.attempts >= REPORT_MAX_ATTEMPTS
            delay = max(
                (error.retry_at or 0) - utcnow().timestamp(),
                backoff_seconds(reply.attempts, rand=self.rand),
            )
            values = {
                "status": "failed" if give_up else "pending",
                "last_error": redact(error.message, self._secrets),
                "next_attempt_at": utcnow() + timedelta(seconds=delay),
            }
        async with self.sessions() as session:
            await session.execute(
                update(Reply)
                .where(Reply.id == reply.id, Reply.lease_owner == self.owner)
                .values(lease_owner=None, lease_expires_at=None, **values)
            )
            await session.commit()
        log.info(
            "reply " + values["status"],
            delivery_id=reply.delivery_id,
            repository=reply.repository,
            issue=reply.issue_number,
        )
        return True

    # Housekeeping.

    async def recover(self) -> None:
        """Mark dispatches whose worker died mid-request as uncertain."""
        now = utcnow()
        async with self.sessions() as session:
            stale = (
                await session.scalars(
                    select(Dispatch).where(
                        Dispatch.status == "sending", Dispatch.lease_expires_at < now
                    )
                )
            ).all()
            reason = (
                "the worker stopped while the request to Twill was in flight; "
                "it may or may not have created a task"
            )
            for dispatch in stale:
                moved = await session.execute(
                    update(Dispatch)
                    .where(
                        Dispatch.id == dispatch.id,
                        Dispatch.status == "sending",
                        Dispatch.lease_expires_at < now,
                    )
                    .values(
                        status="uncertain",
                        last_error=reason,
                        lease_owner=None,
                        lease_expires_at=None,
                        report_pending=True,
                        report_next_at=now,
                    )
                )
                if moved.rowcount == 1:  # type: ignore[attr-defined]
                    await add_event(session, dispatch.id, "uncertain", reason)
                    log.warning(
                        "dispatch uncertain after a lost worker", **trace(dispatch)
                    )
            await session.commit()

    async def sweep_files(self) -> int:
        """Forget attachments past their retention period; how many went."""
        now = utcnow()
        async with self.sessions() as session:
            expired = (
                await session.scalars(
                    select(StoredFile.id).where(StoredFile.expires_at < now)
                )
            ).all()
            if expired:
                await session.execute(
                    delete(StoredFile).where(StoredFile.id.in_(expired))
                )
            await session.commit()
        folder = self.settings.files_dir
        if folder is not None:
            for file_id in expired:
                await asyncio.to_thread(Path(folder, file_id).unlink, missing_ok=True)
        if expired:
            log.info("attachments past retention removed", count=len(expired))
        return len(expired)

    async def release(self) -> None:
        """Give back leases on work this worker claimed but has not started."""
        async with self.sessions() as session:
            await session.execute(
                update(Dispatch)
                .where(Dispatch.lease_owner == self.owner, Dispatch.status != "sending")
                .values(lease_owner=None, lease_expires_at=None)
            )
            await session.execute(
                update(Reply)
                .where(Reply.lease_owner == self.owner)
                .values(lease_owner=None, lease_expires_at=None)
            )
            await session.commit()

    def _lease(self) -> timedelta:
        return timedelta(seconds=self.settings.lease_seconds)


def _creates_due(now: Any) -> Any:
    """Whether a create, follow-up or cancel is due to be sent: reads wait for it."""
    return select(
        select(Dispatch.id)
        .where(
            Dispatch.status == "queued",
            Dispatch.prepared.is_(True),
            Dispatch.next_attempt_at <= now,
        )
        .exists()
    )


def _active_task(row: Dispatch) -> ActiveTask:
    return ActiveTask(
        dispatch_id=row.id,
        task_id=row.twill_task_id or "",
        task_url=row.twill_task_url,
        agent=row.agent,
        label=row.trigger_label if row.trigger_kind == "label" else None,
        running=row.follow == "active",
        created_at=row.created_at,
        requested_at=when_asked(from_snapshot(row.snapshot)[1])
        if row.snapshot
        else None,
    )


def _continues(row: Dispatch) -> bool:
    """Whether a follow-up still belongs to this ended task: a plan just made
    (`/twill approve`, `/twill go ahead`) or an answer just given (a further
    question) continues its conversation; finished code work does not."""
    job = JobView.from_json(row.job)
    return (
        row.follow == "done"
        and job is not None
        and job.status == "COMPLETED"
        and row.intent in ("PLAN", "ASK")
    )


def _followed_since(dispatch: Dispatch) -> Any:
    """When the task last got work: its creation, or its latest follow-up."""
    latest = dispatch.created_at
    for note in dispatch.follow_ups or ():
        try:
            at = datetime.fromisoformat(str(note.get("at")))
        except ValueError:
            continue
        if note.get("kind") == "message" and at.tzinfo is not None and at > latest:
            latest = at
    return latest


def _same(column: Any, value: Any) -> Any:
    return column.is_(None) if value is None else column == value


def trace(dispatch: Dispatch) -> dict[str, Any]:
    """The fields that let a person follow one dispatch through the log lines."""
    if dispatch.trigger_kind == "comment":
        event = "issue_comment"
    else:  # labels on pull requests arrive as pull_request events
        event = "pull_request" if dispatch.is_pull_request else "issues"
    return {
        "delivery_id": dispatch.delivery_id,
        "dispatch_id": dispatch.id,
        "event": event,
        "repository": dispatch.repository,
        "issue": dispatch.issue_number,
    }


def _retry_after(error: TwillError) -> float:
    # Twill documents Retry-After on every 429; a minute is its window if absent.
    return error.retry_after if error.retry_after is not None else 60.0


def _view(dispatch: Dispatch) -> DispatchView:
    return DispatchView(
        id=dispatch.id,
        status=dispatch.status,
        intent=dispatch.intent,
        requester=dispatch.requester,
        trigger_kind=dispatch.trigger_kind,
        trigger_label=dispatch.trigger_label,
        agent=dispatch.agent,
        task_url=dispatch.twill_task_url,
        job_status=dispatch.twill_job_status,
        last_error=dispatch.last_error,
        dry_run=dispatch.dry_run,
        config_problem=dispatch.config_problem,
        action=dispatch.action,
        job=JobView.from_json(dispatch.job),
        follow=dispatch.follow,
        follow_ups=tuple(dispatch.follow_ups or ()),
        answer_url=(
            f"{dispatch.issue_url}#issuecomment-{dispatch.answer_comment_id}"
            if dispatch.answer_comment_id and dispatch.issue_url
            else None
        ),
    )
