"""Tell the process holding a waiting caller that staff accepted them (issue 10: one queue across processes).

:func:`notify_offer` is called by the console right after :meth:`voicebot.db.repository.Repository.offer`
succeeded. On PostgreSQL it sends ``NOTIFY voicebot_queue, '<entry id>'``: every ``voicebot serve`` process that
LISTENs on that channel looks for the offers it holds at once (``Repository.offers_held_by``). SQLite has no
notifications: there the holding process polls, and this is a no-op. The notification only shortens the wait; the
offer itself is the row's state, so a lost notification delays nothing beyond the next poll.
"""

from __future__ import annotations

from sqlalchemy import Engine, text

CHANNEL = "voicebot_queue"


def notify_offer(engine: Engine, entry_id: int) -> bool:
    """Notify the queue's listeners of an offer for ``entry_id``; True if a notification was sent."""
    if engine.dialect.name != "postgresql":
        return False
    with engine.begin() as connection:  # delivered when this transaction commits
        connection.execute(
            text("SELECT pg_notify(:channel, :payload)"), {"channel": CHANNEL, "payload": str(int(entry_id))}
        )
    return True
