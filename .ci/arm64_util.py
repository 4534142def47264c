"""Small host-side helpers of .ci/arm64 (standard library only; run by the host's python3).

    python3 .ci/arm64_util.py mirror                  the Debian mirror apt uses here
    python3 .ci/arm64_util.py reach URL [SECONDS]     exit 1 with the reason if URL fails
    python3 .ci/arm64_util.py junit FILE [--allow-skip TEXT]... [--require TESTFILE]...
    python3 .ci/arm64_util.py parity FILE             one line from the parity check summary
"""

from __future__ import annotations

import argparse
import glob
import json
import re
import sys
import urllib.request
import xml.etree.ElementTree as ET
from collections import Counter, defaultdict
from pathlib import Path

DEFAULT_MIRROR = "http://deb.debian.org/debian"


def apt_mirrors() -> list[str]:
    """URIs of Debian archive entries in apt's sources (deb822 and one-line), in file order."""
    uris = []
    files = sorted(glob.glob("/etc/apt/sources.list.d/*.sources"))
    for path in files:
        for stanza in re.split(r"\n\s*\n", Path(path).read_text(errors="replace")):
            fields = dict(re.findall(r"^([A-Za-z-]+):\s*(.*)$", stanza, re.M))
            if "deb" in fields.get("Types", "").split() and \
                    fields.get("Enabled", "yes").lower() != "no":
                uris += fields.get("URIs", "").split()
    for path in ["/etc/apt/sources.list", *sorted(glob.glob("/etc/apt/sources.list.d/*.list"))]:
        if Path(path).is_file():
            for line in Path(path).read_text(errors="replace").splitlines():
                m = re.match(r"\s*deb\s+(?:\[[^\]]*\]\s+)?(\S+)", line)
                if m:
                    uris.append(m.group(1))
    # the main archive: a .../debian path, not the security or ports archives
    return [u.rstrip("/") for u in uris if re.search(r"/debian/?$", u)]


def cmd_mirror(_args) -> int:
    found = apt_mirrors()
    print(found[0] if found else DEFAULT_MIRROR)
    return 0


def cmd_reach(args) -> int:
    try:
        with urllib.request.urlopen(args.url, timeout=args.seconds) as resp:
            resp.read(1024)
    except Exception as err:  # noqa: BLE001 - any failure is reported the same way
        print(f"{type(err).__name__}: {err}", file=sys.stderr)
        return 1
    return 0


def cmd_junit(args) -> int:
    """Per test file: passed / skipped / failed; fail on failures, on no tests, on a skip whose
    reason is not allowed, and on a required file where nothing passed."""
    try:
        root = ET.parse(args.file).getroot()
    except (OSError, ET.ParseError) as err:
        print(f"no test report: {err}")
        return 1
    counts: dict[str, Counter] = defaultdict(Counter)
    reasons: Counter = Counter()
    bad_skips, failures = [], []
    for case in root.iter("testcase"):
        name = (case.get("file") or case.get("classname", "").replace(".", "/") + ".py")
        name = name.split("tests/")[-1]
        if case.find("failure") is not None or case.find("error") is not None:
            counts[name]["failed"] += 1
            failures.append(f"{case.get('classname')}::{case.get('name')}")
        elif case.find("skipped") is not None:
            counts[name]["skipped"] += 1
            skip = case.find("skipped")
            # a module-level skip says "collection skipped"; its text holds the reason
            reason = skip.get("message", "")
            if reason == "collection skipped" and skip.text:  # "(path, line, 'Skipped: ...')"
                m = re.search(r"Skipped: (.*?)['\"]\)\s*$", skip.text.strip(), re.S)
                reason = m.group(1) if m else skip.text.strip()
            reasons[reason] += 1
            if not any(a.lower() in reason.lower() for a in args.allow_skip):
                bad_skips.append(f"{case.get('classname')}::{case.get('name')}: {reason}")
        else:
            counts[name]["passed"] += 1
    total = sum(counts.values(), Counter())
    print(f"  total {total['passed']} passed, {total['skipped']} skipped, "
          f"{total['failed']} failed")
    for name in sorted(counts):
        c = counts[name]
        print(f"  {name:<32} {c['passed']:4d} passed {c['skipped']:4d} skipped "
              f"{c['failed']:4d} failed")
    for reason, n in reasons.most_common():
        print(f"  skipped {n:3d}: {reason[:110]}")
    problems = [f"failed: {f}" for f in failures]
    problems += [f"skipped for a reason other than a missing TensorFlow: {s}" for s in bad_skips]
    for required in args.require:
        key = required.split("tests/")[-1]
        if counts[key]["passed"] == 0:
            problems.append(f"nothing passed in {required}")
    if not counts:
        problems.append("no tests ran")
    for p in problems:
        print(f"  PROBLEM {p}")
    return 1 if problems else 0


def cmd_parity(args) -> int:
    try:
        doc = json.loads(Path(args.file).read_text())
    except (OSError, ValueError) as err:
        print(f"no parity summary ({err})")
        return 1
    ref, here, worst = doc["reference"], doc["here"], doc["largest_difference"]
    print(f"parity: {doc['models']} models, {doc['images']} images, {doc['evals']} evals; "
          f"recorded on {ref['machine']} (python {ref['python']}), checked on {here['machine']} "
          f"(python {here['python']}, {here['runtime']} {here['runtime_version']}, numpy "
          f"{here['numpy']}, opencv {here['opencv']}); largest differences: input "
          f"{worst['input_levels']:.3g} pixel levels, int8 outputs {worst['int8_lsb']:g} LSB, "
          f"float outputs {worst['float_abs']:.2g}")
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("mirror").set_defaults(fn=cmd_mirror)
    p = sub.add_parser("reach")
    p.add_argument("url")
    p.add_argument("seconds", nargs="?", type=float, default=20.0)
    p.set_defaults(fn=cmd_reach)
    p = sub.add_parser("junit")
    p.add_argument("file")
    p.add_argument("--allow-skip", action="append", default=[])
    p.add_argument("--require", action="append", default=[])
    p.set_defaults(fn=cmd_junit)
    p = sub.add_parser("parity")
    p.add_argument("file")
    p.set_defaults(fn=cmd_parity)
    args = ap.parse_args(argv)
    return args.fn(args)


if __name__ == "__main__":
    raise SystemExit(main())
