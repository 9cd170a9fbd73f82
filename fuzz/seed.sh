#!/usr/bin/env bash
# Seeds the fuzz corpora from the real fixtures.
set -euo pipefail
cd "$(dirname "$0")"
mkdir -p corpus/c123_stream corpus/xml_export
python3 - <<'PY'
import json, os
frames = []
with open("../fixtures/jarni-2024.tcp.jsonl", encoding="utf-8") as f:
    for line in f:
        d = json.loads(line)
        if "data" in d:
            frames.append(d["data"])
for i, fr in enumerate(frames[:400]):
    with open(f"corpus/c123_stream/f{i:04}", "wb") as out:
        out.write(bytes([7]) + (fr + "|").encode())
with open("corpus/c123_stream/burst", "wb") as out:
    out.write(bytes([200]) + "|".join(frames[:60]).encode() + b"|")
xml = open("../fixtures/jarni-2024.xml", "rb").read()
open("corpus/xml_export/full.xml", "wb").write(xml)
# Small well-formed pieces: the header plus a few rows of each table.
text = xml.decode()
for name in ["Participants", "Classes", "Schedule", "Results", "CourseData", "Events"]:
    start = text.find(f"<{name}>")
    end = text.find(f"</{name}>", start) + len(name) + 3
    piece = '<Canoe123Data xmlns="http://siwidata.com/Canoe123/Data.xsd">' + text[start:end] + "</Canoe123Data>"
    open(f"corpus/xml_export/{name}.xml", "w", encoding="utf-8").write(piece)
PY
