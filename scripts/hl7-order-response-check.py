#!/usr/bin/env python3
"""Reads Aliquot's answers to EMR order messages with two independent HL7 v2 libraries.

Each file holds one message (segments separated by CR). `hl7` (0.4.5) must parse it and find
MSH-9, MSA-1/MSA-2 and, for an order response, every ORC with ORC-1 and ORC-2; `hl7apy`
(1.3.5) must parse it into the message structure of v2.5.1 with its groups. ORL^O22 and ACK are
validated strictly against the v2.5.1 structure; ORR^O02 is parsed with its groups but not
validated strictly, because hl7apy models ORR^O02's order detail (a choice of OBR, RQD, RQ1,
RXO, ODS or ODT) as requiring all six. Prints `ok <file> <type> …` per file; exits 1 on the
first failure.
"""

import sys

import hl7
from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.parser import parse_message


def check(path):
    with open(path, "rb") as f:
        text = f.read().decode("utf-8")
    parsed = hl7.parse(text)
    kind = str(parsed.segment("MSH")[9])
    msa = parsed.segment("MSA")
    code, answered = str(msa[1]), str(msa[2])
    assert code in ("AA", "AE", "AR", "CA", "CE", "CR"), code
    assert answered, "MSA-2 is empty"
    orcs = [s for s in parsed if str(s[0]) == "ORC"]
    for orc in orcs:
        assert str(orc[1]) in ("OK", "UA", "CR", "UC"), str(orc)
        assert str(orc[2]), "ORC-2 is empty"
        if str(orc[1]) in ("OK", "CR"):
            assert str(orc[3]).isdigit(), "ORC-3 (filler order number) is " + str(orc[3])
    structure = kind.split("^")[2] if kind.count("^") >= 2 else kind.split("^")[0]
    strict = structure in ("ORL_O22", "ACK")
    level = VALIDATION_LEVEL.STRICT if strict else VALIDATION_LEVEL.TOLERANT
    message = parse_message(text, validation_level=level, find_groups=True)
    if strict:
        message.validate()
    groups = [c.name for c in message.children]
    if orcs:
        assert any(g.endswith("_RESPONSE") for g in groups), groups
    print("ok", path, kind, code, answered, len(orcs), "ORC", "strict" if strict else "parsed", groups)


def main():
    for path in sys.argv[1:]:
        try:
            check(path)
        except Exception as e:  # noqa: BLE001 - reported with the file
            print("FAILED", path, repr(e))
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
