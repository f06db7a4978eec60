"""The tool's own credentials: stored encrypted with provenance, rotated and audited.

`models` (tables `own_credential`, `own_rotation`, migration 0004), `store` (read the
current value, record one), `cloudflare` (the API token: verify, overlap rotation,
emergency roll), `check` (where each credential comes from, the permissions it has)
and `cli` (the `rotate credentials` commands). See docs/operator-guide.md.
"""
