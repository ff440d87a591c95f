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


VALUE_SETS = {"default": None, "three-brokers-three-coordinators": cluster_values()}


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
