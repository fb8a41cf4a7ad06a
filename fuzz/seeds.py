#!/usr/bin/env python3
"""Writes the seed inputs of the fuzz corpus (small, valid files of every format the
targets read) and the PDF decompression bombs the guard must refuse (regression-*).
Run from fuzz/: python3 seeds.py"""
import base64, struct, zlib, os

def png(width, height, pixels, color_type=0, bit_depth=8):
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    raw = b"".join(b"\0" + pixels[y * width:(y + 1) * width] for y in range(height))
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    phys = struct.pack(">IIB", 11811, 11811, 1)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"pHYs", phys)
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))

def tiff(pages, compress=False):
    """Little-endian gray TIFF pages of (width, height, pixels)."""
    out = bytearray(b"II*\0\0\0\0\0")
    prev_next = 4
    for width, height, pixels in pages:
        data = zlib.compress(pixels) if compress else pixels
        strip = len(out)
        out += data
        if len(out) % 2:
            out += b"\0"
        res = len(out)
        out += struct.pack("<II", 300, 1)
        ifd = len(out)
        struct.pack_into("<I", out, prev_next, ifd)
        entries = [
            (256, 4, 1, width), (257, 4, 1, height), (258, 3, 1, 8),
            (259, 3, 1, 8 if compress else 1), (262, 3, 1, 1), (273, 4, 1, strip),
            (277, 3, 1, 1), (278, 4, 1, height), (279, 4, 1, len(data)),
            (282, 5, 1, res), (283, 5, 1, res), (296, 3, 1, 2),
        ]
        out += struct.pack("<H", len(entries))
        for tag, kind, count, value in entries:
            out += struct.pack("<HHI", tag, kind, count)
            out += struct.pack("<HH", value, 0) if kind == 3 else struct.pack("<I", value)
        prev_next = len(out)
        out += b"\0\0\0\0"
    return bytes(out)

def pdf(objects):
    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for i, body in enumerate(objects):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % (i + 1) + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for o in offsets:
        out += b"%010d 00000 n \n" % o
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)

def stream(d, data):
    return b"<< " + d + b" /Length %d >>\nstream\n" % len(data) + data + b"\nendstream"

def text_pdf():
    content = b"BT /F1 14 Tf 72 720 Td (Patient seed page) Tj ET"
    return pdf([
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 5 0 R >> >> /Contents 4 0 R >>",
        stream(b"", content),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ])

def image_pdf():
    pixels = bytes((x * 16) & 0xFF for x in range(32 * 32))
    content = b"q 72 0 0 72 100 600 cm /Im1 Do Q"
    return pdf([
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /XObject << /Im1 5 0 R >> >> /Contents 4 0 R >>",
        stream(b"", content),
        stream(b"/Type /XObject /Subtype /Image /Width 32 /Height 32 /ColorSpace /DeviceGray /BitsPerComponent 8 /Filter /FlateDecode", zlib.compress(pixels)),
    ])

