"""A real single-node Kubernetes 1.20.2 on this machine, offline (``cluster.sh``; ``local_cluster`` drives it)."""
