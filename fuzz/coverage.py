"""What a campaign exercised: ops by type, opcodes, create modes, and the error codes the
oracle answered, grouped into families.

The targets are explicit: :data:`TARGET_OPCODES` lists every opcode the machine can send (the
client opcodes of ``zetcd.proto.opcodes.OPS`` except sasl, which needs a SASL-configured
server), and :data:`ERROR_FAMILIES` every error code a fuzzed request can get from a
standalone ZooKeeper 3.8, by family. The report shows each as hit or not, by the coverage tour
(:mod:`fuzz.tour`, which reaches all of them) and by the generated examples.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from fuzz.driver import StepResult
from fuzz.ops import Create, Mangled, Multi, Pipeline, op_name
from zetcd.proto.constants import CreateMode, Err, OpCode
from zetcd.proto.opcodes import OPS

TARGET_OPCODES: tuple[str, ...] = (
    *(spec.name for code, spec in OPS.items() if code != OpCode.SASL),
    "unknown opcode",
)

ERROR_FAMILIES: dict[str, tuple[Err, ...]] = {
    "ok": (Err.OK,),
    "node existence": (Err.NO_NODE, Err.NODE_EXISTS),
    "versions": (Err.BAD_VERSION,),
    "tree shape": (Err.NOT_EMPTY, Err.NO_CHILDREN_FOR_EPHEMERALS),
    "access control": (Err.NO_AUTH, Err.INVALID_ACL, Err.AUTH_FAILED),
    "bad arguments": (Err.BAD_ARGUMENTS,),
    "malformed requests": (Err.MARSHALLING_ERROR,),
    "unsupported": (Err.UNIMPLEMENTED, Err.RECONFIG_DISABLED),
    "multi": (Err.RUNTIME_INCONSISTENCY,),
    "watches": (Err.NO_WATCHER,),
}


def _err_name(code: int) -> str:
    try:
        return Err(code).name
    except ValueError:
        return str(code)


def _mode_name(flags: int) -> str:
    try:
        return CreateMode(flags).name
    except ValueError:
        return f"flags {flags}"


@dataclass
class Coverage:
    examples: int = 0
    steps: int = 0
    skipped: int = 0
    ops: Counter[str] = field(default_factory=Counter)
    opcodes: Counter[str] = field(default_factory=Counter)
    modes: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    exchanges: Counter[str] = field(default_factory=Counter)

    def record(self, result: StepResult) -> None:
        self.steps += 1
        op = result.step.op
        self.ops[op_name(op)] += 1
        if result.skipped:
            self.skipped += 1
            return
        for name in self._opcodes(op):
            self.opcodes[name] += 1
        for create in self._creates(op):
            self.modes[f"{OPS[create.opcode].name} {_mode_name(create.flags)}"] += 1
        for err in result.errors:
            self.errors[_err_name(err)] += 1
        for ex in result.exchanges:
            self.exchanges[ex.op] += 1

    def _opcodes(self, op: Any) -> Iterable[str]:
        if isinstance(op, Pipeline):
            return [name for sub in op.ops for name in self._opcodes(sub)]
        if isinstance(op, Mangled):
            op = op.op
        opcode = getattr(op, "opcode", None)
        if opcode is None:
            return ()
        names = [OPS[opcode].name if opcode in OPS else "unknown opcode"]
        if isinstance(op, Multi):
            names += [OPS[int(sub.opcode)].name for sub in op.ops if sub.opcode in OPS]
        return names

    def _creates(self, op: Any) -> Iterable[Create]:
        if isinstance(op, Pipeline):
            return [create for sub in op.ops for create in self._creates(sub)]
        if isinstance(op, Create):
            return (op,)
        if isinstance(op, Multi):
            return [sub for sub in op.ops if isinstance(sub, Create)]
        return ()

    def __add__(self, other: Coverage) -> Coverage:
        """Both campaigns' figures together (the tour's and the generated examples')."""
        return Coverage(
            examples=self.examples + other.examples,
            steps=self.steps + other.steps,
            skipped=self.skipped + other.skipped,
            ops=self.ops + other.ops,
            opcodes=self.opcodes + other.opcodes,
            modes=self.modes + other.modes,
            errors=self.errors + other.errors,
            exchanges=self.exchanges + other.exchanges,
        )

    def merged_opcodes(self) -> Counter[str]:
        """Opcodes sent, plus what the driver sent on the machine's behalf (connects,
        setWatches2 on resume, closeSession, the pings that flush watch events)."""
        out = Counter(self.opcodes)
        out["closeSession"] += self.exchanges["closeSession"]
        out["setWatches"] += self.exchanges["setWatches"]
        out["setWatches2"] += self.exchanges["setWatches2"]
        out["ping"] += self.steps - self.skipped
        return out

    def opcode_coverage(self) -> tuple[list[str], list[str]]:
        sent = self.merged_opcodes()
        hit = [name for name in TARGET_OPCODES if sent[name]]
        missed = [name for name in TARGET_OPCODES if not sent[name]]
        return hit, missed

    def family_coverage(self) -> dict[str, tuple[list[str], list[str]]]:
        out = {}
        for family, codes in ERROR_FAMILIES.items():
            hit = [c.name for c in codes if self.errors[c.name]]
            missed = [c.name for c in codes if not self.errors[c.name]]
            out[family] = (hit, missed)
        return out

    def to_json(self) -> dict[str, Any]:
        hit, missed = self.opcode_coverage()
        return {
            "examples": self.examples,
            "steps": self.steps,
            "skipped": self.skipped,
            "ops": dict(self.ops.most_common()),
            "opcodes": dict(self.merged_opcodes().most_common()),
            "opcodes_hit": hit,
            "opcodes_missed": missed,
            "create_modes": dict(sorted(self.modes.items())),
            "errors": dict(self.errors.most_common()),
            "error_families": {
                family: {"hit": h, "missed": m} for family, (h, m) in self.family_coverage().items()
            },
        }
