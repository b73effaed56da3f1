"""The hypothesis state machine: rules that generate ZooKeeper op sequences.

Plain synchronous hypothesis (``RuleBasedStateMachine``, ``Bundle``, ``consumes``,
``@precondition``). Each rule builds one :class:`~fuzz.ops.Step` and hands it to the campaign,
which runs it on both servers through a :class:`~fuzz.driver.Driver` and raises when the two
diverge; hypothesis then shrinks the sequence. The rules never look at what the servers hold:
they only pick sessions from bundles (connected, dropped, gone) and paths from a bundle of
names tried or created, so the same machine drives any pair of servers.

Bundles: ``sessions`` (connected; three are opened first, up to five at once), ``dropped``
(TCP connection dropped, session alive: resumable), ``gone`` (closed or expired: a resume is
refused), ``paths`` (relative names, seeded with a few and grown with every created node,
sequential names included).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    initialize,
    multiple,
    precondition,
    rule,
)

from fuzz import strategies as fs
from fuzz.ops import (
    Close,
    Drop,
    Exists,
    Expire,
    GetChildren,
    GetData,
    Multi,
    Open,
    Pipeline,
    Resume,
    SetData,
    Step,
)
from fuzz.ops import Delete as DeleteOp
from fuzz.sessions import LIVE

if TYPE_CHECKING:
    from fuzz.campaign import Campaign
    from fuzz.driver import StepResult

INITIAL_SESSIONS = 3
MAX_SESSIONS = 5
MIN_SESSIONS = 2  # sessions are closed, dropped or expired only above this many
TIMEOUTS = st.sampled_from((30000, 40000, 1_000_000))  # all long: expiry is its own rule
READ_ONLY = st.sampled_from((False, False, None, True))


class ZooKeeperMachine(RuleBasedStateMachine):
    sessions = Bundle("sessions")
    dropped = Bundle("dropped")
    gone = Bundle("gone")
    paths = Bundle("paths")

    PATHS = fs.paths_from(paths, children=3, parents=4)
    NEW_PATHS = fs.paths_from(paths, children=12)
    NODES = fs.paths_from(paths, children=1)

    def __init__(self, campaign: Campaign) -> None:
        super().__init__()
        self.campaign = campaign
        self.driver = campaign.begin_example()
        self.next_slot = 0
        self.expiry_enabled = False
        self.expiries = 0

    def teardown(self) -> None:
        self.campaign.end_example(self.driver)

    def _run(self, session: int, op: Any) -> StepResult:
        return self.campaign.execute(Step(session, op))

    def _live_count(self) -> int:
        return sum(1 for s in self.driver.sessions.values() if s.status == LIVE)

    def _open(self, timeout: int = 30000, read_only: bool | None = False) -> int | None:
        slot = self.next_slot
        self.next_slot += 1
        self._run(slot, Open(timeout, read_only))
        st_ = self.driver.sessions.get(slot)
        return slot if st_ is not None and st_.status == LIVE else None

    # --- set-up -------------------------------------------------------------------------

    @initialize(target=sessions)
    def open_sessions(self) -> Any:
        slots = [self._open() for _ in range(INITIAL_SESSIONS)]
        return multiple(*[s for s in slots if s is not None])

    @initialize(target=paths)
    def seed_paths(self) -> Any:
        return multiple(*fs.SEED_PATHS)

    @initialize(expiry=st.integers(0, 1000))
    def choose_expiry(self, expiry: int) -> None:
        """Session expiry costs seconds: it is enabled in a small share of the examples."""
        self.expiry_enabled = expiry % self.campaign.config.expiry_odds == 0

    # --- nodes --------------------------------------------------------------------------

    @rule(target=paths, session=sessions, create=fs.creates(NEW_PATHS))
    def create(self, session: int, create: Any) -> Any:
        return multiple(*self._run(session, create).created)

    @rule(target=paths, session=sessions, parent=paths, name=fs.LETTERS, create=fs.creates(PATHS))
    def create_child(self, session: int, parent: str, name: str, create: Any) -> Any:
        path = ("" if parent == "/" else parent) + "/" + name
        return multiple(*self._run(session, dataclasses.replace(create, path=path)).created)

    @rule(session=sessions, path=PATHS, version=fs.VERSIONS)
    def delete(self, session: int, path: str, version: int) -> None:
        self._run(session, DeleteOp(path, version))

    @rule(session=sessions, path=NODES, data=fs.DATA, version=fs.VERSIONS)
    def set_data(self, session: int, path: str, data: bytes | None, version: int) -> None:
        self._run(session, SetData(path, data, version))

    @rule(session=sessions, path=PATHS, watch=fs.WATCH)
    def exists(self, session: int, path: str, watch: bool) -> None:
        self._run(session, Exists(path, watch))

    @rule(session=sessions, path=PATHS, watch=fs.WATCH)
    def get_data(self, session: int, path: str, watch: bool) -> None:
        self._run(session, GetData(path, watch))

    @rule(session=sessions, path=PATHS, watch=fs.WATCH, v2=st.booleans())
    def get_children(self, session: int, path: str, watch: bool, v2: bool) -> None:
        self._run(session, GetChildren(path, watch, v2))

    @rule(target=paths, session=sessions, ops=fs.multi_ops(PATHS))
    def multi(self, session: int, ops: tuple[Any, ...]) -> Any:
        return multiple(*self._run(session, Multi(ops)).created)

    @rule(target=paths, session=sessions, ops=fs.pipeline_ops(PATHS))
    def pipeline(self, session: int, ops: tuple[Any, ...]) -> Any:
        return multiple(*self._run(session, Pipeline(ops)).created)

    @rule(session=sessions, ops=fs.multi_read_ops(PATHS))
    def multi_read(self, session: int, ops: tuple[Any, ...]) -> None:
        self._run(session, Multi(ops, read=True))

    @rule(session=sessions, op=fs.acl_ops(PATHS))
    def acl(self, session: int, op: Any) -> None:
        self._run(session, op)

    @rule(session=sessions, op=fs.watch_ops(PATHS))
    def manage_watches(self, session: int, op: Any) -> None:
        """addWatch (persistent, recursive, an invalid mode), removeWatches, checkWatches."""
        self._run(session, op)

    @rule(session=sessions, op=fs.session_request_ops(PATHS))
    def session_request(self, session: int, op: Any) -> None:
        """sync, ping, auth, whoAmI, getEphemerals, getAllChildrenNumber, the tree's quota
        stats."""
        self._run(session, op)

    @rule(session=sessions, op=fs.odd_ops(PATHS))
    def odd_request(self, session: int, op: Any) -> None:
        """A takeover (a resume while connected), reconfig, deleteContainer, a standalone
        check, unknown opcodes, truncated or padded bodies."""
        self._run(session, op)

    # --- sessions -----------------------------------------------------------------------

    @precondition(lambda self: self._live_count() < MAX_SESSIONS)
    @rule(target=sessions, timeout=TIMEOUTS, read_only=READ_ONLY)
    def open_session(self, timeout: int, read_only: bool | None) -> Any:
        slot = self._open(timeout, read_only)
        return multiple() if slot is None else slot

    @precondition(lambda self: self._live_count() > MIN_SESSIONS)
    @rule(target=gone, session=consumes(sessions))
    def close_session(self, session: int) -> int:
        self._run(session, Close())
        return session

    @precondition(lambda self: self._live_count() > MIN_SESSIONS)
    @rule(target=dropped, session=consumes(sessions))
    def drop_connection(self, session: int) -> int:
        self._run(session, Drop())
        return session

    @rule(target=sessions, session=consumes(dropped), set_watches=fs.SET_WATCHES)
    def resume(self, session: int, set_watches: int) -> Any:
        self._run(session, Resume(set_watches=set_watches))
        st_ = self.driver.sessions.get(session)
        return session if st_ is not None and st_.status == LIVE else multiple()

    @rule(session=dropped)
    def resume_with_wrong_password(self, session: int) -> None:
        self._run(session, Resume(wrong_password=True))

    @precondition(
        lambda self: (
            self.expiry_enabled and self.expiries == 0 and self._live_count() > MIN_SESSIONS
        )
    )
    @rule(target=gone, session=consumes(sessions))
    def expire(self, session: int) -> int:
        self.expiries += 1
        self._run(session, Expire())
        return session

    @rule(session=consumes(gone))
    def resume_gone(self, session: int) -> None:
        self._run(session, Resume())
