#!/usr/bin/env python3
"""Stand-in for `adb`: logs its arguments and replays recorded output.

Environment: FAKE_ADB_LOG (JSON lines of argv), FAKE_ADB_CPU / FAKE_ADB_GPU
(benchmark_model transcripts), FAKE_ADB_DEVICES (space-separated serials).
"""

import json
import os
import sys

args = sys.argv[1:]
with open(os.environ["FAKE_ADB_LOG"], "a") as f:
    f.write(json.dumps(args) + "\n")
if args[:1] == ["devices"]:
    print("List of devices attached")
    for serial in os.environ.get("FAKE_ADB_DEVICES", "FAKE0001").split():
        print(f"{serial}\tdevice")
    print()
    sys.exit(0)
if len(args) >= 3 and args[0] == "-s":
    args = args[2:]
if args[:1] == ["push"]:
    print(f"{args[1]}: 1 file pushed, 0 skipped. 12.3 MB/s (1093308 bytes)")
    sys.exit(0)
if args[:1] == ["shell"]:
    command = " ".join(args[1:])
    if "benchmark_model" in command and "--graph=" in command:
        key = "FAKE_ADB_GPU" if "--use_gpu=true" in command else "FAKE_ADB_CPU"
        with open(os.environ[key]) as f:
            sys.stdout.write(f.read())
    sys.exit(0)
print(f"fake adb: unsupported command {args}", file=sys.stderr)
sys.exit(1)
