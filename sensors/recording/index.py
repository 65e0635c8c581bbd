"""Reading MCAP files: an index built by scanning records from the start, tolerant of a
missing summary or a torn end (:func:`scan_mcap`), and a chunk's records checked and
uncompressed (:func:`chunk_records`)."""
from __future__ import annotations

import os
import struct
import zlib
from dataclasses import dataclass

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


def scan_mcap(path: str | os.PathLike[str]) -> McapScan:
    """Index an MCAP file by reading its records from the start (never the summary).

    Chunks are located by their headers; their messages by the message index records that
    follow each chunk, or, where those are missing (a cut-short file), by decompressing the
    chunk. The scan stops quietly at the first record that runs past the end of the file or
    makes no sense, and says so in ``stopped_at``.
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
            if pos + 9 > size:
                scan.stopped_at = None if pos == size else f"file ends inside a record header at byte {pos}"
                break
            f.seek(pos)
            head = f.read(9)
            op = head[0]
            length = struct.unpack_from("<Q", head, 1)[0]
            body = pos + 9
            if body + length > size:
                scan.stopped_at = f"last record (opcode {op:#04x}) is cut off at byte {size} (torn write)"
                break
            try:
                if op == _OP_CHUNK:
                    hdr = f.read(min(length, 4096))
                    b = _Buf(hdr)
                    b.u64()
                    b.u64()
                    usize = b.u64()
                    crc = b.u32()
                    comp = b.string()
                    rlen = b.u64()
                    if b.pos + rlen != length:
                        scan.stopped_at = f"chunk at byte {pos} is malformed"
                        break
                    scan.chunks.append(_Chunk(body + b.pos, rlen, comp, usize, crc, []))
                elif op == _OP_MESSAGE_INDEX and scan.chunks:
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
                    break
                elif op == 0 or op > 0x0F:
                    scan.stopped_at = f"unknown record (opcode {op:#04x}) at byte {pos}"
                    break
            except PARSE_ERRORS:
                scan.stopped_at = f"record (opcode {op:#04x}) at byte {pos} is malformed"
                break
            pos = body + length
        # locate messages: from the indexes, or by opening chunks the index does not cover
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
                scan.stopped_at = f"chunk {i} is damaged ({exc}); the recording is read up to it"
                scan.chunks = scan.chunks[:i]
                scan.messages = {t: {c: loc for c, loc in m.items() if loc.chunk < i}
                                 for t, m in scan.messages.items()}
                break
            _parse_records(raw, scan, i, not ch.indexed)
            if ch.indexed:
                for cid, log_time, off in ch.indexed:
                    scan.messages.setdefault(log_time, {})[cid] = _Loc(i, off)
    return scan
