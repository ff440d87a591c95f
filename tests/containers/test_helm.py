"""The helm chart, without a cluster: `helm lint --strict` and `helm template`
through helm-python-sdk (Helm's Go SDK as a library), every rendered
manifest validated against Kubernetes' schemas with kubernetes-validate, and
assertions over the rendered objects."""
from pathlib import Path

import pytest
import yaml

CHART = Path(__file__).resolve().parents[2] / "helm" / "gregor"
KUBE_VERSION = "1.30.0"

helm = pytest.importorskip("helm_python", reason="pip install -r tests/containers/requirements.txt")
kubernetes_validate = pytest.importorskip("kubernetes_validate")


def cluster_values():
    return yaml.safe_load((CHART / "ci" / "cluster-values.yaml").read_text())


def render(values):
    chart = helm.Chart.load(str(CHART))
    manifests = chart.render(values, name="demo", namespace="kafka", is_install=True)
    objects = []
    for path, text in manifests.items():
        if path.endswith("NOTES.txt"):
            continue
        objects += [doc for doc in yaml.safe_load_all(text) if doc]
    return objects, manifests


def by_kind(objects, kind):
    return [o for o in objects if o["kind"] == kind]


def named(objects, kind, name):
    [found] = [o for o in by_kind(objects, kind) if o["metadata"]["name"] == name]
    return found


def secure_values():
    return yaml.safe_load((CHART / "ci" / "secure-values.yaml").read_text())


VALUE_SETS = {
    "default": None,
    "three-brokers-three-coordinators": cluster_values(),
    "secure": secure_values(),
}


@pytest.mark.parametrize("values", VALUE_SETS.values(), ids=VALUE_SETS.keys())
def test_chart_lints_strictly(values):
    report = helm.lint(str(CHART), values, strict=True, kube_version=f"v{KUBE_VERSION}")
    problems = [m for m in report["messages"] if m["severity"] >= 2] + report["errors"]
    assert not problems, problems


@pytest.mark.parametrize("values", VALUE_SETS.values(), ids=VALUE_SETS.keys())
def test_every_rendered_manifest_matches_the_kubernetes_schema(values):
    objects, _ = render(values)
    assert objects
    for obj in objects:
        kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)


@pytest.mark.parametrize("values", VALUE_SETS.values(), ids=VALUE_SETS.keys())
def test_statefulsets_name_their_headless_services(values):
    objects, _ = render(values)
    services = {s["metadata"]["name"]: s for s in by_kind(objects, "Service")}
    for sts in by_kind(objects, "StatefulSet"):
        headless = services[sts["spec"]["serviceName"]]
        assert headless["spec"]["clusterIP"] == "None"
        selector = sts["spec"]["selector"]["matchLabels"]
        assert headless["spec"]["selector"] == selector
        assert sts["spec"]["template"]["metadata"]["labels"].items() >= selector.items()


@pytest.mark.parametrize("values", VALUE_SETS.values(), ids=VALUE_SETS.keys())
def test_every_target_port_names_a_container_port(values):
    objects, _ = render(values)
    port_names = set()
    for sts in by_kind(objects, "StatefulSet"):
        for container in sts["spec"]["template"]["spec"]["containers"]:
            port_names |= {p["name"] for p in container["ports"]}
            for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
                if probe in container:
                    assert container[probe]["httpGet"]["port"] in port_names
    for service in by_kind(objects, "Service"):
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in port_names, (service["metadata"]["name"], port)


def env_names_before(container, text):
    """Names of the env entries defined before the first one whose value contains `text`."""
    names = []
    for entry in container["env"]:
        if text in entry.get("value", ""):
            return names
        names.append(entry["name"])
    return None


