#!/usr/bin/env python3
"""Cross-check `aliquot qc evaluate` against the independent westgard-python 0.3.0 (PyPI).

Generates seeded random z-score sequences (2 and 3 control levels, classic and modern mode,
the named presets and a few custom rule sets), judges every run of every sequence with
westgard-python's historical evaluator and with `aliquot qc evaluate`, and compares run by
run: accepted, the warning rules and the violated rules. Exits non-zero on any difference,
and also when some rule of a configuration never fired (the check would be vacuous).

    python scripts/westgard-crosscheck.py --aliquot target/debug/aliquot [--seed 13]

westgard-python is an oracle only (DOMAIN §1.9: "treat it as an oracle, not as ground truth").
How its options are mapped, and where the definitions legitimately differ:

1. Scopes. Its historical evaluator defaults to within_run + within_material; we pass
   `enabled_scopes` with across_material too, as Aliquot judges all three by default.

2. Classic mode and acceptance. westgard-python lists the fired 1_2s warning gate among a
   run's `violations` (severity "warning") and then reports `accepted = False`; in a custom
   rule set in modern mode it even gives 1_2s severity "preset_dependent". DOMAIN §1.1/§1.4:
   1-2s is never a rejection ("1_2s alone -> accept with warning flag"). So the oracle's
   verdict is read as: warnings = its 1_2s findings, violations = every other rule,
   accepted = no other rule. This is a mapping of its output, no run is excluded.

3. Which windows are judged. westgard-python judges each stream's *last* window only (the
   last N observations of the stream, which for the interleaved across-material stream ends
   at the current run's last level). Aliquot judges every window that ends at an observation
   of the current run (DOMAIN §1.4 "window that ends in the current run"; §1.2 "some texts
   also allow ... last level-2 obs of run k and level-1 obs of run k+1"), so with two levels
   it also sees e.g. level 2 of the previous run with level 1 of this run (2-2s), and 4-1s /
   n_x windows that start mid-run. For every such extra window we ask westgard-python's own
   rule function (`evaluate_rule` on the across-material stream cut at that observation) and
   add what it finds to the oracle's violations (only when the gate lets rules judge, in
   classic mode). Runs where this changed the oracle's answer are counted and printed as
   "explained by definition 3"; nothing is skipped.

Not compared: 7_T (not a Westgard rule; Aliquot does not implement it), runs missing a level
(every generated run has every level once), and 2-2s or 4-1s within a three-level run
(westgard-python judges only the last two/four of a run there; no preset uses them).
"""

from __future__ import annotations

import argparse
import json
import collections
import random
import subprocess
import sys
import tempfile
from decimal import Decimal
from pathlib import Path

from westgard import (
    ControlObservation,
    EvaluationScope,
    InterpretationMode,
    MultiruleVariant,
    QCEvent,
    QCSeries,
    RuleName,
    RunIdentifier,
    __version__,
    custom_rule_set_from_rules,
    evaluate_custom_rule_sequence,
    evaluate_multirule_sequence,
    evaluate_rule,
    get_preset_definition,
)

ALL_SCOPES = (
    EvaluationScope.WITHIN_RUN,
    EvaluationScope.WITHIN_MATERIAL,
    EvaluationScope.ACROSS_MATERIAL,
)

# Rules that judge single observations or the run as a whole: no windows across runs.
SINGLE_RUN_RULES = {RuleName.ONE_2S, RuleName.ONE_3S, RuleName.R_4S}

# Per-level targets written to the CSV (value = mean + z * sd, exact in decimal).
TARGETS = {1: (Decimal("5.40"), Decimal("0.13")), 2: (Decimal("140"), Decimal("1.7")),
           3: (Decimal("12.5"), Decimal("0.25"))}


def ours(rule: RuleName) -> str:
    """westgard-python's spelling (1_3s, 10_x, 2of3_2s) → issue 13's (1-3s, 10x, 2of3-2s)."""
    return rule.value.replace("_x", "x").replace("_", "-")


