"""schemathesis hooks for Aliquot (loaded by scripts/schemathesis-run.py via SCHEMATHESIS_HOOKS).

An order's scan is uploaded as PDF, PNG or JPEG bytes. schemathesis sends its own PNG and
JPEG samples; it has no serializer for `application/pdf`, so generated values are sent as
their bytes (the server judges the content and refuses what is not a PDF with 422).
"""

import schemathesis
from schemathesis.transport.serialization import serialize_binary


@schemathesis.serializer("application/pdf")
def pdf_serializer(ctx, value):
    return {"data": serialize_binary(value)}
