"""Structure-aware mutations of checkpoint files, with every checksum recomputed.

The mutators decode what they change (LevelDB table blocks, ``BundleHeaderProto`` /
``BundleEntryProto`` and every nested message as generic protobuf fields, string tensors, slice
keys, the object graph, ``.meta``, state-file text, HDF5 weights), edit one thing, and re-encode
it the way TensorFlow would: block trailers get a fresh masked CRC32C, entries a fresh ``crc32c``
over the bytes they now point to. So a mutation reaches the semantic checks instead of stopping at
the first checksum. A few mutations deliberately skip the recompute (raw flips, truncations) or
replace files by other kinds of file (FIFO, directory, symlink loop, ``/dev/zero``).

This module never imports ckptbridge: it is an independent encoder, so a shared bug cannot hide::

    case = Case.from_seed(seed, folder)
    description = mutate(case, random.Random(7))   # edits files in `folder`
    case.preserving                                  # True: values must equal the seed's
"""

from __future__ import annotations

import os
import random
import shutil
import struct
from dataclasses import dataclass, field
from pathlib import Path

import cramjam
import google_crc32c

from fuzz_seeds import Seed

MAGIC = 0xDB4775248B80FB57
_MASK_DELTA = 0xA282EAD8
INTERESTING = [0, 1, 2, 3, 7, 8, 127, 128, 255, 256, 4096, 65535, 1 << 20, (1 << 31) - 1, 1 << 31,
               (1 << 32) - 1, 1 << 32, 1 << 40, (1 << 56), (1 << 63) - 1, 1 << 63, (1 << 64) - 1,
               (1 << 64) - 2, (1 << 64) - 8]  # fmt: skip


class Malformed(ValueError):
    """The bytes do not decode (the mutator picks another target)."""


_MAX_READ = 16 << 20


def read_file(path: Path) -> bytes:
    """A file's bytes, only if it is a regular file of at most 16 MiB: an earlier mutation may
    have made it a FIFO, a /dev/zero link or a 3 GiB sparse file, which this process must not read.
    """
    if path.is_symlink() or not path.is_file() or path.stat().st_size > _MAX_READ:
        raise Malformed(f"{path.name} is not a small regular file")
    return path.read_bytes()


def write_file(path: Path, data: bytes) -> None:
    """Write ``data`` unless ``path`` is a FIFO, link or directory an earlier mutation made
    (opening a FIFO for writing would block this process)."""
    if path.is_symlink() or (path.exists() and not path.is_file()):
        raise Malformed(f"{path.name} is not a regular file")
    path.write_bytes(data)


# -- protobuf wire format (generic) ------------------------------------------------------------
def varint(value: int, pad: int = 0) -> bytes:
    """Encode ``value`` (negative as two's complement), ``pad`` extra continuation bytes."""
    value &= (1 << 64) - 1
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    for _ in range(pad):
        out[-1] |= 0x80
        out.append(0)
    return bytes(out)


def read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    for i in range(10):
        if pos + i >= len(buf):
            raise Malformed("varint past end")
        byte = buf[pos + i]
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result & ((1 << 64) - 1), pos + i + 1
        shift += 7
    raise Malformed("long varint")


Field = list  # [number, wire, value, pad]: value int (wire 0/1/5) or bytes (wire 2)


def pb_parse(buf: bytes) -> list[Field]:
    fields: list[Field] = []
    pos = 0
    while pos < len(buf):
        tag, pos = read_varint(buf, pos)
        number, wire = tag >> 3, tag & 7
        if number == 0:
            raise Malformed("field 0")
        if wire == 0:
            value, pos = read_varint(buf, pos)
        elif wire == 1 or wire == 5:
            width = 8 if wire == 1 else 4
            if pos + width > len(buf):
                raise Malformed("fixed past end")
            value = int.from_bytes(buf[pos : pos + width], "little")
            pos += width
        elif wire == 2:
            size, pos = read_varint(buf, pos)
            if pos + size > len(buf):
                raise Malformed("bytes past end")
            value = bytes(buf[pos : pos + size])
            pos += size
        else:
            raise Malformed(f"wire type {wire}")
        fields.append([number, wire, value, 0])
    return fields


def pb_encode(fields: list[Field]) -> bytes:
    out = bytearray()
    for number, wire, value, pad in fields:
        out += varint(number << 3 | wire)
        if wire == 0:
            out += varint(int(value), pad)
        elif wire in (1, 5):
            out += (int(value) & ((1 << (64 if wire == 1 else 32)) - 1)).to_bytes(
                8 if wire == 1 else 4, "little"
            )
        else:
            out += varint(len(value), pad) + value
    return bytes(out)


def _is_message(value: object) -> bool:
    if not isinstance(value, bytes) or not value:
        return False
    try:
        pb_parse(value)
    except Malformed:
        return False
    return True