def test_default_brokers_advertise_their_pod_dns_names():
    objects, _ = render(None)
    broker = named(objects, "StatefulSet", "demo-gregor-broker")
    [container] = broker["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e for e in container["env"]}
    advertised = env["KAFKA_ADVERTISED_LISTENERS"]["value"]
    assert advertised == (
        "INTERNAL://$(POD_NAME).demo-gregor-broker-headless.$(POD_NAMESPACE)"
        ".svc.cluster.local:9092"
    )
    # Kubernetes expands $(VAR) only from entries defined earlier in env.
    earlier = env_names_before(container, "$(POD_NAME)")
    assert {"POD_NAME", "POD_NAMESPACE"} <= set(earlier)
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert env["KAFKA_ZOOKEEPER_CONNECT"]["value"] == (
        "demo-gregor-coordinator-0.demo-gregor-coordinator-headless.kafka.svc.cluster.local:2181"
    )


def test_cluster_values_give_each_broker_its_external_address():
    objects, manifests = render(cluster_values())
    broker = named(objects, "StatefulSet", "demo-gregor-broker")
    assert broker["spec"]["replicas"] == 3
    [container] = broker["spec"]["template"]["spec"]["containers"]
    assert container["args"] == ["gregor", "broker", "/etc/gregor/$(POD_NAME).properties"]
    assert container["env"][0]["name"] == "POD_NAME"
    config = named(objects, "ConfigMap", "demo-gregor-broker")["data"]
    for i, host in enumerate(["node-a.example.com", "node-b.example.com", "node-c.example.com"]):
        props = dict(line.split("=", 1) for line in config[f"demo-gregor-broker-{i}.properties"]
                     .splitlines() if line)
        assert props["advertised.listeners"] == (
            f"INTERNAL://demo-gregor-broker-{i}.demo-gregor-broker-headless.kafka.svc"
            f".cluster.local:9092,EXTERNAL://{host}:{31090 + i}"
        )
        assert props["num.partitions"] == "6"
        assert props["log.segment.bytes"] == "1073741824"
        external = named(objects, "Service", f"demo-gregor-broker-{i}-external")
        assert external["spec"]["type"] == "NodePort"
        assert external["spec"]["ports"][0]["nodePort"] == 31090 + i
        assert external["spec"]["selector"]["statefulset.kubernetes.io/pod-name"] == \
            f"demo-gregor-broker-{i}"
    connect = {e["name"]: e for e in container["env"]}["KAFKA_ZOOKEEPER_CONNECT"]["value"]
    assert len(connect.split(",")) == 3
    notes = next(text for path, text in manifests.items() if path.endswith("NOTES.txt"))
    assert "node-a.example.com:31090" in notes


def env_of_container(container):
    return {e["name"]: e for e in container["env"]}


def test_cluster_values_render_a_three_member_quorum_and_three_brokers():
    """replicaCount=3, coordinator.replicas=3: the coordinator StatefulSet
    names every member in ZOO_SERVERS (pod N is server.N+1, by its stable
    DNS name; each pod takes its myid from POD_NAME), the headless Service
    carries the raft peer port, and the brokers list every member."""
    objects, manifests = render(cluster_values())
    coordinators = named(objects, "StatefulSet", "demo-gregor-coordinator")
    assert coordinators["spec"]["replicas"] == 3
    assert coordinators["spec"]["serviceName"] == "demo-gregor-coordinator-headless"
    [container] = coordinators["spec"]["template"]["spec"]["containers"]
    env = env_of_container(container)
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert "ZOO_MY_ID" not in env  # derived from POD_NAME: one pod template for all
    hosts = [f"demo-gregor-coordinator-{i}.demo-gregor-coordinator-headless.kafka.svc.cluster.local"
             for i in range(3)]
    assert env["ZOO_SERVERS"]["value"].split(" ") == [
        f"server.{i + 1}={host}:2888:3888;2181" for i, host in enumerate(hosts)]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"client": 2181, "peer": 2888}
    headless = named(objects, "Service", "demo-gregor-coordinator-headless")
    assert headless["spec"]["publishNotReadyAddresses"] is True
    assert {p["name"]: p["port"] for p in headless["spec"]["ports"]} == {"client": 2181, "peer": 2888}
    # Clients of the coordinator never get the raft port.
    client_service = named(objects, "Service", "demo-gregor-coordinator")
    assert [p["name"] for p in client_service["spec"]["ports"]] == ["client"]

    brokers = named(objects, "StatefulSet", "demo-gregor-broker")
    assert brokers["spec"]["replicas"] == 3
    [broker] = brokers["spec"]["template"]["spec"]["containers"]
    connect = env_of_container(broker)["KAFKA_ZOOKEEPER_CONNECT"]["value"]
    assert connect.split(",") == [f"{host}:2181" for host in hosts]
    config = named(objects, "ConfigMap", "demo-gregor-broker")["data"]
    racks = [properties(config[f"demo-gregor-broker-{i}.properties"])["broker.rack"] for i in range(3)]
    assert racks == ["rack1", "rack2", "rack3"]
    budgets = {p["metadata"]["name"]: p["spec"] for p in by_kind(objects, "PodDisruptionBudget")}
    assert budgets["demo-gregor-coordinator"]["maxUnavailable"] == 1
    notes = next(text for path, text in manifests.items() if path.endswith("NOTES.txt"))
    assert "3 broker(s), 3 coordinator(s)" in notes


