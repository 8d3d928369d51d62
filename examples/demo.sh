#!/usr/bin/env bash
# npm run demo: capture examples/demo.js with tracedump, then list what was captured, one line
# per packet with the process of each (tracedump read: no other tool needed).
set -euo pipefail
cd "$(dirname "$0")/.."
./bin/tracedump -w demo.pcapng -- node examples/demo.js
./bin/tracedump read demo.pcapng