def pb_mutate(buf: bytes, rng: random.Random, depth: int = 0) -> tuple[bytes, str, bool]:
    """One field-level edit somewhere in the message tree; returns (bytes, what, preserving)."""
    try:
        fields = pb_parse(buf)
    except Malformed:
        return _bytes_edit(buf, rng), "raw edit of undecodable message", False
    if not fields or rng.random() < 0.08:
        number = rng.choice([rng.randint(1, 12), rng.randint(50, 2000)])
        wire = rng.choice([0, 1, 2, 5])
        value: int | bytes = (
            rng.choice(INTERESTING) if wire != 2 else rng.randbytes(rng.randint(0, 9))
        )
        fields.insert(rng.randint(0, len(fields)), [number, wire, value, 0])
        return pb_encode(fields), f"d{depth}: insert field {number} wire {wire}", number >= 50
    i = rng.randrange(len(fields))
    number, wire, value, _ = fields[i]
    if wire == 2 and _is_message(value) and rng.random() < 0.7 and depth < 12:
        inner, what, keep = pb_mutate(value, rng, depth + 1)
        fields[i][2] = inner
        return pb_encode(fields), f"d{depth} f{number} > {what}", keep
    op = rng.choice(["value", "wire", "dup", "delete", "overlong", "move", "value", "unknown"])
    where = f"d{depth} f{number}"
    if op == "value":
        if wire == 2:
            fields[i][2] = _bytes_edit(value, rng)
        else:
            fields[i][2] = rng.choice([*INTERESTING, value + 1, value - 1, value ^ 1, -1])
        return pb_encode(fields), f"{where}: value", False
    if op == "wire":
        new = rng.choice([w for w in (0, 1, 2, 5) if w != wire])
        if new == 2:
            fields[i][2] = varint(value) if isinstance(value, int) else value
        elif isinstance(value, bytes):
            fields[i][2] = int.from_bytes(value[:8].ljust(8, b"\0"), "little")
        fields[i][1] = new
        return pb_encode(fields), f"{where}: wire {wire}->{new}", False
    if op == "dup":
        fields.insert(i + rng.choice([0, 1, len(fields) - i]), list(fields[i]))
        return pb_encode(fields), f"{where}: duplicated", False
    if op == "delete":
        del fields[i]
        return pb_encode(fields), f"{where}: deleted", False
    if op == "overlong":
        fields[i][3] = rng.randint(1, 10 - len(varint(value if wire == 0 else len(value))))
        if fields[i][3] <= 0:
            fields[i][3] = 0
        return pb_encode(fields), f"{where}: overlong varint", wire in (0, 2)
    if op == "move":
        j = rng.randrange(len(fields))
        fields[i], fields[j] = fields[j], fields[i]
        return pb_encode(fields), f"{where}: reordered with #{j}", number == fields[i][0]
    extra = rng.choice([1000, 99, 64, 536870911])
    fields.insert(i, [extra, rng.choice([0, 2, 5, 1]), 5, 0])
    if fields[i][1] == 2:
        fields[i][2] = b"unknown"
    return pb_encode(fields), f"{where}: unknown field {extra} before", True


def _bytes_edit(value: bytes, rng: random.Random) -> bytes:
    op = rng.randrange(6)
    data = bytearray(value)
    if op == 0 and data:
        data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    elif op == 1:
        return bytes(data[: rng.randint(0, len(data))])
    elif op == 2:
        return bytes(data) + rng.randbytes(rng.randint(1, 16))
    elif op == 3:
        return rng.randbytes(rng.randint(0, 32))
    elif op == 4 and data:
        data[rng.randrange(len(data))] = rng.choice([0, 0xFF, 0x80, 0x7F, 0xC3])
    else:
        return bytes(rng.choice([b"", b"\x00", b"\xff\xfe", "é".encode(), b"a" * 300]))
    return bytes(data)


# -- LevelDB tables ----------------------------------------------------------------------------
def mask_crc(crc: int) -> int:
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


def block_crc(contents: bytes, kind: int) -> int:
    return mask_crc(google_crc32c.extend(google_crc32c.value(contents), bytes([kind])))


def _block_items(block: bytes) -> list[tuple[bytes, bytes]]:
    (restarts,) = struct.unpack_from("<I", block, len(block) - 4)
    limit = len(block) - 4 - 4 * restarts
    items, key, pos = [], b"", 0
    while pos < limit:
        shared, pos = read_varint(block, pos)
        unshared, pos = read_varint(block, pos)
        size, pos = read_varint(block, pos)
        key = key[:shared] + block[pos : pos + unshared]
        pos += unshared
        items.append((key, block[pos : pos + size]))
        pos += size
    return items


def _read_block(data: bytes, offset: int, size: int) -> bytes:
    contents, kind = data[offset : offset + size], data[offset + size]
    return cramjam.snappy.decompress_raw(contents).read() if kind == 1 else contents


def table_parse(data: bytes) -> list[tuple[bytes, bytes]]:
    """Every (key, value) of a valid table (seeds only; raises on damage)."""
    footer = data[-48:]
    _, pos = read_varint(footer, 0)
    _, pos = read_varint(footer, pos)
    index_offset, pos = read_varint(footer, pos)
    index_size, _ = read_varint(footer, pos)
    items = []
    for _, handle in _block_items(_read_block(data, index_offset, index_size)):
        offset, pos = read_varint(handle, 0)
        size, _ = read_varint(handle, pos)
        items += _block_items(_read_block(data, offset, size))
    return items


@dataclass
class Layout:
    """How a table is laid out: all preserve the items (TensorFlow reads each the same)."""

    block_size: int = 262144
    restart: int = 16
    snappy: float = 0.0  # fraction of blocks compressed

    @classmethod
    def random(cls, rng: random.Random) -> Layout:
        return cls(rng.choice([1, 40, 200, 262144]), rng.choice([1, 2, 16, 1000]),
                   rng.choice([0.0, 0.0, 0.5, 1.0]))  # fmt: skip


def _block(items: list[tuple[bytes, bytes]], restart: int) -> bytes:
    out, restarts, last = bytearray(), [], b""
    for n, (key, value) in enumerate(items):
        shared = 0
        if n % restart:
            while shared < min(len(key), len(last)) and key[shared] == last[shared]:
                shared += 1
        else:
            restarts.append(len(out))
        out += varint(shared) + varint(len(key) - shared) + varint(len(value))
        out += key[shared:] + value
        last = key
    restarts = restarts or [0]
    return (
        bytes(out)
        + b"".join(struct.pack("<I", r) for r in restarts)
        + struct.pack("<I", len(restarts))
    )


