"""Writes the small Datasets fixtures (Tests/Fixtures/datasets): one file per format, good and bad records.

Images are small PNGs (read through Vision's image pipeline, the one codec of the project).
"""
import io, json, os, struct, tarfile, zlib

OUT = os.path.join(os.path.dirname(__file__), "..", "Tests", "Fixtures", "datasets")
os.makedirs(os.path.join(OUT, "images"), exist_ok=True)


def png(w, h, rgb):
    raw = b"".join(b"\x00" + bytes(rgb) * w for _ in range(h))
    def chunk(t, body):
        return struct.pack(">I", len(body)) + t + body + struct.pack(">I", zlib.crc32(t + body) & 0xFFFFFFFF)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 0)) + chunk(b"IEND", b""))


def write(name, data):
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)


write("images/red.png", png(4, 3, (255, 0, 0)))
write("images/blue.png", png(5, 4, (0, 0, 255)))
write("images/corrupt.png", png(5, 4, (0, 255, 0))[:-20])

lines = lambda rows: ("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n").encode()
write("captions.jsonl", lines([
    {"image": "images/red.png", "caption": "a red square"},
    {"image": "images/blue.png", "caption": "a blue square"},
    '{"image": "images/red.png", "caption": ',            # line 3: malformed JSON
    {"image": "images/missing.png", "caption": "gone"},   # line 4: missing image
    {"image": "images/corrupt.png", "caption": "broken"}, # line 5: corrupt image
    {"image": "images/red.png"},                          # line 6: no caption
    {"image": "images/red.png", "caption": "red again"},
]))
write("interleaved.jsonl", lines([
    {"texts": ["first text", None, "after the image"], "images": [None, "images/red.png", None]},
    {"texts": ["two", None], "images": [None]},           # line 2: lists of different lengths
    {"texts": [None, "caption"], "images": ["images/blue.png", None]},
]))
write("text.jsonl", lines([{"text": "a text only document"}, "not json", {"text": "another one"}]))
write("plain.txt", b"first paragraph\nstill first\n\n\nsecond paragraph\n\nthird\n")
write("llava.json", json.dumps([
    {"id": "0", "image": "images/red.png", "conversations": [
        {"from": "human", "value": "<image>\nWhat colour is it?"}, {"from": "gpt", "value": "Red."}]},
    {"id": "1", "image": "images/red.png", "conversations": [  # [1]: image without a placeholder
        {"from": "human", "value": "What colour?"}, {"from": "gpt", "value": "Red."}]},
    {"id": "2", "conversations": [{"from": "human", "value": "Say hi."}, {"from": "gpt", "value": "Hi."},
                                  {"from": "human", "value": "Again."}, {"from": "gpt", "value": "Hi!"}]},
    {"id": "3", "conversations": [{"from": "human", "value": "Only a question."}]},  # [3]: nothing supervised
]).encode())


def tar_bytes(members):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as t:
        for name, data in members:
            info = tarfile.TarInfo(name); info.size = len(data); info.mtime = 0
            t.addfile(info, io.BytesIO(data))
    return buf.getvalue()

write("shard-000.tar", tar_bytes([
    ("a.png", png(2, 2, (10, 20, 30))), ("a.txt", b"caption a"),
    ("b.png", png(2, 2, (1, 2, 3))), ("b.json", json.dumps({"caption": "caption b"}).encode()),
    ("c.txt", b"no image here"),                               # c: no image member
    ("d.json", json.dumps({"texts": ["doc d", None], "images": [None, "0.png"]}).encode()),
    ("d.0.png", png(2, 2, (200, 100, 0))),
    ("e.png", png(3, 3, (5, 5, 5))[:-30]), ("e.txt", b"corrupt image e"),   # e: corrupt image
]))
good = tar_bytes([("f.png", png(2, 2, (9, 9, 9))), ("f.txt", b"caption f"), ("g.png", png(2, 2, (8, 8, 8))), ("g.txt", b"caption g")])
bad = bytearray(good)
bad[1024 + 10] ^= 0xFF  # corrupt the header of the second member (f.txt) -> bad checksum
write("shard-001-corrupt.tar", bytes(bad))