@pytest.mark.parametrize("values,brokers", [
    (None, 1),
    ({"replicaCount": 5}, 5),
    ({"broker": {"replicas": 2}}, 2),  # the older name still works
], ids=["default", "replicaCount", "broker.replicas"])
def test_replica_count_is_the_number_of_brokers(values, brokers):
    objects, _ = render(values)
    assert named(objects, "StatefulSet", "demo-gregor-broker")["spec"]["replicas"] == brokers


def test_a_single_coordinator_renders_as_before_without_a_quorum():
    objects, _ = render(None)
    _, coordinator = container_of(objects, "demo-gregor-coordinator")
    env = env_of_container(coordinator)
    assert "ZOO_SERVERS" not in env and "ZOO_MY_ID" not in env
    assert [p["name"] for p in coordinator["ports"]] == ["client"]
    headless = named(objects, "Service", "demo-gregor-coordinator-headless")
    assert [p["name"] for p in headless["spec"]["ports"]] == ["client"]
    _, broker = container_of(objects, "demo-gregor-broker")
    assert broker["args"] == ["gregor", "broker", "/etc/gregor/server.properties"]


def test_racks_alone_give_each_broker_its_own_file_round_robin():
    objects, _ = render({"replicaCount": 3, "broker": {"racks": ["zone-a", "zone-b"]}})
    _, broker = container_of(objects, "demo-gregor-broker")
    assert broker["args"] == ["gregor", "broker", "/etc/gregor/$(POD_NAME).properties"]
    # Without external access the advertised listener stays the pod's DNS name.
    assert "$(POD_NAME)" in env_of_container(broker)["KAFKA_ADVERTISED_LISTENERS"]["value"]
    config = named(objects, "ConfigMap", "demo-gregor-broker")["data"]
    racks = [properties(config[f"demo-gregor-broker-{i}.properties"]) for i in range(3)]
    assert [r["broker.rack"] for r in racks] == ["zone-a", "zone-b", "zone-a"]
    assert not [r for r in racks if "advertised.listeners" in r]


def test_a_five_member_quorum():
    objects, _ = render({"coordinator": {"replicas": 5}})
    _, coordinator = container_of(objects, "demo-gregor-coordinator")
    servers = env_of_container(coordinator)["ZOO_SERVERS"]["value"].split(" ")
    assert [s.split("=")[0] for s in servers] == [f"server.{n}" for n in range(1, 6)]
    _, broker = container_of(objects, "demo-gregor-broker")
    assert len(env_of_container(broker)["KAFKA_ZOOKEEPER_CONNECT"]["value"].split(",")) == 5


@pytest.mark.parametrize("values,message", [
    ({"coordinator": {"replicas": 2}}, "odd quorum"),
    ({"coordinator": {"replicas": 4}}, "odd quorum"),
    ({"coordinator": {"replicas": 3, "podDisruptionBudget": {"maxUnavailable": 2}}}, "majority"),
    ({"coordinator": {"replicas": 3, "tls": {"enabled": True}}, "tls": {"existingSecret": "t"}},
     "not supported yet"),
    ({"replicaCount": 0}, "at least one broker"),
], ids=["two-coordinators", "four-coordinators", "budget-over-a-minority", "tls-quorum", "no-brokers"])
def test_unsound_cluster_shapes_are_refused(values, message):
    with pytest.raises(Exception, match=message):
        render(values)


@pytest.mark.parametrize("values,budgets", [
    (None, set()),
    (cluster_values(), {"demo-gregor-broker", "demo-gregor-coordinator"}),
    ({"broker": {"replicas": 2}}, {"demo-gregor-broker"}),
], ids=["one-each", "three-each", "two-brokers"])
def test_pod_disruption_budget_exactly_when_more_than_one_replica(values, budgets):
    objects, _ = render(values)
    assert {p["metadata"]["name"] for p in by_kind(objects, "PodDisruptionBudget")} == budgets


