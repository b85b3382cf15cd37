"""Outbound network code shared by the HTTP-backed modules, as one layer.

``client``   the pooled client, its limits, and the one place httpx errors are mapped
``auth``     ``CredentialAuth``: the httpx auth flow that adds broker-held credentials
``policy``   which addresses a request may reach (the SSRF policy) and the resolver
``pinned``   the transport that connects only to the address the policy checked
``loopback`` whether a host is only this machine, and whether a URL may carry a secret

Importing this package imports nothing else: httpx is loaded only by the modules that use it.
"""
