"""Records what SAM CLI itself makes of a template, for TestSAMLocalModel.

    record.py resolve.yaml Fallback= > resolve.want.json
    record.py routes.yaml > routes.want.txt   (and crash-*.yaml alike)

A template with a Probe resource: the properties of First and Probe as SAM
CLI's intrinsic resolver leaves them, as JSON. Any other: the routes SAM
CLI's route discovery mounts, without and with --disable-authorizer, or the
exception that stops it. Needs SAM CLI's Python package: see README.md.
"""
import json
import logging
import sys

from samcli.lib.providers.api_provider import ApiProvider
from samcli.lib.providers.sam_stack_provider import SamLocalStackProvider

logging.disable(logging.CRITICAL)
overrides = dict(a.split("=", 1) for a in sys.argv[2:] if "=" in a)
stacks, _ = SamLocalStackProvider.get_stacks(sys.argv[1], parameter_overrides=overrides)
resources = stacks[0].resources
if "Probe" in resources:
    print(json.dumps({k: resources[k]["Properties"] for k in ("First", "Probe")}, indent=1, sort_keys=True))
    sys.exit(0)
for disable in (False, True):
    print("disable-authorizer=%s" % str(disable).lower())
    try:
        api = ApiProvider(stacks, cwd=".", disable_authorizer=disable).api
    except Exception as e:  # what stops `sam local start-api`
        print("crash", type(e).__name__)
        continue
    for r in sorted(api.routes, key=lambda r: (r.path, r.methods[0])):
        a = r.authorizer_object
        auth = "-"
        if a is not None:
            sources = ",".join("method.request.header." + s.identity_source for s in a.identity_sources)
            auth = "%s(%s %s %s)" % (r.authorizer_name, a.type, a.lambda_name, sources)
        for m in r.methods:
            print("ROUTE", m, r.path, r.function_name, "authorizer=" + auth)
    print("BINARY", " ".join(sorted(api.binary_media_types)))
    print("PREFLIGHT", "sam" if api.cors else "function")