class Config:
    def __init__(self, name, levels, mode, rules, preset=None):
        self.name = name
        self.levels = levels
        self.mode = mode
        self.rules = rules  # westgard RuleName tuple
        self.preset = preset

    def oracle(self, series):
        if self.preset is not None:
            return evaluate_multirule_sequence(
                series=series, preset=self.preset, interpretation_mode=self.mode,
                enabled_scopes=ALL_SCOPES)
        rule_set = custom_rule_set_from_rules(
            rules=self.rules, enabled_scopes=ALL_SCOPES, interpretation_mode=self.mode)
        return evaluate_custom_rule_sequence(series=series, rule_set=rule_set)

    def cli_args(self):
        return ["--mode", self.mode.value, "--rules", ",".join(ours(r) for r in self.rules)]


def preset(name, levels, mode, variant):
    d = get_preset_definition(variant)
    rules = set(d.current_run_rules) | set(d.history_rules)
    if mode == InterpretationMode.CLASSIC:
        rules.add(RuleName.ONE_2S)
    order = list(RuleName)
    return Config(name, levels, mode, tuple(sorted(rules, key=order.index)), variant)


R = RuleName
CONFIGS = [
    preset("modern 2-control (8x)", 2, InterpretationMode.MODERN, MultiruleVariant.MODERN_2_CONTROL),
    preset("modern 2-control legacy 10x", 2, InterpretationMode.MODERN,
           MultiruleVariant.MODERN_2_CONTROL_LEGACY_10X),
    preset("classic 2-control", 2, InterpretationMode.CLASSIC, MultiruleVariant.CLASSIC_2_CONTROL),
    preset("modern 3-control", 3, InterpretationMode.MODERN, MultiruleVariant.MODERN_3_CONTROL),
    preset("classic 3-control", 3, InterpretationMode.CLASSIC, MultiruleVariant.CLASSIC_3_CONTROL),
    Config("custom 2-level with 1-2s warning and 12x", 2, InterpretationMode.MODERN,
           (R.ONE_2S, R.ONE_3S, R.TWO_2S, R.R_4S, R.FOUR_1S, R.TWELVE_X)),
    Config("custom 3-level 9x and 12x", 3, InterpretationMode.MODERN,
           (R.ONE_3S, R.TWO_OF_THREE_2S, R.R_4S, R.THREE_1S, R.NINE_X, R.TWELVE_X)),
    Config("custom 3-level classic with 4-1s and 6x", 3, InterpretationMode.CLASSIC,
           (R.ONE_2S, R.ONE_3S, R.R_4S, R.FOUR_1S, R.SIX_X)),
]


def gen_sequence(rng: random.Random, levels: int, runs: int):
    """z-scores (2 decimals) per run: in control, with shifts, drifts, wider spread, and values
    exactly on a limit or on the mean."""
    seq = []
    shift, spread, left = 0.0, 1.0, 0
    for _ in range(runs):
        if left == 0:
            kind = rng.random()
            if kind < 0.35:
                shift, spread = 0.0, 1.0
            elif kind < 0.6:
                shift, spread = rng.choice([1.3, -1.3, 2.2, -2.2]), 0.6
            elif kind < 0.8:
                shift, spread = rng.choice([0.4, -0.4]), 0.3
            else:
                shift, spread = 0.0, 1.8
            left = rng.randint(2, 10)
        left -= 1
        run = []
        for _ in range(levels):
            if rng.random() < 0.1:
                z = rng.choice([0, 1, -1, 2, -2, 3, -3])
            else:
                z = max(-6.0, min(6.0, rng.gauss(shift, spread)))
            run.append(Decimal(str(round(z, 2))).quantize(Decimal("0.01")))
        seq.append(run)
    return seq


def series_of(seq):
    events, n = [], 0
    for i, run in enumerate(seq):
        rid = RunIdentifier(f"run{i + 1}")
        obs = []
        for level, z in enumerate(run, start=1):
            obs.append(ControlObservation(analyte="A", material=f"L{level}", run_id=rid,
                                          sequence=n, z_score=float(z)))
            n += 1
        events.append(QCEvent(run_id=rid, observations=tuple(obs)))
    return QCSeries(events=tuple(events))