def dicom(rows=8, cols=8):
    def el(group, elem, vr, value):
        if vr in (b"OB", b"OW", b"UN", b"SQ", b"UT"):
            return struct.pack("<HH", group, elem) + vr + b"\0\0" + struct.pack("<I", len(value)) + value
        return struct.pack("<HH", group, elem) + vr + struct.pack("<H", len(value)) + value
    def text(s):
        b = s.encode()
        return b + (b" " if len(b) % 2 else b"")
    def uid(s):
        b = s.encode()
        return b + (b"\0" if len(b) % 2 else b"")
    meta_body = (el(0x0002, 0x0001, b"OB", b"\0\1")
                 + el(0x0002, 0x0002, b"UI", uid("1.2.840.10008.5.1.4.1.1.1.1"))
                 + el(0x0002, 0x0003, b"UI", uid("1.2.826.0.1.3680043.2.1125.7.1"))
                 + el(0x0002, 0x0010, b"UI", uid("1.2.840.10008.1.2.1")))
    meta = el(0x0002, 0x0000, b"UL", struct.pack("<I", len(meta_body))) + meta_body
    pixels = b"".join(struct.pack("<H", (i * 37) % 4096) for i in range(rows * cols))
    body = (el(0x0008, 0x0016, b"UI", uid("1.2.840.10008.5.1.4.1.1.1.1"))
            + el(0x0008, 0x0018, b"UI", uid("1.2.826.0.1.3680043.2.1125.7.1"))
            + el(0x0008, 0x0020, b"DA", text("20200101"))
            + el(0x0008, 0x0060, b"CS", text("DX"))
            + el(0x0010, 0x0010, b"PN", text("Seed^Patient"))
            + el(0x0010, 0x0020, b"LO", text("SEED1"))
            + el(0x0018, 0x0015, b"CS", text("HAND"))
            + el(0x0028, 0x0002, b"US", struct.pack("<H", 1))
            + el(0x0028, 0x0004, b"CS", text("MONOCHROME1"))
            + el(0x0028, 0x0010, b"US", struct.pack("<H", rows))
            + el(0x0028, 0x0011, b"US", struct.pack("<H", cols))
            + el(0x0028, 0x0100, b"US", struct.pack("<H", 16))
            + el(0x0028, 0x0101, b"US", struct.pack("<H", 12))
            + el(0x0028, 0x0102, b"US", struct.pack("<H", 11))
            + el(0x0028, 0x0103, b"US", struct.pack("<H", 0))
            + el(0x7FE0, 0x0010, b"OW", pixels))
    return b"\0" * 128 + b"DICM" + meta + body

# ---- PDF decompression bombs (regression-*): each shape the guard once missed, small
# enough for the corpus. An image declared 1x1 has a cap of 1 MiB, so 4 MiB of zeros (a few
# KiB compressed) is over it; the parser's own streams (xref, object streams) carry the same
# image keys, which hayro ignores there and the pre-scan reads.

BOMB = 4 << 20
IMAGE_1X1 = b"/Type /XObject /Subtype /Image /Width 1 /Height 1 /ColorSpace /DeviceGray /BitsPerComponent 8"
CATALOG = b"<< /Type /Catalog /Pages 2 0 R >>"
PAGES = b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>"
PAGE_WITH_IMAGE = (b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
                   b"/Resources << /XObject << /Im1 5 0 R >> >> /Contents 4 0 R >>")
DRAW_IMAGE = b"q 100 0 0 100 0 0 cm /Im1 Do Q"

def image_bomb(filter_entry, data, extra=()):
    """A page drawing image 5, whose stream is a bomb under `filter_entry`."""
    return pdf([CATALOG, PAGES, PAGE_WITH_IMAGE, stream(b"", DRAW_IMAGE),
                stream(IMAGE_1X1 + b" " + filter_entry, data)] + list(extra))

def lzw_bomb(prefix=b"", zeros=BOMB, early_change=True):
    """LZWDecode data: prefix as literals, then cycles of clear, 0, 258, 259, ... 4095."""
    out, acc, n = bytearray(), 0, 0
    def put(code, width):
        nonlocal acc, n
        acc = (acc << width) | code
        n += width
        while n >= 8:
            n -= 8
            out.append((acc >> n) & 0xFF)
    def width(table):
        s = table + (1 if early_change else 0)
        return 12 if s >= 2048 else 11 if s >= 1024 else 10 if s >= 512 else 9
    table = 258
    for i, byte in enumerate(prefix):
        put(byte, width(table))
        if i > 0:
            table += 1
    written = 0
    while written < zeros:
        put(256, width(table))
        table = 258
        put(0, width(table))
        written += 1
        for code in range(258, 4096):
            put(code, width(table))
            table += 1
            written += code - 256
    put(257, width(table))
    if n:
        out.append((acc << (8 - n)) & 0xFF)
    return bytes(out)

def a85(data):
    return base64.a85encode(data) + b"~>"

