"""A loopback stand-in for the AWS endpoints a SigV4 remote-write sender talks to, for the
tests in daemon/src/sigv4/peer_tests.rs.

Every signed request is checked with botocore's own SigV4 signer (botocore.auth.SigV4Auth):
the canonical request is rebuilt from what arrived (the headers the Authorization header says
were signed, the body as received), the signature recomputed with the secret of the access key
used, and compared. The stand-in serves:

  POST any other path             the managed service (`aps`): 204 if the signature matches
                                  and the key is one `service_keys` accepts, else 403
  GET  /container-credentials     the container credentials endpoint: the JSON of
                                  `container`, if the Authorization header is its token
  POST /sts/                      STS AssumeRole (`sts`): signed with a key of `sts_keys`,
                                  answers `sts.issued` as the role's credentials (XML)
  GET  /stats                     how many requests each endpoint answered, as JSON

Usage: aws.py CONFIG.json; prints "PORT <n>" once listening on 127.0.0.1.
"""

import datetime
import hmac
import json
import re
import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

CONFIG = json.load(open(sys.argv[1]))
STATS = {"service_accepted": 0, "service_rejected": 0, "container": 0, "sts": 0, "sts_rejected": 0}
LOCK = threading.Lock()

AUTHORIZATION = re.compile(
    r"AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request, "
    r"SignedHeaders=([a-z0-9;-]+), Signature=([0-9a-f]{64})"
)


def count(name):
    with LOCK:
        STATS[name] += 1


def iso8601(seconds_from_now):
    when = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=seconds_from_now)
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def verify(handler, body, service, keys):
    """None if the request is signed for `service` with one of `keys`, else why not."""
    match = AUTHORIZATION.fullmatch(handler.headers.get("Authorization", ""))
    if not match:
        return "malformed Authorization header"
    access_key, date, region, scope_service, signed, signature = match.groups()
    key = keys.get(access_key)
    if key is None:
        return "unknown access key " + access_key
    if region != CONFIG["region"] or scope_service != service:
        return "wrong scope %s/%s" % (region, scope_service)
    amz_date = handler.headers.get("X-Amz-Date", "")
    if not amz_date.startswith(date):
        return "X-Amz-Date does not match the credential scope"
    sent = datetime.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=datetime.timezone.utc)
    if abs((datetime.datetime.now(datetime.timezone.utc) - sent).total_seconds()) > 300:
        return "request time too skewed"
    token = key.get("token")
    if token is not None and (handler.headers.get("X-Amz-Security-Token") != token or "x-amz-security-token" not in signed.split(";")):
        return "missing or wrong security token"
    headers = {}
    for name in signed.split(";"):
        values = handler.headers.get_all(name)
        if values is None:
            return "signed header %s not sent" % name
        headers[name] = ",".join(values)
    url = "http://%s%s" % (handler.headers["Host"], handler.path)
    request = AWSRequest(method=handler.command, url=url, data=body, headers=headers)
    request.context["timestamp"] = amz_date
    signer = SigV4Auth(Credentials(access_key, key["secret"], token), service, region)
    canonical = signer.canonical_request(request)
    expected = signer.signature(signer.string_to_sign(request, canonical), request)
    if not hmac.compare_digest(expected, signature):
        return "signature mismatch; canonical request:\n" + canonical
    return None


class Handler(BaseHTTPRequestHandler):
    def answer(self, status, body=b"", content_type="text/plain"):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path == "/stats":
            with LOCK:
                self.answer(200, json.dumps(STATS).encode(), "application/json")
        elif self.path == "/container-credentials":
            container = CONFIG["container"]
            if self.headers.get("Authorization") != container.get("authorization"):
                self.answer(401, b'{"code":"AccessDenied","message":"wrong token"}', "application/json")
                return
            count("container")
            answer = dict(container["credentials"], Expiration=iso8601(container["expires_in"]))
            self.answer(200, json.dumps(answer).encode(), "application/json")
        else:
            self.answer(404)

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.path == "/sts/":
            self.assume_role(body)
            return
        why = verify(self, body, "aps", CONFIG["service_keys"])
        if why is None:
            count("service_accepted")
            self.answer(204)
        else:
            count("service_rejected")
            self.answer(403, why.encode())

    def assume_role(self, body):
        sts = CONFIG["sts"]
        why = verify(self, body, "sts", sts["keys"])
        form = urllib.parse.parse_qs(body.decode())
        if why is None and (form.get("Action") != ["AssumeRole"] or form.get("RoleArn") != [sts["role_arn"]]):
            why = "not an AssumeRole of " + sts["role_arn"]
        if why is not None:
            count("sts_rejected")
            error = "<ErrorResponse><Error><Code>AccessDenied</Code><Message>%s</Message></Error></ErrorResponse>"
            self.answer(403, (error % why.splitlines()[0]).encode(), "text/xml")
            return
        count("sts")
        issued = sts["issued"]
        xml = (
            "<AssumeRoleResponse><AssumeRoleResult><Credentials>"
            "<AccessKeyId>%s</AccessKeyId><SecretAccessKey>%s</SecretAccessKey>"
            "<SessionToken>%s</SessionToken><Expiration>%s</Expiration>"
            "</Credentials></AssumeRoleResult></AssumeRoleResponse>"
        ) % (issued["AccessKeyId"], issued["SecretAccessKey"], issued["SessionToken"], iso8601(sts["expires_in"]))
        self.answer(200, xml.encode(), "text/xml")

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print("PORT %d" % server.server_address[1], flush=True)
server.serve_forever()
