"""The sidecar agent (Istio's pilot-agent and istio-iptables): traffic capture, pods on one machine, and what runs
next to Envoy in a pod, such as its DNS proxy."""
