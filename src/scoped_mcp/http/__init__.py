"""Serving one agent over streamable HTTP (``serve --http``) instead of stdio.

    bind.py    where to listen (loopback, a 0600 unix socket, or remote with TLS) and the socket
    token.py   the bearer token: a broker credential, compared in constant time, rotation overlap
    guard.py   the ASGI gate every request passes: Host, Origin, bearer token, failure rate limit
    app.py     the Starlette app: the MCP SDK's session manager at /mcp, /healthz
    serve.py   uvicorn on our socket for the server's life

Only ``bind.py`` and ``token.py`` are imported before ``--http`` is chosen: stdio never loads the
HTTP stack (uvicorn, starlette).
"""
