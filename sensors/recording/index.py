"""Reading MCAP files: an index built by scanning records from the start, tolerant of a
missing summary or a torn end (:func:`scan_mcap`), and a chunk's records checked and
uncompressed (:func:`chunk_records`)."""
from __future__ import annotations

import os
import struct
import zlib
from dataclasses import dataclass, field
from typing import Any

from sensors.errors import FormatError

_MAGIC = b"\x89MCAP0\r\n"
_OP_SCHEMA, _OP_CHANNEL, _OP_MESSAGE, _OP_CHUNK, _OP_MESSAGE_INDEX = 0x03, 0x04, 0x05, 0x06, 0x07
_OP_METADATA, _OP_DATA_END, _OP_FOOTER = 0x0C, 0x0F, 0x02


class _Buf:
    """A little-endian reader over bytes for MCAP record fields."""

    def __init__(self, data: bytes | memoryview, pos: int = 0) -> None:
        self.data, self.pos = data, pos

    def u16(self) -> int:
        v = struct.unpack_from("<H", self.data, self.pos)[0]
        self.pos += 2
        return v

    def u32(self) -> int:
        v = struct.unpack_from("<I", self.data, self.pos)[0]
        self.pos += 4
        return v

    def u64(self) -> int:
        v = struct.unpack_from("<Q", self.data, self.pos)[0]
        self.pos += 8
        return v

    def string(self) -> str:
        n = self.u32()
        s = bytes(self.data[self.pos:self.pos + n]).decode("utf-8")
        self.pos += n
        return s

    def blob32(self) -> bytes:
        n = self.u32()
        b = bytes(self.data[self.pos:self.pos + n])
        self.pos += n
        return b

    def str_map(self) -> dict[str, str]:
        end = self.pos + 4 + self.u32()
        out = {}
        while self.pos < end:
            k = self.string()
            out[k] = self.string()
        return out


@dataclass
class _Chunk:
    start_time: int  # log time of the chunk's first message (from its header)
    records_offset: int  # file offset of the (compressed) records
    records_length: int
    compression: str
    uncompressed_size: int
    uncompressed_crc: int
    indexed: list[tuple[int, int, int]]  # (channel id, log time, offset in the records)


@dataclass(frozen=True)
class _Loc:
    chunk: int  # -1: a message outside any chunk, ``offset`` is then a file offset
    offset: int


@dataclass
class McapScan:
    """What a scan of an MCAP file found: channels, messages by log time, whether it is complete."""

    schemas: dict[int, tuple[str, str, bytes]]  # id -> (name, encoding, data)
    channels: dict[int, tuple[str, int, str]]  # id -> (topic, schema id, message encoding)
    messages: dict[int, dict[int, _Loc]]  # log time -> channel id -> location
    metadata: dict[str, dict[str, str]]
    chunks: list[_Chunk]
    complete: bool  # the data section ended properly (DataEnd found)
    stopped_at: str | None  # why the scan stopped early, for the report
    #: damaged stretches the scan stepped over, in file order: (index of the first chunk after
    #: the damage, len(chunks) when none follows, what was wrong); their messages are lost
    damage: list[tuple[int, str]] = field(default_factory=list)


class CorruptChunk(Exception):
    """A chunk whose records cannot be decompressed or fail their checksum."""


def _decompress(data: bytes, compression: str, size: int, path: str) -> bytes:
    """A chunk's records, uncompressed; CorruptChunk when the compressed bytes are damaged."""
    if compression == "":
        return data
    if compression == "lz4":
        import lz4.frame

        try:
            return lz4.frame.decompress(data)
        except (RuntimeError, ValueError) as exc:  # lz4 reports damaged frames as RuntimeError
            raise CorruptChunk(str(exc)) from None
    if compression == "zstd":
        try:
            import zstandard
        except ImportError:
            raise FormatError("recording uses zstd compression; install the zstandard package", path) from None
        try:
            return zstandard.ZstdDecompressor().decompress(data, max_output_size=size)
        except zstandard.ZstdError as exc:
            raise CorruptChunk(str(exc)) from None
    raise FormatError(f"unsupported chunk compression {compression!r}", path)


def chunk_records(data: bytes, chunk: "_Chunk", path: str) -> bytes:
    """Decompress a chunk's records and check their CRC; CorruptChunk when either fails."""
    raw = _decompress(data, chunk.compression, chunk.uncompressed_size, path)
    if chunk.uncompressed_crc and zlib.crc32(raw) != chunk.uncompressed_crc:
        raise CorruptChunk("checksum mismatch")
    return raw


