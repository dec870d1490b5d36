#!/usr/bin/env python3
"""S3 listing endpoint for the benchmark: ListObjects v1/v2, bucket HEAD, ListBuckets.

nginx serves object bytes straight from disk and proxies only requests with a
query string (and bucket roots) here, so this server is never on the GET path.
ETag and LastModified are derived exactly as nginx derives its headers
("<mtime hex>-<size hex>", file mtime) so peers that compare listing metadata
with HEAD/GET headers see the same values.

usage: listing_server.py --root DATA_DIR --port N [--port-file F]
DATA_DIR holds one folder per bucket; keys are the relative paths below it.
"""
import argparse
import base64
import bisect
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, quote, unquote, urlsplit
from xml.sax.saxutils import escape

S3_NS = "http://s3.amazonaws.com/doc/2006-03-01/"


def nginx_etag(st):
    return '"%x-%x"' % (int(st.st_mtime), st.st_size)


def iso_time(ts):
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(int(ts)))


class Bucket:
    """A sorted, immutable index of one bucket folder (the data never changes during a run)."""

    def __init__(self, path):
        entries = []
        for dirpath, _dirs, files in os.walk(path):
            for name in files:
                full = os.path.join(dirpath, name)
                st = os.stat(full)
                key = os.path.relpath(full, path).replace(os.sep, "/")
                entries.append((key, st.st_size, nginx_etag(st), iso_time(st.st_mtime)))
        entries.sort()
        self.keys = [e[0] for e in entries]
        self.entries = entries

    def walk(self, prefix, delimiter, after, limit):
        """Yields ('key', entry) or ('prefix', str) in key order, after `after`, at most `limit`;
        returns (items, truncated)."""
        items = []
        i = bisect.bisect_right(self.keys, after) if after else bisect.bisect_left(self.keys, prefix)
        n = len(self.keys)
        while i < n:
            key = self.keys[i]
            if not key.startswith(prefix):
                break
            if len(items) == limit:
                return items, True
            rest = key[len(prefix):]
            cut = rest.find(delimiter) if delimiter else -1
            if cut >= 0:
                common = prefix + rest[:cut + len(delimiter)]
                if after and common <= after:  # a marker inside this common prefix
                    i = bisect.bisect_left(self.keys, common + "\U0010ffff")
                    continue
                items.append(("prefix", common))
                # Skip the whole subtree: everything below it collapses into this one entry.
                i = bisect.bisect_left(self.keys, common + "\U0010ffff")
            else:
                items.append(("key", self.entries[i]))
                i += 1
        return items, False


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keepalive towards nginx's upstream pool
    # Headers and body go out in two writes: with Nagle on, the second waits ~40 ms for a delayed ACK.
    disable_nagle_algorithm = True
    buckets = {}

    def log_message(self, fmt, *args):  # nginx's access log is the record
        pass

    def send_xml(self, status, body, head=False):
        data = ('<?xml version="1.0" encoding="UTF-8"?>\n' + body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if not head:
            self.wfile.write(data)

    def error(self, status, code, head=False):
        self.send_xml(status, f"<Error><Code>{code}</Code><Message>{code}</Message></Error>", head)

    def do_HEAD(self):
        self.handle_request(head=True)

    def do_GET(self):
        self.handle_request(head=False)

    def handle_request(self, head):
        url = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        parts = unquote(url.path).lstrip("/").split("/", 1)
        bucket_name = parts[0]
        if not bucket_name:
            return self.list_buckets(head)
        bucket = self.buckets.get(bucket_name)
        if bucket is None:
            return self.error(404, "NoSuchBucket", head)
        if len(parts) > 1 and parts[1]:
            # nginx only sends objects here when they carry a query (e.g. ?acl): not supported.
            return self.error(501, "NotImplemented", head)
        if "location" in query:
            return self.send_xml(200, f'<LocationConstraint xmlns="{S3_NS}"></LocationConstraint>', head)
        if head:
            return self.send_xml(200, "", head=True)
        if set(query) & {"acl", "policy", "versioning", "uploads", "versions", "tagging", "cors"}:
            return self.error(501, "NotImplemented", head)
        self.list_objects(bucket_name, bucket, query)

    def list_buckets(self, head):
        names = "".join(f"<Bucket><Name>{escape(b)}</Name><CreationDate>{iso_time(0)}</CreationDate></Bucket>"
                        for b in sorted(self.buckets))
        self.send_xml(200, f'<ListAllMyBucketsResult xmlns="{S3_NS}"><Owner><ID>bench</ID></Owner>'
                           f"<Buckets>{names}</Buckets></ListAllMyBucketsResult>", head)

    def list_objects(self, name, bucket, q):
        v2 = q.get("list-type") == "2"
        prefix, delimiter = q.get("prefix", ""), q.get("delimiter", "")
        try:
            max_keys = max(0, min(1000, int(q.get("max-keys", "1000"))))
        except ValueError:
            return self.error(400, "InvalidArgument")
        url_encode = q.get("encoding-type") == "url"
        enc = (lambda s: quote(s, safe="/")) if url_encode else (lambda s: s)
        if v2:
            token = q.get("continuation-token")
            after = base64.urlsafe_b64decode(token.encode()).decode() if token else q.get("start-after", "")
        else:
            after = q.get("marker", "")
        items, truncated = bucket.walk(prefix, delimiter, after, max_keys)

        out = [f'<ListBucketResult xmlns="{S3_NS}"><Name>{escape(name)}</Name>',
               f"<Prefix>{escape(enc(prefix))}</Prefix>", f"<MaxKeys>{max_keys}</MaxKeys>"]
        if delimiter:
            out.append(f"<Delimiter>{escape(enc(delimiter))}</Delimiter>")
        if url_encode:
            out.append("<EncodingType>url</EncodingType>")
        out.append(f"<IsTruncated>{'true' if truncated else 'false'}</IsTruncated>")
        last = items[-1][1] if items else ""
        last = last[0] if isinstance(last, tuple) else last
        if v2:
            out.append(f"<KeyCount>{len(items)}</KeyCount>")
            if "continuation-token" in q:
                out.append(f"<ContinuationToken>{escape(q['continuation-token'])}</ContinuationToken>")
            if truncated:
                token = base64.urlsafe_b64encode(last.encode()).decode()
                out.append(f"<NextContinuationToken>{token}</NextContinuationToken>")
        else:
            out.append(f"<Marker>{escape(enc(after))}</Marker>")
            if truncated and delimiter:
                out.append(f"<NextMarker>{escape(enc(last))}</NextMarker>")
        for kind, item in items:
            if kind == "key":
                key, size, etag, mtime = item
                out.append(f"<Contents><Key>{escape(enc(key))}</Key><LastModified>{mtime}</LastModified>"
                           f"<ETag>{escape(etag)}</ETag><Size>{size}</Size>"
                           "<StorageClass>STANDARD</StorageClass></Contents>")
        for kind, item in items:
            if kind == "prefix":
                out.append(f"<CommonPrefixes><Prefix>{escape(enc(item))}</Prefix></CommonPrefixes>")
        out.append("</ListBucketResult>")
        self.send_xml(200, "".join(out))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", required=True)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file")
    args = ap.parse_args()
    for entry in sorted(os.listdir(args.root)):
        if os.path.isdir(os.path.join(args.root, entry)):
            Handler.buckets[entry] = Bucket(os.path.join(args.root, entry))
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    if args.port_file:  # written only once the index is built: the file means "ready"
        with open(args.port_file + ".tmp", "w") as f:
            f.write(str(server.server_address[1]))
        os.replace(args.port_file + ".tmp", args.port_file)
    print(f"listing server on 127.0.0.1:{server.server_address[1]}", file=sys.stderr, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
