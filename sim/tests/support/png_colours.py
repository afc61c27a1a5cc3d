#!/usr/bin/env python3
"""Counts colours in a PNG (Chromium's screenshots: 8-bit RGB or RGBA),
with only the standard library, for sim/tests/report.rs.

usage: png_colours.py FILE.png RRGGBB...
prints JSON: {"width", "height", "colours": {"rrggbb": {"pixels": n,
"columns": {x: pixels in that column, for columns holding any}}}}
"""
import json
import struct
import sys
import zlib


def decode(path):
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, width, height, channels = 8, b"", 0, 0, 0
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            width, height, depth, ctype = struct.unpack(">IIBB", body[:10])
            assert depth == 8 and ctype in (2, 6), f"unsupported PNG {depth}/{ctype}"
            channels = 3 if ctype == 2 else 4
        elif kind == b"IDAT":
            idat += body
    raw = zlib.decompress(idat)
    stride = width * channels
    rows, prev = [], bytearray(stride)
    for y in range(height):
        f = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - channels] if i >= channels else 0
            b = prev[i]
            c = prev[i - channels] if i >= channels else 0
            if f == 1:
                line[i] = (line[i] + a) & 255
            elif f == 2:
                line[i] = (line[i] + b) & 255
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                line[i] = (line[i] + pred) & 255
        rows.append(bytes(line))
        prev = line
    return width, height, channels, rows


def main():
    path, wanted = sys.argv[1], [c.lower() for c in sys.argv[2:]]
    width, height, channels, rows = decode(path)
    targets = {bytes.fromhex(c): c for c in wanted}
    out = {c: {"pixels": 0, "columns": {}} for c in wanted}
    for row in rows:
        for x in range(width):
            px = row[x * channels : x * channels + 3]
            c = targets.get(px)
            if c is not None:
                out[c]["pixels"] += 1
                cols = out[c]["columns"]
                cols[x] = cols.get(x, 0) + 1
    print(json.dumps({"width": width, "height": height, "colours": out}))


main()
