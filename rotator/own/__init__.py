"""The tool's own credentials: stored encrypted with provenance, rotated and audited.

`models` (tables `own_credential`, `own_rotation`, migrations 0004 and 0005), `store`
(read the current value, record one, lease a rotation to its runner), `importing` (verify
a value a person hands over, then store it), `cloudflare` (the API token: verify, overlap
rotation, emergency roll), `google` (the service-account key: overlap rotation,
emergency replacement), `schedule` (their own cycle in `rotate run`), `check` (where each
credential comes from, the permissions it has) and `cli` (the `rotate credentials`
commands). See docs/operator-guide.md.
"""
