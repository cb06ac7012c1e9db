"""Plain MessagePack in pure Python (the standard library has none, and official Blender builds ship without
the msgpack module). Covers what the vidprior protocol uses: nil, bool, int, float, str, bin, array, map.
Extension types are refused: the protocol never sends them.
"""
import struct

__all__ = ["packb", "unpackb", "MsgpackError"]


class MsgpackError(ValueError):
    pass


def packb(obj):
    out = bytearray()
    _pack(obj, out)
    return bytes(out)


def _pack(obj, out):
    if obj is None:
        out.append(0xC0)
    elif obj is True:
        out.append(0xC3)
    elif obj is False:
        out.append(0xC2)
    elif isinstance(obj, int):
        _pack_int(obj, out)
    elif isinstance(obj, float):
        out.append(0xCB)
        out += struct.pack(">d", obj)
    elif isinstance(obj, str):
        data = obj.encode("utf-8")
        n = len(data)
        if n < 32:
            out.append(0xA0 | n)
        elif n < 0x100:
            out += bytes((0xD9, n))
        elif n < 0x10000:
            out += b"\xda" + struct.pack(">H", n)
        else:
            out += b"\xdb" + struct.pack(">I", n)
        out += data
    elif isinstance(obj, (bytes, bytearray, memoryview)):
        data = bytes(obj)
        n = len(data)
        if n < 0x100:
            out += bytes((0xC4, n))
        elif n < 0x10000:
            out += b"\xc5" + struct.pack(">H", n)
        else:
            out += b"\xc6" + struct.pack(">I", n)
        out += data
    elif isinstance(obj, (list, tuple)):
        n = len(obj)
        if n < 16:
            out.append(0x90 | n)
        elif n < 0x10000:
            out += b"\xdc" + struct.pack(">H", n)
        else:
            out += b"\xdd" + struct.pack(">I", n)
        for item in obj:
            _pack(item, out)
    elif isinstance(obj, dict):
        n = len(obj)
        if n < 16:
            out.append(0x80 | n)
        elif n < 0x10000:
            out += b"\xde" + struct.pack(">H", n)
        else:
            out += b"\xdf" + struct.pack(">I", n)
        for key, value in obj.items():
            _pack(key, out)
            _pack(value, out)
    else:
        raise MsgpackError("cannot encode %s as MessagePack" % type(obj).__name__)


def _pack_int(n, out):
    if 0 <= n < 0x80:
        out.append(n)
    elif -32 <= n < 0:
        out.append(n & 0xFF)
    elif n >= 0:
        if n < 0x100:
            out += bytes((0xCC, n))
        elif n < 0x10000:
            out += b"\xcd" + struct.pack(">H", n)
        elif n < 0x100000000:
            out += b"\xce" + struct.pack(">I", n)
        elif n < 0x10000000000000000:
            out += b"\xcf" + struct.pack(">Q", n)
        else:
            raise MsgpackError("integer %d is too large for MessagePack" % n)
    else:
        if n >= -0x80:
            out += b"\xd0" + struct.pack(">b", n)
        elif n >= -0x8000:
            out += b"\xd1" + struct.pack(">h", n)
        elif n >= -0x80000000:
            out += b"\xd2" + struct.pack(">i", n)
        elif n >= -0x8000000000000000:
            out += b"\xd3" + struct.pack(">q", n)
        else:
            raise MsgpackError("integer %d is too small for MessagePack" % n)


def unpackb(data):
    data = bytes(data)
    value, pos = _unpack(data, 0, 0)
    if pos != len(data):
        raise MsgpackError("%d bytes left over after the MessagePack value" % (len(data) - pos))
    return value


_MAX_DEPTH = 64


def _take(data, pos, n):
    end = pos + n
    if end > len(data):
        raise MsgpackError("truncated MessagePack data")
    return data[pos:end], end


def _unpack(data, pos, depth):
    if depth > _MAX_DEPTH:
        raise MsgpackError("MessagePack nesting is too deep")
    if pos >= len(data):
        raise MsgpackError("truncated MessagePack data")
    b = data[pos]
    pos += 1
    if b < 0x80:
        return b, pos
    if b >= 0xE0:
        return b - 0x100, pos
    if 0x80 <= b <= 0x8F:
        return _unpack_map(data, pos, b & 0x0F, depth)
    if 0x90 <= b <= 0x9F:
        return _unpack_array(data, pos, b & 0x0F, depth)
    if 0xA0 <= b <= 0xBF:
        raw, pos = _take(data, pos, b & 0x1F)
        return raw.decode("utf-8"), pos
    if b == 0xC0:
        return None, pos
    if b == 0xC2:
        return False, pos
    if b == 0xC3:
        return True, pos
    if b in (0xC4, 0xC5, 0xC6):
        size = {0xC4: 1, 0xC5: 2, 0xC6: 4}[b]
        raw, pos = _take(data, pos, size)
        n = int.from_bytes(raw, "big")
        return _take(data, pos, n)
    if b == 0xCA:
        raw, pos = _take(data, pos, 4)
        return struct.unpack(">f", raw)[0], pos
    if b == 0xCB:
        raw, pos = _take(data, pos, 8)
        return struct.unpack(">d", raw)[0], pos
    if b in (0xCC, 0xCD, 0xCE, 0xCF):
        size = {0xCC: 1, 0xCD: 2, 0xCE: 4, 0xCF: 8}[b]
        raw, pos = _take(data, pos, size)
        return int.from_bytes(raw, "big"), pos
    if b in (0xD0, 0xD1, 0xD2, 0xD3):
        size = {0xD0: 1, 0xD1: 2, 0xD2: 4, 0xD3: 8}[b]
        raw, pos = _take(data, pos, size)
        return int.from_bytes(raw, "big", signed=True), pos
    if b in (0xD9, 0xDA, 0xDB):
        size = {0xD9: 1, 0xDA: 2, 0xDB: 4}[b]
        raw, pos = _take(data, pos, size)
        raw, pos = _take(data, pos, int.from_bytes(raw, "big"))
        return raw.decode("utf-8"), pos
    if b in (0xDC, 0xDD):
        raw, pos = _take(data, pos, 2 if b == 0xDC else 4)
        return _unpack_array(data, pos, int.from_bytes(raw, "big"), depth)
    if b in (0xDE, 0xDF):
        raw, pos = _take(data, pos, 2 if b == 0xDE else 4)
        return _unpack_map(data, pos, int.from_bytes(raw, "big"), depth)
    raise MsgpackError("unsupported MessagePack type byte 0x%02x (extension types are not used by vidprior)" % b)


def _unpack_array(data, pos, n, depth):
    items = []
    for _ in range(n):
        item, pos = _unpack(data, pos, depth + 1)
        items.append(item)
    return items, pos


def _unpack_map(data, pos, n, depth):
    result = {}
    for _ in range(n):
        key, pos = _unpack(data, pos, depth + 1)
        if isinstance(key, (list, dict)):
            raise MsgpackError("MessagePack map key of type %s is not supported" % type(key).__name__)
        value, pos = _unpack(data, pos, depth + 1)
        result[key] = value
    return result, pos
