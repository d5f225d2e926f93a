"""``engine-client serve``: the oVirt REST API v4 networking subset and a web page (docs/rest.md).

- ``passwords``, ``tokens``: the accounts' password hashes and the Bearer tokens;
- ``doc``: oVirt's XML (and JSON) documents, written and read;
- ``ids``: stable UUIDs derived from names;
- ``search``: the ``search=`` queries the SDK and ``ovirt.ovirt`` send;
- ``view``: store records as oVirt resources; ``actions``: changes, through the CLI's commands;
- ``app``: the aiohttp application (routes, auth, faults); ``page``: the web page and its
  event stream; ``serve``: the command that runs it.
"""
