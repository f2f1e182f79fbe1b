"""The one storage interface of the service: ``Store``.

Back ends (``sqlite``, ``postgres``) implement every method with the semantics
written here; one test suite runs against both. Methods take and return the plain
records of ``alerts.storage.records`` and raise only errors of ``alerts.errors``
on purpose (a bug or a lost connection may surface as the driver's own error).

A store is opened once (``await store.open()``, which also migrates the schema)
and closed once; ``async with store:`` does both. It is safe to call from many
tasks at once.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor
from types import TracebackType
from typing import NamedTuple, Self, TypeVar

from alerts.storage.records import (
    AlertRecord,
    AttemptOutcome,
    ChannelDeliveryStats,
    ChannelRecord,
    Checkpoint,
    DeliveryAttempt,
    DeliveryRecord,
    DueDelivery,
    NewAlert,
    RuleRecord,
    SubscriptionRecord,
    TriggerState,
)

T = TypeVar("T")

REQUEST_ID_RETENTION_MS = 24 * 3600 * 1000
"""How long a ``create_rule`` or ``create_channel`` request id is remembered (AIP-155)."""

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000


class BatchWrite(NamedTuple):
    """What ``commit_batch`` writes: one engine batch's alerts, trigger states, watermarks."""

    alerts: Sequence[NewAlert]
    states: Sequence[TriggerState]
    watermarks: Mapping[str, int]


