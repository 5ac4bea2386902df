"""The sidecar agent (Istio's pilot-agent and istio-iptables): traffic capture and pods on one machine."""