def csv_of(seq, rng):
    lines = ["run,level,value,mean,sd"]
    for i, run in enumerate(seq):
        # Rows of a run in a random order: the verdict must not depend on it.
        rows = list(enumerate(run, start=1))
        rng.shuffle(rows)
        for level, z in rows:
            mean, sd = TARGETS[level]
            lines.append(f"run{i + 1},{level},{mean + z * sd},{mean},{sd}")
    return "\n".join(lines) + "\n"


def oracle_verdicts(config, seq):
    """Per run: (accepted, warnings, violations, explained_by_3) as read per the docstring."""
    events = config.oracle(series_of(seq))
    window_rules = [r for r in config.rules if r not in SINGLE_RUN_RULES]
    stream = []  # the across-material stream so far
    out = []
    for event, run in zip(events, seq):
        before = len(stream)
        stream.extend(o for o in sorted(event.event.observations, key=lambda o: o.sequence))
        warnings = {ours(v.rule) for v in event.violations if v.rule == R.ONE_2S}
        violations = {ours(v.rule) for v in event.violations if v.rule != R.ONE_2S}
        plain = set(violations)
        gate_open = (config.mode == InterpretationMode.MODERN
                     or any(abs(z) > 2 for z in run))
        if gate_open:
            # Definition 3: windows ending at an earlier observation of this run.
            for end in range(before + 1, len(stream)):
                # Its last window is all evaluate_rule looks at; 12 is the longest rule.
                prefix = tuple(stream[max(0, end - 12):end])
                for rule in window_rules:
                    res = evaluate_rule(rule, prefix, scope=EvaluationScope.ACROSS_MATERIAL,
                                        stream_name="across_material_prefix")
                    if res.violated:
                        violations.add(ours(rule))
        out.append((not violations, sorted(warnings), violations, violations != plain))
    return out


def our_verdicts(aliquot, config, seq, rng, tmp: Path):
    path = tmp / "qc.csv"
    path.write_text(csv_of(seq, rng))
    proc = subprocess.run([aliquot, "qc", "evaluate", str(path), *config.cli_args()],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"aliquot qc evaluate failed ({proc.returncode}): {proc.stderr}")
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    if len(lines) != len(seq):
        sys.exit(f"expected {len(seq)} lines, got {len(lines)}")
    return lines


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--aliquot", required=True, help="the aliquot binary")
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--sequences", type=int, default=40, help="sequences per configuration")
    ap.add_argument("--runs", type=int, default=40, help="runs per sequence")
    args = ap.parse_args()
    if __version__ != "0.3.0":
        sys.exit(f"westgard-python 0.3.0 expected, found {__version__}")

    rng = random.Random(args.seed)
    mismatches = 0
    total_runs = 0
    with tempfile.TemporaryDirectory() as tmp:
        for config in CONFIGS:
            fired = collections.Counter()
            explained = 0
            for s in range(args.sequences):
                seq = gen_sequence(rng, config.levels, args.runs)
                expected = oracle_verdicts(config, seq)
                got = our_verdicts(args.aliquot, config, seq, rng, Path(tmp))
                for i, ((acc, warns, viols, by3), line) in enumerate(zip(expected, got)):
                    total_runs += 1
                    explained += by3
                    fired.update(viols)
                    fired.update(warns)
                    mine = (line["accepted"], line["warnings"], set(line["violations"]))
                    if mine != (acc, warns, viols):
                        mismatches += 1
                        if mismatches <= 20:
                            print(f"MISMATCH {config.name}, sequence {s}, run {i + 1}: "
                                  f"westgard-python {acc} {warns} {sorted(viols)}, "
                                  f"aliquot {mine[0]} {mine[1]} {sorted(mine[2])}\n"
                                  f"  z history: {[[str(z) for z in r] for r in seq[max(0, i - 12):i + 1]]}")
            never = [ours(r) for r in config.rules if ours(r) not in fired]
            print(f"{config.name}: {args.sequences} sequences x {args.runs} runs; "
                  f"fired {dict(sorted(fired.items()))}; "
                  f"{explained} runs explained by definition 3")
            if never:
                print(f"  NEVER FIRED: {never} (the generator must exercise every rule)")
                mismatches += 1
    print(f"{total_runs} runs compared, {mismatches} problems")
    sys.exit(1 if mismatches else 0)


if __name__ == "__main__":
    main()
