#!/usr/bin/env python3
"""A small fake mongod for tests/db.rs (no MongoDB server is packaged for Debian).

Speaks OP_MSG (opcode 2013, one kind-0 section) on 127.0.0.1:<argv[1]> and keeps
collections in memory. Implements what skynet.db.mongo sends: hello/ismaster,
SCRAM-SHA-1 (saslStart/saslContinue, verifying the client proof for user
argv[2] / password argv[3]), insert, find (equality and $gt/$lt filters, sort,
skip, limit, batchSize, projection) with int64 cursor ids and getMore, killCursors,
update ($set/$inc or replacement, upsert, multi), delete, count, createIndexes,
listIndexes, dropIndexes, drop, findAndModify, aggregate ($match/$sort/$skip/
$limit/$count). Commands need authentication, as on a real server with auth on.

Test hooks: {fakeLog: 1} returns the commands received (name, flags, writeConcern);
{misbehave: kind} answers with a broken reply of that kind (then the connection
goes on or is closed, depending on the kind).
Prints "LISTENING <port>" when ready. Written from the MongoDB wire protocol and
BSON specifications.
"""
import base64
import hashlib
import hmac
import os
import socket
import socketserver
import struct
import sys
import threading

OP_MSG = 2013


class Int64(int):
    pass


class ObjectId(bytes):
    pass


class Binary(bytes):
    pass


# ---------------------------------------------------------------- BSON

def decode_doc(b, i=0, as_list=False):
    (n,) = struct.unpack_from("<i", b, i)
    end = i + n - 1
    if n < 5 or end >= len(b) or b[end] != 0:
        raise ValueError("bad document")
    i += 4
    out = {}
    while i < end:
        t = b[i]
        i += 1
        z = b.index(b"\0", i)
        key = b[i:z].decode()
        i = z + 1
        if t == 0x01:
            (v,) = struct.unpack_from("<d", b, i)
            i += 8
        elif t == 0x02:
            (ln,) = struct.unpack_from("<i", b, i)
            v = b[i + 4:i + 4 + ln - 1].decode("utf-8", "surrogateescape")
            i += 4 + ln
        elif t in (0x03, 0x04):
            (ln,) = struct.unpack_from("<i", b, i)
            v = decode_doc(b, i, t == 0x04)
            i += ln
        elif t == 0x05:
            (ln,) = struct.unpack_from("<i", b, i)
            v = Binary(b[i + 5:i + 5 + ln])
            i += 5 + ln
        elif t == 0x07:
            v = ObjectId(b[i:i + 12])
            i += 12
        elif t == 0x08:
            v = b[i] != 0
            i += 1
        elif t == 0x09:
            (v,) = struct.unpack_from("<q", b, i)
            i += 8
        elif t == 0x0A:
            v = None
        elif t == 0x10:
            (v,) = struct.unpack_from("<i", b, i)
            i += 4
        elif t in (0x11, 0x12):
            (v,) = struct.unpack_from("<q", b, i)
            v = Int64(v)
            i += 8
        else:
            raise ValueError("bson type %d" % t)
        out[key] = v
    if as_list:
        return [out[k] for k in sorted(out, key=int)]
    return out


def encode_value(k, v):
    kb = k.encode() + b"\0"
    if isinstance(v, bool):
        return b"\x08" + kb + (b"\1" if v else b"\0")
    if isinstance(v, Int64):
        return b"\x12" + kb + struct.pack("<q", v)
    if isinstance(v, int):
        if -2**31 <= v < 2**31:
            return b"\x10" + kb + struct.pack("<i", v)
        return b"\x12" + kb + struct.pack("<q", v)
    if isinstance(v, float):
        return b"\x01" + kb + struct.pack("<d", v)
    if isinstance(v, str):
        s = v.encode("utf-8", "surrogateescape") + b"\0"
        return b"\x02" + kb + struct.pack("<i", len(s)) + s
    if isinstance(v, ObjectId):
        return b"\x07" + kb + bytes(v)
    if isinstance(v, Binary):
        return b"\x05" + kb + struct.pack("<i", len(v)) + b"\0" + bytes(v)
    if v is None:
        return b"\x0A" + kb
    if isinstance(v, dict):
        return b"\x03" + kb + encode_doc(v)
    if isinstance(v, list):
        return b"\x04" + kb + encode_doc({str(i): x for i, x in enumerate(v)})
    raise TypeError(type(v))


