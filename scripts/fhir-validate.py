#!/usr/bin/env python3
"""Validates FHIR resources with the independent `fhir.resources` package (FHIR R4B models,
which for the resources Aliquot serves are those of R4 4.0.1).

Usage: fhir-validate.py FILE.json  (a JSON array of resources, or one resource)
Prints one line per resource; exits 1 when any resource is invalid.

The package checks structure, cardinality, types and formats but not the codes of required
bindings, so those of the elements Aliquot fills are checked here from the R4 value sets.
"""

import json
import sys

from fhir.resources.R4B import get_fhir_model_class


# Required bindings (R4 value sets) of the coded elements Aliquot writes.
REQUIRED = {
    ("Patient", "gender"): {"male", "female", "other", "unknown"},
    ("Observation", "status"): {
        "registered", "preliminary", "final", "amended", "corrected", "cancelled",
        "entered-in-error", "unknown",
    },
    ("DiagnosticReport", "status"): {
        "registered", "partial", "preliminary", "final", "amended", "corrected", "appended",
        "cancelled", "entered-in-error", "unknown",
    },
    ("ServiceRequest", "status"): {
        "draft", "active", "on-hold", "revoked", "completed", "entered-in-error", "unknown",
    },
    ("ServiceRequest", "intent"): {
        "proposal", "plan", "directive", "order", "original-order", "reflex-order",
        "filler-order", "instance-order", "option",
    },
    ("ServiceRequest", "priority"): {"routine", "urgent", "asap", "stat"},
    ("Specimen", "status"): {"available", "unavailable", "unsatisfactory", "entered-in-error"},
    ("Bundle", "type"): {
        "document", "message", "transaction", "transaction-response", "batch",
        "batch-response", "history", "searchset", "collection",
    },
}
COMPARATORS = {"<", "<=", ">=", ">"}


def bindings(r: dict) -> list:
    """The required-binding violations of one resource."""
    kind = r.get("resourceType")
    errors = []
    for (k, element), allowed in REQUIRED.items():
        if k == kind and element in r and r[element] not in allowed:
            errors.append(f"{element} = {r[element]!r} is not in the value set")
    quantities = [r.get("valueQuantity")] + [
        q for rr in r.get("referenceRange", []) for q in (rr.get("low"), rr.get("high"))
    ]
    for q in filter(None, quantities):
        if "comparator" in q and q["comparator"] not in COMPARATORS:
            errors.append(f"comparator {q['comparator']!r}")
        if not isinstance(q.get("value"), (int, float)):
            errors.append(f"quantity value {q.get('value')!r} is not a JSON number")
    if kind == "OperationOutcome":
        for i in r.get("issue", []):
            if i.get("severity") not in {"fatal", "error", "warning", "information"}:
                errors.append(f"severity {i.get('severity')!r}")
    if kind == "Bundle":
        for e in r.get("entry", []):
            errors.extend(bindings(e.get("resource", {})))
    return errors


def main() -> int:
    with open(sys.argv[1], encoding="utf-8") as f:
        data = json.load(f)
    resources = data if isinstance(data, list) else [data]
    bad = 0
    for r in resources:
        kind = r.get("resourceType", "?")
        try:
            model = get_fhir_model_class(kind)
            model.model_validate(r)
            errors = bindings(r)
            if errors:
                raise ValueError("; ".join(errors))
            print(f"ok {kind}/{r.get('id', '')}")
        except Exception as e:  # noqa: BLE001 - every failure is reported
            bad += 1
            print(f"INVALID {kind}/{r.get('id', '')}: {e}")
    print(f"{len(resources)} resources, {bad} invalid")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