class Store(ABC):
    """Rules, alerts, trigger state, subscriptions and checkpoints, behind one interface."""

    # -- life cycle ------------------------------------------------------------------------

    @abstractmethod
    async def open(self) -> None:
        """Connect and bring the schema up to date.

        Migrations are the numbered steps of ``alerts.storage.migrations``: the missing
        ones are applied in order in one transaction (one opener at a time) and recorded
        in ``schema_version``; opening an up-to-date store again is harmless. A database migrated by a newer build (a
        version this one does not know) is refused with ``FailedPreconditionError``.
        An unreachable database raises ``UnavailableError``.
        """

    @abstractmethod
    async def close(self) -> None:
        """Release connections; waits for running calls to end. Closing twice is harmless."""

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- rules -----------------------------------------------------------------------------

    @abstractmethod
    async def create_rule(self, rec: RuleRecord, request_id: str | None = None) -> RuleRecord:
        """Store a new rule and return it as stored.

        The store sets ``create_time_ms`` and ``update_time_ms`` (now), ``revision`` (1)
        and ``etag``, and sorts ``labels``. A taken (owner, rule_id) raises
        ``AlreadyExistsError``. A non-empty ``request_id`` seen before for the same
        owner within ``REQUEST_ID_RETENTION_MS`` returns the rule that request created,
        in its current state, and stores nothing (AIP-155); if that rule has since been
        deleted, ``NotFoundError``.

        Every entry of ``channels`` (``channels/{id}``) must name one of the owner's
        channels, else ``InvalidArgumentError`` (reason ``UNKNOWN_CHANNEL``, a field
        violation on ``rule.channels[i]``); the check holds against a concurrent
        ``delete_channel`` (the channel rows are locked until the rule is stored).
        """

    @abstractmethod
    async def get_rule(self, owner: str, rule_id: str) -> RuleRecord:
        """The rule; a missing one and another owner's raise the same ``NotFoundError``."""

    @abstractmethod
    async def list_rules(
        self,
        owner: str,
        *,
        page_size: int,
        page_token: str | None,
        symbol: str | None = None,
        paused: bool | None = None,
    ) -> tuple[list[RuleRecord], str | None]:
        """One page of the owner's rules, ordered by (create time, rule id), and the next token.

        ``page_size`` 0 means ``DEFAULT_PAGE_SIZE``; larger than ``MAX_PAGE_SIZE`` is
        clamped; negative is ``InvalidArgumentError``. The returned token is ``None`` on
        the last page. Tokens are opaque and bound to the owner and filters: a token
        that does not decode, or was made for other filters, raises
        ``InvalidArgumentError`` with a field violation on ``page_token``. Paging is by
        key, so rules created or deleted meanwhile never shift a page.
        """

    @abstractmethod
    async def count_rules(self, owner: str) -> int:
        """How many rules the owner has."""

    @abstractmethod
    async def update_rule(self, rec: RuleRecord, *, expected_etag: str | None) -> RuleRecord:
        """Replace the rule (owner, rule_id) with ``rec``'s fields and return it as stored.

        ``create_time_ms`` is kept; ``revision`` is bumped, ``etag`` and
        ``update_time_ms`` renewed; the fields ``rec`` gives for those are ignored.
        ``expected_etag`` not ``None`` and not the current etag raises
        ``AbortedError`` (reason ``ETAG_MISMATCH``, AIP-154); a missing rule
        ``NotFoundError``; channels are checked as by ``create_rule``. Trigger state is
        not touched: the engine decides whether the change resets it and commits the new
        state with its next batch.
        """

    @abstractmethod
    async def delete_rule(
        self, owner: str, rule_id: str, *, expected_etag: str | None = None
    ) -> None:
        """Delete the rule and its trigger state (its alerts stay as history).

        A missing rule raises ``NotFoundError``; a stale ``expected_etag``
        ``AbortedError``.
        """

    @abstractmethod
    async def all_rules(self) -> list[RuleRecord]:
        """Every owner's rules, ordered by (owner, create time, rule id): the engine loads them."""

    # -- channels --------------------------------------------------------------------------

    @abstractmethod
    async def create_channel(
        self, rec: ChannelRecord, request_id: str | None = None
    ) -> ChannelRecord:
        """Store a new channel and return it as stored.

        As ``create_rule``: the store sets the times, ``revision`` (1) and ``etag`` and
        sorts ``labels``; a taken (owner, channel_id) is ``AlreadyExistsError``; a
        ``request_id`` seen before for the owner within ``REQUEST_ID_RETENTION_MS``
        returns that request's channel in its current state (``NotFoundError`` if it has
        since been deleted) and stores nothing.
        """

    @abstractmethod
    async def get_channel(self, owner: str, channel_id: str) -> ChannelRecord:
        """The channel; a missing one and another owner's raise the same ``NotFoundError``."""

    @abstractmethod
    async def list_channels(
        self,
        owner: str,
        *,
        page_size: int,
        page_token: str | None,
        paused: bool | None = None,
    ) -> tuple[list[ChannelRecord], str | None]:
        """One page of the owner's channels, ordered by (create time, channel id), and the
        next token, with the page size and token rules of ``list_rules``."""

    @abstractmethod
    async def update_channel(
        self, rec: ChannelRecord, *, expected_etag: str | None
    ) -> ChannelRecord:
        """Replace the channel (owner, channel_id) with ``rec``'s fields, as ``update_rule``
        does for rules (``create_time_ms`` kept; revision, etag and update time renewed;
        ``ETAG_MISMATCH``; ``NotFoundError``). The kind cannot change:
        ``InvalidArgumentError`` on ``channel`` (reason ``CHANNEL_KIND_CHANGED``)."""

    @abstractmethod
    async def delete_channel(
        self,
        owner: str,
        channel_id: str,
        *,
        expected_etag: str | None = None,
        force: bool = False,
    ) -> list[RuleRecord]:
        """Delete the channel; returns the rules changed by ``force``.

        A channel that rules of the owner still name is ``FailedPreconditionError``
        (reason ``CHANNEL_IN_USE``, metadata ``rules``: their ids, comma-separated)
        unless ``force``; then it is removed from those rules (each gets a new revision
        and etag) in the same transaction, and they are returned as stored. A missing
        channel raises ``NotFoundError``; a stale ``expected_etag`` ``AbortedError``.
        """

    # -- alerts ----------------------------------------------------------------------------

    @abstractmethod
    async def commit_batch(
        self,
        alerts: Sequence[NewAlert],
        states: Sequence[TriggerState],
        watermarks: Mapping[str, int],
    ) -> list[AlertRecord]:
        """Write one engine batch in ONE transaction and return the alerts it inserted.

        - ``alerts`` are inserted in the given order. One whose identity (owner,
          rule_id, symbol, event_time_ms, rank) is already stored, or repeats an
          earlier alert of the same batch, is skipped: neither an error nor returned.
          Inserted alerts get consecutive ids following the last id ever issued, and
          one ``commit_time_ms`` that never goes backwards from one commit to the next.
        - ``states`` are upserted by (owner, rule_id); the state of a rule that does
          not exist (deleted meanwhile) is skipped, so a rule created later under the
          same id starts afresh.
        - ``watermarks`` (source name -> ms) are upserted.
        - Each inserted alert gets one PENDING delivery per distinct id in its
          ``channels``, due at once (the outbox's rows; a skipped alert gets none).

        Either all of it is stored or, on any error, none of it. Commits are serialised,
        so ids become visible in id order: a reader that has seen id N never later sees
        a new id below N. Returns the inserted alerts in id order.
        """

    async def commit_produced(
        self, produce: Callable[[], tuple[BatchWrite, T]], executor: Executor
    ) -> tuple[list[AlertRecord], T]:
        """Run ``produce`` off the event loop, then ``commit_batch`` the write it returns.

        ``produce`` returns (the write, anything else), the latter handed back with the
        inserted alerts. It runs on ``executor``, or wherever the back end would run the
        transaction anyway (SQLite: its writer's thread, so a batch crosses threads once
        on its way from the engine to the disk). Its error propagates, and nothing is
        written then.
        """
        write, extra = await asyncio.get_running_loop().run_in_executor(executor, produce)
        return await self.commit_batch(*write), extra

    @abstractmethod
    async def list_alerts(
        self,
        owner: str | None,
        *,
        after_id: int = 0,
        before_id: int | None = None,
        descending: bool = False,
        limit: int,
        rule_id: str | None = None,
        symbol: str | None = None,
        kind: str | None = None,
        since_ms: int | None = None,
        until_ms: int | None = None,
        channel_id: str | None = None,
    ) -> list[AlertRecord]:
        """Up to ``limit`` (>= 1) of the owner's alerts with ``after_id`` < id < ``before_id``
        (``None``: no upper bound), ascending by id (``descending``: newest first).

        ``owner`` ``None`` reads every owner's alerts (for delivery, never for a client).
        Optional filters match exactly; ``since_ms`` (inclusive) and ``until_ms``
        (exclusive) bound the event time; ``channel_id`` keeps the alerts whose
        ``channels`` (the rule's at fire time) hold it.
        """

    @abstractmethod
    async def last_alert_id(self) -> int:
        """The last id ever issued (pruned or not); 0 before the first alert."""

    @abstractmethod
    async def first_alert_id(self) -> int | None:
        """The smallest id still stored; ``None`` when no alert is stored."""

    @abstractmethod
    async def prune_alerts(self, before_ms: int) -> int:
        """Delete alerts committed before ``before_ms``, with their deliveries; returns how many.

        Commit times never decrease with ids, so what remains is always every id from
        ``first_alert_id()`` on.
        """

    @abstractmethod
    async def trigger_states(self) -> list[TriggerState]:
        """Every stored trigger state, ordered by (owner, rule_id)."""

    @abstractmethod
    async def watermarks(self) -> dict[str, int]:
        """Each source's watermark as last committed by ``commit_batch``."""

    # -- deliveries (the outbox) -----------------------------------------------------------

    @abstractmethod
    async def due_deliveries(
        self, owner: str, channel_id: str, *, now_ms: int, limit: int
    ) -> list[DueDelivery]:
        """Up to ``limit`` PENDING deliveries of the channel due at ``now_ms``, by alert id."""

    @abstractmethod
    async def next_attempt_time(self, owner: str, channel_id: str, *, after_ms: int) -> int | None:
        """The earliest ``next_attempt_ms`` after ``after_ms`` among the channel's PENDING ones."""

    @abstractmethod
    async def pending_channels(self) -> list[tuple[str, str]]:
        """Every (owner, channel_id) with a PENDING delivery, sorted."""

    @abstractmethod
    async def record_attempts(self, outcomes: Sequence[AttemptOutcome]) -> list[bool]:
        """Record attempts' outcomes, moving each delivery to its ``state``, in ONE transaction.

        An outcome applies only while its delivery is PENDING and ``attempt.seq`` follows
        its ``attempt_seq`` (else it stores nothing and its entry is ``False``: someone
        else moved the delivery meanwhile). Each applied outcome inserts the attempt, bumps
        ``attempts``, sets ``first_attempt_ms`` on the first attempt after creation or
        redelivery, and ``done_time_ms`` when the state is DELIVERED or DEAD. An unknown
        state is ``InvalidArgumentError`` (nothing stored).
        """

    async def record_attempt(
        self,
        owner: str,
        channel_id: str,
        alert_id: int,
        attempt: DeliveryAttempt,
        *,
        state: str,
        next_attempt_ms: int,
    ) -> bool:
        """``record_attempts`` of one outcome."""
        [applied] = await self.record_attempts([AttemptOutcome(
            owner=owner, channel_id=channel_id, alert_id=alert_id, attempt=attempt,
            state=state, next_attempt_ms=next_attempt_ms)])
        return applied

    @abstractmethod
    async def list_deliveries(
        self,
        owner: str,
        channel_id: str,
        *,
        state: str | None = None,
        page_size: int,
        page_token: str | None,
    ) -> tuple[list[DeliveryRecord], str | None]:
        """One page of the channel's deliveries by alert id, each with its attempt history.

        Page sizes and tokens behave as in ``list_rules``; tokens are bound to the
        channel and ``state``.
        """

    @abstractmethod
    async def redeliver(
        self, owner: str, channel_id: str, *, alert_ids: Sequence[int] | None, now_ms: int
    ) -> int:
        """Move the channel's DEAD deliveries (all, or those of ``alert_ids``) back to PENDING.

        Their ``attempts`` restart from 0 and a new retry period starts with the next
        attempt, due at ``now_ms``; the attempt history is kept. Returns how many moved.
        """

    @abstractmethod
    async def channel_delivery_stats(self, owner: str, channel_id: str) -> ChannelDeliveryStats:
        """The channel's pending and dead-letter counts, last delivery and latest error."""

    @abstractmethod
    async def delivery_counts(self) -> dict[str, int]:
        """Deliveries per state over every channel (a state with none is absent)."""

    # -- subscriptions ---------------------------------------------------------------------

    @abstractmethod
    async def get_subscription(
        self, owner: str, subscription_id: str
    ) -> SubscriptionRecord | None:
        """The owner's subscription, or ``None`` (another owner's is ``None`` as well)."""

    @abstractmethod
    async def save_subscription(self, rec: SubscriptionRecord) -> None:
        """Insert or replace the subscription (owner, subscription_id) as given."""

    # -- checkpoints -----------------------------------------------------------------------

    @abstractmethod
    async def save_checkpoint(self, cp: Checkpoint) -> None:
        """Store ``cp`` in place of the previous checkpoint (only the latest is kept)."""

    @abstractmethod
    async def load_checkpoint(self) -> Checkpoint | None:
        """The latest checkpoint, or ``None`` if none was saved."""