def encode_doc(d):
    body = b"".join(encode_value(k, v) for k, v in d.items())
    return struct.pack("<i", len(body) + 5) + body + b"\0"


# ---------------------------------------------------------------- data

lock = threading.Lock()
collections = {}  # "db.coll" -> list of docs
indexes = {}  # "db.coll" -> list of index docs
cursors = {}  # id -> (ns, remaining docs)
log = []
next_cursor = [5_000_000_000]
USER, PASSWORD = sys.argv[2], sys.argv[3]


def key_of(v):
    return (str(type(v)), v) if not isinstance(v, (int, float)) or isinstance(v, bool) else ("n", v)


def matches(doc, flt):
    for k, cond in flt.items():
        v = doc.get(k)
        if isinstance(cond, dict) and cond and all(c.startswith("$") for c in cond):
            for op, x in cond.items():
                if op == "$gt" and not (v is not None and v > x):
                    return False
                if op == "$lt" and not (v is not None and v < x):
                    return False
                if op == "$gte" and not (v is not None and v >= x):
                    return False
        elif v != cond:
            return False
    return True


def sorted_docs(docs, spec):
    for k, d in reversed(list((spec or {}).items())):
        docs = sorted(docs, key=lambda x: key_of(x.get(k)), reverse=d < 0)
    return docs


def project(doc, proj):
    if not proj:
        return doc
    keep = {k for k, v in proj.items() if v}
    out = {k: v for k, v in doc.items() if k in keep or (k == "_id" and proj.get("_id", 1))}
    return out


def apply_update(doc, u):
    if any(k.startswith("$") for k in u):
        for k, v in u.get("$set", {}).items():
            doc[k] = v
        for k, v in u.get("$inc", {}).items():
            doc[k] = doc.get(k, 0) + v
    else:
        _id = doc.get("_id")
        doc.clear()
        doc["_id"] = _id
        doc.update(u)


def cursor_reply(ns, docs, batch, first=True):
    with lock:
        if len(docs) > batch:
            cid = next_cursor[0]
            next_cursor[0] += 1
            cursors[cid] = (ns, docs[batch:])
            docs = docs[:batch]
        else:
            cid = 0
    key = "firstBatch" if first else "nextBatch"
    return {"cursor": {"id": Int64(cid), "ns": ns, key: docs}, "ok": 1.0}


def scram_salted():
    digest = hashlib.md5(("%s:mongo:%s" % (USER, PASSWORD)).encode()).hexdigest()
    return hashlib.pbkdf2_hmac("sha1", digest.encode(), b"fakesalt1234", 4096)


class Conn:
    def __init__(self):
        self.authed = False
        self.sasl = None