def table_build(items: list[tuple[bytes, bytes]], layout: Layout, rng: random.Random) -> bytes:
    """Encode items (in the order given) as TensorFlow's table writer would, with ``layout``."""
    out = bytearray()

    def emit(contents: bytes) -> bytes:
        kind = 0
        if rng.random() < layout.snappy:
            contents, kind = bytes(cramjam.snappy.compress_raw(contents)), 1
        handle = varint(len(out)) + varint(len(contents))
        out.extend(contents + bytes([kind]) + struct.pack("<I", block_crc(contents, kind)))
        return handle

    index: list[tuple[bytes, bytes]] = []
    pending: list[tuple[bytes, bytes]] = []
    size = 0
    for key, value in items:
        pending.append((key, value))
        size += len(key) + len(value) + 3
        if size >= layout.block_size:
            index.append((key, emit(_block(pending, layout.restart))))
            pending, size = [], 0
    if pending:
        index.append((pending[-1][0], emit(_block(pending, layout.restart))))
    meta = emit(_block([], 16))
    top = emit(_block(index, 1))
    return bytes(out) + (meta + top).ljust(40, b"\0") + struct.pack("<Q", MAGIC)


def fix_block_crcs(data: bytearray) -> None:
    """Recompute the trailer CRC of every block the footer and index reach (best effort)."""
    try:
        footer = bytes(data[-48:])
        handles = []
        pos = 0
        for _ in range(2):
            offset, pos = read_varint(footer, pos)
            size, pos = read_varint(footer, pos)
            handles.append((offset, size))
        offset, size = handles[1]
        if offset + size + 5 <= len(data) - 48:
            data[offset + size + 1 : offset + size + 5] = struct.pack(
                "<I", block_crc(bytes(data[offset : offset + size]), data[offset + size])
            )
            for _, handle in _block_items(_read_block(bytes(data), offset, size)):
                handles.append(_handle(handle))
    except (Malformed, struct.error, IndexError, ValueError, OSError, cramjam.DecompressionError):
        pass
    for offset, size in handles:
        if offset >= 0 and offset + size + 5 <= len(data) - 48:
            kind = data[offset + size]
            data[offset + size + 1 : offset + size + 5] = struct.pack(
                "<I", block_crc(bytes(data[offset : offset + size]), kind)
            )


def _handle(handle: bytes) -> tuple[int, int]:
    offset, pos = read_varint(handle, 0)
    size, _ = read_varint(handle, pos)
    return offset, size


# -- the case: files of one seed in a folder ----------------------------------------------------
@dataclass
class Case:
    folder: Path
    seed: Seed
    preserving: bool = True
    notes: list[str] = field(default_factory=list)

    @classmethod
    def from_seed(cls, seed: Seed, folder: Path) -> Case:
        folder.mkdir(parents=True, exist_ok=True)
        for path in seed.files:
            shutil.copyfile(path, folder / Path(path).name)
        return cls(folder, seed)

    @property
    def path(self) -> Path:
        return self.folder / self.seed.open if self.seed.open else self.folder

    def files(self) -> list[Path]:
        return sorted(p for p in self.folder.iterdir())

    def prefix(self) -> str | None:
        if self.seed.kind == "bundle":
            return self.seed.open
        index = [p for p in self.folder.glob("*.index") if p.is_file()]
        return index[0].name[: -len(".index")] if index else None


def entry_crc(data: bytes) -> int:
    return mask_crc(google_crc32c.value(data))


def string_tensor(values: list[bytes], *, damage_check: bool = False) -> tuple[bytes, int]:
    """Encode strings as TensorFlow's WriteStringTensor; return (data, masked entry crc).

    ``damage_check`` stores a wrong length checksum (the entry crc still covers what is stored).
    """
    lengths = b"".join(varint(len(v)) for v in values)
    crc = 0
    for v in values:
        crc = google_crc32c.extend(
            crc, struct.pack("<I", len(v)) if len(v) < 1 << 32 else struct.pack("<Q", len(v))
        )
    check = struct.pack("<I", mask_crc(crc) ^ (0x5A if damage_check else 0))
    crc = google_crc32c.extend(crc, check)
    body = b"".join(values)
    crc = google_crc32c.extend(crc, body)
    return lengths + check + body, mask_crc(crc)


def string_values(raw: bytes, count: int) -> list[bytes]:
    lengths, pos = [], 0
    for _ in range(count):
        n, pos = read_varint(raw, pos)
        lengths.append(n)
    pos += 4
    out = []
    for n in lengths:
        out.append(raw[pos : pos + n])
        pos += n
    return out


