"""RFC 3261 section 17 transactions (with the RFC 6026 "Accepted" states), driven by an explicit clock.

A transaction never reads a clock: every entry point takes ``now`` (seconds, any monotonic origin), arms named
timers as absolute deadlines, and :meth:`Transaction.fire_timers` runs the ones that are due. Messages go out
through the ``send`` callable given at construction; what the transaction user (the UA core) must learn comes back
through ``on_response`` / ``on_timeout`` callables. Retransmissions of requests and responses are absorbed here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from .message import Headers, Message, Request, Response

T1 = 0.5
T2 = 4.0
T4 = 5.0

Address = tuple[str, int]
Send = Callable[[Message, Address, str], None]


class TransactionState(StrEnum):
    """RFC 3261 17 states, plus RFC 6026 "Accepted" (a 2xx to INVITE, kept to absorb retransmissions)."""

    INIT = "init"  # built, not started
    CALLING = "calling"  # INVITE client: sent, nothing heard yet
    TRYING = "trying"  # non-INVITE: sent (client) or received (server), no response yet
    PROCEEDING = "proceeding"  # a provisional response
    ACCEPTED = "accepted"  # INVITE: 2xx
    COMPLETED = "completed"  # a final response (non-2xx for INVITE)
    CONFIRMED = "confirmed"  # INVITE server: the ACK arrived
    TERMINATED = "terminated"


@dataclass(frozen=True)
class ServerKey:
    """RFC 3261 17.2.3 matching: branch + sent-by + method (ACK matches INVITE); 2543 requests use ``legacy``."""

    branch: str
    sent_by: str
    method: str
    legacy: tuple[str, ...] = ()


class Transaction:
    def __init__(self, request: Request, peer: Address, transport: str, send: Send) -> None:
        self.request = request
        self.peer = peer
        self.transport = transport
        self.reliable = transport != "udp"
        self._send = send
        self.timers: dict[str, float] = {}
        self.state: TransactionState = TransactionState.INIT
        # Told of every timer armed, so the owner can keep one heap of deadlines instead of scanning all
        # transactions (set by the UA before the first timer is armed).
        self.on_arm: Callable[[Transaction, float], None] | None = None

    def _arm(self, name: str, deadline: float) -> None:
        self.timers[name] = deadline
        if self.on_arm is not None:
            self.on_arm(self, deadline)

    @property
    def terminated(self) -> bool:
        return self.state == TransactionState.TERMINATED

    def fire_timers(self, now: float) -> None:
        for name, deadline in sorted(self.timers.items(), key=lambda item: item[1]):
            if deadline <= now and self.timers.get(name) == deadline and not self.terminated:
                del self.timers[name]
                self._on_timer(name, now)

    def _on_timer(self, name: str, now: float) -> None:
        raise NotImplementedError

    def _terminate(self) -> None:
        self.state = TransactionState.TERMINATED
        self.timers.clear()


# ---------------------------------------------------------------------------------------------- server side


class ServerTransaction(Transaction):
    """Common part: remember the last response and resend it on a retransmitted request."""

    def __init__(
        self,
        request: Request,
        peer: Address,
        transport: str,
        send: Send,
        on_timeout: Callable[[ServerTransaction], None] | None = None,
    ) -> None:
        super().__init__(request, peer, transport, send)
        self.table_key: ServerKey | None = None  # where the UA keeps it (to drop it when it ends)
        self.last_response: Response | None = None
        self._on_timeout = on_timeout
        self._interval = T1
        self.acked = False
        self.state = self.initial_state

    initial_state: TransactionState = TransactionState.TRYING

    @property
    def final_sent(self) -> bool:
        return self.last_response is not None and self.last_response.status >= 200

    def _transmit(self, response: Response) -> None:
        self._send(response, self.peer, self.transport)

    def _timeout(self) -> None:
        self._terminate()
        if self._on_timeout:
            self._on_timeout(self)

    def respond(self, response: Response, now: float) -> None:
        raise NotImplementedError

    def receive_retransmission(self, now: float) -> None:
        if self.last_response is not None and self.state in (
            TransactionState.PROCEEDING,
            TransactionState.COMPLETED,
            TransactionState.TRYING,
        ):
            self._transmit(self.last_response)


class InviteServerTransaction(ServerTransaction):
    """Proceeding -> Accepted (2xx, resent until ACK; RFC 6026) | Completed (non-2xx, timers G/H) -> Confirmed."""

    initial_state = TransactionState.PROCEEDING

    def respond(self, response: Response, now: float) -> None:
        if self.state != TransactionState.PROCEEDING:
            return
        self.last_response = response
        self._transmit(response)
        if response.status < 200:
            return
        # 2xx is retransmitted by the TU in RFC 3261; we keep it here (same timers) until the dialog sees the ACK.
        self.state = TransactionState.ACCEPTED if response.status < 300 else TransactionState.COMPLETED
        if not self.reliable:
            self._arm("G", now + self._interval)
        self._arm("H", now + 64 * T1)

    def receive_retransmission(self, now: float) -> None:
        if self.last_response is not None and self.state in (
            TransactionState.PROCEEDING,
            TransactionState.COMPLETED,
            TransactionState.ACCEPTED,
        ):
            self._transmit(self.last_response)

    def stop_retransmitting(self) -> None:
        """The call ended before the ACK: stop resending our 2xx (timer H still cleans up)."""
        self.timers.pop("G", None)

    def receive_ack(self, now: float) -> None:
        """ACK for a non-2xx (same transaction) or, via the dialog, for our 2xx."""
        self.acked = True
        if self.state == TransactionState.COMPLETED:
            self.state = TransactionState.CONFIRMED
            self.timers.clear()
            self._arm("I", now + (0 if self.reliable else T4))
        elif self.state == TransactionState.ACCEPTED:
            self.state = TransactionState.CONFIRMED
            self.timers.clear()
            self._arm("L", now + 64 * T1)  # absorb late INVITE retransmissions

    def _on_timer(self, name: str, now: float) -> None:
        if (
            name == "G"
            and self.state in (TransactionState.COMPLETED, TransactionState.ACCEPTED)
            and self.last_response is not None
        ):
            self._transmit(self.last_response)
            self._interval = min(2 * self._interval, T2)
            self._arm("G", now + self._interval)
        elif name == "H":
            self._timeout()
        elif name in ("I", "L"):
            self._terminate()


class NonInviteServerTransaction(ServerTransaction):
    """Trying -> Proceeding -> Completed (timer J absorbs retransmissions) -> Terminated."""

    initial_state = TransactionState.TRYING

    def respond(self, response: Response, now: float) -> None:
        if self.state not in (TransactionState.TRYING, TransactionState.PROCEEDING):
            return
        self.last_response = response
        self._transmit(response)
        if response.status < 200:
            self.state = TransactionState.PROCEEDING
            return
        self.state = TransactionState.COMPLETED
        self._arm("J", now + (0 if self.reliable else 64 * T1))

    def _on_timer(self, name: str, now: float) -> None:
        if name == "J":
            self._terminate()


# ---------------------------------------------------------------------------------------------- client side


class ClientTransaction(Transaction):
    def __init__(
        self,
        request: Request,
        peer: Address,
        transport: str,
        send: Send,
        on_response: Callable[[ClientTransaction, Response], None],
        on_timeout: Callable[[ClientTransaction], None],
    ) -> None:
        super().__init__(request, peer, transport, send)
        self._on_response = on_response
        self._on_timeout = on_timeout
        self._interval = T1

    @property
    def branch(self) -> str:
        return self.request.top_via.branch or ""

    def _transmit(self) -> None:
        self._send(self.request, self.peer, self.transport)

    def _timeout(self) -> None:
        self._terminate()
        self._on_timeout(self)

    def start(self, now: float) -> None:
        raise NotImplementedError

    def receive_response(self, response: Response, now: float) -> None:
        raise NotImplementedError


class InviteClientTransaction(ClientTransaction):
    """Calling (timers A/B) -> Proceeding -> Accepted (2xx to TU; RFC 6026 timer M) | Completed (ACK, timer D)."""

    def start(self, now: float) -> None:
        self.state = TransactionState.CALLING
        self._transmit()
        if not self.reliable:
            self._arm("A", now + self._interval)
        self._arm("B", now + 64 * T1)

    def build_ack(self, response: Response) -> Request:
        """ACK for a non-2xx final response (RFC 3261 17.1.1.3): same branch, To from the response."""
        headers = Headers()
        headers.add("Via", self.request.headers.values("Via")[0])
        for value in self.request.headers.lines("Route"):
            headers.add("Route", value)
        headers.add("Max-Forwards", "70")
        headers.add("From", self.request.headers.get("From") or "")
        headers.add("To", response.headers.get("To") or "")
        headers.add("Call-ID", self.request.headers.get("Call-ID") or "")
        headers.add("CSeq", f"{self.request.cseq.number} ACK")
        return Request(headers=headers, method="ACK", uri=self.request.uri)

    def receive_response(self, response: Response, now: float) -> None:
        if self.state in (TransactionState.CALLING, TransactionState.PROCEEDING):
            if response.status < 200:
                self.state = TransactionState.PROCEEDING
                self.timers.pop("A", None)
                self._on_response(self, response)
            elif response.status < 300:
                self.state = TransactionState.ACCEPTED
                self.timers.clear()
                self._arm("M", now + 64 * T1)
                self._on_response(self, response)
            else:
                self.state = TransactionState.COMPLETED
                self.timers.clear()
                self._ack = self.build_ack(response)
                self._send(self._ack, self.peer, self.transport)
                self._arm("D", now + (0 if self.reliable else 32.0))
                self._on_response(self, response)
        elif self.state == TransactionState.ACCEPTED and 200 <= response.status < 300:
            self._on_response(self, response)  # retransmitted 2xx: the dialog resends its ACK
        elif self.state == TransactionState.COMPLETED and response.status >= 300:
            self._send(self._ack, self.peer, self.transport)

    def _on_timer(self, name: str, now: float) -> None:
        if name == "A" and self.state == TransactionState.CALLING:
            self._transmit()
            self._interval *= 2
            self._arm("A", now + self._interval)
        elif name == "B" and self.state == TransactionState.CALLING:
            self._timeout()
        elif name in ("D", "M"):
            self._terminate()


class NonInviteClientTransaction(ClientTransaction):
    """Trying/Proceeding (timers E/F) -> Completed (timer K) -> Terminated."""

    def start(self, now: float) -> None:
        self.state = TransactionState.TRYING
        self._transmit()
        if not self.reliable:
            self._arm("E", now + self._interval)
        self._arm("F", now + 64 * T1)

    def receive_response(self, response: Response, now: float) -> None:
        if self.state not in (TransactionState.TRYING, TransactionState.PROCEEDING):
            return
        if response.status < 200:
            self.state = TransactionState.PROCEEDING
            self._on_response(self, response)
            return
        self.state = TransactionState.COMPLETED
        self.timers.clear()
        self._arm("K", now + (0 if self.reliable else T4))
        self._on_response(self, response)

    def _on_timer(self, name: str, now: float) -> None:
        if name == "E" and self.state in (TransactionState.TRYING, TransactionState.PROCEEDING):
            self._transmit()
            self._interval = T2 if self.state == TransactionState.PROCEEDING else min(2 * self._interval, T2)
            self._arm("E", now + self._interval)
        elif name == "F" and self.state in (TransactionState.TRYING, TransactionState.PROCEEDING):
            self._timeout()
        elif name == "K":
            self._terminate()