def handle(conn, doc, flags):
    name = next(iter(doc))
    db = doc.get("$db", "test")
    wc = doc.get("writeConcern")
    with lock:
        log.append({"cmd": name, "flags": flags, "w": (wc or {}).get("w", -1), "db": db})
    if name in ("ismaster", "isMaster", "hello"):
        return {"ismaster": True, "maxWireVersion": 17, "ok": 1.0}
    if name == "saslStart":
        if doc.get("mechanism") != "SCRAM-SHA-1":
            return {"ok": 0.0, "errmsg": "bad mechanism", "code": 2}
        first = bytes(doc["payload"]) if isinstance(doc["payload"], bytes) else base64.b64decode(doc["payload"])
        first = first.decode()
        bare = first[3:]
        fields = dict(kv.split("=", 1) for kv in bare.split(","))
        snonce = fields["r"] + base64.b64encode(os.urandom(12)).decode()
        server_first = "r=%s,s=%s,i=4096" % (snonce, base64.b64encode(b"fakesalt1234").decode())
        conn.sasl = (bare, server_first, fields["n"])
        return {"conversationId": 1, "done": False, "payload": base64.b64encode(server_first.encode()).decode(), "ok": 1.0}
    if name == "saslContinue":
        payload = base64.b64decode(doc["payload"]).decode() if doc["payload"] else ""
        if conn.sasl is None:
            return {"ok": 0.0, "errmsg": "no conversation", "code": 17}
        if payload == "" and conn.sasl == "verified":
            conn.authed = True
            return {"conversationId": 1, "done": True, "payload": "", "ok": 1.0}
        bare, server_first, user = conn.sasl
        without_proof, proof = payload.rsplit(",p=", 1)
        salted = scram_salted()
        client_key = hmac.new(salted, b"Client Key", "sha1").digest()
        stored = hashlib.sha1(client_key).digest()
        auth_msg = ",".join([bare, server_first, without_proof]).encode()
        sig = hmac.new(stored, auth_msg, "sha1").digest()
        want = bytes(a ^ b for a, b in zip(client_key, sig))
        if user != USER or base64.b64decode(proof) != want:
            conn.sasl = None
            return {"ok": 0.0, "errmsg": "Authentication failed.", "code": 18}
        server_key = hmac.new(salted, b"Server Key", "sha1").digest()
        v = base64.b64encode(hmac.new(server_key, auth_msg, "sha1").digest()).decode()
        conn.sasl = "verified"
        return {"conversationId": 1, "done": False, "payload": base64.b64encode(("v=" + v).encode()).decode(), "ok": 1.0}
    if not conn.authed:
        return {"ok": 0.0, "errmsg": "command %s requires authentication" % name, "code": 13}
    if name == "fakeLog":
        with lock:
            out = list(log)
            log.clear()
        return {"log": out, "ok": 1.0}
    if name == "misbehave":
        return ("misbehave", doc[name])
    coll = doc[name]
    ns = "%s.%s" % (db, coll)
    with lock:
        docs = collections.setdefault(ns, [])
        if name == "insert":
            errors = []
            n = 0
            for i, d in enumerate(doc["documents"]):
                if any(x.get("_id") == d.get("_id") for x in docs):
                    errors.append({"index": i, "code": 11000, "errmsg": "E11000 duplicate key error collection: %s" % ns})
                else:
                    docs.append(d)
                    n += 1
            r = {"n": n, "ok": 1.0}
            if errors:
                r["writeErrors"] = errors
            return r
        if name == "update":
            n = nmod = 0
            upserted = []
            for i, u in enumerate(doc["updates"]):
                hit = [d for d in docs if matches(d, u["q"])]
                if not u.get("multi"):
                    hit = hit[:1]
                for d in hit:
                    apply_update(d, u["u"])
                    n += 1
                    nmod += 1
                if not hit and u.get("upsert"):
                    d = {"_id": ObjectId(os.urandom(12))}
                    d.update({k: v for k, v in u["q"].items() if not isinstance(v, dict)})
                    apply_update(d, u["u"])
                    docs.append(d)
                    upserted.append({"index": i, "_id": d["_id"]})
                    n += 1
            r = {"n": n, "nModified": nmod, "ok": 1.0}
            if upserted:
                r["upserted"] = upserted
            return r
        if name == "delete":
            n = 0
            for dl in doc["deletes"]:
                hit = [d for d in docs if matches(d, dl["q"])]
                if dl.get("limit") == 1:
                    hit = hit[:1]
                for d in hit:
                    docs.remove(d)
                    n += 1
            return {"n": n, "ok": 1.0}
        if name == "count":
            hit = [d for d in docs if matches(d, doc.get("query", {}))]
            hit = hit[doc.get("skip", 0):]
            if doc.get("limit"):
                hit = hit[:doc["limit"]]
            return {"n": len(hit), "ok": 1.0}
        if name == "createIndexes":
            lst = indexes.setdefault(ns, [])
            before = len(lst) + 1
            lst.extend(doc["indexes"])
            return {"numIndexesBefore": before, "numIndexesAfter": len(lst) + 1, "ok": 1.0}
        if name == "listIndexes":
            return {"cursor": {"id": Int64(0), "ns": ns, "firstBatch": list(indexes.get(ns, []))}, "ok": 1.0}
        if name == "dropIndexes":
            indexes[ns] = [i for i in indexes.get(ns, []) if doc["index"] not in ("*", i["name"])]
            return {"ok": 1.0}
        if name == "drop":
            if not docs and ns not in indexes:
                del collections[ns]
                return {"ok": 0.0, "errmsg": "ns not found", "code": 26}
            del collections[ns]
            indexes.pop(ns, None)
            return {"ns": ns, "ok": 1.0}
        if name == "findAndModify":
            hit = [d for d in docs if matches(d, doc["query"])]
            if not hit:
                return {"value": None, "ok": 1.0}
            old = dict(hit[0])
            if doc.get("remove"):
                docs.remove(hit[0])
                return {"value": old, "ok": 1.0}
            apply_update(hit[0], doc["update"])
            return {"value": dict(hit[0]) if doc.get("new") else old, "ok": 1.0}
        if name == "find":
            hit = sorted_docs([d for d in docs if matches(d, doc.get("filter", {}))], doc.get("sort"))
            hit = hit[doc.get("skip", 0):]
            limit = doc.get("limit", 0)
            if limit:
                hit = hit[:limit]
            hit = [project(d, doc.get("projection")) for d in hit]
            batch = doc.get("batchSize", 101)
        if name == "aggregate":
            hit = list(docs)
            for stage in doc["pipeline"]:
                (op, arg), = stage.items()
                if op == "$match":
                    hit = [d for d in hit if matches(d, arg)]
                elif op == "$sort":
                    hit = sorted_docs(hit, arg)
                elif op == "$skip":
                    hit = hit[arg:]
                elif op == "$limit":
                    hit = hit[:arg]
                elif op == "$count":
                    hit = [{arg: len(hit)}]
            batch = doc.get("cursor", {}).get("batchSize", 101)
        if name == "getMore":
            cid = int(doc["getMore"])
            ns2, rest = cursors.pop(cid, (None, None))
            if rest is None:
                return {"ok": 0.0, "errmsg": "cursor id %d not found" % cid, "code": 43}
            b = doc.get("batchSize", 101)
            if len(rest) > b:
                cursors[cid] = (ns2, rest[b:])
                rest = rest[:b]
                cid_out = cid
            else:
                cid_out = 0
            return {"cursor": {"id": Int64(cid_out), "ns": ns2, "nextBatch": rest}, "ok": 1.0}
        if name == "killCursors":
            for c in doc["cursors"]:
                cursors.pop(int(c), None)
            return {"cursorsKilled": doc["cursors"], "ok": 1.0}
    if name in ("find", "aggregate"):
        return cursor_reply(ns, hit, batch)
    return {"ok": 0.0, "errmsg": "no such command: '%s'" % name, "code": 59}