class Bundle:
    """The index items and data shards of a bundle case, edited in memory then written back."""

    def __init__(self, case: Case) -> None:
        self.case = case
        self.prefix = case.prefix()
        if self.prefix is None:
            raise Malformed("no bundle")
        self.index_path = case.folder / (self.prefix + ".index")
        self.items = [list(kv) for kv in table_parse(read_file(self.index_path))]
        self.shards = {
            p.name: bytearray(read_file(p))
            for p in sorted(case.folder.glob(self.prefix + ".data-*"))
        }
        self.layout = Layout()
        self.sort = True

    def entries(self) -> list[int]:
        return [i for i, (k, _) in enumerate(self.items) if k]

    def shard_name(self, shard: int) -> str:
        names = sorted(self.shards)
        return names[shard] if shard < len(names) else ""

    def location(self, value: bytes) -> dict[int, int]:
        got = {3: 0, 4: 0, 5: 0, 1: 0}
        for number, wire, v, _ in pb_parse(value):
            if number in got and wire == 0:
                got[number] = v
        return got

    def region(self, value: bytes) -> tuple[str, int, int] | None:
        loc = self.location(value)
        name = self.shard_name(loc[3])
        if not name or loc[5] <= 0 or loc[4] + loc[5] > len(self.shards[name]):
            return None
        return name, loc[4], loc[5]

    @staticmethod
    def set_fields(value: bytes, updates: dict[int, tuple[int, int | bytes]]) -> bytes:
        fields = [f for f in pb_parse(value) if f[0] not in updates]
        for number, (wire, v) in sorted(updates.items()):
            fields.append([number, wire, v, 0])
        fields.sort(key=lambda f: f[0])
        return pb_encode(fields)

    def append_data(
        self, i: int, data: bytes, crc: int, extra: dict[int, tuple[int, int | bytes]] | None = None
    ) -> None:
        name = sorted(self.shards)[0]
        shard = sorted(self.shards).index(name)
        offset = len(self.shards[name])
        self.shards[name] += data
        updates: dict[int, tuple[int, int | bytes]] = {
            3: (0, shard),
            4: (0, offset),
            5: (0, len(data)),
            6: (5, crc),
        }
        updates.update(extra or {})
        self.items[i][1] = self.set_fields(self.items[i][1], updates)

    def write(self, rng: random.Random) -> None:
        items = [(bytes(k), bytes(v)) for k, v in self.items]
        if self.sort:
            items.sort(key=lambda kv: kv[0])
        write_file(self.index_path, table_build(items, self.layout, rng))
        for name, data in self.shards.items():
            write_file((self.case.folder / name), bytes(data))


# -- the mutators ----------------------------------------------------------------------------
# Each takes (case, rng), edits the files and returns what it did, or None when it does not apply.
# Mutators that may change values set case.preserving = False.
def _dtype_of(value: bytes) -> int:
    for number, wire, v, _ in pb_parse(value):
        if number == 1 and wire == 0:
            return int(v)
    return 0


def _shape_of(value: bytes) -> list[int]:
    for number, wire, v, _ in pb_parse(value):
        if number == 2 and wire == 2:
            dims = []
            for sub, _, dim, _ in pb_parse(v):
                if sub == 2:
                    size = [x[2] for x in pb_parse(dim) if x[0] == 1]
                    dims.append(size[-1] if size else 0)
            return dims
    return []


def _shape_proto(dims: list[int]) -> bytes:
    return b"".join(pb_encode([[2, 2, pb_encode([[1, 0, d, 0]]) if d else b"", 0]]) for d in dims)


def m_entry_field(case: Case, rng: random.Random) -> str | None:
    """A field-level protobuf edit of one BundleEntryProto (or its shape / slices)."""
    bundle = Bundle(case)
    i = rng.choice(bundle.entries())
    new, what, keep = pb_mutate(bundle.items[i][1], rng)
    bundle.items[i][1] = new
    bundle.write(rng)
    case.preserving &= keep
    return f"entry {bundle.items[i][0][:40]!r}: {what}"


def m_header(case: Case, rng: random.Random) -> str | None:
    """Edit the BundleHeaderProto: num_shards, endianness (and its wire type), version."""
    bundle = Bundle(case)
    header = bundle.items[0][1]
    op = rng.randrange(5)
    if op == 0:  # endianness with a non-varint wire type: protobuf skips it as unknown
        wire = rng.choice([1, 5, 2])
        value: int | bytes = 1 if wire != 2 else b"\x01"
        fields = [f for f in pb_parse(header) if f[0] != 2] + [[2, wire, value, 0]]
        bundle.items[0][1] = pb_encode(fields)
        what = f"endianness=1 as wire type {wire}"
        case.preserving &= True
    elif op == 1:
        bundle.items[0][1] = Bundle.set_fields(header, {2: (0, rng.choice([0, 1, 2, 1 << 32]))})
        what = "endianness value"
        case.preserving = False
    elif op == 2:  # num_shards with the shard files renamed to match
        count = rng.choice(
            [0, 1, 2, 3, len(bundle.shards) + 1, 99999, 100000, 1 << 32, (1 << 64) - 1]
        )
        bundle.items[0][1] = Bundle.set_fields(header, {1: (0, count)})
        if rng.random() < 0.7 and 0 < count <= 99999:
            renamed = {}
            for n, (name, data) in enumerate(sorted(bundle.shards.items())):
                (case.folder / name).unlink()
                renamed[f"{bundle.prefix}.data-{n:05d}-of-{count:05d}"] = data
            bundle.shards = renamed
        what = f"num_shards={count}"
        case.preserving = False
    else:
        bundle.items[0][1], what, keep = pb_mutate(header, rng)
        case.preserving &= keep
    bundle.write(rng)
    return "header: " + what


def m_data(case: Case, rng: random.Random) -> str | None:
    """Change stored tensor bytes and recompute the entry's crc32c (values change; TF decides)."""
    bundle = Bundle(case)
    usable = [
        i
        for i in bundle.entries()
        if bundle.region(bundle.items[i][1]) and _dtype_of(bundle.items[i][1]) != 7
    ]
    if not usable:
        return None
    i = rng.choice(usable)
    name, offset, size = bundle.region(bundle.items[i][1])  # type: ignore[misc]
    data = bundle.shards[name]
    for _ in range(rng.randint(1, 4)):
        pos = offset + rng.randrange(size)
        data[pos] = rng.choice([0, 0xFF, 0x7F, 0x80, 0x01, 0x02, rng.randrange(256)])
    crc = entry_crc(bytes(data[offset : offset + size]))
    bundle.items[i][1] = Bundle.set_fields(bundle.items[i][1], {6: (5, crc)})
    bundle.write(rng)
    case.preserving = False
    return f"data of {bundle.items[i][0][:40]!r}: bytes changed, crc recomputed"


