"""Invariants of the rendered Kubernetes manifests (kubectl kustomize of every
overlay), checked with Python's yaml."""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(os.environ.get("M3SERVE_SOURCE_DIR", Path(__file__).resolve().parents[2]))
K8S = ROOT / "deploy" / "k8s"
OVERLAYS = ["dev", "prod"]

if shutil.which("kubectl") is None:
    pytest.skip("SKIPPED: kubectl is not installed, so the manifests cannot be rendered "
                "(install kubectl to run these checks)", allow_module_level=True)


def render(path):
    out = subprocess.run(["kubectl", "kustomize", str(path)], capture_output=True, text=True)
    assert out.returncode == 0, f"kubectl kustomize {path} failed:\n{out.stderr}"
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def of_kind(docs, kind):
    return [d for d in docs if d["kind"] == kind]


def flag(args, name):
    for a in args:
        if a.startswith(f"--{name}="):
            return a.split("=", 1)[1]
    return None


def pod_specs(docs):
    for d in docs:
        if d["kind"] in ("Deployment", "Job"):
            yield d, d["spec"]["template"]["spec"]


@pytest.fixture(scope="module", params=OVERLAYS)
def overlay(request):
    return request.param, render(K8S / "overlays" / request.param)


def test_base_and_data_render():
    assert of_kind(render(K8S / "base"), "Deployment")
    assert of_kind(render(K8S / "data"), "Job")


