"""The sidecar agent (Istio's pilot-agent): what runs next to Envoy in a pod, such as its DNS proxy."""
