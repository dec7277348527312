#!/usr/bin/env python3
"""Scenario 10 of bench/run: the dataset browser. Latency of the JSON API over
one keep-alive HTTP connection (an instances page, one instance, a thumbnail
made cold and then cached) and the time headless Chromium takes to show a page
with every image loaded. No goal; reported as measured.

  browser_bench.py --url http://127.0.0.1:PORT [--n 40] [--page-loads 5]
Prints one JSON object."""

import argparse
import http.client
import json
import random
import statistics
import sys
import time
import urllib.parse


def pct(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def summary(ms):
    return {"p50_ms": statistics.median(ms), "p95_ms": pct(ms, 0.95), "n": len(ms)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--n", type=int, default=40)
    ap.add_argument("--page-loads", type=int, default=5)
    ap.add_argument("--page-size", type=int, default=48)
    args = ap.parse_args()
    u = urllib.parse.urlparse(args.url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
    rng = random.Random(7)

    def get(path):
        t = time.perf_counter()
        conn.request("GET", path)
        r = conn.getresponse()
        body = r.read()
        ms = (time.perf_counter() - t) * 1e3
        if r.status != 200:
            raise RuntimeError(f"{path}: HTTP {r.status}: {body[:300]!r}")
        return ms, body

    total = json.loads(get("/api/instances?page_size=1")[1])["total"]
    pages = max(1, total // args.page_size)
    out = {"instances": total, "page_size": args.page_size}
    for name, extra in (("instances_page_key_order", ""), ("instances_page_shuffled", "&seed=11")):
        ms = [get(f"/api/instances?page_size={args.page_size}&page={rng.randrange(pages)}{extra}")[0]
              for _ in range(args.n)]
        out[name] = summary(ms)
    ids, cold, warm, one = [], [], [], []
    for _ in range(args.n):
        page = json.loads(get(f"/api/instances?page_size=1&page={rng.randrange(total)}&seed=3")[1])
        ids += [x for x in page["instances"] if x["images"]]
    for x in ids:
        ms, _ = get("/api/instances/" + x["id"])
        one.append(ms)
    seen = set()
    for x in ids:
        h = x["images"][0]["content_hash"]
        if h in seen:
            continue
        seen.add(h)
        path = f"/api/images/{h}?size=256&instance={urllib.parse.quote(x['id'])}"
        cold.append(get(path)[0])
        warm.append(get(path)[0])
    out["instance_by_id"] = summary(one)
    out["thumbnail_256_cold"] = summary(cold)
    out["thumbnail_256_cached"] = summary(warm)

    # --- page loads in headless Chromium, browser cache off ---
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.support.ui import WebDriverWait
    opts = Options()
    for a in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1300,1000",
              "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
              "--disable-quic"]:
        opts.add_argument(a)
    d = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
    try:
        d.execute_cdp_cmd("Network.setCacheDisabled", {"cacheDisabled": True})

        def timed(fragment, ready_js):
            d.get("about:blank")
            t = time.perf_counter()
            d.get(args.url + "/" + fragment)
            WebDriverWait(d, 120, poll_frequency=0.01).until(lambda drv: drv.execute_script(ready_js))
            return (time.perf_counter() - t) * 1e3

        grid_ready = ("const i = [...document.querySelectorAll('#grid .card img')];"
                      "return document.querySelectorAll('#grid .card').length > 0 && i.every(x => x.dataset.loaded)")
        overview = [timed("#/", "return document.querySelectorAll('tr.task-row').length > 0")
                    for _ in range(args.page_loads)]
        browse = [timed(f"#/browse?page_size={args.page_size}&page={rng.randrange(pages)}&seed={rng.randrange(1000)}",
                        grid_ready) for _ in range(args.page_loads)]
        inst = [timed("#/instance/" + x["id"], "const i = [...document.querySelectorAll('img.instance-image')];"
                      "return document.getElementById('instance-outputs') && i.every(x => x.dataset.loaded)")
                for x in ids[:args.page_loads]]
    finally:
        d.quit()
    out["page_overview_load"] = summary(overview)
    out["page_browse_grid_all_thumbnails"] = summary(browse)
    out["page_instance_all_images"] = summary(inst)
    json.dump(out, sys.stdout)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