#: what parsing damaged record bytes raises (fields running off the end, bad UTF-8 strings)
PARSE_ERRORS = (struct.error, UnicodeDecodeError, IndexError, ValueError)


def _parse_records(data: bytes, scan: McapScan, chunk_index: int, want_messages: bool) -> None:
    """Schemas, channels (and, if asked, message locations) from a chunk's uncompressed records."""
    pos, n = 0, len(data)
    while pos + 9 <= n:
        op = data[pos]
        length = struct.unpack_from("<Q", data, pos + 1)[0]
        body = pos + 9
        if body + length > n:
            break
        b = _Buf(data, body)
        try:
            if op == _OP_SCHEMA:
                sid = b.u16()
                scan.schemas[sid] = (b.string(), b.string(), b.blob32())
            elif op == _OP_CHANNEL:
                cid = b.u16()
                sid = b.u16()
                scan.channels[cid] = (b.string(), sid, b.string())
            elif op == _OP_MESSAGE and want_messages:
                cid = b.u16()
                b.u32()
                log_time = b.u64()
                scan.messages.setdefault(log_time, {})[cid] = _Loc(chunk_index, pos)
        except PARSE_ERRORS:
            break  # a damaged record: what came before it stands
        pos = body + length


_KNOWN_COMPRESSIONS = ("", "lz4", "zstd")
#: how much of the file a resynchronising search reads at a time
_RESYNC_BLOCK = 4 * 1024 * 1024


def _chunk_header(head: bytes, length: int, known_compression: bool = False
                  ) -> tuple[int, int, str, int, int, int] | None:
    """(start time, uncompressed size, compression, crc, records offset in the body, records length)
    of a chunk record's body start ``head`` (at least 37 bytes plus the compression name), or None
    when the fields do not describe a chunk of ``length`` bytes (or, with ``known_compression``,
    name a compression this reader does not know: a stronger test, for searching damaged bytes;
    a real chunk with another compression is reported when it is read)."""
    try:
        b = _Buf(head)
        start = b.u64()
        b.u64()
        usize = b.u64()
        crc = b.u32()
        comp = b.string()
        rlen = b.u64()
    except PARSE_ERRORS:
        return None
    if (known_compression and comp not in _KNOWN_COMPRESSIONS) or b.pos + rlen != length:
        return None
    return start, usize, comp, crc, b.pos, rlen


def _next_chunk(f: Any, start: int, size: int) -> int | None:
    """File offset of the first chunk record at or after ``start``, found by its header's shape
    (opcode, a length that fits the file, a known compression, a records length that adds up),
    or None. Used to step over a damaged stretch of a file: a false match in compressed data is
    practically impossible, and a chunk found is still checked by its CRC when read."""
    pos = start
    while pos < size:
        f.seek(pos)
        block = f.read(_RESYNC_BLOCK + 64)  # a little overlap so headers across the edge are seen
        i = block.find(b"\x06")
        while 0 <= i < min(len(block), _RESYNC_BLOCK):
            if i + 9 + 45 <= len(block):
                head = block[i:i + 9 + 64]
            else:
                f.seek(pos + i)
                head = f.read(9 + 64)
            if len(head) >= 9 + 45:
                length = struct.unpack_from("<Q", head, 1)[0]
                if pos + i + 9 + length <= size and _chunk_header(head[9:], length, True) is not None:
                    return pos + i
            i = block.find(b"\x06", i + 1)
        pos += _RESYNC_BLOCK
    return None


