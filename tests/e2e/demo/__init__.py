"""End to end: `make demo` (examples/demo.sh) with a real agent and runc."""
