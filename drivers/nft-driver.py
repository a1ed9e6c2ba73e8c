#!/usr/bin/env python3
"""nft-driver: a floating-IP dataplane for fip-harness, written against the
driver protocol (docs/driver-protocol.md) with Python's standard library and
the `nft` program, to show that the protocol is language-neutral.

fip-harness starts one copy per node, inside the node's network namespace,
and sends one JSON request per line on stdin; each answer is one JSON line on
stdout. Logs go to stderr (the harness keeps them for failures).

    fip-harness run --dataplane exec:drivers/nft-driver.py scenarios/

It programs `table ip fiph-py` and `table ip6 fiph-py`: DNAT of each floating
IP to its pod in prerouting (traffic arriving at the node) and output
(traffic the node sends), for every protocol, and the loopback SNAT (a pod
reaching its own floating IP sees the floating IP as the source), as Felix's
nat rules do. Every apply replaces both tables in one `nft -f` transaction.
"""

import json
import subprocess
import sys

PROTOCOL = 1
NAME = "nft-driver.py"
VERSION = "1.0"
TABLE = "fiph-py"
# protocol family name -> (nft table family, nft address expression)
FAMILIES = {"ipv4": ("ip", "ip"), "ipv6": ("ip6", "ip6")}


def log(*words):
    print("nft-driver:", *words, file=sys.stderr, flush=True)


class Refused(Exception):
    """A request this driver cannot carry out: answered with `error`."""


def nft(*args, script=None):
    run = subprocess.run(
        ["nft", *args], input=script, text=True, capture_output=True, check=False
    )
    if run.returncode != 0:
        raise Refused(f"nft {' '.join(args)} failed ({run.returncode}): {run.stderr.strip()}")
    return run.stdout


def table_script(nat):
    """Both tables, replaced as one transaction. The chains stay even with no
    rule: a nat hook keeps the kernel's connection tracking on for the node,
    as Felix's always-present chains do."""
    lines = []
    for family, (table_family, address) in FAMILIES.items():
        dnat = nat[family]["dnat"]
        snat = nat[family]["snat"]
        lines.append(f"table {table_family} {TABLE} {{}}")
        lines.append(f"delete table {table_family} {TABLE}")
        lines.append(f"table {table_family} {TABLE} {{")
        for chain, hook, priority in (
            ("prerouting", "prerouting", "dstnat"),
            ("output", "output", "-100"),
        ):
            lines.append(f"  chain {chain} {{")
            lines.append(f"    type nat hook {hook} priority {priority}; policy accept;")
            for mapping in dnat:
                lines.append(
                    f"    {address} daddr {mapping['external']} counter dnat to {mapping['internal']}"
                )
            lines.append("  }")
        lines.append("  chain postrouting {")
        lines.append("    type nat hook postrouting priority srcnat; policy accept;")
        for mapping in snat:
            internal = mapping["internal"]
            lines.append(
                f"    {address} saddr {internal} {address} daddr {internal} counter snat to {mapping['external']}"
            )
        lines.append("  }")
        lines.append("}")
    return "\n".join(lines) + "\n"


def read_back():
    """The mappings the tables hold, from `nft -j` listings."""
    state = {family: {"dnat": [], "snat": []} for family in FAMILIES}
    for family, (table_family, _) in FAMILIES.items():
        try:
            listing = json.loads(nft("-j", "list", "table", table_family, TABLE))
        except Refused:
            continue  # no table yet
        for item in listing.get("nftables", []):
            rule = item.get("rule")
            if not rule:
                continue
            matched = {}
            for expression in rule.get("expr", []):
                match = expression.get("match")
                if match:
                    field = match.get("left", {}).get("payload", {}).get("field")
                    matched[field] = match.get("right")
                if "dnat" in expression and "daddr" in matched:
                    state[family]["dnat"].append(
                        {"external": matched["daddr"], "internal": expression["dnat"]["addr"]}
                    )
                if "snat" in expression and "saddr" in matched:
                    state[family]["snat"].append(
                        {"internal": matched["saddr"], "external": expression["snat"]["addr"]}
                    )
    return state