def fixed_huffman_zeros(copies):
    """Raw deflate: one final fixed-Huffman block, a literal 0 then `copies` x 258 at distance 1."""
    bits = []
    def code(value, length):  # Huffman codes go most significant bit first
        bits.extend((value >> i) & 1 for i in reversed(range(length)))
    bits.extend([1, 1, 0])  # final, fixed
    code(0b00110000, 8)
    for _ in range(copies):
        code(0b11000101, 8)
        code(0, 5)
    code(0, 7)
    out = bytearray((len(bits) + 7) // 8)
    for i, bit in enumerate(bits):
        out[i // 8] |= bit << (i % 8)
    return bytes(out)

def xref_stream_pdf(objects, in_objstm=(), objstm_dict=b"", objstm_encode=lambda d: d,
                    xref_dict=b"", xref_encode=lambda d: d):
    """Objects numbered from 1; those whose numbers are in `in_objstm` go in an object
    stream; a cross-reference stream last."""
    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    entries = [(0, 0, 65535)]
    objstm_number = len(objects) + 1
    members = [(i + 1, body) for i, body in enumerate(objects) if i + 1 in in_objstm]
    xref_number = objstm_number + (1 if members else 0)
    index = 0
    for i, body in enumerate(objects):
        if i + 1 in in_objstm:
            entries.append((2, objstm_number, index))
            index += 1
        else:
            entries.append((1, len(out), 0))
            out += b"%d 0 obj\n" % (i + 1) + body + b"\nendobj\n"
    if members:
        header, data = b"", b""
        for number, body in members:
            header += b"%d %d " % (number, len(data))
            data += body + b"\n"
        encoded = objstm_encode(header + data)
        entries.append((1, len(out), 0))
        out += (b"%d 0 obj\n<< /Type /ObjStm /N %d /First %d %s /Length %d >>\nstream\n"
                % (objstm_number, len(members), len(header), objstm_dict, len(encoded)))
        out += encoded + b"\nendstream\nendobj\n"
    xref = len(out)
    entries.append((1, xref, 0))
    data = b"".join(struct.pack(">BIH", *e) for e in entries)
    encoded = xref_encode(data)
    out += (b"%d 0 obj\n<< /Type /XRef /Size %d /W [1 4 2] /Root 1 0 R %s /Length %d >>\nstream\n"
            % (xref_number, len(entries), xref_dict, len(encoded)))
    out += encoded + b"\nendstream\nendobj\nstartxref\n%d\n%%%%EOF\n" % xref
    return bytes(out)

def bombs():
    flate = zlib.compress(bytes(BOMB), 9)
    page = [CATALOG, PAGES, b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R >>",
            stream(b"", b"0 0 m 10 10 l S")]
    inner_image = stream(IMAGE_1X1 + b" /Filter /FlateDecode", flate)
    # A stored block with a wrong length complement, then the bomb: zlib and miniz_oxide stop,
    # hayro's fallback decoder goes on.
    bad_nlen = bytes([0, 3, 0, 0, 0]) + b"abc" + fixed_huffman_zeros(BOMB // 258)
    # A valid zlib header whose zlib reading dies at once; raw deflate from byte 0 is a valid
    # stored block, then the bomb (hayro's strict raw decoder takes it).
    raw_behind_zlib = bytes([0x78, 0x9C, 0x06, 0x63, 0xF9]) + b"y" * 0x069C + fixed_huffman_zeros(BOMB // 258)
    image_keys = b"/Subtype /Image /Width 1 /Height 1"
    return {
        "indirect-filter.pdf": image_bomb(b"/Filter 6 0 R", flate, [b"/FlateDecode"]),
        "filter-array.pdf": image_bomb(b"/Filter [/FlateDecode]", flate),
        "flate-twice.pdf": image_bomb(b"/Filter [/FlateDecode /FlateDecode]", zlib.compress(flate, 9)),
        "escaped-name.pdf": image_bomb(b"/Filter /F#6CateDecode", flate),
        "obj-in-dictionary.pdf": image_bomb(b"/Filter /FlateDecode /Note (obj)", flate),
        "lzw.pdf": image_bomb(b"/Filter /LZWDecode", lzw_bomb()),
        "lzw-early-change-0.pdf": image_bomb(b"/Filter /LZW /DecodeParms << /EarlyChange 0 >>",
                                             lzw_bomb(early_change=False)),
        "ascii85-flate.pdf": image_bomb(b"/Filter [/ASCII85Decode /FlateDecode]", a85(flate)),
        "asciihex-flate.pdf": image_bomb(b"/Filter [/AHx /Fl]", flate.hex().encode() + b">"),
        "run-length.pdf": image_bomb(b"/Filter /RunLengthDecode", bytes([129, 0]) * (BOMB // 128) + b"\x80"),
        "stored-block-bad-length.pdf": image_bomb(b"/Filter /FlateDecode", bad_nlen),
        "raw-deflate-behind-zlib-header.pdf": image_bomb(b"/Filter /FlateDecode", raw_behind_zlib),
        "stream-in-object-stream.pdf": xref_stream_pdf(
            [CATALOG, PAGES, PAGE_WITH_IMAGE, stream(b"", DRAW_IMAGE), inner_image],
            in_objstm={5}, objstm_dict=b"/Filter /FlateDecode", objstm_encode=lambda d: zlib.compress(d, 9)),
        "object-stream.pdf": xref_stream_pdf(
            page, in_objstm={2, 3}, objstm_dict=image_keys + b" /Filter /F#6CateDecode",
            objstm_encode=lambda d: zlib.compress(d + b" " * BOMB, 9)),
        "xref-stream.pdf": xref_stream_pdf(
            page, xref_dict=image_keys + b" /Filter /F#6CateDecode",
            xref_encode=lambda d: zlib.compress(d + bytes(BOMB), 9)),
        "xref-stream-lzw.pdf": xref_stream_pdf(
            page, xref_dict=image_keys + b" /Filter /LZW", xref_encode=lambda d: lzw_bomb(d)),
        "xref-stream-ascii85-flate.pdf": xref_stream_pdf(
            page, xref_dict=image_keys + b" /Filter [/A85 /Fl]",
            xref_encode=lambda d: a85(zlib.compress(d + bytes(BOMB), 9))),
        "predictor-columns.pdf": pdf(page[:3] + [stream(
            b"/Filter /FlateDecode /DecodeParms << /Predictor 2 /BitsPerComponent 16 /Col#75mns 1000000000000000 >>",
            zlib.compress(b"0 0 m 10 10 l S"))]),
        "escaped-encrypt.pdf": pdf(page).replace(b"/Root 1 0 R", b"/Root 1 0 R /Encr#79pt << /Filter /Standard /V 1 /R 2 /O <00> /U <00> /P -4 >>"),
    }

gray = bytes((x * 7) & 0xFF for x in range(16 * 16))
seeds = {
    "preflight": {"gray.png": png(16, 16, gray), "gray.tif": tiff([(16, 16, gray)]),
                  "two-pages.tif": tiff([(16, 16, gray), (8, 8, gray[:64])]),
                  "text.pdf": text_pdf(), "xray.dcm": dicom()},
    "decode": {"gray.png": png(16, 16, gray), "deflate.tif": tiff([(16, 16, gray)], True),
               "two-pages.tif": tiff([(16, 16, gray), (8, 8, gray[:64])]),
               "image.pdf": image_pdf(), "xray.dcm": dicom()},
    "pdf": {"text.pdf": text_pdf(), "image.pdf": image_pdf()},
    "dicom": {"xray.dcm": dicom(), "wide.dcm": dicom(4, 32)},
}
for target, files in seeds.items():
    os.makedirs(f"corpus/{target}", exist_ok=True)
    for name, data in files.items():
        with open(f"corpus/{target}/seed-{name}", "wb") as f:
            f.write(data)
for name, data in bombs().items():
    with open(f"corpus/pdf/regression-{name}", "wb") as f:
        f.write(data)
