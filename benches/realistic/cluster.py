"""Local engine against a loopback Ballista cluster (a scheduler and two executors, real
`cohort` processes) on the realistic groups: wall, client CPU, cluster CPU and peak RSS,
alternating runs, and a check that both publish the same run id and bytes.

    python3 benches/realistic/cluster.py --cohort target/release/cohort \
        --customers 10000000 --groups 100 --id-type int --files 8 --rounds 2

Also measures the client's single-machine steps at larger sizes with one trivial
condition (`--client-steps 10000000,50000000`): reading ids, numbering, publishing.
"""
import argparse
import filecmp
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
import common  # noqa: E402
import make_groups  # noqa: E402

AS_OF = "2026-11-22T00:00:00Z"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise SystemExit(f"nothing listens on {port} after {timeout}s")


def cpu_seconds(pid):
    """user+sys CPU of a live process, from /proc."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / tick


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


class Cluster:
    def __init__(self, cohort, workdir, executors=2, tasks=1):
        self.port = free_port()
        self.procs = []
        log = open(os.path.join(workdir, "cluster.log"), "w")
        self.procs.append(subprocess.Popen(
            [cohort, "scheduler", "--bind", f"127.0.0.1:{self.port}"], stderr=log))
        wait_port(self.port)
        for i in range(executors):
            flight, grpc = free_port(), free_port()
            self.procs.append(subprocess.Popen(
                [cohort, "executor", "--scheduler", f"127.0.0.1:{self.port}",
                 "--bind", f"127.0.0.1:{flight}", "--grpc-port", str(grpc),
                 "--work-dir", os.path.join(workdir, f"executor-{i}"),
                 "--concurrent-tasks", str(tasks)], stderr=log))
            wait_port(flight)
        time.sleep(2)  # registration
        self.url = f"df://127.0.0.1:{self.port}"

    def cpu(self):
        return sum(cpu_seconds(p.pid) for p in self.procs)

    def rss(self):
        return [round(rss_mib(p.pid)) for p in self.procs]

    def stop(self):
        for p in self.procs:
            p.send_signal(signal.SIGKILL)
            p.wait()


def same_bytes(a, b):
    ra = open(os.path.join(a, "LATEST")).read().strip()
    rb = open(os.path.join(b, "LATEST")).read().strip()
    if ra != rb:
        return False
    files = sorted(os.listdir(os.path.join(a, "runs", ra)))
    if files != sorted(os.listdir(os.path.join(b, "runs", rb))):
        return False
    return all(filecmp.cmp(os.path.join(a, "runs", ra, f), os.path.join(b, "runs", rb, f),
                           shallow=False)
               for f in files if f != "manifest.json")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cohort", required=True)
    ap.add_argument("--customers", type=int, default=10_000_000)
    ap.add_argument("--groups", type=int, default=100)
    ap.add_argument("--id-type", default="int")
    ap.add_argument("--files", type=int, default=8)
    ap.add_argument("--tasks", type=int, default=1, help="task slots per executor")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--client-steps", default="", help="sizes for the client-step figures")
    ap.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "cohort-cluster"))
    args = ap.parse_args()
    cohort = os.path.abspath(args.cohort)
    os.makedirs(args.workdir, exist_ok=True)
    config = os.path.join(args.workdir, "cohort.toml")
    open(config, "w").close()

    if args.groups:
        source = common.prepare_data(cohort, args.workdir, args.customers, args.id_type,
                                     args.files)
        queries = os.path.join(args.workdir, f"groups-{args.groups}-{args.id_type}")
        groups = make_groups.make(args.groups, "distinct", args.id_type, args.customers, 1)
        make_groups.write(queries, groups)
        cluster = Cluster(cohort, args.workdir, tasks=args.tasks)
        rows = []
        try:
            for r in range(args.rounds):
                for engine in ["local", cluster.url]:
                    publish = os.path.join(args.workdir, f"pub-{r}-{'local' if engine == 'local' else 'cluster'}")
                    before = cluster.cpu()
                    m = common.run([cohort, "run", "--config", config, "--customers", source,
                                    "--queries", queries, "--as-of", AS_OF, "--publish", publish,
                                    "--engine", engine, "--engine-timeout", "1h",
                                    "--format", "json"])
                    cluster_cpu = cluster.cpu() - before
                    report = json.loads(m["out"])
                    rows.append((r, "local" if engine == "local" else "cluster", m["wall"],
                                 m["cpu"], cluster_cpu, m["rss"], report["run_id"],
                                 len(report.get("jobs", []))))
                same = same_bytes(os.path.join(args.workdir, f"pub-{r}-local"),
                                  os.path.join(args.workdir, f"pub-{r}-cluster"))
                print(f"round {r}: same run id and bytes: {same}", file=sys.stderr)
                if not same:
                    raise SystemExit("the cluster published different bytes")
            rss = cluster.rss()
        finally:
            cluster.stop()
        n = args.customers * args.groups
        print(f"\n{args.customers} customers x {args.groups} groups, {args.id_type} ids, "
              f"{args.files} files, 2 executors x {args.tasks} task slots (loopback)")
        print("| round | engine | wall s | client CPU s | cluster CPU s | client peak RSS MiB | "
              "CPU ns / customer x group |")
        print("|---|---|---|---|---|---|---|")
        for r, engine, wall, cpu, ccpu, rss_c, _, _ in rows:
            print(f"| {r} | {engine} | {wall:.1f} | {cpu:.1f} | {ccpu:.1f} | {rss_c:.0f} | "
                  f"{(cpu + ccpu) / n * 1e9:.1f} |")
        print(f"cluster peak RSS MiB (scheduler, executors): {rss}")

    for size in [int(x) for x in args.client_steps.split(",") if x]:
        source = common.prepare_data(cohort, args.workdir, size, args.id_type, args.files)
        queries = os.path.join(args.workdir, "trivial")
        os.makedirs(queries, exist_ok=True)
        with open(os.path.join(queries, "adults.toml"), "w") as f:
            f.write('[[include]]\nconditions = [{ attribute = "age", op = ">=", value = 18 }]\n')
        publish = os.path.join(args.workdir, f"steps-{size}")
        m = common.run([cohort, "run", "--config", config, "--customers", source,
                        "--queries", queries, "--as-of", AS_OF, "--publish", publish,
                        "--format", "json"])
        print(f"client steps, {size} {args.id_type} ids, one condition: wall {m['wall']:.1f} s, "
              f"CPU {m['cpu']:.1f} s, peak RSS {m['rss']:.0f} MiB")


if __name__ == "__main__":
    main()
