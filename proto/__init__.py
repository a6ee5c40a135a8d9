"""Protocol buffer sources and generated stubs (regenerate with scripts/gen_proto.py)."""
