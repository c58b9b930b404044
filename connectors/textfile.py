"""Reading a department's or a publisher's file as text, whatever encoding it came in.

Files come as UTF-8 (with or without a byte order mark), UTF-16 from spreadsheet exports,
and ISO-8859-1 or Windows-1252 from older systems. The encoding is taken from
``--encoding`` when given; else from a byte order mark; else the text is UTF-8 when it
decodes as such; else charset-normalizer chooses among the single-byte Western encodings
and UTF-16/32 (left to itself it calls ISO-8859-1 Spanish "cp1250" and turns Ñ into Ń);
else ISO-8859-1, which decodes any byte. A gzip-compressed file is decompressed first.
"""

from __future__ import annotations

import codecs
import gzip
import zlib

from charset_normalizer import from_bytes

# Encodings charset-normalizer may choose from; cp1252 before latin_1: where the two
# differ (0x80-0x9F) latin_1 has control characters, cp1252 the quotes, dashes and €.
CANDIDATES = ["cp1252", "latin_1", "utf_16", "utf_32"]
_BOMS = [
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
]


class UnreadableFile(ValueError):
    """The file cannot be read as text; the message says why in a sentence."""


def check_encoding(name: str) -> str:
    """The codec name of ``name``; LookupError (with a sentence) when Python has none."""
    try:
        return codecs.lookup(name).name
    except LookupError as exc:
        raise LookupError(f"unknown encoding {name!r} (e.g. utf-8, iso-8859-1, cp1252)") from exc


def decode(data: bytes, encoding: str | None = None) -> tuple[str, str]:
    """The text of a file and the encoding it was read in; :class:`UnreadableFile` when
    the bytes are an archive or do not decode in the encoding given."""
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as exc:
            raise UnreadableFile("a gzip file that does not decompress (cut short?)") from exc
    if data[:4] == b"PK\x03\x04":
        raise UnreadableFile("a ZIP archive (or an .xlsx workbook): extract the file first")
    if encoding:
        try:
            return data.decode(encoding), check_encoding(encoding)
        except UnicodeDecodeError as exc:
            raise UnreadableFile(
                f"not {encoding} text: byte 0x{data[exc.start]:02x} at offset {exc.start} "
                f"has no meaning in it (leave --encoding out to detect the encoding)"
            ) from exc
    for bom, name in _BOMS:
        if data.startswith(bom):
            try:
                return data.decode(name), name
            except UnicodeDecodeError:
                break  # a stray BOM-like start: detect instead
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    best = from_bytes(data, cp_isolation=CANDIDATES).best()
    if best is not None:
        return str(best), codecs.lookup(best.encoding).name
    return data.decode("latin-1"), "iso8859-1"
