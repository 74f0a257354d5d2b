#!/usr/bin/env python3
"""The spec's own design as a throughput baseline (`batch_sync_customers` of the spec, section
"批量同步"): batches of 10 contacts, a ThreadPoolExecutor of 5 workers per batch, per contact one
request per step — allocate an ord (custom/add.asp with intsort) then save (__sys_dosave) — and
time.sleep(1) after every batch. No khid/mobile lookup, no write-back, a new HTTP connection per
request (like `requests.post` without a session). Stdlib only.

usage: spec_baseline.py SIM_URL N   -> prints one JSON object on stdout
Contacts are the bench's: '客户{g}', mobile 138{g:08}, wechat wx{g}, one thread scored 70.
"""
import json
import random
import string
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor, as_completed

BASE = sys.argv[1]
N = int(sys.argv[2])
CALLS = 0


def post(path, payload):
    global CALLS
    CALLS += 1
    req = urllib.request.Request(BASE + path, data=json.dumps(payload, ensure_ascii=False).encode(),
                                 headers={"content-type": "application/json"}, method="POST")
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


def login():
    serial = "".join(random.choices(string.ascii_letters + string.digits, k=20))
    r = post("/webapi/v3/ov1/login", {"datas": [
        {"id": "user", "val": "txt:demo"}, {"id": "password", "val": "txt:demo"},
        {"id": "serialnum", "val": f"txt:{serial}"}]})
    return r["header"]["session"]


SESSION = login()


def get_new_customer_id(customer_type="2"):
    r = post("/sysa/mobilephone/salesmanage/custom/add.asp",
             {"session": SESSION, "datas": [{"id": "intsort", "val": customer_type}]})
    v = r.get("value") or (r.get("body") or {}).get("bill", {}).get("value")
    return v


def map_score_to_value(score):
    return 175 if score >= 90 else 289 if score >= 75 else 176 if score >= 60 else 177 if score >= 45 else 290


def sync_customer_to_erp(g):
    ord_ = get_new_customer_id("2")
    data = {"ord": ord_, "name": f"客户{g}", "khid": f"WX{g}", "ly": 171, "mobile": f"138{g:08d}",
            "weixinAcc": f"wx{g}", "address": "", "jz": map_score_to_value(70),
            "intro": "来自微信中台，评分: 70", "product": "摘要"}
    return post("/sysa/mobilephone/salesmanage/custom/add.asp?intsort=2",
                {"session": SESSION, "cmdkey": "__sys_dosave",
                 "datas": [{"id": k, "val": v} for k, v in data.items()]})


def batch_sync_customers(contacts, batch_size=10):
    results = []
    for i in range(0, len(contacts), batch_size):
        batch = contacts[i:i + batch_size]
        with ThreadPoolExecutor(max_workers=5) as executor:
            futures = [executor.submit(sync_customer_to_erp, c) for c in batch]
            for f in as_completed(futures):
                try:
                    results.append(f.result(timeout=30))
                except Exception as e:  # the spec logs and goes on
                    print(f"同步失败: {e}", file=sys.stderr)
        time.sleep(1)
    return results


if __name__ == "__main__":
    t0 = time.monotonic()
    calls0 = CALLS
    res = batch_sync_customers(list(range(N)))
    secs = time.monotonic() - t0
    print(json.dumps({"contacts": N, "results": len(res), "seconds": secs, "contacts_per_s": N / secs,
                      "calls_per_contact": (CALLS - calls0) / N,
                      "design": "batches of 10, 5 threads, sleep 1 s per batch, allocate + save per contact"}))
