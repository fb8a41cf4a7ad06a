#!/usr/bin/env python3
"""Writes the seed inputs of the fuzz corpus (small, valid files of every format the
targets read). Run from fuzz/: python3 seeds.py"""
import struct, zlib, os

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
