"""The local approvals channel: a private unix socket per server, and the CLI that talks to it.

Wire format (``protocol.py``): one JSON object per line each way, at most ``MAX_LINE`` bytes;
one request per connection::

    {"op": "list"}                            -> {"ok": true, "server": {..}, "requests": [..]}
    {"op": "show", "id": ID}                  -> {"ok": true, "server": {..}, "request": {..}}
    {"op": "approve", "id": ID}               -> {"ok": true, "server": {..}, "request": {..}}
    {"op": "deny", "id": ID, "reason": TEXT}  -> {"ok": true, "server": {..}, "request": {..}}
    anything else, or a refusal               -> {"ok": false, "error": TEXT}

Every connection is checked with SO_PEERCRED first (``peer.py``): only the server's own uid is
served; another is answered with a refusal and audited.
"""
