"""End-to-end scenarios of a real node agent: offline autonomy, adoption, clean pod deletion."""
