"""The search bench (bench/search/run): tree, server, measurements."""
import errno, hashlib, http.client, json, os, shutil, socket, subprocess, sys, time, urllib.parse

jobs, files, base, binary, keep = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5] == "1"
probe = len(sys.argv) > 6 and sys.argv[6] == "1"
root = os.path.join(base, f"root-{jobs}x{files}")
BRANCHES, TAGS = 10, 100
SHARED = 8  # shared blobs, each linked into every job under several names


def blob(data):
    hexd = hashlib.sha256(data).hexdigest()
    path = os.path.join(root, ".blobs", "sha256", hexd[:2], hexd)
    if not os.path.exists(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
    return path, "sha256:" + hexd


# A hard link's source per blob: a filesystem caps links per inode (ext4: 65,000), so a
# copy takes over when one is full.
sources = {}


def link(src, dest):
    try:
        os.link(sources.get(src, src), dest)
    except OSError as e:
        if e.errno != errno.EMLINK:
            raise
        shutil.copyfile(src, dest)
        sources[src] = dest


def build_tree():
    if os.path.exists(os.path.join(root, ".complete")):
        return 0.0
    shutil.rmtree(root, ignore_errors=True)
    began = time.time()
    shared = [blob(b"shared %d\n" % i) for i in range(SHARED)]
    per_tag = max(1, jobs // (BRANCHES * TAGS))
    n = 0
    t0 = 1_700_000_000
    for b in range(BRANCHES):
        for t in range(TAGS):
            tdir = os.path.join(root, "branches", f"branch{b}", f"tag{t}")
            os.makedirs(tdir)
            open(os.path.join(tdir, ".stamp"), "w").close()
            for j in range(per_tag):
                if n >= jobs:
                    break
                jdir = os.path.join(tdir, f"job{j}")
                os.makedirs(jdir)
                version = f"{b}.{t}.{j}"
                meta = {"product": f"product{j % 50}", "product_branch": f"{b}.x",
                        "product_variant": "amd64", "version": version}
                with open(os.path.join(jdir, ".metadata"), "w") as f:
                    f.write(json.dumps(meta, sort_keys=True))
                stamp = os.path.join(jdir, ".stamp")
                open(stamp, "w").close()
                os.utime(stamp, (t0 + n * 60, t0 + n * 60))
                for fmt, count in (("deb", files // 2), ("docs", files - files // 2)):
                    fdir = os.path.join(jdir, fmt)
                    os.makedirs(fdir)
                    digests = {}
                    for k in range(count):
                        if fmt == "deb" and k == 0:
                            # One file of its own per job: a unique digest.
                            src, d = blob(b"unique %d\n" % n)
                            name = f"app_{version}_amd64.deb"
                        else:
                            src, d = shared[k % SHARED]
                            name = f"lib{k}_{b}.{t}_amd64.{fmt}" if fmt == "deb" else f"doc/page{k}.html"
                        dest = os.path.join(fdir, name)
                        os.makedirs(os.path.dirname(dest), exist_ok=True)
                        link(src, dest)
                        digests[name] = d
                    with open(os.path.join(fdir, ".digests"), "w") as f:
                        f.write(json.dumps(digests, sort_keys=True))
                link_product(meta, f"branch{b}/tag{t}/job{j}", n, t0)
                n += 1
    open(os.path.join(root, ".complete"), "w").close()
    return time.time() - began


def link_product(meta, job, n, t0):
    """The product version the job's metadata names, linked as arbor's PATCH would
    (spec/LAYOUT.md section 4): its .stamp, a link per format, the job's .product."""
    rel = "/".join(meta[k] for k in ("product", "product_variant", "product_branch", "version"))
    vdir = os.path.join(root, "products", rel)
    os.makedirs(vdir)
    stamp = os.path.join(vdir, ".stamp")
    open(stamp, "w").close()
    os.utime(stamp, (t0 + n * 60 + 30, t0 + n * 60 + 30))
    for fmt in ("deb", "docs"):
        os.symlink(f"../../../../../branches/{job}/{fmt}", os.path.join(vdir, fmt))
    os.symlink(f"../../../../products/{rel}", os.path.join(root, "branches", job, ".product"))


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def walks_logged():
    with open(os.path.join(base, "server.log")) as f:
        return sum("search index refreshed" in line for line in f)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


reconnects = 0


def get(conn, path, group=None):
    """GET over the keep-alive connection; once again on a new one if the server closed
    it (its header timeout ends idle connections). `group`: the caller's ACL group, in
    the header-auth mode of --probe."""
    global reconnects
    headers = {"Accept": "application/json"}
    group = group or ("all" if probe else None)
    if group:
        headers.update({"X-Login": "bench", "X-Groups": group})
    for attempt in (0, 1):
        try:
            conn.request("GET", path, headers=headers)
            r = conn.getresponse()
            return r.status, r.read()
        except (ConnectionResetError, BrokenPipeError, http.client.RemoteDisconnected):
            conn.close()
            reconnects += 1
            if attempt:
                raise


def timed(conn, path, group, n):
    """p50 and max of n GETs (after 3 unmeasured), and the results of the last."""
    times = []
    for i in range(n + 3):
        t = time.perf_counter()
        status, body = get(conn, path, group)
        if i >= 3:
            times.append((time.perf_counter() - t) * 1000)
    times.sort()
    return times[len(times) // 2], times[-1], len(json.loads(body)["results"])


def probe_run(conn, pid):
    """--probe: a caller who reads one branch of ten against one who reads everything
    (both through ACLs), then the match cache's memory under glob variants."""
    print()
    print("| query | caller | results | p50 ms | max ms |")
    print("|---|---|---|---|---|")
    for q in ["kind:file", "kind:file name:*.deb", "app", "kind:job"]:
        path = "/search?" + urllib.parse.urlencode({"q": q})
        for group in ["all", "narrow"]:
            p50, worst, count = timed(conn, path, group, 30)
            print(f"| `{q}` | {group} | {count} | {p50:.2f} | {worst:.2f} |", flush=True)
    print()
    rss0 = rss_kib(pid)
    t = time.perf_counter()
    for n in range(1, 256):
        get(conn, "/search?" + urllib.parse.urlencode({"q": "name:" + "*" * n, "limit": 1}), "all")
    spent = time.perf_counter() - t
    print(f"255 queries name:*, name:**, ...: {spent:.1f} s, RSS {rss0 // 1024} -> {rss_kib(pid) // 1024} MiB")
    rss0 = rss_kib(pid)
    t = time.perf_counter()
    for n in range(255):
        get(conn, "/search?" + urllib.parse.urlencode({"q": f"name:*{n}*", "limit": 1}), "all")
    spent = time.perf_counter() - t
    print(f"255 distinct globs name:*N*: {spent:.1f} s, RSS {rss0 // 1024} -> {rss_kib(pid) // 1024} MiB")


def main():
    made = build_tree()
    # The first start measures a full build: no saved index.
    shutil.rmtree(os.path.join(root, ".search"), ignore_errors=True)
    print(f"tree: {jobs} jobs x {files} files under {root}" + (f" (made in {made:.0f} s)" if made else " (cached)"))
    port = free_port()
    env = dict(os.environ, DLREPO_ROOT_DIR=root, DLREPO_LISTEN_ADDRESS="127.0.0.1",
               DLREPO_LISTEN_PORT=str(port), DLREPO_AUTH_DISABLED="1", DLREPO_LOG_LEVEL="DEBUG")
    if probe:
        acls = os.path.join(base, "acls")
        os.makedirs(acls, exist_ok=True)
        with open(os.path.join(acls, "all"), "w") as f:
            f.write("r /**\n")
        with open(os.path.join(acls, "narrow"), "w") as f:
            f.write("r /branches/branch3/**\n")
        del env["DLREPO_AUTH_DISABLED"]
        env.update(DLREPO_AUTH_HTTP_LOGIN_HEADER="X-Login", DLREPO_AUTH_HTTP_GROUPS_HEADER="X-Groups",
                   DLREPO_ACLS_DIR=acls)
    log = open(os.path.join(base, "server.log"), "w")
    started = time.time()
    proc = subprocess.Popen([binary, "serve"], env=env, stdout=log, stderr=log)
    try:
        conn = None
        while conn is None:
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                status, _ = get(c, "/healthz")
                conn = c
            except OSError:
                time.sleep(0.02)
        print(f"server answers after {time.time() - started:.2f} s, RSS {rss_kib(proc.pid) // 1024} MiB")
        status, body = get(conn, "/search?q=app&limit=1")
        print(f"a query during the build: {status}, complete={json.loads(body)['complete']}")
        while True:
            status, body = get(conn, "/search?q=zzznothing&limit=1")
            if json.loads(body)["complete"]:
                break
            time.sleep(0.05)
        built = time.time() - started
        print(f"index complete after {built:.1f} s; RSS {rss_kib(proc.pid) // 1024} MiB")
        if probe:
            probe_run(conn, proc.pid)
            return
        unique = hashlib.sha256(b"unique %d\n" % (jobs // 2)).hexdigest()
        common = hashlib.sha256(b"shared 1\n").hexdigest()
        kinds = [
            ("word (file name)", "app_5.50"),
            ("word, 2 terms", "branch3 lib4"),
            ("name: glob", "name:*_9.99_amd64.deb"),
            ("key=value", "product=product7 version=4.*"),
            ("digest (unique)", f"digest:sha256:{unique}"),
            ("digest (in every job)", f"digest:sha256:{common}"),
            ("filters + dates", "branch:branch2 format:docs after:2023-11-20 before:2023-12-01"),
            ("no match (full scan)", "name:*.nothing"),
        ]
        print()
        print("| query | results | first ms | p50 ms | p99 ms |")
        print("|---|---|---|---|---|")
        for label, q in kinds:
            path = "/search?" + urllib.parse.urlencode({"q": q})
            times, count, first = [], 0, 0.0
            for i in range(205):
                t = time.perf_counter()
                status, body = get(conn, path)
                dt = time.perf_counter() - t
                if i == 0:
                    first = dt * 1000
                if i >= 5:
                    times.append(dt * 1000)
                count = len(json.loads(body)["results"])
            times.sort()
            p50, p99 = times[len(times) // 2], times[int(len(times) * 0.99) - 1]
            print(f"| {label}: `{q}` | {count} | {first:.2f} | {p50:.2f} | {p99:.2f} |", flush=True)
        print()
        # The same warm queries, in turn, for long enough that refresh walks run meanwhile.
        times, began = [], time.time()
        paths = ["/search?" + urllib.parse.urlencode({"q": q}) for _, q in kinds]
        while time.time() - began < 20:
            for path in paths:
                t = time.perf_counter()
                get(conn, path)
                times.append((time.perf_counter() - t) * 1000)
        times.sort()
        p50, p99 = times[len(times) // 2], times[int(len(times) * 0.99) - 1]
        print(f"all kinds in turn for 20 s (refresh walks included): {len(times)} queries, "
              f"p50 {p50:.2f} ms, p99 {p99:.2f} ms, max {times[-1]:.2f} ms")
        print(f"RSS after the queries: {rss_kib(proc.pid) // 1024} MiB; {reconnects} reconnections")
        # What the refresh walks cost while nothing is asked: CPU time over 30 idle seconds.
        cpu, t, walks = cpu_seconds(proc.pid), time.time(), walks_logged()
        time.sleep(30)
        spent = cpu_seconds(proc.pid) - cpu
        share, walks = spent / (time.time() - t), walks_logged() - walks
        per_walk = f", {spent / walks:.2f} s of CPU per walk ({walks} walks)" if walks else ""
        print(f"idle, refresh walks only: {share * 100:.1f}% of a core{per_walk}")
        # The server closed the idle keep-alive connection meanwhile.
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        # Another writer: a job made by hand, as another process on the root would.
        # Named per run: a run that stopped halfway may have left its own.
        writer = f"other-writer-{os.getpid()}"
        jdir = os.path.join(root, "branches", "branch0", "tag0", writer)
        shutil.rmtree(jdir, ignore_errors=True)
        os.makedirs(os.path.join(jdir, "f"))
        open(os.path.join(jdir, ".stamp"), "w").close()
        src, d = blob(b"other writer\n")
        os.link(src, os.path.join(jdir, "f", writer + ".bin"))
        with open(os.path.join(jdir, "f", ".digests"), "w") as f:
            f.write(json.dumps({writer + ".bin": d}))
        t = time.time()
        while True:
            status, body = get(conn, f"/search?q={writer}.bin")
            if json.loads(body)["results"] or time.time() - t > 300:
                break
            time.sleep(0.5)
        print(f"a job written by another process showed after {time.time() - t:.1f} s")
        shutil.rmtree(jdir, ignore_errors=True)
        saved = os.path.join(root, ".search", "index")
        t = time.time()
        while not os.path.exists(saved) and time.time() - t < 120:
            time.sleep(0.2)
        if os.path.exists(saved):
            print(f".search/index: {os.path.getsize(saved) / 2**20:.1f} MiB")
    except OSError:
        time.sleep(0.5)
        print(f"the server went: exit status {proc.poll()}")
        raise
    finally:
        proc.terminate()
        proc.wait()
    # A second start, from the saved index.
    saved = os.path.join(root, ".search", "index")
    if os.path.exists(saved):
        started = time.time()
        proc = subprocess.Popen([binary, "serve"], env=env, stdout=log, stderr=log)
        try:
            time.sleep(0.05)
            while True:
                try:
                    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                    status, body = get(c, "/search?q=zzznothing&limit=1")
                    if json.loads(body)["complete"]:
                        break
                except OSError:
                    pass
                time.sleep(0.05)
            print(f"restart with .search/index: complete after {time.time() - started:.1f} s, RSS {rss_kib(proc.pid) // 1024} MiB")
        finally:
            proc.terminate()
            proc.wait()
    log.close()
    with open(os.path.join(base, "server.log")) as f:
        for line in f:
            if "search index" in line:
                print("log:", line.strip())
    if not keep:
        shutil.rmtree(root, ignore_errors=True)


main()
