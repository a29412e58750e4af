"""The floor: a bare aiohttp TLS server that parses the review and answers ``allowed``.

``python -m bench.baseline --port P --tls-cert C --tls-key K``
"""

from __future__ import annotations

import argparse
import ssl

from aiohttp import web

from controller import jsonio


async def validate(request: web.Request) -> web.Response:
    # the same JSON functions as the webhook, so that the difference is dlc-guard's own work
    body = jsonio.loads(await request.read())
    uid = body["request"]["uid"]
    doc = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": {"uid": uid, "allowed": True}}
    return web.Response(body=jsonio.dumps(doc), content_type="application/json")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--tls-cert", required=True)
    p.add_argument("--tls-key", required=True)
    a = p.parse_args()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(a.tls_cert, a.tls_key)
    app = web.Application(client_max_size=3 * 1024 * 1024)
    app.router.add_post("/validate", validate)
    app.router.add_get("/healthz", lambda r: web.Response(text="ok"))
    web.run_app(app, host=a.host, port=a.port, ssl_context=ctx, print=None, access_log=None)


if __name__ == "__main__":
    main()