def scan_mcap(path: str | os.PathLike[str]) -> McapScan:
    """Index an MCAP file by reading its records from the start (never the summary).

    Chunks are located by their headers; their messages by the message index records that
    follow each chunk, or, where those are missing (a cut-short file), by decompressing the
    chunk. A record that runs past the end of the file or makes no sense is damage when a
    well-formed chunk follows somewhere after it (bytes overwritten mid-file): the scan steps
    over to that chunk and lists the stretch in ``damage``; else it is the end of a torn file,
    where the scan stops quietly and says so in ``stopped_at``. A chunk whose records fail
    their checksum is stepped over and listed the same way.
    """
    path = os.fspath(path)
    scan = McapScan({}, {}, {}, {}, [], False, None)
    try:
        f = open(path, "rb")
    except OSError as exc:
        raise FormatError(f"cannot open the recording ({exc.strerror})", path) from None
    with f:
        size = os.fstat(f.fileno()).st_size
        if f.read(8) != _MAGIC:
            raise FormatError("not an MCAP file (bad magic bytes)", path)
        pos = 8
        while True:
            problem = None
            if pos + 9 > size:
                scan.stopped_at = None if pos == size else f"file ends inside a record header at byte {pos}"
                break
            f.seek(pos)
            head = f.read(9)
            op = head[0]
            length = struct.unpack_from("<Q", head, 1)[0]
            body = pos + 9
            if body + length > size:
                problem = f"last record (opcode {op:#04x}) is cut off at byte {size} (torn write)"
            elif op == _OP_CHUNK:
                hdr = _chunk_header(f.read(min(length, 4096)), length)
                if hdr is None:
                    problem = f"chunk at byte {pos} is malformed"
                else:
                    start, usize, comp, crc, roff, rlen = hdr
                    scan.chunks.append(_Chunk(start, body + roff, rlen, comp, usize, crc, []))
            elif op == 0 or op > 0x0F:
                problem = f"unknown record (opcode {op:#04x}) at byte {pos}"
            if problem is None:
                try:
                    done = _scan_record(f, scan, op, head, pos, length)
                except PARSE_ERRORS:
                    problem = f"record (opcode {op:#04x}) at byte {pos} is malformed"
                else:
                    if done:
                        break
            if problem is not None:
                # bytes overwritten mid-file look like any of the above: go on at the next chunk
                # that makes sense, if there is one; a torn end has none
                resume = _next_chunk(f, pos + 1, size)
                if resume is None:
                    scan.stopped_at = problem
                    break
                scan.damage.append((len(scan.chunks), f"bytes {pos}..{resume} are damaged"))
                pos = resume
                continue
            pos = body + length
        _locate_messages(f, scan, path)
    return scan


def _scan_record(f: Any, scan: McapScan, op: int, head: bytes, pos: int, length: int) -> bool:
    """Take in one record (other than a chunk) whose header ``head`` is at ``pos``, the file
    positioned at its body; True at the end of the data section."""
    if op == _OP_MESSAGE_INDEX and scan.chunks:
        b = _Buf(f.read(length))
        cid = b.u16()
        nbytes = b.u32()
        entries = scan.chunks[-1].indexed
        for _ in range(nbytes // 16):
            entries.append((cid, b.u64(), b.u64()))
    elif op in (_OP_SCHEMA, _OP_CHANNEL, _OP_MESSAGE):
        data = f.read(length)
        rec = bytes([op]) + head[1:] + data
        if op == _OP_MESSAGE:
            b = _Buf(data)
            cid = b.u16()
            b.u32()
            scan.messages.setdefault(b.u64(), {})[cid] = _Loc(-1, pos)
        else:
            _parse_records(rec, scan, -1, False)
    elif op == _OP_METADATA:
        b = _Buf(f.read(length))
        name = b.string()
        scan.metadata[name] = b.str_map()
    elif op in (_OP_DATA_END, _OP_FOOTER):
        scan.complete = True
        return True
    return False


def _locate_messages(f: Any, scan: McapScan, path: str) -> None:
    """Every chunk's messages: from the indexes that follow it, or by opening the chunk where its
    index is missing, partial or names unknown channels. A chunk whose records are damaged is
    stepped over (its messages are lost, listed in ``scan.damage``)."""
    damaged: list[tuple[int, str]] = []
    for i, ch in enumerate(scan.chunks):
        if not scan.complete and i == len(scan.chunks) - 1:
            ch.indexed = []  # a cut-short file's last index may be partial: read the chunk itself
        known = all(cid in scan.channels for cid, _, _ in ch.indexed)
        if ch.indexed and known:
            for cid, log_time, off in ch.indexed:
                scan.messages.setdefault(log_time, {})[cid] = _Loc(i, off)
            continue
        f.seek(ch.records_offset)
        try:
            raw = chunk_records(f.read(ch.records_length), ch, path)
        except CorruptChunk as exc:
            damaged.append((i + 1, f"chunk {i} is damaged ({exc})"))
            scan.messages = {t: {c: loc for c, loc in m.items() if loc.chunk != i} for t, m in scan.messages.items()}
            scan.messages = {t: m for t, m in scan.messages.items() if m}
            continue
        _parse_records(raw, scan, i, not ch.indexed)
        if ch.indexed:
            for cid, log_time, off in ch.indexed:
                scan.messages.setdefault(log_time, {})[cid] = _Loc(i, off)
    scan.damage = sorted(scan.damage + damaged)
