#!/usr/bin/env bash
# npm run demo: capture examples/demo.js with tracedump and show what was captured.
set -euo pipefail
cd "$(dirname "$0")/.."
./bin/tracedump -w demo.pcap -- node examples/demo.js
if command -v tshark >/dev/null; then
  tshark -r demo.pcap 2>/dev/null
else
  echo "(install tshark to list the packets: apt-get install tshark)"
fi