class Driver:
    def __init__(self):
        self.topology = None
        self.applied = None

    def pod_of(self, address):
        for pod in (self.topology or {}).get("pods", []):
            if address in pod["addresses"]:
                return pod
        return None

    def hello(self, request):
        if request.get("protocol") != PROTOCOL:
            raise Refused(f"{NAME} speaks protocol {PROTOCOL}, not {request.get('protocol')}")
        log("hello from", request.get("harness"), "timeout", request.get("timeout_ms"), "ms")
        return {
            "type": "hello",
            "protocol": PROTOCOL,
            "name": NAME,
            "version": VERSION,
            "capabilities": {
                "families": list(FAMILIES),
                "protocols": ["icmp", "gre", "sctp", "udp", "tcp"],
                "owns_conntrack": False,
            },
        }

    def topology_(self, request):
        self.topology = request
        pods = ", ".join(f"{p['pod']}@{p['interface']}" for p in request["pods"]) or "no pods"
        log(f"topology of {request['node']}: uplink {request['uplink']['name']}, {pods}")
        return {"type": "ok"}

    def apply(self, request):
        nat = {family: request[family] for family in FAMILIES}
        # The harness sends a pod's interface before any mapping names it: a
        # mapping to an address no pod of this node has is a fault worth
        # refusing (an eBPF driver would have nowhere to redirect it).
        for family in FAMILIES:
            for mapping in nat[family]["dnat"]:
                if self.pod_of(mapping["internal"]) is None:
                    raise Refused(
                        f"DNAT {mapping['external']} -> {mapping['internal']}: "
                        "no pod of this node's topology has that address"
                    )
        nft("-f", "-", script=table_script(nat))
        self.applied = nat
        return {"type": "ok"}

    def dump(self, _request):
        text = "".join(
            nft("list", "table", table_family, TABLE) for table_family, _ in FAMILIES.values()
        )
        if self.topology:
            text += f"# topology of {self.topology['node']}:\n"
            for pod in self.topology["pods"]:
                addresses = " ".join(pod["addresses"])
                text += f"#   {pod['pod']} on {pod['interface']} (mac {pod['mac']}): {addresses}\n"
        mappings = read_back()
        return {
            "type": "dump",
            "text": text,
            "json": {"topology": self.topology, "applied": self.applied},
            "mappings": mappings,
        }

    def shutdown(self, request):
        if not request.get("keep"):
            for table_family, _ in FAMILIES.values():
                try:
                    nft("delete", "table", table_family, TABLE)
                except Refused:
                    pass  # never applied
        return {"type": "ok"}

    def handle(self, request):
        handlers = {
            "hello": self.hello,
            "topology": self.topology_,
            "apply": self.apply,
            "dump": self.dump,
            "shutdown": self.shutdown,
        }
        handler = handlers.get(request.get("type"))
        if handler is None:
            # `flush` only comes to drivers that own conntrack; this one
            # leaves the kernel's table to the harness.
            raise Refused(f"{NAME} does not handle `{request.get('type')}`")
        return handler(request)


def main():
    driver = Driver()
    for line in sys.stdin:
        if not line.strip():
            continue
        request, request_id = {}, 0
        try:
            request = json.loads(line)
            request_id = request.get("id", 0)
            answer = driver.handle(request)
        except Refused as refused:
            answer = {"type": "error", "message": str(refused)}
        except (ValueError, KeyError, TypeError) as bad:
            answer = {"type": "error", "message": f"bad request: {bad!r}"}
        answer["id"] = request_id
        print(json.dumps(answer), flush=True)
        if request.get("type") == "shutdown":
            return
    # End of input: the harness went; the namespace goes with its lab.


if __name__ == "__main__":
    main()