def test_probes_ports_and_flags_agree(overlay):
    name, docs = overlay
    (dep,) = of_kind(docs, "Deployment")
    (server,) = [c for c in dep["spec"]["template"]["spec"]["containers"] if c["name"] == "server"]
    ports = {p["name"]: p["containerPort"] for p in server["ports"]}
    listen = flag(server["args"], "listen")
    http = flag(server["args"], "http-listen")
    assert listen and int(listen.rsplit(":", 1)[1]) == ports["grpc"]
    assert http and int(http.rsplit(":", 1)[1]) == ports["http"]
    # The dataset browser is off in prod unless enabled there, on elsewhere.
    assert flag(server["args"], "browser") == ("false" if name == "prod" else "true")
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        assert server[probe]["grpc"]["port"] == ports["grpc"], probe
    annotations = dep["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert int(annotations["prometheus.io/port"]) == ports["http"]
    # Services point at the named ports; the gRPC one says so.
    services = {s["metadata"]["name"]: s for s in of_kind(docs, "Service")}
    grpc_port = [p for p in services["m3serve"]["spec"]["ports"] if p["name"] == "grpc"][0]
    assert grpc_port["targetPort"] == "grpc" and grpc_port["appProtocol"] == "grpc"
    assert services["m3serve-headless"]["spec"]["clusterIP"] == "None"
    # The NetworkPolicy admits exactly the gRPC and metrics ports.
    (netpol,) = of_kind(docs, "NetworkPolicy")
    allowed = {p["port"] for rule in netpol["spec"]["ingress"] for p in rule["ports"]}
    assert allowed == {ports["grpc"], ports["http"]}


def test_drain_fits_in_the_grace_period(overlay):
    name, docs = overlay
    (dep,) = of_kind(docs, "Deployment")
    spec = dep["spec"]["template"]["spec"]
    (server,) = [c for c in spec["containers"] if c["name"] == "server"]
    (config,) = [c for c in of_kind(docs, "ConfigMap") if c["metadata"]["name"].startswith("m3serve-config")]
    drain = flag(server["args"], "drain-seconds")
    m = re.fullmatch(r"\$\((\w+)\)", drain)
    drain = int(config["data"][m.group(1)]) if m else int(drain)
    assert spec["terminationGracePeriodSeconds"] > drain
    # Every $(VAR) in the args comes from the ConfigMap the container loads.
    for a in server["args"]:
        for var in re.findall(r"\$\((\w+)\)", a):
            assert var in config["data"], var
    assert any(e["configMapRef"]["name"] == config["metadata"]["name"] for e in server["envFrom"])


def test_every_container_is_locked_down_and_sized(overlay):
    name, docs = overlay
    for owner, spec in pod_specs(docs):
        psc = spec["securityContext"]
        assert psc["runAsNonRoot"] is True and psc["runAsUser"] != 0
        for c in spec.get("initContainers", []) + spec["containers"]:
            where = f"{name}: {owner['kind']}/{owner['metadata']['name']} container {c['name']}"
            sc = c["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False, where
            assert sc["readOnlyRootFilesystem"] is True, where
            assert sc["runAsNonRoot"] is True, where
            assert sc["capabilities"]["drop"] == ["ALL"], where
            for kind in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(c["resources"][kind]), where


def test_store_is_read_only_for_servers(overlay):
    name, docs = overlay
    (dep,) = of_kind(docs, "Deployment")
    (server,) = [c for c in dep["spec"]["template"]["spec"]["containers"] if c["name"] == "server"]
    mounts = {m["mountPath"]: m for m in server["volumeMounts"]}
    db = flag(server["args"], "db")
    assert db in mounts
    assert mounts[db]["readOnly"] is True
    # The only writable part of the store volume: the leases folder of the publish root.
    writable = [m for m in server["volumeMounts"] if m["name"] == mounts[db]["name"] and not m.get("readOnly")]
    assert [(m["mountPath"], m.get("subPath")) for m in writable] == [(db + "/leases", "leases")]


def test_namespace_is_rendered(overlay):
    name, docs = overlay
    (ns,) = of_kind(docs, "Namespace")
    namespaced = [d for d in docs if d["kind"] != "Namespace"]
    assert {d["metadata"]["namespace"] for d in namespaced} == {ns["metadata"]["name"]}


def test_servers_wait_for_the_first_publish(overlay):
    name, docs = overlay
    (dep,) = of_kind(docs, "Deployment")
    spec = dep["spec"]["template"]["spec"]
    (server,) = [c for c in spec["containers"] if c["name"] == "server"]
    inits = {c["name"]: c for c in spec.get("initContainers", [])}
    if name == "dev":
        # dev publishes its sample in an init container, into the root the server opens.
        script = inits["sample-store"]["args"][0]
        assert "m3serve-admin publish" in script and f"--root {flag(server['args'], 'db')}" in script
        assert "wait-store" not in inits
    else:
        wait = inits["wait-store"]
        assert wait["command"] == ["m3serve-admin"] and wait["args"][0] == "wait-store"
        assert flag(wait["args"], "db") == flag(server["args"], "db")
        assert flag(wait["args"], "timeout") == "0"
        # The data Job publishes into the volume the servers mount, with m3serve-admin publish.
        (job,) = of_kind(docs, "Job")
        jspec = job["spec"]["template"]["spec"]
        script = jspec["containers"][0]["args"][0]
        m = re.search(r"m3serve-admin publish --db \S+ --root (\S+)", script)
        assert m, script
        (jmount,) = [v for v in jspec["containers"][0]["volumeMounts"] if v["mountPath"] == m.group(1)]
        claim = {v["name"]: v["persistentVolumeClaim"]["claimName"] for v in jspec["volumes"]}[jmount["name"]]
        store_volume = {m["mountPath"]: m["name"] for m in server["volumeMounts"]}[flag(server["args"], "db")]
        dclaim = {v["name"]: v.get("persistentVolumeClaim", {}).get("claimName") for v in spec["volumes"]}
        assert dclaim[store_volume] == claim
        # No step of the Job deletes a store (the clean-up of publish keeps what servers hold).
        assert "rm -rf" not in script


def test_image_names_are_consistent(overlay):
    name, docs = overlay
    images = {c["image"] for _, spec in pod_specs(docs) for c in spec.get("initContainers", []) + spec["containers"]}
    assert len(images) == 1, images
    (image,) = images
    assert image.startswith("m3serve:") and not image.endswith(":latest")


def test_scaling_objects(overlay):
    name, docs = overlay
    (dep,) = of_kind(docs, "Deployment")
    (hpa,) = of_kind(docs, "HorizontalPodAutoscaler")
    (pdb,) = of_kind(docs, "PodDisruptionBudget")
    assert hpa["spec"]["scaleTargetRef"]["name"] == dep["metadata"]["name"]
    assert hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu"
    selector = dep["spec"]["selector"]["matchLabels"]
    assert pdb["spec"]["selector"]["matchLabels"] == selector
    if name == "dev":
        assert dep["spec"]["replicas"] == 1
        assert dep["spec"]["template"]["spec"]["initContainers"][0]["name"] == "sample-store"
        assert not of_kind(docs, "PersistentVolumeClaim")
    else:
        assert dep["spec"]["replicas"] == 3 and hpa["spec"]["minReplicas"] == 3
        anti = dep["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"]
        assert anti["requiredDuringSchedulingIgnoredDuringExecution"][0]["topologyKey"] == "kubernetes.io/hostname"
        assert of_kind(docs, "Job"), "prod includes the data Job"
        (server,) = dep["spec"]["template"]["spec"]["containers"]
        assert flag(server["args"], "token-key-file")
