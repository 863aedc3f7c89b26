"""The cluster's nodes: `node NAME { ... }` statements and `nodes from "inventory"`.

Both give the same :class:`~kubeforge.compiler.ir.ClusterNode`: addresses ordered by the
cluster's IP families (:mod:`~kubeforge.compiler.lower_network`), roles, size and labels.
Inventories are read as Ansible reads them (:mod:`~kubeforge.compiler.inventory`).
"""

from __future__ import annotations

import dataclasses

from kubeforge.compiler import values as V
from kubeforge.compiler.context import Lowerer
from kubeforge.compiler.ir import ClusterNode, NodeTaint
from kubeforge.compiler.lower_network import NetworkLowerer
from kubeforge.dsl.ast import Node, Value
from kubeforge.dsl.diagnostics import Span

NODE_ROLES = ("control-plane", "worker", "etcd", "loadbalancer")
TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")


class NodesLowerer(Lowerer):
    def __init__(self, diags, base_dir, net: NetworkLowerer, families: tuple[int, ...]) -> None:
        super().__init__(diags, base_dir)
        self.net = net
        self.families = families

    def nodes(self, body, from_stmt: Node | None, span: Span,
              etcd: str) -> tuple[ClusterNode, ...]:
        """Inline `node` statements and `nodes from` an inventory, in that file order."""
        nodes: list[ClusterNode] = []
        inventory_failed = False
        if from_stmt is not None:
            # Imported here: the inventory reader (YAML, ansible's parsers) costs a file
            # without `nodes from` a good part of its whole check.
            from kubeforge.compiler.inventory import (GROUP_ROLES, InventoryHost, InventoryProblem,
                                                      load_inventory)

            value = from_stmt.value()
            path = self.path(value)
            hosts: tuple[InventoryHost, ...] = ()
            try:
                inventory = load_inventory(path)
                hosts = inventory.candidates
                for warning in inventory.warnings:
                    self.warn("W109", f"{warning.path}:{warning.line}: {warning}", value.span)
                for host in hosts:
                    if not host.roles:
                        raise InventoryProblem(
                            f"host `{host.name}` is in none of the groups "
                            f"{', '.join(GROUP_ROLES)}", host.line,
                            "put it in the group of its role", host.file)
            except InventoryProblem as problem:
                where = f"{problem.path or path}:{problem.line}"
                self.error("E118", f"{where}: {problem}", value.span, problem.hint)
                hosts = ()
                inventory_failed = True
            for host in hosts:
                self._name_length(host.name, value.span)
                addresses = self.net.addresses(
                    [Value("IP", a, value.span) for a in host.addresses], self.families,
                    host.name)
                if addresses is None:
                    continue
                # Group connection variables stay with the inventory (apply reads them).
                nodes.append(ClusterNode(
                    name=host.name, address=addresses[0], roles=host.roles,
                    span=value.span, cpus=host.cpus, memory_mib=host.memory_mib,
                    labels=host.labels, ssh_user=host.own_user,
                    secondary_address=addresses[1]))
        for stmt in body:
            if stmt.kind == "node":
                node = self._node(stmt)
                if node is not None:
                    nodes.append(node)
        if not nodes and not inventory_failed:
            self.error("E115", "the cluster has no nodes", span,
                       'add `nodes from "inventory.yaml"` or `node NAME { address IP role ... }`')
        return self._stacked_etcd_roles(tuple(nodes), etcd)

    def _stacked_etcd_roles(self, nodes: tuple[ClusterNode, ...],
                            etcd: str) -> tuple[ClusterNode, ...]:
        """With stacked etcd the members are the control planes: an `etcd` role (Kubespray's
        inventories always have an etcd group) is implied there and wrong anywhere else."""
        if etcd != "stacked":
            return nodes
        out = []
        for node in nodes:
            if node.is_etcd and not node.is_control_plane:
                self.error("E112", f"node `{node.name}` has the etcd role, but etcd is stacked "
                           "on the control planes", node.span,
                           "drop the role (or the host from the etcd group), or use "
                           "`etcd external`")
            elif node.is_etcd:
                node = dataclasses.replace(node, roles=tuple(r for r in node.roles if r != "etcd"))
            out.append(node)
        return tuple(out)

    def _name_length(self, name: str, span: Span) -> None:
        if len(name) > V.NODE_NAME_MAX:
            self.error("E103", f"node name `{name}` is longer than {V.NODE_NAME_MAX} characters",
                       span, "the kubelet's certificate names the node `system:node:NAME`, and "
                       f"a certificate's common name holds at most {V.CERT_CN_MAX} characters")

    def _node(self, stmt: Node) -> ClusterNode | None:
        name = self.name(stmt.value(), "node", subdomain=True)
        self._name_length(name, stmt.value().span)
        body = stmt.body or ()
        self.unique_stmts(body, f"node `{name}`")
        addresses, roles, cpus, memory, labels, taints, user = None, [], None, None, [], [], None
        for item in body:
            if item.kind == "address":
                addresses = self.net.addresses(item.values(), self.families, name)
            elif item.kind == "node_role":
                for v in item.values():
                    role = self.choice(v, NODE_ROLES, "node role",
                                       {"master": "control-plane", "controlplane": "control-plane"})
                    if role and role not in roles:
                        roles.append(role)
            elif item.kind == "node_cpus":
                cpus = int(item.value().text)
            elif item.kind == "node_memory":
                memory = self.read(V.memory_mib, item.value())
            elif item.kind == "labels":
                labels.extend(self.kv(item, labels=True))
            elif item.kind == "taint":
                taints.append(self._taint(item))
            elif item.kind == "node_user":
                user = str(item.value().py)
        if addresses is None:
            if not any(i.kind == "address" for i in body):
                self.error("E115", f"node `{name}` needs an address", stmt.span,
                           "add `address 192.0.2.10`")
            return None
        if not roles:
            roles = ["worker"]
        return ClusterNode(name, addresses[0], tuple(roles), stmt.span, cpus, memory,
                           tuple(labels), tuple(t for t in taints if t), user,
                           secondary_address=addresses[1])

    def _taint(self, stmt: Node) -> NodeTaint | None:
        key = str(stmt.values()[0].py)
        value_clause = stmt.clause("toleration_value")
        effect_clause = stmt.clause("toleration_effect")
        effect = self.choice(effect_clause.value(), TAINT_EFFECTS, "taint effect") if effect_clause else None
        if effect is None:
            return None
        return NodeTaint(key, str(value_clause.value().py) if value_clause else None, effect)