def test_pods_run_as_non_root_with_a_read_only_root_filesystem():
    objects, _ = render(None)
    for sts in by_kind(objects, "StatefulSet"):
        pod = sts["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        for container in pod["containers"]:
            assert container["securityContext"]["readOnlyRootFilesystem"] is True
            assert container["resources"]["limits"]["memory"]
        claim = sts["spec"]["volumeClaimTemplates"][0]
        assert claim["metadata"]["name"] == "data"


def test_external_access_without_an_address_per_broker_is_refused():
    with pytest.raises(Exception, match="advertisedHosts"):
        render({"broker": {"replicas": 2},
                "external": {"enabled": True, "advertisedHosts": ["only-one"]}})


# --- TLS, SASL and ACLs (ci/secure-values.yaml) ---

def container_of(objects, name):
    sts = named(objects, "StatefulSet", name)
    [container] = sts["spec"]["template"]["spec"]["containers"]
    return sts["spec"]["template"]["spec"], container


def properties(text):
    return dict(line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#"))


def secret_mount_dirs(pod, container, secret):
    """Directories where `secret` is mounted in `container`, each read-only."""
    volumes = {v["name"] for v in pod["volumes"] if v.get("secret", {}).get("secretName") == secret}
    mounts = [m for m in container["volumeMounts"] if m["name"] in volumes]
    assert all(m.get("readOnly") is True for m in mounts), mounts
    assert all("subPath" not in m for m in mounts), "a subPath mount never sees a renewed Secret"
    return {m["mountPath"] for m in mounts}


def test_secure_values_mount_the_tls_secret_read_only_where_the_ssl_keys_point():
    objects, _ = render(secure_values())
    pod, broker = container_of(objects, "demo-gregor-broker")
    dirs = secret_mount_dirs(pod, broker, "gregor-tls")
    assert dirs
    config = named(objects, "ConfigMap", "demo-gregor-broker")["data"]
    for name, text in config.items():
        props = properties(text)
        locations = {k: v for k, v in props.items() if k.endswith(".location")}
        assert {"ssl.keystore.location", "ssl.truststore.location",
                "zookeeper.ssl.keystore.location", "zookeeper.ssl.truststore.location"} <= set(locations)
        for key, path in locations.items():
            assert str(Path(path).parent) in dirs, (name, key, path)
        assert props["ssl.keystore.type"] == props["ssl.truststore.type"] == "PEM"
        assert props["ssl.keystore.location"].endswith("/broker-keystore.pem")
        assert props["ssl.truststore.location"].endswith("/ca.pem")
    pod, coordinator = container_of(objects, "demo-gregor-coordinator")
    dirs = secret_mount_dirs(pod, coordinator, "gregor-tls")
    env = {e["name"]: e.get("value") for e in coordinator["env"]}
    for key in ("GREGOR_COORDINATOR_SSL_KEYSTORE_LOCATION", "GREGOR_COORDINATOR_SSL_TRUSTSTORE_LOCATION"):
        assert str(Path(env[key]).parent) in dirs, key
    assert env["GREGOR_COORDINATOR_SSL_KEYSTORE_LOCATION"].endswith("/coordinator-keystore.pem")


def non_secret_text(objects):
    return yaml.safe_dump_all([o for o in objects if o["kind"] != "Secret"])


@pytest.mark.parametrize("sasl,secret", [
    ({"client": {"users": ["admin"]}, "existingSecret": "gregor-sasl"}, "gregor-sasl"),
    ({"client": {"users": ["admin", "alice"], "passwords": ["s3cret-admin", "s3cret-alice"]},
      "existingSecret": ""}, "demo-gregor-sasl"),
    ({"client": {"users": ["admin"], "passwords": "s3cret-admin"}, "existingSecret": ""},
     "demo-gregor-sasl"),
], ids=["existing-secret", "password-list", "password-string"])
def test_sasl_passwords_only_come_from_a_secret(sasl, secret):
    values = secure_values()
    values["sasl"] = {**values["sasl"], **sasl}
    objects, _ = render(values)
    _, broker = container_of(objects, "demo-gregor-broker")
    env = {e["name"]: e for e in broker["env"]}
    assert env["KAFKA_CLIENT_USERS"]["value"] == ",".join(sasl["client"]["users"])
    assert "value" not in env["KAFKA_CLIENT_PASSWORDS"]
    assert env["KAFKA_CLIENT_PASSWORDS"]["valueFrom"]["secretKeyRef"] == {
        "name": secret, "key": "client-passwords"}
    text = non_secret_text(objects)
    assert "s3cret" not in text
    for config in by_kind(objects, "ConfigMap"):
        for data in config["data"].values():
            assert "password" not in data.lower()
    secrets = {s["metadata"]["name"]: s for s in by_kind(objects, "Secret")}
    if sasl["existingSecret"]:
        assert not secrets
    else:
        import base64
        stored = base64.b64decode(secrets[secret]["data"]["client-passwords"]).decode()
        passwords = sasl["client"]["passwords"]
        assert stored == (passwords if isinstance(passwords, str) else ",".join(passwords))


@pytest.mark.parametrize("client,external", [
    ("PLAINTEXT", None), ("SSL", None), ("SASL_PLAINTEXT", None), ("SASL_SSL", None),
    ("SSL", "SASL_SSL"), ("SASL_PLAINTEXT", "PLAINTEXT"),
])
def test_the_listeners_protocol_map_matches_the_values(client, external):
    values = {"listeners": {"client": {"protocol": client}}, "tls": {"existingSecret": "gregor-tls"}}
    if external:
        values["listeners"]["external"] = {"protocol": external}
        values["external"] = {"enabled": True, "advertisedHosts": ["node-a.example.com"]}
    objects, _ = render(values)
    pod, broker = container_of(objects, "demo-gregor-broker")
    env = {e["name"]: e.get("value") for e in broker["env"]}
    expected = f"INTERNAL:{client}" + (f",EXTERNAL:{external}" if external else "")
    assert env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"] == expected
    assert [name.split(":")[0] for name in env["KAFKA_LISTENERS"].split(",")] == \
        [p.split(":")[0] for p in expected.split(",")]
    props = properties(named(objects, "ConfigMap", "demo-gregor-broker")["data"]["server.properties"])
    protocols = {client, external}
    uses_tls = bool(protocols & {"SSL", "SASL_SSL"})
    assert ("ssl.keystore.location" in props) == uses_tls
    assert bool(secret_mount_dirs(pod, broker, "gregor-tls")) == uses_tls
    assert ("sasl.enabled.mechanisms" in props) == bool(protocols & {"SASL_PLAINTEXT", "SASL_SSL"})


def test_the_coordinator_serves_mutual_tls_and_brokers_reach_it_with_zookeeper_ssl():
    objects, _ = render(secure_values())
    pod, coordinator = container_of(objects, "demo-gregor-coordinator")
    env = {e["name"]: e.get("value") for e in coordinator["env"]}
    assert env["GREGOR_COORDINATOR_SECURECLIENTPORT"] == "2182"
    assert env["GREGOR_COORDINATOR_SSL_CLIENTAUTH"] == "need"
    assert env["GREGOR_COORDINATOR_SUPER_USERS"] == "User:CN=broker,O=gregor"
    ports = {p["name"]: p["containerPort"] for p in coordinator["ports"]}
    assert ports == {"client": 2181, "client-tls": 2182}
    # The kubelet probes the plaintext port, which answers health checks only;
    # the Services offer the TLS port alone.
    for probe in ("readinessProbe", "livenessProbe"):
        assert coordinator[probe]["httpGet"]["port"] == "client"
    for name in ("demo-gregor-coordinator", "demo-gregor-coordinator-headless"):
        service = named(objects, "Service", name)
        assert [(p["port"], p["targetPort"]) for p in service["spec"]["ports"]] == [(2182, "client-tls")]
    _, broker = container_of(objects, "demo-gregor-broker")
    connect = {e["name"]: e.get("value") for e in broker["env"]}["KAFKA_ZOOKEEPER_CONNECT"]
    assert connect.endswith(":2182")
    props = properties(named(objects, "ConfigMap", "demo-gregor-broker")["data"]["server.properties"])
    assert props["zookeeper.ssl.client.enable"] == "true"
    assert props["zookeeper.ssl.keystore.type"] == props["zookeeper.ssl.truststore.type"] == "PEM"


def test_secure_values_mirror_compose_secure():
    objects, manifests = render(secure_values())
    notes = next(text for path, text in manifests.items() if path.endswith("NOTES.txt"))
    assert "-X security.protocol=SASL_SSL -X ssl.ca.location=ca.pem" in notes
    assert "demo-gregor-coordinator:2182" in notes and ":2181" not in notes
    props = properties(named(objects, "ConfigMap", "demo-gregor-broker")["data"]["server.properties"])
    assert props["authorizer.class.name"] == "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
    assert props["super.users"] == "User:admin;User:CN=client,O=gregor"
    assert props["allow.everyone.if.no.acl.found"] == "false"
    assert props["sasl.enabled.mechanisms"] == "SCRAM-SHA-256,SCRAM-SHA-512"
    assert props["ssl.client.auth"] == "required"
    assert props["listener.name.external.ssl.client.auth"] == "none"
    # The admin port stays reachable for the kubelet's probes.
    assert props["admin.listener"] == "0.0.0.0:9644"


def test_defaults_stay_plaintext_without_security_keys():
    objects, _ = render(None)
    pod, broker = container_of(objects, "demo-gregor-broker")
    env = {e["name"]: e.get("value") for e in broker["env"]}
    assert env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"] == "INTERNAL:PLAINTEXT"
    assert "KAFKA_CLIENT_USERS" not in env
    assert not [v for v in pod["volumes"] if "secret" in v]
    props = properties(named(objects, "ConfigMap", "demo-gregor-broker")["data"]["server.properties"])
    assert not [k for k in props if k.startswith(("ssl.", "sasl.", "zookeeper.ssl", "authorizer", "super"))]
    assert not by_kind(objects, "Secret")


@pytest.mark.parametrize("values,message", [
    ({"listeners": {"client": {"protocol": "SSL"}}}, "tls.existingSecret"),
    ({"coordinator": {"tls": {"enabled": True}}}, "tls.existingSecret"),
    ({"listeners": {"client": {"protocol": "SSL"}},
      "tls": {"existingSecret": "gregor-tls", "type": "JKS"}}, "PEM"),
    ({"listeners": {"client": {"protocol": "TLS"}}}, "SASL_SSL"),
    ({"sasl": {"client": {"users": ["admin"]}}}, "sasl.existingSecret"),
    ({"broker": {"config": {"listener.name.internal.plain.sasl.jaas.config": "x"}}}, "Secret"),
    ({"broker": {"config": {"ssl.key.password": "x"}}}, "Secret"),
], ids=["ssl-without-secret", "coordinator-tls-without-secret", "jks", "unknown-protocol",
        "users-without-passwords", "jaas-in-configmap", "password-in-configmap"])
def test_inconsistent_security_values_are_refused(values, message):
    with pytest.raises(Exception, match=message):
        render(values)


def test_the_secure_values_run_on_the_binary(tmp_path):
    """ci/secure-values.yaml as rendered (env, server.properties, Secret file
    names) drives a real coordinator and broker; the probes' ports answer,
    and clients get in over SSL with a certificate and SASL_SSL with SCRAM."""
    import os
    import subprocess
    import time
    import urllib.request

    from conftest import ROOT, free_port
    admin = pytest.importorskip("confluent_kafka.admin")
    binary = Path(os.environ.get("GREGOR_BIN", ROOT / "target" / "debug" / "gregor"))
    if not binary.exists():
        pytest.skip(f"{binary} not built")
    ports = {name: free_port() for name in ("kafka", "external", "admin", "client", "tls")}
    values = secure_values()
    values["broker"].update(replicas=1, port=ports["kafka"], adminPort=ports["admin"])
    values["external"].update(containerPort=ports["external"], advertisedHosts=["localhost"])
    values["coordinator"]["port"] = ports["client"]
    values["coordinator"]["tls"]["port"] = ports["tls"]
    objects, _ = render(values)
    secret = tmp_path / "secret"
    subprocess.run([binary, "security", "init", secret, "--hosts", "localhost,127.0.0.1"],
                   check=True, capture_output=True, timeout=60)

    def local(text):
        return text.replace("/etc/gregor-tls", str(secret)).replace("/var/lib/gregor", str(tmp_path))

    def env_of(name, **extra):
        _, container = container_of(objects, name)
        env = {e["name"]: local(e["value"]) for e in container["env"] if "value" in e}
        return {"PATH": os.environ["PATH"], **env, **extra}

    config = named(objects, "ConfigMap", "demo-gregor-broker")["data"]["demo-gregor-broker-0.properties"]
    (tmp_path / "server.properties").write_text(local(config))
    coordinator_env = env_of("demo-gregor-coordinator", POD_NAME="demo-gregor-coordinator-0",
                             GREGOR_COORDINATOR_DATA_DIR=str(tmp_path / "coordinator"))
    broker_env = env_of("demo-gregor-broker", POD_NAME="demo-gregor-broker-0", POD_NAMESPACE="kafka",
                        KAFKA_ZOOKEEPER_CONNECT=f"localhost:{ports['tls']}",
                        KAFKA_CLIENT_PASSWORDS="admin-secret")
    procs = []
    try:
        log = tmp_path / "coordinator.log"
        procs.append(subprocess.Popen([binary, "coordinator"], env=coordinator_env,
                                      stdout=log.open("w"), stderr=subprocess.STDOUT))
        time.sleep(1)
        if 'key="secureclientport"' in log.read_text():
            pytest.skip("this build's coordinator has no secureClientPort (branch control-plane)")
        procs.append(subprocess.Popen([binary, "broker", tmp_path / "server.properties"],
                                      env=broker_env, stdout=(tmp_path / "broker.log").open("w"),
                                      stderr=subprocess.STDOUT))

        def probe(port, path):
            deadline = time.monotonic() + 30
            while True:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as r:
                        return r.status
                except OSError:
                    if time.monotonic() > deadline:
                        raise AssertionError((tmp_path / "broker.log").read_text()
                                             + log.read_text())
                    time.sleep(0.2)

        # What the kubelet's httpGet probes reach: the coordinator's
        # plaintext port and the broker's admin port.
        assert probe(ports["client"], "/healthz") == 200
        assert probe(ports["admin"], "/readyz") == 200
        ca = str(secret / "ca.pem")
        clients = {
            "external SASL_SSL": {"bootstrap.servers": f"localhost:{ports['external']}",
                                  "security.protocol": "SASL_SSL", "ssl.ca.location": ca,
                                  "sasl.mechanisms": "SCRAM-SHA-512", "sasl.username": "admin",
                                  "sasl.password": "admin-secret"},
            "internal SSL": {"bootstrap.servers": f"localhost:{ports['kafka']}",
                             "security.protocol": "SSL", "ssl.ca.location": ca,
                             "ssl.certificate.location": str(secret / "client.pem"),
                             "ssl.key.location": str(secret / "client.key")},
        }
        for name, conf in clients.items():
            metadata = admin.AdminClient(conf).list_topics(timeout=15)
            assert list(metadata.brokers) == [0], name
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=15)


def test_the_rendered_quorum_runs_on_the_binary(tmp_path):
    """ci/cluster-values.yaml as rendered drives three real coordinators
    (ZOO_SERVERS and POD_NAME exactly as the pods get them, only the pod DNS
    names and ports mapped to loopback) and three brokers (their env and
    per-pod files): the members elect a leader from the ids they took from
    their pod names, and confluent-kafka produces to and consumes from a
    topic spread over the three brokers."""
    import json
    import os
    import subprocess
    import time
    import urllib.request

    from conftest import ROOT, free_port
    kafka = pytest.importorskip("confluent_kafka")
    admin = pytest.importorskip("confluent_kafka.admin")
    binary = Path(os.environ.get("GREGOR_BIN", ROOT / "target" / "debug" / "gregor"))
    if not binary.exists():
        pytest.skip(f"{binary} not built")
    objects, _ = render(cluster_values())
    _, coordinator = container_of(objects, "demo-gregor-coordinator")
    rendered = env_of_container(coordinator)["ZOO_SERVERS"]["value"]
    # Pod N's DNS name and ports -> loopback ports of its own.
    members = []
    for i in range(3):
        host = f"demo-gregor-coordinator-{i}.demo-gregor-coordinator-headless.kafka.svc.cluster.local"
        members.append({"host": host, "client": free_port(), "peer": free_port(), "election": free_port()})
    servers = rendered
    for member in members:
        servers = servers.replace(f"{member['host']}:2888:3888;2181",
                                  f"127.0.0.1:{member['peer']}:{member['election']};{member['client']}")
    assert "svc.cluster.local" not in servers and len(servers.split(" ")) == 3

    def plain_env(container, **extra):
        env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
        return {"PATH": os.environ["PATH"], **env, **extra}

    procs = []
    logs = []

    def start(name, args, env):
        log = tmp_path / f"{name}.log"
        logs.append(log)
        procs.append(subprocess.Popen([binary, *args], env=env, stdout=log.open("w"),
                                      stderr=subprocess.STDOUT))

    def dump():
        return "\n".join(f"--- {log.name}\n{log.read_text()[-3000:]}" for log in logs)

    try:
        for i, member in enumerate(members):
            env = plain_env(coordinator, ZOO_SERVERS=servers, POD_NAME=f"demo-gregor-coordinator-{i}",
                            GREGOR_COORDINATOR_DATA_DIR=str(tmp_path / f"coordinator-{i}"))
            del env["GREGOR_COORDINATOR_PORT"]  # the member's line says its client port
            start(f"coordinator-{i}", ["coordinator"], env)
        deadline = time.monotonic() + 60
        quorum = None
        while time.monotonic() < deadline:
            try:
                url = f"http://127.0.0.1:{members[0]['client']}/v1/quorum"
                with urllib.request.urlopen(url, timeout=2) as response:
                    quorum = json.load(response)
                if quorum.get("leader_id"):
                    break
            except OSError:
                pass
            time.sleep(0.3)
        assert quorum and quorum.get("leader_id"), dump()
        # Pod 0 is member 1: the ids came from the pod names.
        assert quorum["member_id"] == 1
        assert sorted(v["id"] for v in quorum["voters"]) == [1, 2, 3]

        _, broker = container_of(objects, "demo-gregor-broker")
        config = named(objects, "ConfigMap", "demo-gregor-broker")["data"]
        connect = ",".join(f"127.0.0.1:{m['client']}" for m in members)
        bootstrap = []
        for i in range(3):
            port, external, admin_port = free_port(), free_port(), free_port()
            props = config[f"demo-gregor-broker-{i}.properties"]
            props = "\n".join(line for line in props.splitlines()
                              if not line.startswith(("advertised.listeners", "log.dirs", "admin.listener")))
            props += (f"\nlog.dirs={tmp_path / f'broker-{i}'}\nadmin.listener=127.0.0.1:{admin_port}\n"
                      f"advertised.listeners=INTERNAL://127.0.0.1:{port},EXTERNAL://127.0.0.1:{external}\n")
            (tmp_path / f"broker-{i}.properties").write_text(props)
            env = plain_env(broker, POD_NAME=f"demo-gregor-broker-{i}", POD_NAMESPACE="kafka",
                            KAFKA_ZOOKEEPER_CONNECT=connect,
                            KAFKA_LISTENERS=f"INTERNAL://127.0.0.1:{port},EXTERNAL://127.0.0.1:{external}")
            start(f"broker-{i}", ["broker", tmp_path / f"broker-{i}.properties"], env)
            bootstrap.append(f"127.0.0.1:{port}")
        client = admin.AdminClient({"bootstrap.servers": bootstrap[0]})
        deadline = time.monotonic() + 60
        while len(client.list_topics(timeout=10).brokers) < 3:
            assert time.monotonic() < deadline, dump()
            time.sleep(0.5)
        assert sorted(client.list_topics(timeout=10).brokers) == [0, 1, 2]
        client.create_topics([admin.NewTopic("spread", 6, 1)])["spread"].result(timeout=30)
        deadline = time.monotonic() + 30
        while True:
            partitions = client.list_topics("spread", timeout=10).topics["spread"].partitions
            leaders = {p.leader for p in partitions.values()}
            if len(partitions) == 6 and -1 not in leaders:
                break
            assert time.monotonic() < deadline, dump()
            time.sleep(0.3)
        assert leaders == {0, 1, 2}
        producer = kafka.Producer({"bootstrap.servers": bootstrap[1], "acks": "all"})
        for p in range(6):
            producer.produce("spread", value=f"value-{p}".encode(), partition=p)
        assert producer.flush(30) == 0
        consumer = kafka.Consumer({"bootstrap.servers": bootstrap[2], "group.id": "helm-e2e",
                                   "auto.offset.reset": "earliest"})
        consumer.subscribe(["spread"])
        seen = set()
        deadline = time.monotonic() + 60
        while len(seen) < 6 and time.monotonic() < deadline:
            message = consumer.poll(1)
            if message is not None and not message.error():
                seen.add(message.value().decode())
        consumer.close()
        assert seen == {f"value-{p}" for p in range(6)}, dump()
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
