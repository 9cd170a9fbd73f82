#!/usr/bin/env bash
# Seeds the fuzz corpora from the real fixtures.
set -euo pipefail
cd "$(dirname "$0")"
mkdir -p corpus/c123_stream corpus/xml_export corpus/ingest_json corpus/http_target
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

# JSON bodies (first byte picks the parser: 0 results, 1 oncourse, 2 create, 3 status,
# 4 config, 5 storage, 6 xml), from the real export's ids and the live-mini producer's shapes.
import re
pids = re.findall(r"<Id>([^<]+\.[A-Z0-9_]+)</Id>", text)[:20] or ["12054.K1M_ST"]
races = sorted(set(re.findall(r"<RaceId>([A-Z0-9_]+)</RaceId>", text)))[:10] or ["K1M_ST_BR1_6"]
bodies = []
for i, (pid, race) in enumerate(zip(pids, races * 3)):
    bodies.append((0, {"results": [{"raceId": race, "participantId": pid, "bib": i + 1,
        "time": 9012 + i, "pen": 200, "total": 9212 + i, "rnk": 1, "status": None,
        "gates": [{"gate": 1, "pen": 0}, {"gate": 2, "pen": 2}], "dtStart": "10:00:00.000",
        "dtFinish": None}]}))
    bodies.append((1, {"oncourse": [{"participantId": pid, "raceId": race, "bib": i + 1,
        "name": "NOVAK Jan", "club": "USK Praha", "position": 1, "gates": [0, 2, None],
        "dtStart": "10:00:00", "time": 5000, "pen": 200, "total": 5200, "rank": 3,
        "ttbDiff": "+1.23", "ttbName": "X"}]}))
bodies += [
    (2, {"eventId": "jarni-2024", "mainTitle": "Jarní slalomy", "startDate": "2024-04-20",
         "endDate": "2024-04-21", "location": "Praha", "discipline": "slalom",
         "imageData": "data:image/png;base64,iVBORw0KGgo="}),
    (3, {"status": "running"}), (3, {"status": "official"}),
    (4, {"activeRaceId": "K1M_ST_BR1_6", "displayMode": "detailed", "showOnCourse": True,
         "mergeStrategy": "xml-wins"}),
    (5, {"maxDbSizeMb": 100}), (5, {"maxDbSizeMb": None}),
    (6, {"xml": text[:3000]}),
]
for i, (sel, body) in enumerate(bodies):
    with open(f"corpus/ingest_json/b{i:03}", "wb") as out:
        out.write(bytes([sel]) + json.dumps(body, ensure_ascii=False).encode())

targets = ["/api/v1/events/jarni-2024/ws?since=42&epoch=9f86d081884c7d65",
           "/api/v1/events/jarni-2024/results/K1M_ST_BR1_6?catId=U23&detailed=true",
           "/api/v1/events/a%20b/oncourse", "/api/v1/events/%E2%82%AC/ws?since=%31&epoch=+x",
           "/api/v1/admin/events/x/status", "/readyz", "203.0.113.9, 10.0.0.1"]
for i, t in enumerate(targets):
    open(f"corpus/http_target/t{i}", "w", encoding="utf-8").write(t)
PY