def frame(response_to, doc_bytes, opcode=OP_MSG, flags=0):
    body = struct.pack("<iii", 7, response_to, opcode) + struct.pack("<I", flags) + b"\0" + doc_bytes
    return struct.pack("<i", len(body) + 4) + body


class Handler(socketserver.BaseRequestHandler):
    def read_exact(self, n):
        buf = b""
        while len(buf) < n:
            chunk = self.request.recv(n - len(buf))
            if not chunk:
                raise EOFError
            buf += chunk
        return buf

    def handle(self):
        conn = Conn()
        try:
            while True:
                (n,) = struct.unpack("<i", self.read_exact(4))
                msg = self.read_exact(n - 4)
                req_id, _, opcode, flags = struct.unpack_from("<iiiI", msg, 0)
                if opcode != OP_MSG or msg[16] != 0:
                    return
                doc = decode_doc(msg, 17)
                r = handle(conn, doc, flags)
                if flags & 2:
                    continue  # moreToCome: no reply
                if isinstance(r, tuple):
                    if self.misbehave(req_id, r[1]):
                        return
                    continue
                self.request.sendall(frame(req_id, encode_doc(r)))
        except (EOFError, ConnectionError):
            return

    def misbehave(self, req_id, kind):
        """Sends a broken reply; returns True to close the connection after it."""
        s = self.request
        ok = encode_doc({"ok": 1.0})
        if kind == "hugelength":
            s.sendall(struct.pack("<i", 0x7fffffff) + b"x" * 64)
        elif kind == "tinylength":
            s.sendall(struct.pack("<i", 8) + b"x" * 64)
        elif kind == "opcode":
            s.sendall(frame(req_id, ok, opcode=1))
        elif kind == "section":
            body = struct.pack("<iiiI", 7, req_id, OP_MSG, 0) + b"\0" + ok[:-3]
            s.sendall(struct.pack("<i", len(body) + 4) + body)
        elif kind == "baddoc":
            bad = struct.pack("<i", 12) + b"\x02k\0" + struct.pack("<i", 99) + b"\0"
            s.sendall(frame(req_id, bad))
        elif kind == "truncate":
            s.sendall(frame(req_id, ok)[:20])
            return True
        elif kind == "close":
            return True
        return False


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    srv = Server(("127.0.0.1", int(sys.argv[1])), Handler)
    print("LISTENING %d" % srv.server_address[1], flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