def m_strings(case: Case, rng: random.Random) -> str | None:
    """Re-encode a string tensor (or the object graph) with other strings/lengths; CRCs redone."""
    bundle = Bundle(case)
    usable = [
        i
        for i in bundle.entries()
        if _dtype_of(bundle.items[i][1]) == 7 and bundle.region(bundle.items[i][1])
    ]
    if not usable:
        return None
    i = rng.choice(usable)
    name, offset, size = bundle.region(bundle.items[i][1])  # type: ignore[misc]
    count = 1
    for d in _shape_of(bundle.items[i][1]):
        count *= d
    try:
        values = string_values(bytes(bundle.shards[name][offset : offset + size]), count)
    except Malformed:
        return None
    op = rng.randrange(5)
    if op == 0 and values:
        j = rng.randrange(len(values))
        values[j] = _bytes_edit(values[j], rng)
    elif op == 1:
        values.append(b"extra")
    elif op == 2 and values:
        values.pop()
    elif op == 3 and values:
        j = rng.randrange(len(values))
        values[j] = rng.choice([b"", b"\x00" * 5, "ü".encode(), b"\xff\xfe\xfd"])
    data, crc = string_tensor(values, damage_check=op == 4)
    bundle.append_data(i, data, crc)
    bundle.write(rng)
    case.preserving = False
    return f"strings of {bundle.items[i][0][:40]!r}: op {op}"


def m_objgraph(case: Case, rng: random.Random) -> str | None:
    """Mutate the TrackableObjectGraph proto inside _CHECKPOINTABLE_OBJECT_GRAPH (CRCs redone)."""
    bundle = Bundle(case)
    found = [i for i, (k, _) in enumerate(bundle.items) if k == b"_CHECKPOINTABLE_OBJECT_GRAPH"]
    if not found:
        return None
    i = found[0]
    region = bundle.region(bundle.items[i][1])
    if region is None:
        return None
    name, offset, size = region
    op = rng.randrange(6)
    if op == 0:  # stored as a number, not a string
        dtype = rng.choice([9, 23, 1, 4])
        width = {9: 8, 23: 8, 1: 4, 4: 1}[dtype]
        raw = rng.choice([1 << 40, (1 << 64) - 1, 1 << 63, 5]).to_bytes(8, "little")[:width]
        bundle.append_data(i, raw, entry_crc(raw), {1: (0, dtype), 2: (2, b"")})
        what = f"object graph as dtype {dtype}"
    else:
        try:
            (graph,) = string_values(bytes(bundle.shards[name][offset : offset + size]), 1)
        except (Malformed, ValueError):
            return None
        for _ in range(1 if op < 4 else 3):
            graph, what, _ = pb_mutate(graph, rng)
        data, crc = string_tensor([graph])
        bundle.append_data(i, data, crc)
    bundle.write(rng)
    # values of the other entries do not depend on the graph (keys are stored keys)
    return f"object graph: {what}"


def m_retarget(case: Case, rng: random.Random) -> str | None:
    """Shape, dtype, offset or size changed consistently (crc recomputed over the new region)."""
    bundle = Bundle(case)
    usable = [i for i in bundle.entries() if bundle.region(bundle.items[i][1])]
    if not usable:
        return None
    i = rng.choice(usable)
    value = bundle.items[i][1]
    name, offset, size = bundle.region(value)  # type: ignore[misc]
    shard = sorted(bundle.shards).index(name)
    op = rng.randrange(6)
    updates: dict[int, tuple[int, int | bytes]] = {}
    shape = _shape_of(value)
    if op == 0:  # reshape, same element count
        count = 1
        for d in shape:
            count *= d
        updates[2] = (
            2,
            _shape_proto(rng.choice([[count], [1, count], [count, 1], shape[::-1], []])),
        )
    elif op == 1:  # same-width dtype
        groups = [[1, 3, 22], [2, 9, 23], [19, 14, 5, 17], [4, 6, 10]]
        dtype = _dtype_of(value)
        for g in groups:
            if dtype in g:
                updates[1] = (0, rng.choice(g))
        if not updates:
            updates[1] = (0, rng.choice([1, 2, 3, 9, 10, 7, 20, 21, 0, 100, 1 << 31]))
    elif op == 2:  # another entry's bytes
        j = rng.choice(usable)
        jname, joff, jsize = bundle.region(bundle.items[j][1])  # type: ignore[misc]
        shard, offset, size = sorted(bundle.shards).index(jname), joff, jsize
        name = jname
    elif op == 3:  # window shifted inside the shard
        offset = max(
            0, min(len(bundle.shards[name]) - size, offset + rng.choice([-8, -4, -1, 1, 4, 8]))
        )
    elif op == 4:  # shape with huge or zero dims but the same bytes
        updates[2] = (
            2,
            _shape_proto(
                rng.choice(
                    [
                        [0],
                        [0, 1 << 40],
                        [1 << 31, 1 << 31, 0],
                        [1] * 70,
                        [(1 << 63) - 1, 0],
                        [1 << 62, 4],
                    ]
                )
            ),
        )
    else:  # size or offset beyond the shard, raw (no consistency)
        updates[rng.choice([4, 5])] = (0, rng.choice(INTERESTING))
    if op != 5:
        crc = entry_crc(bytes(bundle.shards[name][offset : offset + size]))
        updates.update({3: (0, shard), 4: (0, offset), 5: (0, size), 6: (5, crc)})
    bundle.items[i][1] = Bundle.set_fields(value, updates)
    bundle.write(rng)
    case.preserving = False
    return f"retarget {bundle.items[i][0][:40]!r}: op {op}"


