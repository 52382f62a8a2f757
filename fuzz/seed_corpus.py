#!/usr/bin/env python3
"""Regenerates fuzz/corpus/* from the crates' own fixtures (not from shared testdata).

Run from the repository root: python3 fuzz/seed_corpus.py
"""
import hashlib, os, glob

def put(target, data):
    d = os.path.join('fuzz', 'corpus', target)
    os.makedirs(d, exist_ok=True)
    name = hashlib.sha1(data).hexdigest()[:16]
    open(os.path.join(d, name), 'wb').write(data)

hl7 = [open(p, 'rb').read() for p in sorted(glob.glob('crates/hl7/tests/fixtures/*.hl7'))]
for m in hl7:
    put('hl7_parse', m)
    put('hl7_parse', m[: len(m) // 2])                      # truncated
    put('hl7_parse', m.replace(b'\r', b'\n'))               # LF terminators
    put('hl7_parse', m.replace(b'|', b'$'))                 # field separator swap
    segs = m.split(b'\r')
    put('hl7_parse', b'\r'.join(segs[:2]))                  # MSH + first segment
put('hl7_parse', b'')
put('hl7_parse', b'MSH|')
put('hl7_parse', b'MSH|^~\\&#|A\rNTE|1||\\P\\\\X41\\\\.sp 99999\\')
put('hl7_parse', b'FHS|^~\\&\rBHS|^~\\&\rMSH|^~\\&|A\rBHS|^~\\&\rPID|1\rBTS|9\rFTS|x')
put('hl7_parse', b'PID|a^b&c~d\rMSH|^^^^|x')

for m in hl7[:6]:
    put('mllp_decode', b'\x0b' + m + b'\x1c\r')
    put('mllp_decode', b'garbage\x0b' + m[:40] + b'\x0b' + m + b'\x1c\r\x0b' + m[:10])
put('mllp_decode', open('crates/hl7/tests/fixtures/mllp_stream.bin', 'rb').read())
put('mllp_decode', b'\x0b\x06\x1c\r\x0b\x15\x1c\r')
put('mllp_decode', b'\x0b' + b'A' * 2000 + b'\x1c\r\x0bMSH|^~\\&|X\r\x1c')
put('mllp_decode', b'\x1c\r\x1c\x0b\x0b\x1c')

bins = [open(p, 'rb').read() for p in sorted(glob.glob('crates/astm/tests/fixtures/*.bin'))]
for b in bins:
    for mode in (0, 1, 2, 4, 9):
        put('astm_link', bytes([mode]) + b)
    put('astm_link', bytes([0]) + b[: len(b) // 2] + bytes([0, 60]))   # receiver timeout
# sender scripts: queue a message, then feed replies and timer ticks
msg = b'H|\\^&\rR|1|^^^GLU|5.6\rL|1|N\r'
put('astm_link', bytes([0, 1, len(msg)]) + msg + b'\x06\x06\x06\x06\x04')
put('astm_link', bytes([1, 1, len(msg)]) + msg + b'\x05' + bytes([0, 2]) + b'\x06\x15\x15\x15\x15\x15\x15')
put('astm_link', bytes([0, 1, len(msg)]) + msg + b'\x15' + bytes([0, 20]) + b'\x06\x04\x06' + bytes([0, 31]))
put('astm_link', bytes([16, 1, len(msg)]) + msg + bytes([0, 30, 0, 30, 0, 30]))
put('astm_link', bytes([2, 1, len(msg)]) + msg + b'\x02' + b'1' + msg + b'\x03' + b'00\r\n\x04')

astm = [open(p, 'rb').read() for p in sorted(glob.glob('crates/astm/tests/fixtures/*.astm'))]
for b in bins:
    # records carried in the fixture frames, without framing
    stripped = bytes(c for c in b if c >= 0x20 or c == 0x0d)
    put('astm_records', stripped)
    for line in stripped.split(b'\r')[:6]:
        put('astm_records', b'H|\\^&\r' + line[1:] + b'\r')
for a in astm:
    put('astm_records', a)
    put('astm_records', a[: len(a) // 2])
    put('astm_records', a.replace(b'\r', b'\n'))
    for line in a.split(b'\r')[1:]:
        put('astm_records', a.split(b'\r')[0] + b'\r' + line + b'\r')
put('astm_records', b'H|\\\\^&|||X\rM|1|A\\\\B\\\\C\rL|1|N \r')
put('astm_records', b'H|||\rR|1|^^^A|<0,5&X41&&Zq&&|\rQ|1|^SID||ALL\r')
put('astm_records', b'R|1\rH\rH|\xff\xfe\xfd\rO|1|  ID  ^^^1^2|x\\y\r')
put('astm_records', b'')
