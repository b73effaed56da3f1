"""Divergence records (JSON lines), the live summary, and ``zetcd report``."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import trio
from rich.console import Console
from typer.testing import CliRunner

from oracle.diff import FieldDiff
from oracle.normalize import normalize_reply
from oracle.records import Answer, Divergence, DivergenceLog, jsonable, load, to_dict
from oracle.report import markdown
from oracle.summary import Summary
from zetcd.cli import app
from zetcd.proto.constants import OpCode
from zetcd.proto.records import GetDataRequest, GetDataResponse, RequestHeader, Stat

STAT = Stat(5, 6, 1000, 2000, 1, 0, 0, 0, 2, 0, 5)


def divergence(kind: str = "field", op: str = "getData") -> Divergence:
    cand = GetDataResponse(b"\xff\x00", STAT)
    orac = GetDataResponse(b"ok", STAT)
    return Divergence(
        kind=kind,
        op=op,
        detail="getData answers differ",
        session=0x100000ABC,
        sessions={"candidate": 0x7F, "oracle": 0x100000ABC},
        xid=4,
        answered="oracle",
        request={
            "header": RequestHeader(4, OpCode.GET_DATA),
            "body": GetDataRequest("/a|b", False),
        },
        candidate=Answer(cand, normalize_reply(OpCode.GET_DATA, 4, 9, 0, cand)),
        oracle=Answer(orac, normalize_reply(OpCode.GET_DATA, 4, 3, 0, orac)),
        diff=(FieldDiff("body.data", "exact", b"\xff\x00", b"ok"),),
        ts=1_700_000_000.25,
    )


def test_a_record_is_plain_json() -> None:
    d = to_dict(divergence())
    assert json.loads(json.dumps(d)) == d
    assert d["time"] == "2023-11-14T22:13:20.250Z"
    assert d["session"] == "0x100000abc"
    assert d["sessions"] == {"candidate": "0x7f", "oracle": "0x100000abc"}
    assert (d["kind"], d["op"], d["xid"], d["answered"]) == ("field", "getData", 4, "oracle")
    assert d["request"]["body"] == {"$type": "GetDataRequest", "path": "/a|b", "watch": False}
    assert d["candidate"]["raw"]["data"] == {"$hex": "ff00"}
    assert d["oracle"]["raw"]["data"] == {"$utf8": "ok"}
    norm = d["candidate"]["normalized"]
    assert norm["body.stat.version"] == 1
    assert norm["body.stat.mzxid"] == {"rule": "zxid", "value": 6, "zxid_kind": "txn"}
    assert norm["body.stat.mtime"] == {"rule": "time", "value": 2000, "anchor": 6}
    assert d["diff"] == [
        {
            "field": "body.data",
            "rule": "exact",
            "candidate": {"$hex": "ff00"},
            "oracle": {"$utf8": "ok"},
            "note": "",
        }
    ]


def test_jsonable() -> None:
    assert jsonable((1, None, "x", b"", [True])) == [1, None, "x", {"$utf8": ""}, [True]]
    assert jsonable({3: object}).keys() == {"3"}


def test_log_appends_lines_and_load_reads_them(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    log = DivergenceLog(path)
    log.write(divergence())
    log.write(divergence("error", "exists"))
    log.close()
    log.close()
    log.write(divergence())  # after close: dropped
    records = load(path)
    assert [(r["kind"], r["op"]) for r in records] == [("field", "getData"), ("error", "exists")]
    assert path.read_text().count("\n") == 2


def test_summary_counts_by_op_and_kind() -> None:
    out = io.StringIO()
    summary = Summary(Console(file=out, width=120, force_terminal=False))
    for d in (divergence(), divergence(), divergence("watch.missing", "watch")):
        summary(d)
    assert summary.total == 3
    assert summary.counts[("getData", "field")] == 2
    summary.final()
    text = out.getvalue()
    assert "watch.missing" in text and "getData" in text
    assert "cross-check finished: 3 divergences" in text


def test_markdown_report() -> None:
    records = [to_dict(divergence()), to_dict(divergence("watch.extra", "watch"))]
    text = markdown(records, "x.jsonl")
    assert text.startswith("# zetcd cross-check report\n")
    assert "2 divergences in `x.jsonl`." in text
    assert "| getData | field | 1 |" in text
    assert "| `body.data` | exact |" in text
    assert '```json\n{"body": {"$type": "GetDataRequest", "path": "/a|b"' in text
    assert markdown([], "empty.jsonl").count("\n") == 3


def test_zetcd_report_command(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    log = DivergenceLog(path)
    log.write(divergence())
    log.close()
    runner = CliRunner()
    table = runner.invoke(app, ["report", str(path)])
    assert table.exit_code == 0, table.output
    assert "getData" in table.output and "body.data" in table.output
    md = runner.invoke(app, ["report", str(path), "--markdown"])
    assert md.exit_code == 0
    assert md.output.startswith("# zetcd cross-check report")
    missing = runner.invoke(app, ["report", str(tmp_path / "nope.jsonl")])
    assert missing.exit_code == 2
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    none = runner.invoke(app, ["report", str(empty)])
    assert none.exit_code == 0 and "0 divergences" in none.output
    bad = tmp_path / "bad.jsonl"
    bad.write_text(path.read_text() + "\nnot json\n")
    garbage = runner.invoke(app, ["report", str(bad)])
    assert garbage.exit_code == 2
    assert f"{bad}, line 3: not a divergence record" in garbage.output


def test_debug_oracle_must_be_zk_or_etcd() -> None:
    argv = ["--endpoints", "127.0.0.1:1", "--debug-zkbridge", "127.0.0.1:2", "--debug-oracle", "x"]
    result = subprocess.run(
        [sys.executable, "-m", "zetcd", *argv],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "--debug-oracle must be zk or etcd" in result.stderr


def test_live_summary_redraws_on_a_terminal_and_reprints_otherwise() -> None:
    async def drive(summary: Summary) -> None:
        with trio.move_on_after(0.8):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(summary.run)
                await trio.sleep(0.1)
                summary(divergence("error", "exists"))

    tty = io.StringIO()
    live = Summary(Console(file=tty, width=100, force_terminal=True))
    trio.run(drive, live)
    assert "exists" in tty.getvalue() and "cross-check (live): 1 divergences" in tty.getvalue()
    plain = io.StringIO()
    log = Summary(Console(file=plain, width=100, force_terminal=False), interval=0.2)
    trio.run(drive, log)
    assert "cross-check so far: 1 divergences" in plain.getvalue()