def _slice_keys(bundle: Bundle) -> list[int]:
    return [i for i, (k, _) in enumerate(bundle.items) if k[:1] == b"\x00"]


def m_slices(case: Case, rng: random.Random) -> str | None:
    """Partitioned variables: extents, repeated slices, slice keys, NUL-prefixed plain keys."""
    bundle = Bundle(case)
    full = [i for i in bundle.entries() if any(f[0] == 7 for f in pb_parse(bundle.items[i][1]))]
    op = rng.randrange(6)
    if op == 0 or not full:  # a plain entry renamed to start with NUL
        i = rng.choice(bundle.entries())
        bundle.items[i][0] = b"\x00" + bytes(bundle.items[i][0])
        what = "plain key prefixed with NUL"
        case.preserving = False
    elif op == 1:  # repeat a slice extent
        i = rng.choice(full)
        fields = pb_parse(bundle.items[i][1])
        slices = [f for f in fields if f[0] == 7]
        fields.append(list(rng.choice(slices)))
        bundle.items[i][1] = pb_encode(fields)
        what = "slice repeated"
        case.preserving = False
    elif op == 2:  # edit an extent somewhere in the slices
        i = rng.choice(full)
        fields = pb_parse(bundle.items[i][1])
        j = rng.choice([n for n, f in enumerate(fields) if f[0] == 7])
        fields[j][2], what, _ = pb_mutate(fields[j][2], rng)
        bundle.items[i][1] = pb_encode(fields)
        case.preserving = False
    elif op == 3 and _slice_keys(bundle):  # damage a slice key
        i = rng.choice(_slice_keys(bundle))
        key = bytearray(bundle.items[i][0])
        key[rng.randrange(1, len(key))] = rng.randrange(256)
        bundle.items[i][0] = bytes(key)
        what = "slice key byte"
        case.preserving = False
    elif op == 4 and _slice_keys(bundle):  # drop one stored slice
        del bundle.items[rng.choice(_slice_keys(bundle))]
        what = "slice removed"
        case.preserving = False
    else:  # the full entry's shape grows or shrinks
        i = rng.choice(full)
        shape = _shape_of(bundle.items[i][1])
        k = rng.randrange(len(shape)) if shape else 0
        if shape:
            shape[k] = rng.choice([0, shape[k] - 1, shape[k] + 1, 1 << 40])
        bundle.items[i][1] = Bundle.set_fields(bundle.items[i][1], {2: (2, _shape_proto(shape))})
        what = "full shape"
        case.preserving = False
    bundle.write(rng)
    return "slices: " + what


def m_keys(case: Case, rng: random.Random) -> str | None:
    """Keys: non-UTF-8, colliding, duplicated, out of order."""
    bundle = Bundle(case)
    entries = bundle.entries()
    i = rng.choice(entries)
    op = rng.randrange(4)
    if op == 0:
        bundle.items[i][0] = bytes(bundle.items[i][0]) + rng.choice(
            [b"\xff", b"\xc3", b"\xed\xa0\x80", b"\x00x"]
        )
    elif op == 1:
        bundle.items.append([bundle.items[i][0], bundle.items[i][1]])
    elif op == 2:
        j = rng.choice(entries)
        bundle.items[i], bundle.items[j] = bundle.items[j], bundle.items[i]
        bundle.sort = False
    else:
        bundle.items.append([b"\xff\xfe", bundle.items[i][1]])
        bundle.items.append([b"\xff\xfd", bundle.items[i][1]])
    bundle.write(rng)
    case.preserving = False
    return f"keys: op {op}"


def m_layout(case: Case, rng: random.Random) -> str | None:
    """Rewrite the index table with other block sizes, restart intervals, snappy blocks."""
    if case.seed.kind == "v1":
        path = case.folder / case.seed.open
        items = table_parse(read_file(path))
        layout = Layout.random(rng)
        write_file(path, table_build(items, layout, rng))
        return f"v1 layout {layout}"
    bundle = Bundle(case)
    bundle.layout = Layout.random(rng)
    bundle.write(rng)
    return f"index layout {bundle.layout}"


def _table_file(case: Case) -> Path | None:
    if case.seed.kind == "v1":
        return case.folder / case.seed.open
    prefix = case.prefix()
    return case.folder / (prefix + ".index") if prefix else None


def m_table_raw(case: Case, rng: random.Random) -> str | None:
    """Raw edits inside table blocks (restarts, prefix lengths, handles), block CRCs recomputed."""
    path = _table_file(case)
    if path is None:
        return None
    if rng.random() < 0.5:  # first spread entries over many small snappy/plain blocks
        items = table_parse(read_file(path))
        write_file(path, table_build(items, Layout.random(rng), rng))
    data = bytearray(read_file(path))
    body = len(data) - 48
    for _ in range(rng.randint(1, 3)):
        region = rng.random()
        pos = body + rng.randrange(20) if region < 0.1 else rng.randrange(max(body, 1))
        data[pos] = rng.choice([0, 0xFF, 0x80, 0x7F, 1, rng.randrange(256), data[pos] ^ 1])
    if rng.random() < 0.85:
        fix_block_crcs(data)
    write_file(path, bytes(data))
    case.preserving = False
    return f"raw table bytes of {path.name}"


