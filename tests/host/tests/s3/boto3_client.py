"""Drives cloudtuner's S3-compatible endpoint with unmodified boto3.

Reads a plan on stdin: {"endpoint", "access_key", "secret_key", "bucket",
"ops": [{"op": ..., ...}]} and prints one JSON result per op (a list):
{"ok": true, ...} or {"ok": false, "code": <S3 error code>, "status": <http>}.
Used by tests/host/tests/storage.rs and datasets.rs; not a mock: boto3 signs (SigV4), switches
to multipart above 8 MB and validates what it gets back.
"""

import hashlib
import json
import sys
import urllib.error
import urllib.request

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def run(client, bucket, op):
    kind = op["op"]
    if kind == "upload_file":
        client.upload_file(op["path"], bucket, op["key"])
        return {}
    if kind == "download_file":
        client.download_file(bucket, op["key"], op["path"])
        return {"sha256": sha256_file(op["path"])}
    if kind == "head":
        r = client.head_object(Bucket=bucket, Key=op["key"])
        return {"size": r["ContentLength"], "etag": r["ETag"], "content_type": r.get("ContentType")}
    if kind == "list":
        kwargs = {"Bucket": bucket, "Prefix": op.get("prefix", "")}
        if "max_keys" in op:
            kwargs["MaxKeys"] = op["max_keys"]
        keys, pages = [], 0
        paginator = client.get_paginator("list_objects_v2")
        for page in paginator.paginate(**kwargs):
            pages += 1
            keys += [c["Key"] for c in page.get("Contents", [])]
        return {"keys": keys, "pages": pages}
    if kind == "put":
        r = client.put_object(Bucket=bucket, Key=op["key"], Body=op["body"].encode(),
                              ContentType=op.get("content_type", "text/plain"))
        return {"etag": r["ETag"]}
    if kind == "get":
        kwargs = {"Bucket": bucket, "Key": op["key"]}
        if "range" in op:
            kwargs["Range"] = op["range"]
        r = client.get_object(**kwargs)
        body = r["Body"].read()
        return {"body": body.decode(errors="replace"), "size": len(body),
                "content_range": r.get("ContentRange")}
    if kind == "start_multipart":
        # A trainer that dies mid-upload: one part sent, never completed.
        up = client.create_multipart_upload(Bucket=bucket, Key=op["key"])
        client.upload_part(Bucket=bucket, Key=op["key"], UploadId=up["UploadId"], PartNumber=1,
                           Body=b"x" * op.get("size", 6 * 1024 * 1024))
        return {"upload_id": up["UploadId"]}
    if kind == "delete":
        client.delete_object(Bucket=bucket, Key=op["key"])
        return {}
    if kind == "presign_get":
        # boto3's default S3 presigner is Signature V2; "v4": true asks for SigV4.
        if op.get("v4"):
            client = v4_client(client)
        url = client.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": op["key"]},
                                            ExpiresIn=op.get("expires", 300))
        try:
            with urllib.request.urlopen(url) as resp:
                data = resp.read()
            return {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
        except urllib.error.HTTPError as e:
            body = e.read().decode(errors="replace")
            code = body.split("<Code>")[1].split("</Code>")[0] if "<Code>" in body else ""
            raise PresignedError(e.code, code)
    raise ValueError(f"unknown op {kind}")


def v4_client(client):
    creds = client._request_signer._credentials
    return boto3.client(
        "s3",
        endpoint_url=client.meta.endpoint_url,
        aws_access_key_id=creds.access_key,
        aws_secret_access_key=creds.secret_key,
        region_name="us-east-1",
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
    )


class PresignedError(Exception):
    def __init__(self, status, code):
        super().__init__(code)
        self.status, self.code = status, code


def main():
    import os, logging
    if os.environ.get("CT_BOTO_DEBUG"):
        boto3.set_stream_logger("botocore.auth", logging.DEBUG)
    plan = json.load(sys.stdin)
    client = boto3.client(
        "s3",
        endpoint_url=plan["endpoint"],
        aws_access_key_id=plan["access_key"],
        aws_secret_access_key=plan["secret_key"],
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
    )
    results = []
    for op in plan["ops"]:
        try:
            out = run(client, plan["bucket"], op)
            out["ok"] = True
        except ClientError as e:
            out = {"ok": False, "code": e.response["Error"].get("Code"),
                   "status": e.response["ResponseMetadata"].get("HTTPStatusCode")}
        except PresignedError as e:
            out = {"ok": False, "code": e.code, "status": e.status}
        out["op"] = op["op"]
        results.append(out)
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    main()
