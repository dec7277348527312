#!/usr/bin/env python3
"""Run every container of the rendered Kubernetes manifests in Docker, the way
the kubelet would start it: its command and args ($(VAR) expanded from its env
and ConfigMap), user and group, read-only root filesystem, dropped
capabilities, no privilege escalation, CPU and memory limits, and its volume
mounts (PersistentVolumeClaims and emptyDirs as host folders owned by the pod's
fsGroup, subPaths, ConfigMap and Secret files, read-only where the manifest
says). Per overlay: the data Job (prod) publishes a store from a sample
M3IT tree; then the Deployment's init containers run in order and must exit 0;
then the server must pass its gRPC startup and readiness probes, answer
/metrics on the scraped port, and exit 0 on SIGTERM within the grace period.

  run_k8s_specs.py --image m3serve:0.1.0 --work DIR
Called by scripts/test-image.sh; exits non-zero naming what failed."""

import argparse
import base64
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
CORES = os.cpu_count() or 1


def render(overlay):
    out = subprocess.run(["kubectl", "kustomize", str(K8S / "overlays" / overlay)], capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"kubectl kustomize {overlay}: {out.stderr}")
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def quantity_bytes(q):
    m = re.fullmatch(r"(\d+)(Ki|Mi|Gi)?", str(q))
    return int(m.group(1)) * {None: 1, "Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30}[m.group(2)]


def quantity_cpus(q):
    q = str(q)
    return int(q[:-1]) / 1000 if q.endswith("m") else float(q)


class Pod:
    """One pod's volumes as host folders, and docker run arguments for its containers."""

    def __init__(self, work, spec, docs, shared):
        self.work, self.spec, self.docs, self.shared = work, spec, docs, shared
        psc = spec.get("securityContext", {})
        self.user, self.group = psc.get("runAsUser"), psc.get("runAsGroup")
        self.fs_group = psc.get("fsGroup", self.group)
        self.config = {d["metadata"]["name"]: d for d in docs if d["kind"] == "ConfigMap"}
        self.volumes = {v["name"]: v for v in spec.get("volumes", [])}
        self.dirs = {}

    def volume_dir(self, name):
        if name in self.dirs:
            return self.dirs[name]
        v = self.volumes[name]
        if "persistentVolumeClaim" in v and v["persistentVolumeClaim"]:
            d = self.shared / ("pvc-" + v["persistentVolumeClaim"]["claimName"])  # shared between pods
        else:
            d = self.work / ("vol-" + name)
        d.mkdir(parents=True, exist_ok=True)
        if "configMap" in v:
            data = self.config[v["configMap"]["name"]]["data"]
            for item in v["configMap"].get("items", [{"key": k, "path": k} for k in data]):
                (d / item["path"]).write_text(data[item["key"]])
        elif "secret" in v:
            # The Secret the docs create (kubectl create secret generic m3serve-token-key --from-literal=key=...)
            (d / "key").write_text(base64.b64encode(os.urandom(32)).decode())
        else:
            # A volume the pod's fsGroup owns (the kubelet's chown for PVCs and emptyDirs)
            subprocess.run(["chown", "-R", f"{self.user}:{self.fs_group}", str(d)], check=True)
            os.chmod(d, 0o2775)
        self.dirs[name] = d
        return d

    def run_args(self, c):
        sc = c.get("securityContext", {})
        args = ["docker", "run", "--network", "host",
                "--user", f"{sc.get('runAsUser', self.user)}:{sc.get('runAsGroup', self.group)}"]
        if self.fs_group is not None:
            args += ["--group-add", str(self.fs_group)]
        if sc.get("readOnlyRootFilesystem"):
            args.append("--read-only")
        if sc.get("allowPrivilegeEscalation") is False:
            args += ["--security-opt", "no-new-privileges"]
        for cap in sc.get("capabilities", {}).get("drop", []):
            args += ["--cap-drop", cap]
        limits = c.get("resources", {}).get("limits", {})
        if "memory" in limits:
            args += ["--memory", str(quantity_bytes(limits["memory"]))]
        if "cpu" in limits:
            args += ["--cpus", str(min(CORES, quantity_cpus(limits["cpu"])))]
        env = {}
        for src in c.get("envFrom", []):
            env.update(self.config[src["configMapRef"]["name"]]["data"])
        for e in c.get("env", []):
            env[e["name"]] = e["value"]
        for k, v in env.items():
            args += ["-e", f"{k}={v}"]
        for m in sorted(c.get("volumeMounts", []), key=lambda m: m["mountPath"]):
            host = self.volume_dir(m["name"])
            if m.get("subPath"):
                host = host / m["subPath"]
                host.mkdir(parents=True, exist_ok=True)
                subprocess.run(["chown", f"{self.user}:{self.fs_group}", str(host)], check=True)
            args += ["-v", f"{host}:{m['mountPath']}" + (":ro" if m.get("readOnly") else "")]

        def expand(s):
            return re.sub(r"\$\((\w+)\)", lambda mm: env.get(mm.group(1), mm.group(0)), s)
        command = [expand(x) for x in c.get("command", [])]
        cargs = [expand(x) for x in c.get("args", [])]
        if command:
            args += ["--entrypoint", command[0]]
        return args, command[1:] + cargs


def image_of(c, image):
    # Every container names the same image (the manifests' test checks it); run the one built.
    assert c["image"].split("/")[-1].split(":")[0] == "m3serve", c["image"]
    return image


def run_to_completion(pod, c, image, what):
    args, rest = pod.run_args(c)
    t = time.time()
    r = subprocess.run(args + ["--rm", image_of(c, image)] + rest, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"{what}: container {c['name']} exited {r.returncode}\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
    print(f"  {what}: {c['name']} exit 0 ({time.time() - t:.1f} s)", flush=True)


def health(port):
    import grpc
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
            check = ch.unary_unary("/grpc.health.v1.Health/Check", request_serializer=lambda _: b"",
                                   response_deserializer=lambda b: b)
            reply = check(None, timeout=2)
        return reply[1] if len(reply) >= 2 else 0
    except grpc.RpcError:
        return 0


def serve(pod, c, image, what, grace, scrape_port):
    name = "m3serve-k8s-" + re.sub(r"[^a-z0-9]", "-", what.lower())
    subprocess.run(["docker", "rm", "-f", name], capture_output=True)
    args, rest = pod.run_args(c)
    subprocess.run(args + ["-d", "--name", name, "--stop-timeout", str(grace), image_of(c, image)] + rest,
                   check=True, capture_output=True)
    try:
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            p = c[probe]["grpc"]["port"]
            budget = c[probe].get("periodSeconds", 10) * c[probe].get("failureThreshold", 3)
            end = time.time() + budget
            while health(p) != 1:
                running = subprocess.run(["docker", "inspect", "-f", "{{.State.Running}}", name],
                                         capture_output=True, text=True).stdout.strip()
                if running != "true" or time.time() > end:
                    logs = subprocess.run(["docker", "logs", name], capture_output=True, text=True)
                    sys.exit(f"{what}: {probe} (gRPC health on {p}) did not pass within {budget} s\n"
                             f"{logs.stdout[-3000:]}{logs.stderr[-3000:]}")
                time.sleep(0.5)
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{scrape_port}/metrics", timeout=5).read().decode()
        assert "m3serve_store_ok 1" in metrics, metrics[:300]
        print(f"  {what}: {c['name']} passed its startup, readiness and liveness probes; /metrics on {scrape_port}",
              flush=True)
        t = time.time()
        subprocess.run(["docker", "stop", "-t", str(grace), name], check=True, capture_output=True)
        code = subprocess.run(["docker", "inspect", "-f", "{{.State.ExitCode}}", name], capture_output=True,
                              text=True).stdout.strip()
        if code != "0":
            logs = subprocess.run(["docker", "logs", name], capture_output=True, text=True)
            sys.exit(f"{what}: SIGTERM: exit {code}\n{logs.stderr[-3000:]}")
        print(f"  {what}: SIGTERM -> exit 0 in {time.time() - t:.1f} s", flush=True)
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--image", required=True)
    ap.add_argument("--work", required=True)
    a = ap.parse_args()
    work = Path(a.work)
    for overlay in ("prod", "dev"):
        print(f"overlay {overlay}:", flush=True)
        docs = render(overlay)
        shared = work / overlay / "volumes"
        shared.mkdir(parents=True, exist_ok=True)
        for job in [d for d in docs if d["kind"] == "Job"]:
            spec = job["spec"]["template"]["spec"]
            pod = Pod(work / overlay / "job", spec, docs, shared)
            # The source volume: an M3IT tree (here the generated sample), as the docs describe.
            src = [v for v in spec["volumes"] if v["name"] == "source"][0]
            src_dir = pod.volume_dir("source")
            subprocess.run(["docker", "run", "--rm", "--network", "none", "--user", f"{pod.user}:{pod.group}",
                            "-v", f"{src_dir}:/out", "--entrypoint", "m3serve-admin", a.image, "sample",
                            "--out", "/out"], check=True, capture_output=True)
            assert src["persistentVolumeClaim"]["claimName"]
            for c in spec.get("initContainers", []) + spec["containers"]:
                run_to_completion(pod, c, a.image, f"Job {job['metadata']['name']}")
        (dep,) = [d for d in docs if d["kind"] == "Deployment"]
        spec = dep["spec"]["template"]["spec"]
        pod = Pod(work / overlay / "server-pod", spec, docs, shared)
        for c in spec.get("initContainers", []):
            run_to_completion(pod, c, a.image, f"Deployment {dep['metadata']['name']} init")
        (server,) = [c for c in spec["containers"] if c["name"] == "server"]
        scrape = int(dep["spec"]["template"]["metadata"]["annotations"]["prometheus.io/port"])
        serve(pod, server, a.image, f"{overlay} server", spec["terminationGracePeriodSeconds"], scrape)
    print("every rendered container ran as specified")


if __name__ == "__main__":
    main()