def m_v1_values(case: Case, rng: random.Random) -> str | None:
    """V1 files: a protobuf edit of the metadata or one SavedSlice record, table rebuilt."""
    if case.seed.kind != "v1":
        return None
    path = case.folder / case.seed.open
    items = [list(kv) for kv in table_parse(read_file(path))]
    i = rng.randrange(len(items)) if rng.random() < 0.7 else 0
    items[i][1], what, keep = pb_mutate(items[i][1], rng)
    if rng.random() < 0.1:
        items[i][0] = bytes(items[i][0]) + b"\x01"
        keep = False
    items.sort(key=lambda kv: kv[0])
    write_file(path, table_build([(bytes(k), bytes(v)) for k, v in items], Layout.random(rng), rng))
    case.preserving &= keep
    return f"v1 record {i}: {what}"


def m_truncate(case: Case, rng: random.Random) -> str | None:
    """Truncate or extend one file (no checksum repair)."""
    files = [p for p in case.files() if p.is_file() and p.name != "checkpoint"]
    if not files:
        return None
    path = rng.choice(files)
    data = read_file(path)
    if rng.random() < 0.2 and ".data-" in path.name:
        write_file(path, data + rng.randbytes(rng.randint(1, 64)))  # trailing bytes: harmless
        return f"{path.name}: extended"
    cut = rng.choice(
        [0, 1, 47, 48, len(data) // 2, max(len(data) - 1, 0), rng.randint(0, len(data))]
    )
    write_file(path, data[:cut])
    case.preserving = False
    return f"{path.name}: truncated to {cut}"


def m_meta(case: Case, rng: random.Random) -> str | None:
    """Mutate the MetaGraphDef in .meta (values must not change)."""
    metas = [p for p in case.files() if p.suffix == ".meta" and p.is_file()]
    if not metas:
        return None
    path = rng.choice(metas)
    data = read_file(path)
    op = rng.randrange(8)
    if op == 0:
        write_file(path, data[: rng.randint(0, len(data))])
        return f"{path.name}: truncated"
    if op == 1:
        write_file(path, rng.choice([b"", rng.randbytes(64), b"\x0a\xff\xff\xff\xff\x0f"]))
        return f"{path.name}: replaced"
    for _ in range(rng.randint(1, 3)):
        data, what, _ = pb_mutate(data, rng)
    write_file(path, data)
    return f"{path.name}: {what}"


_STATE_LINES = [
    'model_checkpoint_path: "{p}"', 'all_model_checkpoint_paths: "{p}"',
    "model_checkpoint_path: '{p}'", "model_checkpoint_path: {p}", 'model_checkpoint_path: "{p}',
    'all_model_checkpoint_timestamps: 1.5', "last_preserved_timestamp: 1e999",
    'model_checkpoint_path: "\\000{p}"', 'model_checkpoint_path: "{p}\\"', "# comment",
    'model_checkpoint_path: "\\x41\\101\\n"', "bogus_field: 3", "model_checkpoint_path {{ }}",
]  # fmt: skip


def m_state(case: Case, rng: random.Random) -> str | None:
    """Edit the `checkpoint` state file text: paths, quoting, escapes, encodings, sizes."""
    path = case.folder / "checkpoint"
    if not path.is_file():
        return None
    text = read_file(path)
    prefix = next((p.name[: -len(".index")] for p in case.folder.glob("*.index")), None) or next(
        (p.name for p in case.folder.iterdir() if p.is_file() and "." not in p.name.replace("model.ckpt", "") and p.name != "checkpoint"), "model.ckpt-1")  # fmt: skip
    targets = [prefix, str(case.folder / prefix), "missing", "../" + prefix, "x" * 5000,
               "/".join(["d" * 200] * 30), "checkpoint", ".", "", "/dev/zero", "/", prefix + ".index",
               "a\x00b", "é/" + prefix, str(case.folder)]  # fmt: skip
    op = rng.randrange(6)
    if op == 0:
        line = rng.choice(_STATE_LINES).format(p=rng.choice(targets))
        text = (
            line.encode("utf-8", "surrogateescape") + b"\n" + (text if rng.random() < 0.5 else b"")
        )
    elif op == 1:
        text = _bytes_edit(text, rng)
    elif op == 2:
        text = rng.choice([b"", b"\xff\xfe\x00m", b"\xef\xbb\xbf" + text, text.replace(b"\n", b"\r\n"),
                           text * 2000, b"model_checkpoint_path: \"" + b"\xff" * 10 + b"\"\n"])  # fmt: skip
    elif op == 3:
        text = (
            text.replace(b'"', b"")
            if rng.random() < 0.5
            else text.replace(b"model_checkpoint_path", b"model_checkpoint_pat")
        )
    elif op == 4:
        text = b"\n".join(
            rng.choice(_STATE_LINES)
            .format(p=rng.choice(targets))
            .encode("utf-8", "surrogateescape")
            for _ in range(rng.randint(1, 5))
        )
    else:
        pos = rng.randint(0, len(text))
        text = (
            text[:pos]
            + rng.choice([b"\\", b'"', b"\n", b"\x00", b"\t", b":", b"\\3777"])
            + text[pos:]
        )
    write_file(path, text)
    return f"state file op {op}"


def m_filekind(case: Case, rng: random.Random) -> str | None:
    """Replace a file by a FIFO, directory, symlink loop, /dev/zero link, dangling link, sparse file."""
    files = [p for p in case.files()]
    if not files:
        return None
    path = rng.choice(files)
    kind = rng.choice(["fifo", "dir", "loop", "zero", "dangling", "sparse", "empty", "self_dir"])
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "dir":
        path.mkdir()
    elif kind == "loop":
        os.symlink(path.name, path)
    elif kind == "zero":
        os.symlink("/dev/zero", path)
    elif kind == "dangling":
        os.symlink(path.name + ".gone", path)
    elif kind == "sparse":
        with path.open("wb") as handle:
            handle.truncate(3 << 30)
    elif kind == "empty":
        write_file(path, b"")
    else:
        os.symlink(".", path)
    case.preserving = False
    return f"{path.name} -> {kind}"


def m_snappy_bomb(case: Case, rng: random.Random) -> str | None:
    """An index whose one snappy block declares (and expands to) far more than it holds."""
    path = _table_file(case)
    if path is None or case.seed.kind == "v1":
        return None
    declared = rng.choice([64 << 20, 1 << 30, (1 << 32) - 1])
    body = varint(declared) + b"\x00a" + b"\xfe\x01\x00" * rng.choice([1000, 50_000])
    out = bytearray()
    handle = varint(0) + varint(len(body))
    out += body + b"\x01" + struct.pack("<I", block_crc(body, 1))
    index = _block([(b"\xff", handle)], 1)
    top = varint(len(out)) + varint(len(index))
    out += index + b"\x00" + struct.pack("<I", block_crc(index, 0))
    write_file(
        path, bytes(out) + (varint(0) + varint(0) + top).ljust(40, b"\0") + struct.pack("<Q", MAGIC)
    )
    case.preserving = False
    return f"snappy bomb declaring {declared}"


def m_keras(case: Case, rng: random.Random) -> str | None:
    """HDF5-level edits of a Keras .weights.h5: datasets removed, retyped, reshaped, renamed, added."""
    if case.seed.kind != "keras":
        return None
    import h5py
    import numpy as np

    path = case.folder / case.seed.open
    read_file(path)  # h5py would block on a FIFO an earlier mutation left here
    if rng.random() < 0.3:  # raw flips (HDF5 has checksums only on some structures)
        data = bytearray(read_file(path))
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        write_file(path, bytes(data))
        case.preserving = False
        return "keras raw bytes"
    with h5py.File(path, "r+") as handle:
        datasets: list[str] = []
        handle.visititems(
            lambda name, obj: datasets.append(name) if isinstance(obj, h5py.Dataset) else None
        )
        groups: list[str] = []
        handle.visititems(
            lambda name, obj: groups.append(name) if isinstance(obj, h5py.Group) else None
        )
        op = rng.randrange(7)
        if op == 0 and datasets:
            del handle[rng.choice(datasets)]
        elif op == 1 and datasets:
            name = rng.choice(datasets)
            value = handle[name][()]
            del handle[name]
            handle[name] = np.asarray(value).astype(
                rng.choice(["int8", "float64", "complex64", "bool", "S3"])
            )
        elif op == 2 and datasets:
            name = rng.choice(datasets)
            del handle[name]
            handle[name] = np.zeros(rng.choice([(), (0,), (2, 0, 3), (1,) * 20]), "float32")
        elif op == 3 and datasets:
            name = rng.choice(datasets)
            handle.move(
                name, name.rsplit("/", 1)[0] + "/" + rng.choice(["9", "x", "-1", "00", "é"])
            )
        elif op == 4 and groups:
            grp = handle[rng.choice(groups)]
            grp.create_dataset(rng.choice(["0", "5", "name"]) + "_x", data=np.arange(3))
        elif op == 5 and groups:
            grp = handle[rng.choice(groups)]
            grp.attrs[rng.choice(["name", "class_name", "keras_version"])] = rng.choice(
                [b"\xff", 3, "x"]
            )
        else:
            handle.create_group(
                rng.choice(["layers/zz", "vars", "optimizer/vars", "layers/dense/vars/9"])
            )
    case.preserving = False
    return f"keras op {op}"


BUNDLE_MUTATORS = [
    (m_entry_field, 14), (m_header, 5), (m_data, 6), (m_strings, 4), (m_objgraph, 8),
    (m_retarget, 10), (m_slices, 8), (m_keys, 4), (m_layout, 4), (m_table_raw, 8),
    (m_truncate, 4), (m_meta, 6), (m_filekind, 3), (m_snappy_bomb, 0.3),
]  # fmt: skip
V1_MUTATORS = [
    (m_v1_values, 20),
    (m_layout, 4),
    (m_table_raw, 10),
    (m_truncate, 4),
    (m_filekind, 2),
]
DIR_MUTATORS = [(m_state, 20), (m_filekind, 4), (m_meta, 2)]
KERAS_MUTATORS = [(m_keras, 20), (m_truncate, 3), (m_filekind, 2)]
MUTATORS = {
    "bundle": BUNDLE_MUTATORS,
    "v1": V1_MUTATORS,
    "dir": DIR_MUTATORS,
    "keras": KERAS_MUTATORS,
}


def mutate(case: Case, rng: random.Random, count: int | None = None) -> list[str]:
    """Apply 1-3 mutations (``count``) chosen for the seed's kind; return their descriptions."""
    table = MUTATORS[case.seed.kind]
    done: list[str] = []
    for _ in range(count or rng.choice([1, 1, 1, 2, 3])):
        for _attempt in range(6):
            (fn,) = rng.choices([m for m, _ in table], weights=[w for _, w in table])
            try:
                what = fn(case, rng)
            except (
                Malformed,
                OSError,
                struct.error,
                IndexError,
                KeyError,
                ValueError,
                TypeError,
                RuntimeError,  # h5py on a damaged file
                cramjam.DecompressionError,
            ):
                what = None  # an earlier mutation broke what this one decodes
            if what is not None:
                done.append(f"{fn.__name__}: {what}")
                break
    return done
